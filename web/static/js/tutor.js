// Tutor console: status, the live queues of the tutor's vendor and languages, accept,
// several chats as tabs, end with an outcome; and the tutor's booked session: its countdown,
// then its group room (room.js). Speaks the /tutor namespace of docs/protocol.md.
import { t, loadCatalog, fmtTime, fmtDuration, languageName } from "./i18n.js";
import { SessionSync } from "./chat-sync.js";
import { pictureControls, sendImage, showImage } from "./chat-media.js";
import { Attention, attentionControls } from "./attention.js";
import { BoardDesk } from "./whiteboard.js";
import { watchMath } from "./chat-math.js";
import { startBooked } from "./booked.js";
import { BookedRoom, Countdown, RoomDesk, roomForm, timeRange } from "./room.js";
import {
  $, el, say, call, connect, errorText, claimsOf, fillSelect, config, tokenSource,
  insertMessage, enterSends, Outgoing, heldText, reportSession,
} from "./common.js";

const cfg = config();
await loadCatalog(cfg.i18n_url, cfg.locale);

const tokens = tokenSource(cfg, "hh_tutor_token");
const vendorNames = Object.fromEntries((cfg.vendors || []).map((v) => [v.id, v.name]));
const subjectLabels = Object.fromEntries((cfg.subjects || []).map((s) => [s.id, s.label]));
const state = {
  status: "away", capacity: null, queues: new Map(), known: new Set(), firstSnapshot: new Set(),
  chats: new Map(), selected: null, studentNo: 0, socket: null,
};

// routing.schools.SchoolKind, as "school: {kind}" shows it
const SCHOOL_KINDS = {
  elementary: () => t("elementary"), middle: () => t("middle"), high: () => t("high"),
  span: () => t("several levels"), options: () => t("options or continuation"),
  virtual_academy: () => t("virtual academy"),
};
const schoolKind = (kind) => (SCHOOL_KINDS[kind] ? SCHOOL_KINDS[kind]() : kind);
const subjectName = (id) => (subjectLabels[id] ? t(subjectLabels[id]) : id || "");
const gradeBand = (band) => band ? t("grades {band}", { band }) : "";

// -- attention: title badge "(students waiting + unread messages) Tutor console", a sound
// (on unless the tutor turns it off; the choice is kept) and a notification while hidden --
const attention = new Attention({ soundKey: "hh_tutor_sound", soundDefault: true });
attentionControls(attention, $("sound-on"), $("notify-on"));

function updateTitle() {
  const unread = Array.from(state.chats.values()).reduce((n, c) => n + c.unread, 0);
  const waiting = Array.from(state.queues.values()).reduce((n, q) => n + q.total, 0);
  attention.setBadge(waiting + unread);
}

// -- sign-in -----------------------------------------------------------------------------
function showSignIn() {
  $("signin").hidden = false;
  $("console").hidden = true;
  $("status-box").hidden = true;
  const vendorSelect = $("demo-vendor");
  if (!vendorSelect) return;
  const renderLanguages = () => {
    const vendor = (cfg.vendors || []).find((v) => v.id === vendorSelect.value);
    const box = $("demo-languages");
    box.replaceChildren(box.querySelector("legend"));
    for (const code of (vendor ? vendor.languages : [])) {
      const input = el("input", { type: "checkbox", name: "language", value: code, checked: true });
      box.append(el("label", { class: "choice" }, input, " ", languageName(code)));
    }
  };
  vendorSelect.addEventListener("change", renderLanguages);
  renderLanguages();
  $("demo-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const languages = Array.from(document.querySelectorAll("#demo-languages input:checked")).map((i) => i.value);
    const name = $("demo-name").value.trim() || t("Demo tutor");
    const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40) || "tutor";
    try {
      await tokens.demo({
        role: "tutor", vendor: vendorSelect.value, languages, display_name: name,
        id: `demo-${vendorSelect.value}-${slug}`,
      });
      start();
    } catch (_) {
      say($("demo-error"), t("Could not start the demo. Check the choices and try again."));
    }
  });
}

// Signing out ends the tutor's open chats at once (tutor:sign_out: each student is told and
// goes back in line at their place) and sets them away; with a chat open it asks first, in
// the page.
function openChats() {
  return Array.from(state.chats.values()).filter((chat) => !chat.ended).length;
}

