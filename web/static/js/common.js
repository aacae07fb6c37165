// Helpers shared by the three pages: configuration, safe DOM building, socket.io calls,
// tokens for tutors and staff, and error texts. No innerHTML anywhere: text is text.
import { t, getLocale } from "./i18n.js";

export function config() {
  const block = document.getElementById("hh-config");
  return block ? JSON.parse(block.textContent) : {};
}

export const $ = (id) => document.getElementById(id);

// el("li", {class: "msg", "aria-label": "..."}, child, "text", ...): children are nodes or
// strings (inserted as text nodes, never parsed as HTML).
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "hidden") node.hidden = true;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function say(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

// Every event goes with an acknowledgement; a lost ack reads as a "timeout" error.
export async function call(socket, event, data, timeoutMs = 10000) {
  const calls = underWay(socket);
  calls.n += 1;
  try {
    return await socket.timeout(timeoutMs).emitWithAck(event, data || {});
  } catch (_) {
    return { ok: false, error: { code: "timeout", message: "no answer" } };
  } finally {
    calls.n -= 1;
    if (!calls.n) calls.idle.splice(0).forEach((resolve) => resolve());
  }
}

// The calls of a socket still waiting for their answers ({n, idle: resolvers waiting for
// n to reach 0}), so that a page told server:restart leaves once they are answered.
const callsUnderWay = new WeakMap();
function underWay(socket) {
  let calls = callsUnderWay.get(socket);
  if (!calls) callsUnderWay.set(socket, (calls = { n: 0, idle: [] }));
  return calls;
}

// Resolves when every call under way on the socket is answered, or after limitMs.
function answered(socket, limitMs) {
  const calls = underWay(socket);
  if (!calls.n) return Promise.resolve();
  return new Promise((resolve) => {
    calls.idle.push(resolve);
    setTimeout(resolve, limitMs);
  });
}

export function errorText(error) {
  const code = error && error.code;
  switch (code) {
    case "invalid_payload": return t("Please check what you typed and try again.");
    case "conflict": return t("You already have a request open.");
    case "not_found": return t("That chat or request no longer exists.");
    case "already_taken": return t("Another tutor has already taken this request.");
    case "over_capacity": return t("You already have as many chats open as you can take.");
    case "not_allowed": return t("You are not allowed to do that.");
    case "rate_limited": return t("You are sending messages too fast. Wait a moment.");
    case "unauthenticated": return t("Your sign-in has expired. Please sign in again.");
    case "timeout": return t("The server did not answer. Check your connection and try again.");
    case "unknown_event": return t("This page is out of date. Please reload it.");
    default: return t("Something went wrong. Please try again.");
  }
}

// How a page comes back after its connection dropped (a network blip, a server that
// crashed): socket.io's exponential backoff with jitter. The n-th attempt waits
// reconnectionDelay * 2^n, spread by +-randomizationFactor, at most reconnectionDelayMax:
// the first after 0.2-3.8 s, so the thousands of pages of a crashed process reach the
// others spread over seconds, not all in the same one. bench/_ws_load.py's clients use the
// same figures.
export const RECONNECT = Object.freeze({
  reconnectionDelay: 2000,
  reconnectionDelayMax: 10000,
  randomizationFactor: 0.9,
});

// How long one connection attempt may wait for its answer (socket.io's default is 20 s).
// After a crash the surviving process starts the arriving pages first come, first served
// (web/lifecycle.py's Gate, which answers 503 to any still waiting after 20 s): a page that
// waits its turn is back sooner than one that gives up and queues again behind the rest.
// A server that is down refuses at once, so this only lengthens waiting on a live one.
export const CONNECT_TIMEOUT_MS = 30000;

// Socket.io connection with the token asked for at every (re)connection, so short-lived
// tokens from /api/token keep working across reconnects. After every reconnect the server
// sends the page its state again (session:state, tutor:state, staff:live).
export function connect(namespace, getToken) {
  const socket = window.io(namespace, {
    transports: ["websocket"],
    timeout: CONNECT_TIMEOUT_MS,
    ...RECONNECT,
    auth: (cb) => {
      Promise.resolve(getToken()).then((token) => cb({ token }), () => cb({ token: null }));
    },
  });
  return retryRefusals(followRestarts(socket));
}

// A connection the server refused for a reason of its own is tried again after the same
// jittered backoff as a dropped one (socket.io-client never retries a refused namespace by
// itself): `internal`, the server could not read the page's state (its database was down,
// say); `broker_error`, it was starting or stopping. A refusal of who the page is
// (`unauthenticated`, `not_allowed`) is not retried: the page says so instead. A refusal
// without our {code, message} is the transport's (no server answered): socket.io's own
// reconnection handles that. The page's own disconnect (signing out) cancels the retry.
const NOT_RETRIED = new Set(["unauthenticated", "not_allowed"]);
export function retryRefusals(socket, delays = RECONNECT, random = Math.random) {
  let attempt = 0;
  let timer = null;
  socket.on("connect", () => {
    attempt = 0;
  });
  socket.on("connect_error", (error) => {
    const code = error && error.data && error.data.code;
    if (typeof code !== "string" || NOT_RETRIED.has(code)) return;
    const base = Math.min(delays.reconnectionDelayMax, delays.reconnectionDelay * 2 ** attempt);
    const wait = base * (1 + delays.randomizationFactor * (2 * random() - 1));
    attempt += 1;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      if (!socket.connected) socket.connect();
    }, wait);
  });
  const leave = socket.disconnect.bind(socket);
  socket.disconnect = () => {
    clearTimeout(timer);
    timer = null;
    return leave();
  };
  return socket;
}

