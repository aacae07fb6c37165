// Student widget: ask for help, wait in line, chat, rate; and the student's booked tutoring
// session: its countdown, then its group room (room.js). Speaks the /student namespace of
// docs/protocol.md. Chat text is only ever set with textContent.
import { t, loadCatalog, getLocale, fmtTime, fmtWait, languageName, languageInText } from "./i18n.js";
import { SessionSync } from "./chat-sync.js";
import { BoardDesk } from "./whiteboard.js";
import { watchMath, mountMathTools } from "./chat-math.js";
import { Attention, attentionControls } from "./attention.js";
import { Countdown, RoomDesk, roomForm, timeRange, endedText as roomEndedText } from "./room.js";
import {
  $, el, say, call, connect, errorText, claimsOf, fillSelect, config, insertMessage, enterSends,
  Outgoing, heldText, reportSession, withPhoneLinks,
} from "./common.js";

const cfg = config();
await loadCatalog(cfg.i18n_url, cfg.locale);
// A tutor joining or replying while this tab is in the background: title count, sound,
// notification (attention.js). Sound on by default for students; they can turn it off.
const attention = new Attention({ soundKey: "hh_student_sound", soundDefault: true });
attentionControls(attention, $("sound-on"), $("notify-on"));

const VIEWS = ["view-start", "view-waiting", "view-unmet", "view-chat", "view-rate", "view-room"];
const TOKEN_KEY = "hh_student_token";
const state = {
  view: null, request: null, session: null, endedSession: null, sync: null,
  subjects: [], needGrade: false, lastTyping: 0, typingTimer: null,
  desk: null, countdown: null, servable: null, transcript: [],
};

// -- token: server-rendered from the hh_student cookie, else the launch's #token= fragment --
function takeToken() {
  if (cfg.token) return cfg.token;
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    const token = decodeURIComponent(match[1]);
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (_) { /* private mode */ }
    history.replaceState(null, "", location.pathname + location.search);
    return token;
  }
  try { return sessionStorage.getItem(TOKEN_KEY); } catch (_) { return null; }
}

const token = takeToken();
const claims = token ? claimsOf(token) : {};

// The language menu (base.html) reloads the page in the chosen language with a plain GET,
// which would lose a token that lives only in this page (storage blocked inside the LMS's
// iframe): the reload carries it in the fragment, where takeToken finds it as at launch.
// A token the server rendered (the hh_student cookie) comes back by itself.
if (token && !cfg.token) {
  $("lang-menu-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const url = new URL(location.href);
    url.searchParams.set("lang", $("lang-menu").value);
    if (url.search === location.search) return; // the page is in that language already
    url.hash = `token=${encodeURIComponent(token)}`;
    location.assign(url.href);
  });
}

function showView(wanted, { focus = true } = {}) {
  // While a booked room is open, the request form is not offered: the room is the help.
  const id = wanted === "view-start" && roomOpen() ? "view-room" : wanted;
  state.view = id;
  for (const view of VIEWS) $(view).hidden = view !== id;
  showBookedCard();
  if (focus) {
    const heading = $(id).querySelector("h2");
    heading.tabIndex = -1;
    heading.focus();
  }
}

// -- speech: read aloud (speechSynthesis) and dictation (SpeechRecognition) -----------------
const synth = "speechSynthesis" in window ? window.speechSynthesis : null;
const Recognition = window.SpeechRecognition || window.webkitSpeechRecognition || null;
const autoRead = $("auto-read");
if (!synth) autoRead.closest("label").hidden = true;
try { autoRead.checked = localStorage.getItem("hh_auto_read") === "1"; } catch (_) { /* */ }
autoRead.addEventListener("change", () => {
  try { localStorage.setItem("hh_auto_read", autoRead.checked ? "1" : "0"); } catch (_) { /* */ }
});

function helpLanguage() {
  const room = state.view === "view-room" && shownRoom() ? shownRoom().room : null;
  return (room && room.language) || (state.session && state.session.language) || $("language").value || getLocale();
}

// Whether the browser has a voice for `lang` (its primary subtag); unknown (true) while the
// browser has not listed its voices yet.
function hasVoice(lang) {
  const voices = synth ? synth.getVoices() : [];
  if (!voices.length) return true;
  const want = String(lang || "").toLowerCase().split(/[-_]/)[0];
  return voices.some((v) => String(v.lang || "").toLowerCase().split(/[-_]/)[0] === want);
}

// Said, not silent: when the browser has no voice for the chat's language, reading aloud
// would use another language's voice; the student is told so (dictation says so on error).
function noteVoice() {
  const lang = helpLanguage();
  const missing = synth && autoRead.checked && !hasVoice(lang);
  $("speech-note").hidden = !missing;
  $("speech-note").textContent = missing
    ? t("This browser has no voice for {language}, so messages may be read in another voice.", { language: languageInText(lang) })
    : "";
}
autoRead.addEventListener("change", noteVoice);
if (synth) synth.addEventListener("voiceschanged", noteVoice);