async function signOut() {
  const socket = state.socket;
  if (socket && socket.connected) {
    const ack = await call(socket, "tutor:sign_out", {});
    if (!ack.ok && openChats()) { say($("banner"), errorText(ack.error)); return; }
  }
  tokens.forget();
  if (socket) socket.disconnect();
  try { // the sign-in cookie too (web/auth.py), or /tutor would sign them in again
    await fetch("/logout", { method: "POST", credentials: "same-origin", headers: { Accept: "application/json" } });
  } catch (_) { /* offline: the token is forgotten; the cookie ends by itself */ }
  location.assign(cfg.login_url);
}

function closeSignOutConfirm(focus) {
  $("signout-confirm").hidden = true;
  $("sign-out").setAttribute("aria-expanded", "false");
  if (focus) $("sign-out").focus();
}

$("sign-out").addEventListener("click", () => {
  if (!openChats()) { signOut(); return; }
  $("signout-confirm").hidden = false;
  $("sign-out").setAttribute("aria-expanded", "true");
  $("signout-yes").focus();
});
$("signout-no").addEventListener("click", () => closeSignOutConfirm(true));
$("signout-confirm").addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeSignOutConfirm(true);
});
$("signout-yes").addEventListener("click", async () => {
  $("signout-yes").disabled = true;
  await signOut();
  $("signout-yes").disabled = false;
});

// -- status ------------------------------------------------------------------------------
function showStatus(status) {
  state.status = status;
  const label = $("status-label");
  label.textContent = status === "available" ? t("Available") : t("Away");
  label.className = `status-pill ${status}`;
  $("status-toggle").textContent = status === "available" ? t("Go away") : t("Become available");
}

$("status-toggle").addEventListener("click", async () => {
  const next = state.status === "available" ? "away" : "available";
  const ack = await call(state.socket, "tutor:status", { status: next });
  if (ack.ok) showStatus(ack.status || next);
  else say($("queue-note"), errorText(ack.error));
});

// -- queues ------------------------------------------------------------------------------
function queueTitle(key) {
  const [vendor, language] = key.split(":");
  return t("{vendor}, {language}", { vendor: vendorNames[vendor] || vendor, language: languageName(language) });
}

function waitedNow(request, receivedAt) {
  return request.waited_s + (Date.now() - receivedAt) / 1000;
}

function renderQueues() {
  const focusedId = document.activeElement && document.activeElement.dataset
    ? document.activeElement.dataset.requestId : null;
  const holder = $("queues");
  const sections = [];
  let total = 0;
  for (const [key, snap] of Array.from(state.queues.entries()).sort()) {
    total += snap.total;
    const items = snap.requests.map((r) => {
      const accept = el("button", { type: "button", class: "primary", "data-request-id": r.id }, t("Accept"));
      accept.addEventListener("click", () => accept_(r.id, accept));
      const topic = r.topic ? el("span", { class: "topic" }, `“${r.topic}”`) : null;
      return el("li", { class: "queue-item" },
        el("div", { class: "what" },
          el("strong", {}, subjectName(r.subject)), " ",
          el("span", { class: "tag" }, gradeBand(r.grade_band)),
          el("span", { class: "tag" }, languageName(r.language)),
          // nobody was on shift: the student left this question and may be away until
          // they come back (accepting is refused while they are)
          r.left ? el("span", { class: "tag" }, t("left a question")) : null,
          el("br"), topic),
        el("span", { class: "waited", "data-waited": r.waited_s, "data-at": snap.receivedAt,
          "aria-label": t("waiting for {time}", { time: fmtDuration(waitedNow(r, snap.receivedAt)) }) },
        fmtDuration(waitedNow(r, snap.receivedAt))),
        accept);
    });
    const body = items.length ? el("ol", { class: "queue-list" }, ...items)
      : el("p", { class: "empty" }, t("Nobody is waiting."));
    sections.push(el("section", { class: "queue" },
      el("h3", {}, queueTitle(key), " ", el("span", { class: "tag" }, t("{n} waiting", { n: snap.total }))), body));
  }
  holder.replaceChildren(...sections);
  if (!sections.length) holder.append(el("p", { class: "empty" }, t("No queues for your vendor and languages.")));
  $("queue-count").textContent = String(total);
  $("queue-count").hidden = !total;
  if (focusedId) {
    const again = holder.querySelector(`[data-request-id="${CSS.escape(focusedId)}"]`);
    if (again) again.focus();
  }
}