// server:restart {retry_after_ms}: the server this page is on is stopping (a deploy). The
// page leaves as soon as the calls it has under way are answered (for at most
// RESTART_ANSWERS_MS: the stopping server finishes what is in flight, and leaving first
// would lose an answer, showing "the server did not answer" for a message that was sent),
// and comes back after the delay the server chose for it (spread over its clients), when
// another process answers. Leaving is the page's own disconnect ("io client disconnect"),
// so no "connection lost" banner shows; "connect" follows. A disconnect the page makes
// itself (signing out, an expired token) cancels the leaving and the return.
export const RESTART_ANSWERS_MS = 1000;
export function followRestarts(socket) {
  let timer = null;
  let notice = 0; // which server:restart is being followed; 0 after the page's disconnect
  const leave = socket.disconnect.bind(socket);
  socket.on("server:restart", async (data) => {
    const wait = Math.min(60000, Math.max(0, Number(data && data.retry_after_ms) || 0));
    clearTimeout(timer);
    const mine = ++notice;
    await answered(socket, RESTART_ANSWERS_MS);
    if (mine !== notice) return; // the page disconnected, or a later notice took over
    leave();
    timer = setTimeout(() => {
      timer = null;
      socket.connect();
    }, wait);
  });
  socket.disconnect = () => {
    clearTimeout(timer);
    timer = null;
    notice += 1;
    return leave();
  };
  return socket;
}