function speak(text) {
  if (!synth) return;
  synth.cancel();
  const utterance = new SpeechSynthesisUtterance(text);
  utterance.lang = helpLanguage();
  noteVoice();
  synth.speak(utterance);
}

let recognition = null;
if (Recognition) {
  const button = $("dictate");
  button.hidden = false;
  button.addEventListener("click", () => {
    if (recognition) { recognition.stop(); return; }
    recognition = new Recognition();
    recognition.lang = helpLanguage();
    recognition.interimResults = false;
    recognition.onresult = (event) => {
      const said = Array.from(event.results).map((r) => r[0].transcript).join(" ").trim();
      const box = $("message");
      box.value = box.value ? `${box.value} ${said}` : said;
      box.focus();
    };
    recognition.onerror = () => say($("send-error"), t("Dictation is not available right now. Please type instead."));
    recognition.onend = () => { recognition = null; button.setAttribute("aria-pressed", "false"); };
    button.setAttribute("aria-pressed", "true");
    recognition.start();
  });
}

// -- the request form --------------------------------------------------------------------
function subjectLabel(id) {
  const found = state.subjects.find((s) => s.id === id);
  return found ? t(found.label) : id;
}

async function loadChoices() {
  let subjects = [];
  let languages = null;
  let servable = null;
  try {
    const response = await fetch(cfg.catalog_url, {
      credentials: "same-origin", headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
    });
    if (response.ok) {
      const body = await response.json();
      subjects = Array.isArray(body.subjects) ? body.subjects : [];
      // Every language the district offers; those no tutor can serve for this student are
      // still listed (asking records the need), with a plain note when one is chosen.
      languages = Array.isArray(body.languages) ? body.languages : null;
      servable = Array.isArray(body.languages_for_student) ? body.languages_for_student : null;
    }
  } catch (_) { /* degrade below */ }
  // Degrade when /api/catalog is missing or failed: the broker's own subject list (rendered
  // into the page), else a free-text subject; every on-demand language.
  if (!subjects.length) subjects = cfg.subjects || [];
  if (languages === null || !Array.isArray(languages)) languages = cfg.languages || [];
  state.servable = servable || languages;
  state.subjects = subjects;
  if (subjects.length) {
    fillSelect($("subject"), [{ value: "", label: t("Choose a subject") },
      ...subjects.map((s) => ({ value: s.id, label: t(s.label) }))], "");
  } else {
    const input = el("input", { id: "subject", name: "subject", type: "text", maxlength: 64, required: true, autocomplete: "off" });
    $("subject").replaceWith(input);
    $("catalog-note").hidden = false;
  }
  // The chat language defaults to the page's (zh-Hant -> zh), else the first served one.
  const mine = getLocale().split("-")[0];
  const preferred = languages.includes(mine) ? mine : (state.servable[0] || languages[0]);
  fillSelect($("language"), languages.map((code) => ({ value: code, label: languageName(code) })), preferred);
  noteLanguage();
  return languages;
}

// Said plainly before the student asks: no tutor can help in this language right now; asking
// anyway records the need (the request comes back as unmet, language_unsupported).
function noteLanguage() {
  const code = $("language").value;
  const note = $("language-note");
  if (!code || !state.servable || state.servable.includes(code)) {
    note.hidden = true;
    note.textContent = "";
    return;
  }
  const offered = state.servable.map(languageInText);
  note.textContent = t("No tutor can help in {language} right now. You can ask in {others}, or ask anyway so the district knows you need {language}.",
    { language: languageInText(code), others: listOf(offered) });
  note.hidden = false;
}

function listOf(items) {
  try {
    return new Intl.ListFormat(getLocale(), { style: "long", type: "disjunction" }).format(items);
  } catch (_) {
    return items.join(", ");
  }
}

$("language").addEventListener("change", noteLanguage);

$("request-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (roomOpen()) { showView("view-room"); return; }
  const subject = $("subject").value.trim();
  const language = $("language").value;
  if (!subject) {
    say($("form-error"), t("Choose a subject first."));
    $("subject").focus();
    return;
  }
  if (!language) {
    say($("form-error"), t("Choose a language first."));
    return;
  }
  say($("form-error"), "");
  const payload = { subject, language };
  const topic = $("topic").value.trim();
  if (topic) payload.topic = topic.slice(0, 200);
  if (state.needGrade) payload.grade = $("grade").value;
  $("ask").disabled = true;
  const ack = await call(socket, "help:request", payload);
  $("ask").disabled = false;
  if (ack.ok) {
    say($("start-notice"), "");
    say($("requeued-note"), "");
    state.requeued = false;
    enterWaiting(ack.request);
  } else if (ack.error.code === "unmet") {
    showUnmet((ack.error.detail || {}).reason, language);
  } else if (ack.error.code === "conflict") {
    applyState(await askState(), true);
  } else {
    say($("form-error"), errorText(ack.error));
  }
});