setInterval(() => {
  for (const node of document.querySelectorAll(".waited")) {
    const seconds = Number(node.dataset.waited) + (Date.now() - Number(node.dataset.at)) / 1000;
    node.textContent = fmtDuration(seconds);
  }
}, 1000);

function onSnapshot(snap) {
  const receivedAt = Date.now();
  const first = !state.firstSnapshot.has(snap.queue);
  state.firstSnapshot.add(snap.queue);
  let fresh = 0;
  for (const r of snap.requests) {
    if (!state.known.has(r.id)) {
      state.known.add(r.id);
      if (!first) fresh += 1;
    }
  }
  state.queues.set(snap.queue, { ...snap, receivedAt });
  renderQueues();
  updateTitle();
  if (fresh) {
    attention.notify({ title: t("A new student is waiting."), count: false, tag: "hh-queue" });
    say($("queue-note"), t("A new student is waiting."));
  }
}

async function accept_(requestId, button) {
  button.disabled = true;
  const ack = await call(state.socket, "help:accept", { request_id: requestId });
  button.disabled = false;
  if (ack.ok) {
    openChat(ack.session, true);
    say($("queue-note"), "");
  } else {
    say($("queue-note"), errorText(ack.error));
  }
}

// -- chats as tabs -----------------------------------------------------------------------
function tabLabel(chat) {
  const label = [t("Student {n}", { n: chat.no }), subjectName(chat.session.subject)];
  return label.join(" · ");
}

function renderTab(chat) {
  chat.tab.replaceChildren(tabLabel(chat));
  if (chat.unread) {
    chat.tab.append(" ", el("span", { class: "badge", "aria-label": t("{n} unread", { n: chat.unread }) }, String(chat.unread)));
  }
}

function select(id, focus = false) {
  state.selected = id;
  for (const [sid, chat] of state.chats) {
    const on = sid === id;
    chat.tab.setAttribute("aria-selected", on ? "true" : "false");
    chat.tab.tabIndex = on ? 0 : -1;
    chat.panel.hidden = !on;
    if (on) {
      chat.unread = 0;
      renderTab(chat);
      if (focus) chat.box.focus();
    }
  }
  $("no-chats").hidden = state.chats.size > 0;
  updateTitle();
}

function openChat(session, focus) {
  const id = session.session_id;
  if (state.chats.has(id)) { select(id, focus); return; }
  state.studentNo += 1;
  const chat = { session, no: state.studentNo, unread: 0, ended: false };
  chat.sync = new SessionSync(state.socket, id, {
    show: (message) => showMessage(chat, message),
    ended: (info) => chatEnded(info),
  });
  const tabId = `tab-${id}`;
  const panelId = `panel-${id}`;
  chat.tab = el("button", { type: "button", role: "tab", id: tabId, "aria-controls": panelId, class: "secondary" });
  chat.tab.addEventListener("click", () => select(id, true));
  chat.tab.addEventListener("keydown", (event) => {
    const ids = Array.from(state.chats.keys());
    const i = ids.indexOf(id);
    if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      const next = ids[(i + (event.key === "ArrowRight" ? 1 : ids.length - 1)) % ids.length];
      select(next);
      state.chats.get(next).tab.focus();
      event.preventDefault();
    }
  });
  const student = session.student || {};
  const facts = el("p", { class: "hint" },
    [gradeBand(student.grade_band), student.school_kind ? t("school: {kind}", { kind: schoolKind(student.school_kind) }) : "",
      languageName(session.language), subjectName(session.subject)].filter(Boolean).join(" · "));
  const topic = session.topic ? el("p", {}, el("strong", {}, t("Working on:")), " ", el("bdi", {}, session.topic)) : null;
  chat.list = el("div", { class: "messages", role: "log", "aria-live": "polite", "aria-label": t("Messages") });
  chat.typing = el("p", { class: "typing", "aria-live": "polite" });
  chat.box = el("textarea", { id: `msg-${id}`, rows: 2, maxlength: 2000 });
  chat.error = el("p", { class: "error", role: "alert", hidden: true });
  chat.held = el("p", { class: "notice held", role: "alert", hidden: true });
  const sendForm = el("form", { class: "send" },
    el("label", { for: `msg-${id}`, class: "visually-hidden" }, t("Message to the student")),
    chat.box,
    el("div", { class: "send-actions" }, ...pictures(chat), el("button", { type: "submit", class: "primary" }, t("Send"))),
    chat.error, chat.held);
  enterSends(chat.box, sendForm);
  sendForm.addEventListener("submit", (event) => { event.preventDefault(); send(chat); });
  chat.lastTyping = 0;
  chat.box.addEventListener("input", () => {
    if (Date.now() - chat.lastTyping < 2500 || chat.ended) return;
    chat.lastTyping = Date.now();
    state.socket.emit("chat:typing", { session_id: id }, () => {});
  });
  chat.endForm = endForm(chat);
  chat.peerNote = el("p", { class: "notice peer-note", role: "status", hidden: true }); // peer:presence
  chat.panel = el("div", { role: "tabpanel", id: panelId, "aria-labelledby": tabId, tabindex: 0 },
    facts, topic, chat.peerNote, chat.boardSlot = el("div", { class: "board-slot" }), chat.list, chat.typing, sendForm,
    safetyActions(chat), chat.endForm);
  state.boards.open(id, chat.boardSlot, { otherSide: t("the student"), // whiteboard.js
    drawingText: t("The student is drawing on the whiteboard."),
    clearedText: t("The student cleared the whiteboard.") });
  renderTab(chat);
  state.chats.set(id, chat);
  $("tabs").append(chat.tab);
  $("panels").append(chat.panel);
  insertSystem(chat, t("You accepted this request. Say hello!"));
  if (session.student_present === false) showPeer(chat, { present: false });
  if (focus || !state.selected) select(id, focus);
  else { chat.panel.hidden = true; chat.tab.setAttribute("aria-selected", "false"); chat.tab.tabIndex = -1; }
}

