// Keeps what a page shows of each open session complete and in order (docs/protocol.md,
// "Delivery"): messages are kept by id (never shown twice) and placed by their sequence
// number; a gap in the numbers, a reconnect, a server:resync or a quiet spell makes the page
// ask the server (session:sync) for what it missed, or how the session ended.
import { call } from "./common.js";

const QUIET_SYNC_MS = 30000;

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
    this.timer = setInterval(() => {
      if (Date.now() - this.lastHeard > QUIET_SYNC_MS) this.sync();
    }, QUIET_SYNC_MS);
    this.lastHeard = Date.now();
  }

  receive(message) {
    if (!message || message.session_id !== this.sessionId || this.closed) return;
    this.lastHeard = Date.now();
    if (this.seen.has(message.id)) return;
    this.seen.add(message.id);
    this.numbers.add(message.seq);
    while (this.numbers.has(this.have + 1)) this.have += 1;
    this.show(message);
    if (message.seq > this.have && !this.closed) this.sync(); // a number was skipped
  }

  // The session's head as the server last described it (session_view's seq).
  known(seq) {
    if (typeof seq === "number" && seq > this.have) this.sync();
  }

  sync() {
    if (this.syncing || this.closed) return this.syncing;
    this.syncing = (async () => {
      const ack = await call(this.socket, "session:sync", {
        session_id: this.sessionId, after_seq: this.have,
      });
      this.syncing = null;
      if (!ack.ok) return;
      // Messages first: a session that ended meanwhile still hands over its last ones.
      for (const message of ack.messages || []) this.receive(message);
      if (ack.ended) { this.stop(); this.ended(ack.ended); }
    })();
    return this.syncing;
  }

  stop() {
    this.closed = true;
    clearInterval(this.timer);
  }
}