// -- waiting -----------------------------------------------------------------------------
// "Tutors are usually back around 4:00 PM" (or "Monday 4:00 PM" when not today), in the
// district's time zone if the page knows it, else the browser's.
function backAround(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return null;
  const zone = cfg.timezone ? { timeZone: cfg.timezone } : {};
  const day = (d) => new Intl.DateTimeFormat("en-CA", { ...zone, year: "numeric", month: "2-digit", day: "2-digit" }).format(d);
  const sameDay = day(date) === day(new Date());
  return new Intl.DateTimeFormat(getLocale(), {
    ...zone, hour: "numeric", minute: "2-digit", ...(sameDay ? {} : { weekday: "long" }),
  }).format(date);
}

function showPosition(position, eta, request) {
  $("queue-position").textContent = position === 1
    ? t("You are next in line.")
    : t("You are number {position} in line.", { position });
  let etaText;
  if (request && request.nobody_on_shift) {
    const when = request.next_expected_at ? backAround(request.next_expected_at) : null;
    // each t() call on its own: the catalog extractor does not look inside `${...}`
    const none = t("No tutors are online right now.");
    const back = when
      ? t("Tutors are usually back around {time}.", { time: when })
      : t("We don't know yet when tutors will be back.");
    etaText = `${none} ${back}`;
  } else if (eta === null || eta === undefined) etaText = t("We can't estimate the wait yet. A tutor will be with you as soon as one is free.");
  else if (eta < 60) etaText = t("Estimated wait: less than a minute.");
  else etaText = t("Estimated wait: about {time}.", { time: fmtWait(eta) });
  $("queue-eta").textContent = etaText;
  // Nobody on shift: the student may leave their question and go (docs/protocol.md).
  const left = Boolean(request && request.left_until);
  $("leave-form").hidden = !(request && request.nobody_on_shift) || left;
  $("leave-done").hidden = !left;
  if (left) $("leave-done").textContent = leftText(request.left_until);
}

function leftText(until) {
  const when = backAround(until);
  return when
    ? t("Your question is saved for the next tutor. You keep your place in line until {time}: open Homework Help again to be matched.", { time: when })
    : t("Your question is saved for the next tutor. Open Homework Help again to be matched.");
}

$("leave-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!state.request) return;
  const topic = $("leave-question").value.trim();
  const ack = await call(socket, "help:leave", { request_id: state.request.id, ...(topic ? { topic } : {}) });
  if (ack.ok) {
    state.request = { ...state.request, left_until: ack.left_until };
    showPosition(state.request.position, state.request.eta_s, state.request);
    $("leave-done").focus();
  } else {
    say($("queue-eta"), errorText(ack.error));
  }
});

function enterWaiting(request) {
  const wasWaiting = state.view === "view-waiting";
  state.request = request;
  showView("view-waiting", { focus: !wasWaiting });
  showPosition(request.position, request.eta_s, request);
}

$("cancel").addEventListener("click", async () => {
  if (!state.request) return;
  const ack = await call(socket, "help:cancel", { request_id: state.request.id });
  if (ack.ok || ack.error.code === "not_found") {
    state.request = null;
    say($("start-notice"), t("Your request was cancelled."));
    showView("view-start");
  } else {
    say($("queue-eta"), errorText(ack.error));
  }
});

// -- unmet demand, in the student's words ---------------------------------------------------
function unmetTexts(reason, language) {
  const lang = languageName(language || "");
  switch (reason) {
    case "language_unsupported":
      return [t("Our tutors for your school can't help in {language} right now.", { language: lang }),
        t("Choose another language from the list and ask again. Your teacher can also help you find support in {language}.", { language: lang })];
    case "grade_unsupported":
      return [t("Live tutors are not available for your grade."),
        t("Ask your teacher about tutoring at your school, after school or on Saturdays.")];
    case "subject_unsupported":
      return [t("Live tutors can't help with this subject."),
        t("Choose a related subject (for example Math instead of Calculus) or ask your teacher.")];
    case "outside_hours":
      return [t("Live tutors are not available at this time."),
        t("Please try again later, or write down your question and ask your teacher.")];
    case "school_unknown_grade_ambiguous":
      return [t("We need to know your grade to find the right tutor."),
        t("Choose your grade and ask again.")];
    case "no_vendor":
      return [t("Homework Help does not have a tutoring service for your school yet."),
        t("Ask your teacher or school counselor about other tutoring options.")];
    default:
      return [t("No tutor can help with this request right now."),
        t("Change your request and try again, or ask your teacher for help.")];
  }
}

function showUnmet(reason, language) {
  const [what, instead] = unmetTexts(reason, language);
  if (reason === "school_unknown_grade_ambiguous") {
    state.needGrade = true;
    $("grade-field").hidden = false;
    say($("start-notice"), `${what} ${instead}`);
    showView("view-start", { focus: false });
    $("grade").focus();
    return;
  }
  $("unmet-reason").textContent = what;
  $("unmet-advice").textContent = instead;
  showView("view-unmet");
}