const OUTCOMES = [
  ["homework_help", () => t("Helped with homework")],
  ["concept_explained", () => t("Explained a concept")],
  ["test_prep", () => t("Test preparation")],
  ["student_left", () => t("Student left")],
  ["not_homework", () => t("Not a homework question")],
];

// The end form starts empty: the tutor chooses an outcome and says whether the question was
// resolved (nothing is pre-filled, so the district's figures are the tutors' own answers;
// the subject starts as the one the student asked about). Ending a chat that is still open
// asks first, in the page. Private notes go with the outcome (`notes` of session:end and
// session:outcome): kept with the session for this tutor, never shown to the student
// (docs/protocol.md).
const NOTES_MAX = 2000;

function endForm(chat) {
  const id = chat.session.session_id;
  const subject = el("select", { id: `subj-${id}` });
  fillSelect(subject, (cfg.subjects || []).map((s) => ({ value: s.id, label: t(s.label) })), chat.session.subject);
  const outcome = el("select", { id: `outcome-${id}`, required: true });
  fillSelect(outcome, [{ value: "", label: t("Choose an outcome") },
    ...OUTCOMES.map(([value, label]) => ({ value, label: label() }))], "");
  const radio = (value, label) => el("label", { class: "choice" },
    el("input", { type: "radio", name: `resolved-${id}`, value, required: true }), " ", label);
  const notes = el("textarea", { id: `notes-${id}`, rows: 3, maxlength: NOTES_MAX, "aria-describedby": `notes-hint-${id}` });
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const submit = el("button", { type: "submit", class: "danger" }, t("End chat"));
  const yes = el("button", { type: "button", class: "danger" }, t("Yes, end the chat"));
  const no = el("button", { type: "button", class: "secondary" }, t("Keep chatting"));
  const confirm = el("div", { class: "notice confirm", role: "group", "aria-labelledby": `end-confirm-${id}`, hidden: true },
    el("p", { id: `end-confirm-${id}` }, t("End this chat? The student is told it has ended.")), yes, no);
  const form = el("form", { class: "end-form card", novalidate: true },
    el("h3", {}, t("End this chat")),
    el("div", { class: "field" }, el("label", { for: `subj-${id}` }, t("Subject actually tutored")), subject),
    el("div", { class: "field" }, el("label", { for: `outcome-${id}` }, t("Outcome")), outcome),
    el("fieldset", {}, el("legend", {}, t("Was the question resolved?")), radio("yes", t("Yes")), radio("no", t("No"))),
    el("div", { class: "field" },
      el("label", { for: `notes-${id}` }, t("Private notes (optional)")), notes,
      el("p", { id: `notes-hint-${id}`, class: "hint" }, t("Private: the student never sees these notes. They are kept with this chat's record."))),
    error, submit, confirm);
  const resolved = () => form.querySelector(`input[name="resolved-${id}"]:checked`);
  const complete = () => {
    if (!outcome.value) { say(error, t("Choose an outcome.")); outcome.focus(); return false; }
    if (!resolved()) {
      say(error, t("Say whether the question was resolved."));
      form.querySelector(`input[name="resolved-${id}"]`).focus();
      return false;
    }
    say(error, "");
    return true;
  };
  const back = (focus) => {
    confirm.hidden = true;
    submit.hidden = false;
    if (focus) submit.focus();
  };
  chat.closeEndConfirm = back;
  // Still open: end it with the outcome. Already ended by the student or a timeout:
  // record the outcome of the ended session.
  async function save() {
    const payload = { session_id: id, outcome: outcome.value, resolved: resolved().value === "yes" };
    if (subject.value) payload.tutored_subject = subject.value;
    if (notes.value.trim()) payload.notes = notes.value.trim().slice(0, NOTES_MAX);
    const ack = await call(state.socket, chat.ended ? "session:outcome" : "session:end", payload);
    if (ack.ok || ack.error.code === "not_found") closeChat(id, t("Chat ended and saved."));
    else say(error, errorText(ack.error));
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!complete()) return;
    if (chat.ended) { save(); return; }
    confirm.hidden = false;
    submit.hidden = true;
    yes.focus();
  });
  no.addEventListener("click", () => back(true));
  confirm.addEventListener("keydown", (event) => { if (event.key === "Escape") back(true); });
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    await save();
    yes.disabled = false;
    back(false);
  });
  return form;
}