// Tutors and staff: the sign-in cookie's socket token (GET /api/token), else a demo token
// kept in this tab's sessionStorage.
export function tokenSource(cfg, storageKey) {
  async function fromSignIn() {
    if (!cfg.token_url) return null;
    try {
      const response = await fetch(cfg.token_url, {
        credentials: "same-origin", headers: { Accept: "application/json" },
      });
      if (!response.ok) return null;
      const body = await response.json();
      return typeof body.token === "string" ? body.token : null;
    } catch (_) {
      return null;
    }
  }
  function stored() {
    try { return sessionStorage.getItem(storageKey); } catch (_) { return null; }
  }
  return {
    async get() {
      return stored() || (await fromSignIn());
    },
    async demo(body) {
      const response = await fetch(cfg.demo_token_url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(String(response.status));
      const { token } = await response.json();
      try { sessionStorage.setItem(storageKey, token); } catch (_) { /* private mode */ }
      return token;
    },
    forget() {
      try { sessionStorage.removeItem(storageKey); } catch (_) { /* private mode */ }
    },
  };
}

// The unverified claims of a token, for display only (the server verifies it).
export function claimsOf(token) {
  try {
    const body = token.split(".")[0].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    return payload.c || {};
  } catch (_) {
    return {};
  }
}

export function fillSelect(select, options, selected) {
  select.replaceChildren(...options.map(({ value, label }) =>
    el("option", { value, selected: value === selected }, label)));
}

// Insert one chat message into an <ol> in seq order (text only; `extra` is an optional node
// such as a read-aloud button placed in the message's header).
export function insertMessage(list, message, { mine, who, timeText, extra }) {
  const meta = el("div", { class: "meta" },
    el("span", { class: "who" }, who),
    el("time", { datetime: message.at || "" }, timeText));
  if (extra) meta.append(extra);
  const item = el("div", { class: `msg ${mine ? "from-me" : "from-other"}`, "data-seq": message.seq },
    meta, el("p", { class: "text" }, message.text), maskNote(message.moderation));
  const later = Array.from(list.children).find((li) => Number(li.dataset.seq) > message.seq);
  list.insertBefore(item, later || null);
  list.scrollTop = list.scrollHeight;
  // A picture's message (chat-media.js shows it where the page listens for this).
  if (message.image) item.dispatchEvent(new CustomEvent("hh:image", { bubbles: true, detail: { item, message } }));
  return item;
}

// Enter sends, Shift+Enter starts a new line.
export function enterSends(textarea, form) {
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

// The client id of the message being sent (chat:send's client_id): the same text sent again
// after a lost acknowledgement (a timeout, a dropped connection) reuses it, so the server
// answers with the message it already made instead of a second copy; a new text gets a
// new id. crypto.getRandomValues works on plain http too (randomUUID does not).
export class Outgoing {
  constructor() { this.text = null; this.id = null; }
  idFor(text) {
    if (text !== this.text) {
      const bytes = crypto.getRandomValues(new Uint8Array(16));
      this.id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      this.text = text;
    }
    return this.id;
  }
  sent() { this.text = null; this.id = null; }
  // After chat:send's acknowledgement: sent or held (not relayed, waiting for staff) is
  // final, so the next text gets a new id; only a failure keeps the id for a resend.
  settle(ack) {
    const outcome = sendOutcome(ack);
    if (outcome !== "failed") this.sent();
    return outcome;
  }
}

// What a chat:send acknowledgement means: "sent" (ack.message was relayed), "held" (nothing
// was relayed: the message waits for staff review; final, never resent) or "failed".
export function sendOutcome(ack) {
  if (!ack || !ack.ok) return "failed";
  return ack.held ? "held" : "sent";
}

// -- chat safety (docs/protocol.md, "Chat safety") -----------------------------------------
const CATEGORY_LABELS = {
  phone: () => t("a phone number"),
  email: () => t("an email address"),
  address: () => t("a home address"),
  social: () => t("a social media or app contact"),
  link: () => t("a link to another website"),
  meet: () => t("a plan to meet in person"),
  photo: () => t("a request for photos"),
  personal: () => t("a personal question"),
  profanity: () => t("rude words"),
  sexual: () => t("sexual content"),
  grooming: () => t("a request to keep secrets"),
  distress: () => t("words about being hurt or unsafe"),
};

export function categoryLabel(category) {
  return CATEGORY_LABELS[category] ? CATEGORY_LABELS[category]() : t("something not allowed");
}

// "a phone number and an email address", in the page's language.
export function categoryList(categories) {
  const labels = Array.from(new Set(categories || [])).map(categoryLabel);
  if (!labels.length) return categoryLabel(null);
  try {
    return new Intl.ListFormat(getLocale(), { style: "long", type: "conjunction" }).format(labels);
  } catch (_) {
    return labels.join(", ");
  }
}

// The note under a message whose parts were removed ({action: "mask", categories}), else null.
export function maskNote(moderation) {
  if (!moderation || moderation.action !== "mask") return null;
  return el("p", { class: "mask-note" },
    t("Removed to keep this chat safe: {what}. Contact details, links and rude words are not shared here.",
      { what: categoryList(moderation.categories) }));
}

// What the sender of a held message is told (kindly for a student: no blame).
export function heldText(role, categories) {
  if (role === "student") {
    return t("Your message was not sent. A staff member will review it. You are not in trouble: this chat is only for schoolwork, so some things can't be shared here.");
  }
  return t("Your message was not sent. A staff member will review it. Reason: {what}.",
    { what: categoryList(categories) });
}

// chat:report {session_id, seq?, note?} -> the acknowledgement ({ok, report_id}).
export function reportSession(socket, sessionId, extra) {
  return call(socket, "chat:report", { session_id: sessionId, ...(extra || {}) });
}

// A line of text with its phone numbers ("988", "1-800-422-4453") as tel: links.
export function withPhoneLinks(line) {
  const text = String(line);
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(/(?<![\w-])\+?\d(?:[\d-]{1,16}\d)(?![\w-])/g)) {
    parts.push(text.slice(last, match.index));
    parts.push(el("a", { href: `tel:${match[0].replace(/-/g, "")}` }, match[0]));
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  return parts.filter((part) => part !== "");
}
