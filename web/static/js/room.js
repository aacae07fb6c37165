// A booked session's room (docs/protocol.md, "Booked sessions"), shared by the student
// widget and the tutor console: the countdown before it opens, then joining, the group
// chat with each message's sender, who is in, typing, and how it ended.
//
// Guarantees:
// * The countdown counts from the server's `starts_in_s` (its clock) with the browser's
//   monotonic clock, so a device whose clock is wrong still counts down right; screen
//   readers hear it only at a few milestones (60, 30, 10, 5 and 1 minutes), not every second.
// * Joining is `booked:join` with the highest sequence number held without a gap, on open
//   and again after every reconnect (the ack carries what was missed); one join at a time.
// * Messages are kept by id and placed by `seq` (chat-sync.js); a message first shown
//   without `by` (a student's sent before they joined the room, which the server cannot
//   name) gets its sender's name if a push that names it arrives.
// * The room ends once, whichever says so first: session:ended, a sync, or a refused join.
// Every value from the server is inserted as text (common.js `el`).
import { t, fmtTime, fmtDuration } from "./i18n.js";
import {
  el, say, call, insertMessage, enterSends, errorText, Outgoing, heldText,
} from "./common.js";
import { SessionSync } from "./chat-sync.js";

const OPEN_LEAD_S = 300;
const MILESTONES_MIN = [60, 30, 10, 5, 1];
const TYPING_EVERY_MS = 2500;
const TYPING_SHOWN_MS = 4000;

// How long until a booked session starts and opens, from what the server said.
export class Countdown {
  constructor(booked) {
    this.booked = booked;
    this.at = performance.now();
    const given = Number(booked.starts_in_s);
    this.startsInAtReceipt = Number.isFinite(given) ? given : (Date.parse(booked.starts_at) - Date.now()) / 1000;
    const lead = (Date.parse(booked.starts_at) - Date.parse(booked.opens_at)) / 1000;
    this.lead = Number.isFinite(lead) ? lead : OPEN_LEAD_S;
    this.primed = false;
    this.spoken = null;
  }

  startsIn() {
    return this.startsInAtReceipt - (performance.now() - this.at) / 1000;
  }

  opensIn() {
    return this.startsIn() - this.lead;
  }

  text() {
    const left = this.startsIn();
    if (this.opensIn() > 0) return t("Starts in {time}", { time: fmtDuration(left) });
    return left > 0 ? t("Opening now. Starts in {time}", { time: fmtDuration(left) }) : t("Opening now");
  }

  // The sentence to announce when a milestone was just passed, else "" (once per milestone).
  // The first call only notes where the countdown stands (the page shows it already).
  milestone() {
    const minutes = this.startsIn() / 60;
    const passed = MILESTONES_MIN.filter((m) => minutes <= m).pop() ?? null;
    if (!this.primed) {
      this.primed = true;
      this.spoken = passed;
      return "";
    }
    if (passed === null || passed === this.spoken) return "";
    this.spoken = passed;
    return t("Your tutoring session starts in {time}.", { time: fmtDuration(this.startsIn()) });
  }
}

// "3:30 PM – 4:00 PM"
export function timeRange(room) {
  return t("{start} to {end}", { start: fmtTime(room.starts_at), end: fmtTime(room.ends_at) });
}

export function endedText(reason) {
  switch (reason) {
    case "scheduled_end": return t("The tutoring session has ended: its time is over.");
    case "cancelled": return t("The tutoring session was cancelled.");
    case "tutor": return t("The tutor ended the tutoring session.");
    case "ended_by_staff": return t("The district's staff ended the tutoring session.");
    default: return t("The tutoring session has ended.");
  }
}

// The send form of a room: Enter sends, typing is told at most every 2.5 s. `current()` is
// the room the form writes to now (a page keeps one form across rooms).
export function roomForm(form, box, error, current) {
  enterSends(box, form);
  box.addEventListener("input", () => {
    const room = current();
    if (!room || room.ended || Date.now() - room.lastTyping < TYPING_EVERY_MS) return;
    room.lastTyping = Date.now();
    room.socket.emit("chat:typing", { session_id: room.id }, () => {});
  });
  const outgoing = new Outgoing();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const room = current();
    const text = box.value.trim();
    if (!room || !text || room.ended) return;
    const ack = await call(room.socket, "chat:send",
      { session_id: room.id, text, client_id: outgoing.idFor(text) });
    const outcome = outgoing.settle(ack);
    if (outcome === "sent") {
      box.value = "";
      room.lastTyping = 0;
      say(error, "");
      room.receive(ack.message);
    } else if (outcome === "held") { // not relayed: it waits for staff review
      box.value = "";
      say(error, heldText(room.role, ack.categories));
    } else {
      say(error, errorText(ack.error));
    }
    // A student's words about being hurt: the page shows the district's crisis resources.
    if (ack.crisis) document.dispatchEvent(new CustomEvent("hh:crisis", { detail: ack.crisis }));
    box.focus();
  });
}