// Report the chat to staff (one tap), or end it because the student stopped answering
// (session:end reason student_silent; the server refuses while the student may still answer).
function safetyActions(chat) {
  const id = chat.session.session_id;
  chat.report = el("button", { type: "button", class: "secondary report" }, t("Report this chat"));
  chat.silent = el("button", { type: "button", class: "secondary" }, t("End: student not answering"));
  chat.safetyNote = el("p", { class: "notice", role: "status", hidden: true });
  chat.report.addEventListener("click", async () => {
    chat.report.disabled = true;
    const ack = await reportSession(state.socket, id);
    if (ack.ok) say(chat.safetyNote, t("Thank you. A staff member will look at this chat."));
    else { chat.report.disabled = false; say(chat.safetyNote, errorText(ack.error)); }
  });
  chat.silent.addEventListener("click", async () => {
    if (chat.ended) return;
    chat.silent.disabled = true;
    const ack = await call(state.socket, "session:end", { session_id: id, reason: "student_silent" });
    chat.silent.disabled = false;
    if (ack.ok) { chatEnded({ session_id: id, reason: "student_silent" }); return; }
    say(chat.safetyNote, silentRefusal(ack.error));
  });
  return el("div", { class: "chat-actions" }, chat.report, chat.silent, chat.safetyNote);
}

function silentRefusal(error) {
  if (!error || error.code !== "conflict") return errorText(error);
  const seconds = error.detail && Number(error.detail.retry_after);
  if (seconds > 0) {
    return t("The student may still answer. You can end the chat for not answering in {seconds} seconds.", { seconds });
  }
  return t("Say hello first. You can end the chat for not answering only after the student has had time to reply.");
}

function closeChat(id, note) {
  const chat = state.chats.get(id);
  if (!chat) return;
  state.boards.close(id);
  chat.tab.remove();
  chat.panel.remove();
  state.chats.delete(id);
  state.selected = null;
  const next = state.chats.keys().next();
  if (!next.done) select(next.value);
  else { $("no-chats").hidden = false; updateTitle(); }
  say($("queue-note"), note);
}

// The student's presence (peer:presence; student_present of help:accept): they left the page
// (the chat ends if they are not back within the grace period), or they are back.
function showPeer(chat, data) {
  if (data.present) {
    if (!chat.peerNote.hidden) say(chat.peerNote, t("The student is back."));
    return;
  }
  const seconds = Number(data.back_within_s);
  say(chat.peerNote, seconds > 0
    ? t("The student has left the page. The chat ends if they are not back within {seconds} seconds.", { seconds })
    : t("The student is not on the page right now. They may come back, or the chat ends by itself."));
}

function onPeerPresence(data) {
  const chat = state.chats.get(data.session_id);
  if (!chat || chat.ended || data.who !== "student") return;
  showPeer(chat, data);
  if (!data.present) attention.notify({ title: t("A student left the chat page."), count: false, tag: "hh-peer" });
}