$("unmet-back").addEventListener("click", () => showView("view-start"));

// -- chat --------------------------------------------------------------------------------
function tutorName() {
  return (state.session && state.session.tutor && state.session.tutor.display_name) || t("Your tutor");
}

function addSystem(text) {
  $("messages").append(el("div", { class: "msg from-system" }, el("p", { class: "text" }, text)));
}

function addMessage(message) {
  const room = state.desk && state.desk.route(message.session_id);
  if (room) { room.receive(message); return; }
  if (!state.sync || message.session_id !== state.sync.sessionId) return;
  state.sync.receive(message);
}

// On a phone the composer sticks to the bottom of the screen (app.css): the page scrolls so
// that the newest message sits just above it rather than under it.
const phone = window.matchMedia("(max-width: 40rem)");
function keepLatestInView() {
  if (!phone.matches || state.view !== "view-chat") return;
  const list = $("messages").getBoundingClientRect();
  const composer = $("send-form").getBoundingClientRect();
  const hidden = list.bottom - composer.top;
  if (hidden > 0) window.scrollBy(0, hidden);
}
$("message").addEventListener("focus", () => requestAnimationFrame(keepLatestInView));

// Reading aloud is one toggle in the header ("Read tutor messages aloud"), not a button on
// every message (one tab stop each).
function showMessage(message) {
  const mine = message.from === "student";
  const who = mine ? t("You") : tutorName();
  const item = insertMessage($("messages"), message, { mine, who, timeText: fmtTime(message.at) });
  rememberLine(message, who, item);
  keepLatestInView();
  if (!mine) {
    $("typing").textContent = "";
    if (autoRead.checked) speak(message.text);
  }
}

function enterChat(session) {
  const fresh = !state.session || state.session.session_id !== session.session_id;
  state.request = null;
  state.session = { ...(state.session || {}), ...session };
  $("chat-title").textContent = t("{tutor} from {vendor}", {
    tutor: tutorName(), vendor: session.vendor_name || session.vendor || "",
  });
  if (fresh) {
    $("messages").replaceChildren();
    if (!state.requeued) state.transcript = [];
    state.requeued = false;
    hidePeerNote();
    closeEndConfirm(false);
    $("requeued-note").hidden = true;
    say($("send-held"), "");
    say($("report-thanks"), "");
    $("report").disabled = false;
    if (state.sync) state.sync.stop();
    state.sync = new SessionSync(socket, session.session_id, {
      show: showMessage,
      ended: (info) => endSession(info),
    });
    addSystem(t("You are chatting with {tutor}. Say hello and describe your question.", { tutor: tutorName() }));
    state.sync.restore(); // this tab's copy, shown before the server's answer
    boards.openOnly(session.session_id, boardSlot, { otherSide: tutorName() });
  }
  state.sync.known(session.seq);
  const wasChat = state.view === "view-chat";
  showView("view-chat", { focus: false });
  if (!wasChat) $("message").focus();
  keepLatestInView();
  if (session.tutor_present === false) onPeerPresence({ session_id: session.session_id, who: "tutor", present: false });
}

enterSends($("message"), $("send-form"));

$("message").addEventListener("input", () => {
  const now = Date.now();
  if (!state.session || now - state.lastTyping < 2500) return;
  state.lastTyping = now;
  socket.emit("chat:typing", { session_id: state.session.session_id }, () => {});
});

const outgoing = new Outgoing(); // the message being sent, for a resend after a lost ack
$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = $("message");
  const text = box.value.trim();
  if (!text || !state.session) return;
  const ack = await call(socket, "chat:send",
    { session_id: state.session.session_id, text, client_id: outgoing.idFor(text) });
  const outcome = outgoing.settle(ack);
  if (outcome === "failed") {
    say($("send-error"), errorText(ack.error));
  } else {
    if (box.value.trim() === text) box.value = ""; // not what was typed since
    state.lastTyping = 0;
    say($("send-error"), "");
    // A held message is not shown as sent: the student is told, kindly, that it waits.
    say($("send-held"), outcome === "held" ? heldText("student", ack.categories) : "");
    if (outcome === "sent") addMessage(ack.message);
    if (ack.crisis) showCrisis(ack.crisis);
  }
  box.focus();
});

// "End chat" asks first, in the page (no window.confirm): Yes ends it, Keep chatting or
// Escape goes back to the message box.
function closeEndConfirm(focus) {
  $("end-confirm").hidden = true;
  $("end").setAttribute("aria-expanded", "false");
  if (focus) $("message").focus();
}

