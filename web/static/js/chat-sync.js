// Keeps what a page shows of each session complete and in order (docs/protocol.md,
// "Delivery"): messages are kept by id (never shown twice) and placed by their sequence
// number; a gap in the numbers, a reconnect, a server:resync or a quiet spell makes the page
// ask the server (session:sync) for what it missed, or how the session ended. When the
// session ends the page asks once more, for the last messages if their push was lost; the
// server keeps an ended session's messages for two minutes.
//
// A reload (issue 14): the open session's messages come back from the server's buffer of
// the open session (session:sync from 0), and, before that answers, from this tab's own
// sessionStorage ("hh_chat:<session id>", the messages this tab showed): the page shows
// them at once and the sync adds only what is newer. The copy is per tab (gone when the tab
// closes) and is deleted when the session ends, after its last sync.
import { call } from "./common.js";

const QUIET_SYNC_MS = 30000;
const ENDED_BUFFER_MS = 110000;
const KEPT_MAX = 500; // messages kept in the tab's storage per session
const keyOf = (sessionId) => `hh_chat:${sessionId}`;

function readKept(sessionId) {
  try {
    const kept = JSON.parse(sessionStorage.getItem(keyOf(sessionId)) || "[]");
    return Array.isArray(kept) ? kept : [];
  } catch (_) { return []; }
}

// Forget the tab's copy of a session (the session ended, or the page closes it).
export function forgetKept(sessionId) {
  try { sessionStorage.removeItem(keyOf(sessionId)); } catch (_) { /* storage blocked */ }
}

export class SessionSync {
  // show(message): display one new message; ended(info): the session ended meanwhile;
  // keep: keep this tab's copy of the messages (the page calls restore() once it can show).
  constructor(socket, sessionId, { show, ended, keep = true }) {
    this.socket = socket;
    this.sessionId = sessionId;
    this.show = show;
    this.ended = ended;
    this.keep = keep;
    this.kept = [];
    this.seen = new Set();
    this.have = 0; // every message up to this sequence number is shown
    this.numbers = new Set();
    this.syncing = null;
    this.endedAt = null;
    this.lastHeard = Date.now();
    this.timer = setInterval(() => {
      if (Date.now() - this.lastHeard > QUIET_SYNC_MS) this.sync();
    }, QUIET_SYNC_MS);
  }

  // Show what this tab kept of the session before a reload (then sync adds what is newer).
  restore() {
    if (!this.keep) return;
    const restored = readKept(this.sessionId).filter((m) => m && m.session_id === this.sessionId);
    restored.sort((a, b) => a.seq - b.seq);
    for (const message of restored) this.receive(message, { quiet: true });
  }

  receive(message, { quiet = false } = {}) {
    if (!message || message.session_id !== this.sessionId) return;
    this.lastHeard = Date.now();
    if (this.seen.has(message.id)) return;
    this.seen.add(message.id);
    this.numbers.add(message.seq);
    while (this.numbers.has(this.have + 1)) this.have += 1;
    this.remember(message);
    this.show(message);
    if (message.seq > this.have && !quiet) this.sync(); // a number was skipped: fetch it
  }

  remember(message) {
    if (!this.keep || this.endedAt !== null) return;
    this.kept.push(message);
    if (this.kept.length > KEPT_MAX) this.kept.splice(0, this.kept.length - KEPT_MAX);
    try {
      sessionStorage.setItem(keyOf(this.sessionId), JSON.stringify(this.kept));
    } catch (_) { /* storage full or blocked: the server's buffer still restores */ }
  }

  // The session's head as the server last described it (session_view's seq).
  known(seq) {
    if (typeof seq === "number" && seq > this.have) this.sync();
  }

  // Whether the server may still have messages of this session to give.
  get reachable() {
    return this.endedAt === null || Date.now() - this.endedAt < ENDED_BUFFER_MS;
  }

  sync() {
    if (this.syncing || !this.reachable) return this.syncing;
    this.syncing = (async () => {
      const ack = await call(this.socket, "session:sync", {
        session_id: this.sessionId, after_seq: this.have,
      });
      this.syncing = null;
      if (!ack.ok) return;
      // Messages first: a session that ended meanwhile still hands over its last ones.
      for (const message of ack.messages || []) this.receive(message);
      if (ack.ended && this.endedAt === null) { this.stop(); this.ended(ack.ended); }
    })();
    return this.syncing;
  }

  // The session ended: no more quiet-spell syncs; one last sync for what was in flight.
  stop() {
    if (this.endedAt !== null) return;
    this.endedAt = Date.now();
    clearInterval(this.timer);
    forgetKept(this.sessionId);
    this.sync();
  }
}