function onChatMessage(data) {
  const chat = state.chats.get(data.session_id);
  const fresh = chat && data.from === "student" && !chat.sync.seen.has(data.id);
  addMessage(data);
  // unread messages are counted by the tabs (the title badge); the text stays out of it
  if (fresh) attention.notify({ title: t("A student wrote to you."), count: false, tag: "hh-chat" });
}

function insertSystem(chat, text) {
  chat.list.append(el("div", { class: "msg from-system" }, el("p", { class: "text" }, text)));
}

function addMessage(data) {
  const room = booked.desk && booked.desk.route(data.session_id);
  if (room) { room.receive(data); return; }
  const chat = state.chats.get(data.session_id);
  if (chat) chat.sync.receive(data);
}

function showMessage(chat, data) {
  const mine = data.from === "tutor";
  insertMessage(chat.list, data, {
    mine, who: mine ? t("You") : t("Student {n}", { n: chat.no }), timeText: fmtTime(data.at),
  });
  if (!mine) {
    chat.typing.textContent = "";
    if (state.selected !== data.session_id || document.hidden) {
      chat.unread += 1;
      renderTab(chat);
      updateTitle();
    }
  }
}

// Pictures (chat-media.js; docs/protocol.md, "Images"): the tutor's own, sent from each
// chat's composer, and every picture of a chat shown in it.
function pictures(chat) {
  chat.imageStatus = el("span", { class: "hint image-status", role: "status" });
  const controls = pictureControls(`-${chat.session.session_id}`, async (file) => {
    if (chat.ended) return;
    const sent = await sendImage({
      socket: state.socket, sessionId: chat.session.session_id, file,
      token: async () => (await tokens.get()) || "", status: chat.imageStatus, error: chat.error,
    });
    if (sent) addMessage(sent);
  });
  return [...controls, chat.imageStatus];
}

$("panels").addEventListener("hh:image", ({ detail }) => {
  showImage(detail.item, detail.message, { token: async () => (await tokens.get()) || "", role: "tutor" });
});

async function send(chat) {
  const text = chat.box.value.trim();
  if (!text || chat.ended) return;
  chat.outgoing = chat.outgoing || new Outgoing();
  const ack = await call(state.socket, "chat:send",
    { session_id: chat.session.session_id, text, client_id: chat.outgoing.idFor(text) });
  const outcome = chat.outgoing.settle(ack);
  if (outcome === "failed") {
    say(chat.error, errorText(ack.error));
    return;
  }
  if (chat.box.value.trim() === text) chat.box.value = ""; // not what was typed since
  chat.lastTyping = 0;
  say(chat.error, "");
  // Held: nothing reached the student; the message is not shown as sent.
  say(chat.held, outcome === "held" ? heldText("tutor", ack.categories) : "");
  if (outcome === "sent") addMessage(ack.message);
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && state.selected) select(state.selected);
});

// -- the booked session: countdown, then the group room --------------------------------------
const booked = { desk: null, countdown: null };
let bookedList = null; // "Your booked sessions" (booked.js)
const shownRoom = () => (booked.desk ? booked.desk.current : null);

function roomHeading(data) {
  return t("Booked session: {subject}, {language}", {
    subject: subjectName(data.subject), language: languageName(data.language || ""),
  });
}

function tickRoom() {
  const countdown = booked.countdown;
  if (!countdown) return;
  $("room-countdown").textContent = countdown.text();
  $("room-countdown").dataset.secondsLeft = String(Math.round(countdown.startsIn()));
  const said = countdown.milestone();
  if (said) $("room-announce").textContent = said;
}
setInterval(tickRoom, 1000);

// The card: the countdown while no room is shown, else the shown room.
function renderCard() {
  const room = shownRoom();
  const counting = !room && Boolean(booked.countdown);
  $("room-card").hidden = !room && !counting;
  $("room-countdown").hidden = !counting;
  $("room-body").hidden = !room;
  if (counting) {
    const next = booked.countdown.booked;
    $("room-title").textContent = roomHeading(next);
    $("room-when").textContent = t("Starts at {time}. The room opens 5 minutes before; you join it by opening it here.", {
      time: fmtTime(next.starts_at),
    });
    tickRoom();
  }
}

// `booked` of tutor:state: the open room (join it, again after a reconnect), else the next
// session (count down to it), else nothing.
function applyBookedState(data) {
  const open = data && data.session ? data.session : null;
  booked.desk.reconcile(data);
  const next = !open && data && !booked.desk.endedBookings.has(data.booking) ? data : null;
  booked.countdown = next ? new Countdown(next) : null;
  renderCard();
}