$("end").setAttribute("aria-expanded", "false");
$("end").setAttribute("aria-controls", "end-confirm");
$("end").addEventListener("click", () => {
  if (!state.session) return;
  $("end-confirm").hidden = false;
  $("end").setAttribute("aria-expanded", "true");
  $("end-yes").focus();
});
$("end-no").addEventListener("click", () => closeEndConfirm(true));
$("end-confirm").addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeEndConfirm(true);
});
$("end-yes").addEventListener("click", async () => {
  if (!state.session) return;
  $("end-yes").disabled = true;
  const ack = await call(socket, "session:end", { session_id: state.session.session_id });
  $("end-yes").disabled = false;
  closeEndConfirm(false);
  if (ack.ok) {
    if (state.sync) state.sync.stop(); // one last sync, for a tutor's message in flight
    showRating("student");
  }
  else say($("send-error"), errorText(ack.error));
});

// -- the other side's presence (peer:presence) ------------------------------------------------
function hidePeerNote() {
  say($("peer-note"), "");
}

function onPeerPresence(data) {
  if (!state.session || data.session_id !== state.session.session_id || data.who !== "tutor") return;
  if (data.present) {
    if (!$("peer-note").hidden) say($("peer-note"), t("Your tutor is back."));
    return;
  }
  const seconds = Math.max(0, Number(data.back_within_s) || 0);
  say($("peer-note"), seconds
    ? t("Your tutor lost their connection. Please wait: if they are not back within {seconds} seconds, you go back in line and keep your place.", { seconds })
    : t("Your tutor is not connected right now. Please wait: if they do not come back soon, you go back in line and keep your place."));
  attention.notify({ title: t("Your tutor lost their connection."), tag: "hh-peer" });
}

// -- the student's own transcript (kept in this page only) ----------------------------------
// A picture's line says what it was (and its caption); the printed view also shows the
// picture itself when the chat already shows it (the same in-page data: URL: nothing is
// fetched or kept anew, and a picture no longer loaded stays a line of text).
function rememberLine(message, who, item) {
  let text = message.text;
  if (message.image) {
    const what = message.from === "student" ? t("[Your picture]") : t("[Picture from your tutor]");
    text = text ? `${what} ${text}` : what;
  }
  const line = { seq: message.seq, who, at: message.at, text, item: message.image ? item : null };
  const later = state.transcript.findIndex((l) => l.seq > message.seq);
  if (later < 0) state.transcript.push(line);
  else state.transcript.splice(later, 0, line);
}

function transcriptHead() {
  const session = state.endedSession || state.session || {};
  return [t("Homework Help"), t("{tutor} from {vendor}", {
    tutor: (session.tutor && session.tutor.display_name) || t("Your tutor"),
    vendor: session.vendor_name || session.vendor || "",
  }), ""];
}
const transcriptLine = (l) => `[${fmtTime(l.at)}] ${l.who}: ${l.text}`;

function transcriptText() {
  return [...transcriptHead(), ...state.transcript.map(transcriptLine), ""].join("\n");
}

// The picture a transcript line shows in the chat, if it is loaded there (else null).
function printedPicture(line) {
  const shown = line.item && line.item.querySelector(".chat-image img");
  if (!shown || !shown.src.startsWith("data:")) return null;
  return el("figure", { class: "chat-image" },
    el("img", { src: shown.src, alt: shown.alt, width: shown.getAttribute("width"), height: shown.getAttribute("height") }));
}