export class BookedRoom {
  // role: "student" | "tutor". parts: {list, typing} nodes. hooks: {shown(message, mine),
  // ended(info), people(room, me), extra(message, mine) -> a node for the message's header}.
  constructor(socket, room, role, parts, hooks) {
    this.socket = socket;
    this.role = role;
    this.room = room;
    this.parts = parts;
    this.hooks = hooks;
    this.me = null;
    this.joined = false;
    this.joining = null;
    this.ended = false;
    this.unnamed = new Map(); // message id -> its sender node, while shown without `by`
    this.lastTyping = 0;
    this.typingTimer = null;
    this.sync = new SessionSync(socket, room.session_id, {
      show: (message) => this.show(message),
      ended: (info) => this.finish(info),
    });
  }

  get id() {
    return this.room.session_id;
  }

  tutorName() {
    return (this.room.tutor && this.room.tutor.display_name) || t("Your tutor");
  }

  // Enter (again): records attendance the first time; hands over what was missed.
  join() {
    if (this.ended) return Promise.resolve(null);
    if (this.joining) return this.joining;
    this.joining = (async () => {
      const ack = await call(this.socket, "booked:join", { session_id: this.id, after_seq: this.sync.have });
      this.joining = null;
      if (!ack.ok) {
        if (ack.error.code === "not_found") this.sync.sync(); // ended meanwhile: the sync says how
        return ack;
      }
      this.joined = true;
      this.me = ack.me || null;
      this.update(ack.session);
      for (const message of ack.messages || []) this.receive(message);
      if (ack.session) this.sync.known(ack.session.seq);
      return ack;
    })();
    return this.joining;
  }

  // Someone joined: ask for the room as the server sees it now (and any missed message).
  async refresh() {
    if (this.ended) return;
    const ack = await call(this.socket, "session:sync", { session_id: this.id, after_seq: this.sync.have });
    if (!ack.ok) return;
    if (ack.session) this.update(ack.session);
    for (const message of ack.messages || []) this.receive(message);
    if (ack.ended) this.finish(ack.ended);
  }

  update(room) {
    if (!room) return;
    this.room = { ...this.room, ...room };
    this.hooks.people(this.room, this.me);
  }

  isMine(by, from) {
    if (!by) return from === this.role && this.role === "tutor";
    if (by.role !== this.role) return false;
    return by.role === "tutor" || Boolean(this.me && by.pseudonym === this.me.pseudonym);
  }

  // A student as the tutor sees them: first name (if the district shows it) and pseudonym.
  static studentLabel(s) {
    return s.first_name ? t("{name} ({pseudonym})", { name: s.first_name, pseudonym: s.pseudonym }) : s.pseudonym;
  }

  senderName(by, from) {
    if (this.isMine(by, from)) return t("You");
    if (!by) return from === "tutor" ? this.tutorName() : t("A student");
    if (by.role === "tutor") return by.name || this.tutorName();
    return this.role === "tutor" ? BookedRoom.studentLabel(by) : by.name || by.pseudonym;
  }

  receive(message) {
    if (!message || message.session_id !== this.id) return;
    const unnamed = message.by && this.unnamed.get(message.id);
    if (unnamed) {
      unnamed.textContent = this.senderName(message.by, message.from);
      this.unnamed.delete(message.id);
    }
    this.sync.receive(message);
  }

  show(message) {
    const mine = this.isMine(message.by, message.from);
    const item = insertMessage(this.parts.list, message, {
      mine, who: this.senderName(message.by, message.from), timeText: fmtTime(message.at),
      extra: this.hooks.extra ? this.hooks.extra(message, mine) : null,
    });
    if (!message.by && !mine) this.unnamed.set(message.id, item.querySelector(".who"));
    if (!mine) this.parts.typing.textContent = "";
    this.hooks.shown(message, mine);
  }

  system(text) {
    this.parts.list.append(el("div", { class: "msg from-system" }, el("p", { class: "text" }, text)));
  }

  typing(data) {
    if (data.session_id !== this.id || this.isMine(data.by, data.from)) return;
    this.parts.typing.textContent = t("{name} is typing…", { name: this.senderName(data.by, data.from) });
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => { this.parts.typing.textContent = ""; }, TYPING_SHOWN_MS);
  }

  // The tutor ends it for everyone (session:end); the server tells the students.
  async end() {
    const ack = await call(this.socket, "session:end", { session_id: this.id });
    if (ack.ok || ack.error.code === "not_found") this.finish({ session_id: this.id, reason: ack.ok ? "tutor" : null });
    return ack;
  }

  finish(info) {
    if (this.ended) return;
    this.ended = true;
    this.sync.stop();
    clearTimeout(this.typingTimer);
    this.parts.typing.textContent = "";
    this.hooks.ended(info || {});
  }
}