function peopleItems(room) {
  return (room.students || []).map((s) => el("li", { class: "person" },
    el("span", { class: "who" }, s.pseudonym ? BookedRoom.studentLabel(s) : t("Booked student")), " ",
    s.grade_band ? el("span", { class: "tag" }, gradeBand(s.grade_band)) : null, " ",
    el("span", { class: `tag ${s.joined ? "joined" : "not-joined"}` }, s.joined ? t("Joined") : t("Not joined yet"))));
}

function endedText(reason) {
  switch (reason) {
    case "tutor": return t("You ended the session for everyone.");
    case "scheduled_end": return t("The session has ended: its time is over.");
    case "cancelled": return t("The session was cancelled.");
    case "substituted": return t("A substitute tutor takes this session: it is no longer yours.");
    default: return t("The session has ended.");
  }
}

// The shown room (times, school kind, students, whether it ended) and the other open rooms
// (a back-to-back group) as buttons to switch to.
function renderRoom(current) {
  $("room-switch").replaceChildren(...booked.desk.switchButtons((other) =>
    t("Switch to the {time} session", { time: fmtTime(other.room.starts_at) })));
  if (current) {
    const room = current.room;
    $("room-title").textContent = roomHeading(room);
    $("room-when").textContent = [timeRange(room), room.school_kind ? t("school: {kind}", { kind: schoolKind(room.school_kind) }) : ""]
      .filter(Boolean).join(" · ");
    $("room-people").replaceChildren(...peopleItems(room));
    $("room-send-form").hidden = current.ended;
    $("room-end-box").hidden = current.ended;
    if (current.ended) say($("room-ended-reason"), endedText((current.endedInfo || {}).reason));
    else say($("room-ended-reason"), "");
    $("room-close").hidden = !current.ended;
  }
  renderCard();
}

function closeConfirm(focus) {
  $("room-confirm").hidden = true;
  $("room-end").hidden = false;
  if (focus) $("room-end").focus();
}

roomForm($("room-send-form"), $("room-message"), $("room-send-error"), shownRoom);
$("room-end").addEventListener("click", () => {
  $("room-confirm").hidden = false;
  $("room-end").hidden = true;
  $("room-end-yes").focus();
});
$("room-end-no").addEventListener("click", () => closeConfirm(true));
$("room-confirm").addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeConfirm(true);
});
$("room-end-yes").addEventListener("click", async () => {
  const room = shownRoom();
  if (!room) return;
  $("room-end-yes").disabled = true;
  const ack = await room.end();
  $("room-end-yes").disabled = false;
  closeConfirm(false);
  if (!ack.ok && ack.error.code !== "not_found") say($("room-end-error"), errorText(ack.error));
});

$("room-close").addEventListener("click", () => {
  booked.desk.leave();
  renderCard();
  const heading = $(shownRoom() || booked.countdown ? "room-title" : "queue-title");
  heading.tabIndex = -1;
  heading.focus();
});

function startRooms(socket) {
  booked.desk = new RoomDesk(socket, "tutor", $("room-logs"), {
    render: renderRoom,
    welcome: () => t("The room is open. Your students join it from their course."),
    ended: (room, info) => {
      room.system(endedText(info.reason));
      // the next booked session, if any, for its countdown
      call(socket, "tutor:state", {}).then(onState);
    },
    shown: () => {},
    // The tutor's attendance changed: the list of booked sessions says so.
    joined: (room, ack) => { if (ack && ack.ok && bookedList) bookedList.reload(); },
    logLabel: t("Messages in the booked session"),
  });
  socket.on("booked:open", (data) => {
    if (!shownRoom()) say($("room-announce"), t("Your booked session is open."));
    booked.countdown = null;
    booked.desk.open(data, false);
  });
  socket.on("booked:joined", (data) => {
    const room = booked.desk.route(data.session_id);
    if (room) room.refresh();
  });
}

// -- the connection ------------------------------------------------------------------------
function onState(data) {
  if (!data || data.ok === false) return;
  if ("booked" in data) applyBookedState(data.booked);
  state.capacity = data.capacity;
  showStatus(data.status || "away");
  for (const session of data.sessions || []) {
    openChat(session, false);
    state.chats.get(session.session_id).sync.known(session.seq);
  }
  for (const snap of data.queues || []) onSnapshot(snap);
}