$("transcript-save").addEventListener("click", () => {
  const blob = new Blob([transcriptText()], { type: "text/plain;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: `homework-help-${new Date().toISOString().slice(0, 10)}.txt` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
});

$("transcript-print").addEventListener("click", async () => {
  const pictures = [];
  $("transcript").replaceChildren(...transcriptHead().map((line) => el("p", {}, line)),
    ...state.transcript.flatMap((line) => {
      const picture = printedPicture(line);
      if (picture) pictures.push(picture.querySelector("img"));
      return [el("p", {}, transcriptLine(line)), ...(picture ? [picture] : [])];
    }));
  await Promise.all(pictures.map((img) => img.decode().catch(() => {})));
  window.print();
});

// -- rating ------------------------------------------------------------------------------
function endedText(reason) {
  switch (reason) {
    case "student": return t("You ended the chat.");
    case "tutor": return t("Your tutor ended the chat.");
    case "timeout": return t("The chat ended because nobody wrote for a while.");
    case "tutor_lost": return t("Your tutor was disconnected.");
    case "student_silent": return t("Your tutor ended the chat because you didn't answer for a while.");
    case "ended_by_staff": return t("A staff member ended this chat.");
    default: return "";
  }
}

function showRating(reason) {
  if (state.session) state.endedSession = state.session;
  state.session = null;
  state.request = null;
  if (synth) synth.cancel();
  $("ended-reason").textContent = endedText(reason);
  $("rate-form").hidden = false;
  $("rate-form").reset();
  paintStars();
  $("transcript-box").hidden = !state.transcript.length;
  hidePeerNote();
  closeEndConfirm(false);
  $("rate-thanks").hidden = true;
  say($("rate-report-thanks"), "");
  $("rate-report").disabled = false;
  showView("view-rate");
}

// The star control: five radios (one radio group: arrows move, Space checks), drawn as
// stars on one line; the checked star and those before it are filled.
function paintStars() {
  const checked = $("stars").querySelector("input:checked");
  const value = checked ? Number(checked.value) : 0;
  for (const input of $("stars").querySelectorAll("input")) {
    input.closest("label").classList.toggle("on", Number(input.value) <= value);
  }
}
$("stars").addEventListener("change", paintStars);

$("rate-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const stars = Number(form.get("stars"));
  if (!stars) {
    say($("rate-error"), t("Choose from 1 to 5 stars."));
    return;
  }
  const payload = { session_id: state.endedSession && state.endedSession.session_id, stars };
  const helped = form.get("helped");
  if (helped) payload.helped = helped === "yes";
  const ack = await call(socket, "session:rate", payload);
  if (ack.ok) {
    say($("rate-error"), "");
    $("rate-form").hidden = true;
    $("rate-thanks").hidden = false;
    $("again").focus();
  } else {
    say($("rate-error"), errorText(ack.error));
  }
});

$("again").addEventListener("click", () => {
  state.endedSession = null;
  state.transcript = [];
  say($("rate-report-thanks"), "");
  $("rate-report").disabled = false;
  say($("start-notice"), "");
  showView("view-start");
});

// -- the booked tutoring session: countdown, then the group room ---------------------------
function roomOpen() {
  return Boolean(state.desk && state.desk.anyOpen);
}

function shownRoom() {
  return state.desk ? state.desk.current : null;
}

// The card above the views: the countdown before the room opens, or (while the student is
// in an on-demand chat or line) that the room is open, with a way to it.
function showBookedCard() {
  const counting = Boolean(state.countdown);
  const away = roomOpen() && state.view !== "view-room";
  $("booked-card").hidden = !(counting || away);
  for (const id of ["booked-when", "booked-countdown", "booked-opens"]) $(id).hidden = !counting;
  $("booked-open-note").hidden = !away;
  $("booked-go").hidden = !away;
}

function tickCountdown() {
  const countdown = state.countdown;
  if (!countdown) return;
  const node = $("booked-countdown");
  node.textContent = countdown.text();
  node.dataset.secondsLeft = String(Math.round(countdown.startsIn()));
  const said = countdown.milestone();
  if (said) $("booked-announce").textContent = said;
}
setInterval(tickCountdown, 1000);

function showCountdown(booked) {
  state.countdown = new Countdown(booked);
  $("booked-when").replaceChildren(t("Your tutoring session with {vendor} starts at {time}.", {
    vendor: booked.vendor_name || booked.vendor || "", time: fmtTime(booked.starts_at),
  }));
  tickCountdown();
}

// `booked` of session:state: the open room (join it, again after a reconnect), else the next
// session (count down to it), else nothing.
function applyBooked(booked) {
  const open = booked && booked.session ? booked.session : null;
  const wasOpen = roomOpen();
  state.desk.reconcile(booked);
  const next = !open && booked && !state.desk.endedBookings.has(booked.booking) ? booked : null;
  if (next) showCountdown(next);
  else state.countdown = null;
  // A room that just opened takes the student there, unless they are in an on-demand chat
  // or line (the card then shows the way to it).
  if (open && !wasOpen && state.view !== "view-chat" && state.view !== "view-waiting") showView("view-room");
  showBookedCard();
}

function peopleItems(room, me) {
  const items = [el("li", {}, el("strong", {}, (room.tutor && room.tutor.display_name) || t("Your tutor")),
    " ", el("span", { class: "tag" }, t("Tutor")))];
  for (const s of room.students || []) {
    const you = me && s.pseudonym === me.pseudonym;
    items.push(el("li", {}, you ? t("{name} (you)", { name: s.name }) : s.name));
  }
  return items;
}

// The shown room: its tutor, times, people, whether it ended; the other open rooms (a
// back-to-back session) as buttons to go to.
function renderRoom(current) {
  $("room-switch").replaceChildren(...state.desk.switchButtons((other) =>
    t("Go to your {time} session", { time: fmtTime(other.room.starts_at) })));
  if (current) {
    const room = current.room;
    $("room-title").textContent = t("{tutor} from {vendor}", {
      tutor: current.tutorName(), vendor: room.vendor_name || room.vendor || "",
    });
    $("room-times").textContent = timeRange(room);
    $("room-people").replaceChildren(...peopleItems(room, current.me));
    $("room-send-form").hidden = current.ended;
    $("room-why").hidden = current.ended;
    $("room-ended").hidden = !current.ended;
    $("room-ended-reason").textContent = current.ended ? roomEndedText((current.endedInfo || {}).reason) : "";
  }
  showBookedCard();
}

function roomEnded(room, info) {
  const text = roomEndedText(info.reason);
  room.system(text);
  if (state.view !== "view-room" || room !== shownRoom()) say($("start-notice"), text);
  askState().then((data) => applyState(data, true)); // the next booked session, if any
}

roomForm($("room-send-form"), $("room-message"), $("room-send-error"), shownRoom);
$("booked-go").addEventListener("click", () => showView("view-room"));
$("room-back").addEventListener("click", () => {
  if (!state.desk.leave()) showView("view-start");
});

// -- the connection ------------------------------------------------------------------------
// Ask what this student has open, telling the request the page shows as waiting: if a
// tutor took it and the chat ended while the page heard nothing, the answer's `ended`
// names that chat, so its messages and its end are shown rather than lost.
function askState() {
  return call(socket, "session:state", state.request ? { request_id: state.request.id } : {});
}

// `asked`: an answer to askState (a push carries no `ended`: ask before concluding).
function applyState(data, asked = false) {
  if (!data || data.ok === false) return;
  if ("booked" in data) applyBooked(data.booked);
  if (data.session) enterChat(data.session);
  else if (data.request) enterWaiting(data.request);
  else if (state.view === "view-chat" && state.session) showRating(null);
  else if (state.view === "view-room") return;
  else if (state.view === "view-waiting" && state.request && !asked) {
    askState().then((answer) => applyState(answer, true));
  } else if (state.view === "view-waiting" && data.ended && state.request
             && data.ended.session.request_id === state.request.id) {
    enterChat(data.ended.session); // its messages, then how it ended (the rating view)
    state.sync.sync();
  } else if (state.view === "view-waiting") {
    state.request = null;
    say($("start-notice"), t("Your request is no longer waiting. You can ask again."));
    showView("view-start");
  } else if (!state.view) showView("view-start", { focus: false });
}

function banner(text) {
  say($("banner"), text);
}

if (!token) {
  // Opened outside a launch: one message, and no connection (so no "connection lost"
  // banner beside it). Nothing below runs: this module's evaluation stops here.
  $("no-token").hidden = false;
  for (const control of document.querySelectorAll("header.bar .toggle, #notify-on")) control.hidden = true;
  await new Promise(() => {});
}

const name = cfg.given_name || claims.given_name;
if (name) say($("greeting"), t("Hi, {name}!", { name }));

const languages = token ? await loadChoices() : [];
const socket = connect("/student", () => token);
// Math rendered in every message, the equation toolbar, the chat's whiteboard
// (chat-math.js, whiteboard.js).
const boards = new BoardDesk(socket, "student");
const boardSlot = el("div", { class: "board-slot" });
$("messages").before(boardSlot);
watchMath($("messages"));
watchMath($("room-logs"));
mountMathTools($("message"));
$("messages").tabIndex = 0; // the log scrolls (taller with math and the board): keyboard-reachable
// Pictures: chat-media.js is loaded on first use (a picture chosen or received), so the
// widget's first load stays small (docs/protocol.md, "Images").
const media = () => import("./chat-media.js");
for (const input of [$("photo-pick"), $("photo-camera")]) {
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    input.value = "";
    if (!file || !state.session) return;
    const sent = await (await media()).sendImage({
      socket, sessionId: state.session.session_id, file, token: async () => token,
      status: $("image-status"), error: $("send-error"),
    });
    if (sent) addMessage(sent);
  });
}
$("messages").addEventListener("hh:image", ({ detail }) => {
  media().then((m) => m.showImage(detail.item, detail.message, { token: async () => token, role: "student" }));
});
state.desk = new RoomDesk(socket, "student", $("room-logs"), {
  render: renderRoom,
  welcome: (room) => t("Your tutoring session is open. Say hello to {tutor}!", { tutor: room.tutorName() }),
  ended: roomEnded,
  shown: (message) => { if (message.from === "tutor" && autoRead.checked) speak(message.text); },
  joined: () => {},
  logLabel: t("Messages in your tutoring session"),
});
if (token && !languages.length) showUnmet("no_vendor");

