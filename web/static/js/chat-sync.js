// Keeps what a page shows of each session complete and in order (docs/protocol.md,
// "Delivery"): messages are kept by id (never shown twice) and placed by their sequence
// number; a gap in the numbers, a reconnect, a server:resync or a quiet spell makes the page
// ask the server (session:sync) for what it missed, or how the session ended. When the
// session ends the page asks once more, for the last messages if their push was lost; the
// server keeps an ended session's messages for two minutes.
import { call } from "./common.js";

const QUIET_SYNC_MS = 30000;
const ENDED_BUFFER_MS = 110000;

export class SessionSync {
  // show(message): display one new message; ended(info): the session ended meanwhile.
  constructor(socket, sessionId, { show, ended }) {
    this.socket = socket;
    this.sessionId = sessionId;
    this.show = show;
    this.ended = ended;
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

  receive(message) {
    if (!message || message.session_id !== this.sessionId) return;
    this.lastHeard = Date.now();
    if (this.seen.has(message.id)) return;
    this.seen.add(message.id);
    this.numbers.add(message.seq);
    while (this.numbers.has(this.have + 1)) this.have += 1;
    this.show(message);
    if (message.seq > this.have) this.sync(); // a number was skipped: fetch it
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
    this.sync();
  }
}