// Every open booked room of one page, one of them displayed. Back-to-back sessions overlap
// (a room opens 5 minutes early and closes 5 minutes late), so a second room opening never
// takes the page out of the first: it is joined at once (attendance) and offered beside it
// (hooks.render gets the displayed room and the other open ones), with its unread count.
// Each room keeps its own message log and typing line (created here, inside `holder`).
// hooks: {render(current, others), welcome(room) -> text, ended(room, info), shown(message,
// mine, room), joined(room, ack), extra(message, mine), logLabel}.
export class RoomDesk {
  constructor(socket, role, holder, hooks) {
    this.socket = socket;
    this.role = role;
    this.holder = holder;
    this.hooks = hooks;
    this.rooms = new Map();
    this.shownId = null;
    this.endedBookings = new Set(); // a booking whose room ended is never counted down to again
  }

  get current() {
    return this.rooms.get(this.shownId) || null;
  }

  get anyOpen() {
    return Array.from(this.rooms.values()).some((room) => !room.ended);
  }

  others() {
    return Array.from(this.rooms.values()).filter((room) => room.id !== this.shownId && !room.ended);
  }

  route(sessionId) {
    return this.rooms.get(sessionId) || null;
  }

  // booked:open (may come twice: keyed by session id) or the state's open room (`rejoin`:
  // after a (re)connect, join again with what is held).
  open(data, rejoin) {
    const known = this.rooms.get(data.session_id);
    if (known) {
      if (!known.ended) {
        known.update(data);
        if (rejoin || !known.joined) known.join();
      }
      return known;
    }
    const parts = {
      list: el("div", { class: "messages room-log", role: "log", "aria-live": "polite", "aria-label": this.hooks.logLabel, hidden: true }),
      typing: el("p", { class: "typing", "aria-live": "polite", hidden: true }),
    };
    this.holder.append(parts.list, parts.typing);
    const room = new BookedRoom(this.socket, data, this.role, parts, {
      shown: (message, mine) => {
        if (room.id !== this.shownId && !mine) {
          room.unread += 1;
          this.render();
        }
        this.hooks.shown(message, mine, room);
      },
      ended: (info) => {
        room.endedInfo = info;
        this.endedBookings.add(room.room.booking);
        this.hooks.ended(room, info);
        this.render();
      },
      people: () => { if (room.id === this.shownId) this.render(); },
      extra: this.hooks.extra,
    });
    room.unread = 0;
    room.endedInfo = null;
    this.rooms.set(room.id, room);
    room.system(this.hooks.welcome(room));
    room.join().then((ack) => this.hooks.joined(room, ack));
    const current = this.current;
    if (!current || current.ended) this.display(room.id);
    else this.render();
    return room;
  }

  // Show one room; ended rooms that are not shown are let go.
  display(id) {
    this.shownId = id;
    for (const [rid, room] of Array.from(this.rooms)) {
      const on = rid === id;
      if (!on && room.ended) {
        room.parts.list.remove();
        room.parts.typing.remove();
        this.rooms.delete(rid);
        continue;
      }
      room.parts.list.hidden = !on;
      room.parts.typing.hidden = !on;
      if (on) room.unread = 0;
    }
    this.render();
  }

  // Let the shown (ended) room go; show the next open one, if any. Whether one is shown.
  leave() {
    const next = this.others()[0];
    if (next) {
      this.display(next.id);
      return true;
    }
    const current = this.current;
    if (current) {
      current.parts.list.remove();
      current.parts.typing.remove();
      this.rooms.delete(current.id);
    }
    this.shownId = null;
    return false;
  }

  // `booked` of the state after a (re)connect: join each open room it names (`session` and
  // `also_open`) again; ask about every other one held (it may have ended meanwhile).
  reconcile(booked) {
    const open = booked && booked.session ? [booked.session, ...(booked.also_open || [])] : [];
    const named = new Set(open.map((room) => room.session_id));
    for (const room of this.rooms.values()) if (!room.ended && !named.has(room.id)) room.refresh();
    for (const room of open) this.open(room, true);
  }

  // A button to show each other open room (labelled by `label(room)`), with its unread count.
  switchButtons(label) {
    return this.others().map((other) => {
      const button = el("button", { type: "button", class: "secondary" }, label(other));
      if (other.unread) {
        button.append(" ", el("span", { class: "badge", "aria-label": t("{n} unread", { n: other.unread }) }, String(other.unread)));
      }
      button.addEventListener("click", () => this.display(other.id));
      return button;
    });
  }

  render() {
    this.hooks.render(this.current, this.others());
  }
}