let connectedOnce = false;
socket.on("connect", () => {
  banner("");
  if (connectedOnce && state.sync) state.sync.sync(); // the server sends session:state itself
  connectedOnce = true;
});
socket.on("disconnect", (reason) => {
  if (reason !== "io client disconnect") banner(t("Connection lost. Reconnecting…"));
});
socket.on("connect_error", (error) => {
  const code = error && error.data && error.data.code;
  if (code === "unauthenticated" || code === "not_allowed") {
    banner(t("Your Homework Help link has expired. Please open it again from your course."));
  } else {
    banner(t("Connection lost. Reconnecting…"));
  }
});
socket.on("session:state", (data) => applyState(data));
socket.on("queue:position", (data) => {
  if (state.request && data.request_id === state.request.id) {
    // Each push says afresh whether anyone is on shift.
    state.request = {
      ...state.request, ...data,
      nobody_on_shift: Boolean(data.nobody_on_shift), next_expected_at: data.next_expected_at || null,
    };
    if (state.view !== "view-waiting") showView("view-waiting");
    showPosition(data.position, data.eta_s, state.request);
  }
});
socket.on("request:closed", (data) => {
  if (!state.request || data.request_id !== state.request.id) return;
  state.request = null;
  const texts = {
    cancelled: t("Your request was cancelled."),
    expired: t("No tutor was free in time. Please try again."),
    abandoned: t("Your request was closed because you left the page."),
  };
  say($("start-notice"), texts[data.status] || t("Your request is no longer waiting. You can ask again."));
  showView("view-start");
});
socket.on("session:started", (session) => {
  enterChat(session);
  attention.notify({ title: t("A tutor joined your chat."), tag: "hh-chat" });
});
socket.on("chat:message", (message) => {
  const sync = state.sync;
  const fresh = sync && message.session_id === sync.sessionId && message.from === "tutor"
    && !sync.seen.has(message.id);
  addMessage(message);
  // the text stays out of the notification: a lock screen may show it to anyone
  if (fresh) attention.notify({ title: t("{tutor} replied.", { tutor: tutorName() }), tag: "hh-chat" });
});
socket.on("peer:presence", onPeerPresence);
socket.on("chat:typing", (data) => {
  const room = state.desk.route(data.session_id);
  if (room) { room.typing(data); return; }
  if (!state.session || data.session_id !== state.session.session_id || data.from === "student") return;
  $("typing").textContent = t("{name} is typing…", { name: tutorName() });
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(() => { $("typing").textContent = ""; }, 4000);
});
socket.on("session:ended", endSession);
socket.on("booked:open", (data) => {
  const wasOpen = roomOpen();
  state.countdown = null;
  state.desk.open(data, false);
  if (!wasOpen && state.view !== "view-chat" && state.view !== "view-waiting") showView("view-room");
  showBookedCard();
});
socket.on("booked:joined", (data) => {
  const room = state.desk.route(data.session_id);
  if (room) room.refresh();
});