async function start() {
  const token = await tokens.get();
  if (!token) { showSignIn(); return; }
  const claims = claimsOf(token);
  $("signin").hidden = true;
  $("console").hidden = false;
  $("status-box").hidden = false;
  say($("who"), t("{name}, {vendor}", {
    name: claims.display_name || t("Tutor"), vendor: vendorNames[claims.vendor] || claims.vendor || "",
  }));
  showStatus("away");
  renderQueues();
  bookedList = startBooked({
    section: $("booked"), list: $("booked-list"), note: $("booked-note"), url: cfg.upcoming_url, joinUrl: cfg.join_url,
    getToken: async () => (await tokens.get()) || token, subjectName,
  });
  let first = true;
  const socket = connect("/tutor", () => (first ? token : tokens.get()));
  state.socket = socket;
  state.boards = new BoardDesk(socket, "tutor"); // the chats' whiteboards
  watchMath($("panels")); // math in messages (chat-math.js)
  watchMath($("room-logs"));
  startRooms(socket);
  socket.on("connect", () => {
    if (!first) for (const chat of state.chats.values()) if (!chat.ended) chat.sync.sync();
    first = false;
    say($("banner"), "");
  });
  socket.on("disconnect", (reason) => {
    if (reason !== "io client disconnect") say($("banner"), t("Connection lost. Reconnecting…"));
  });
  socket.on("connect_error", (error) => {
    const code = error && error.data && error.data.code;
    if (code === "unauthenticated" || code === "not_allowed") {
      tokens.forget();
      socket.disconnect();
      say($("banner"), t("Your sign-in has expired. Please sign in again."));
      showSignIn();
    } else {
      say($("banner"), t("Connection lost. Reconnecting…"));
    }
  });
  socket.on("tutor:state", onState);
  socket.on("queue:snapshot", onSnapshot);
  socket.on("chat:message", onChatMessage);
  socket.on("peer:presence", onPeerPresence);
  socket.on("chat:typing", (data) => {
    const room = booked.desk.route(data.session_id);
    if (room) { room.typing(data); return; }
    const chat = state.chats.get(data.session_id);
    if (!chat || data.from === "tutor") return;
    chat.typing.textContent = t("The student is typing…");
    clearTimeout(chat.typingTimer);
    chat.typingTimer = setTimeout(() => { chat.typing.textContent = ""; }, 4000);
  });
  socket.on("session:ended", chatEnded);
  socket.on("account:suspended", () => suspended(socket));
  socket.on("server:resync", () => {
    call(socket, "tutor:state", {}).then(onState);
    for (const chat of state.chats.values()) if (!chat.ended) chat.sync.sync();
  });
}

function chatEndedText(reason) {
  switch (reason) {
    case "student": return t("The student ended the chat.");
    case "timeout": return t("The chat ended after a long silence.");
    case "student_silent": return t("You ended the chat because the student did not answer.");
    case "tutor_silent": return t("The chat ended because the student had no answer from you in time. The student is back in line.");
    case "ended_by_staff": return t("A staff member ended this chat.");
    case "tutor_suspended": return t("This chat was ended by the district.");
    default: return t("The chat has ended.");
  }
}

// The district suspended this account after a safety review: stop and sign out.
function suspended(socket) {
  tokens.forget();
  socket.disconnect();
  $("console").hidden = true;
  $("status-box").hidden = true;
  say($("banner"), "");
  say($("suspended"), t("Your account has been suspended by the district."));
  $("suspended").tabIndex = -1;
  $("suspended").focus();
}

function chatEnded(data) {
  const room = booked.desk && booked.desk.route(data.session_id);
  if (room) { room.finish(data); return; }
  const chat = state.chats.get(data.session_id);
  if (!chat || chat.ended) return;
  chat.ended = true;
  chat.sync.stop();
  say(chat.peerNote, "");
  if (chat.closeEndConfirm) chat.closeEndConfirm(false);
  state.boards.end(data.session_id);
  insertSystem(chat, chatEndedText(data.reason));
  chat.box.disabled = true;
  chat.silent.hidden = true;
  // The tutor can still record how it went (session:outcome); the form stays.
  const submit = chat.endForm.querySelector("button[type=submit]");
  if (submit) submit.textContent = t("Save and close");
  if (state.selected !== data.session_id) { chat.unread += 1; renderTab(chat); updateTitle(); }
}

start();