function endSession(data) {
  const room = state.desk.route(data.session_id);
  if (room) { room.finish(data); return; }
  if (!state.session || data.session_id !== state.session.session_id) return;
  if (state.sync) state.sync.stop();
  if (data.requeued) {
    // Told, not silently moved: the waiting view says why, and the conversation so far can
    // still be saved from there.
    const why = requeuedText(data.reason, data.detail);
    addSystem(why);
    hidePeerNote();
    state.endedSession = state.session;
    state.session = null;
    say($("requeued-note"), why);
    state.requeued = true; // the transcript goes on with the next tutor
    attention.notify({ title: why, tag: "hh-chat" });
    askState().then((data) => applyState(data, true));
    return;
  }
  showRating(data.reason);
}

// After a reconnect or a server:resync, ask again what this student has open and what the
// open session said meanwhile (pushes may have been lost).
function resync() {
  askState().then((data) => applyState(data, true));
  if (state.sync) state.sync.sync();
}
socket.on("server:resync", resync);


function requeuedText(reason, detail) {
  if (detail === "signed_out") return t("Your tutor signed out. You are back in line and keep your place.");
  switch (reason) {
    case "tutor_silent": return t("Your tutor didn't answer, so you're back at the front of the line.");
    case "tutor_suspended": return t("Your tutor can't continue this chat, so you're back at the front of the line.");
    default: return t("Your tutor was disconnected. You are back at the front of the line.");
  }
}

// -- chat safety: crisis resources, reports ------------------------------------------------
// The district's crisis resources ({title, lines}, already in the student's language): shown
// above everything until the student closes them; a phone number in a line can be tapped.
function showCrisis(crisis) {
  if (!crisis || !crisis.title) return;
  $("crisis-title").textContent = crisis.title;
  $("crisis-lines").replaceChildren(...(crisis.lines || []).map((line) => el("li", {}, ...withPhoneLinks(line))));
  $("crisis").hidden = false;
}

document.addEventListener("hh:crisis", (event) => showCrisis(event.detail)); // booked rooms
$("crisis-close").addEventListener("click", () => {
  $("crisis").hidden = true;
  const back = state.view === "view-chat" ? $("message") : $(state.view || "view-start").querySelector("h2");
  if (back) { back.tabIndex = back.tabIndex < 0 ? -1 : back.tabIndex; back.focus(); }
});
socket.on("safety:crisis", showCrisis);

// One tap reports the chat to staff (chat:report); the tutor is not told.
async function report(button, thanks, sessionId) {
  if (!sessionId) return;
  button.disabled = true;
  const ack = await reportSession(socket, sessionId);
  if (ack.ok) {
    say(thanks, t("Thank you. A staff member will look at this chat."));
  } else {
    button.disabled = false;
    say(thanks, errorText(ack.error));
  }
}

$("report").addEventListener("click", () =>
  report($("report"), $("report-thanks"), state.session && state.session.session_id));
$("rate-report").addEventListener("click", () =>
  report($("rate-report"), $("rate-report-thanks"), state.endedSession && state.endedSession.session_id));
