// A school's tutoring designee (or district staff): pick a programme offer, enrol the
// school's students, form a group, book a weekly series, mark or import the school
// calendar, and see and change the week: cancel or move one session or the rest of its
// series (the rest only after a confirmation), substitute a tutor, mark attendance by hand
// and read the series' change history. Calls /api/scheduler/* (docs/scheduler.md) and the roster read
// /api/scheduling/schools/{school}/roster; every refusal shows the server's message and code.
import { t, loadCatalog, languageName, fmtNumber, getLocale } from "./i18n.js";
import { $, el, say, config, fillSelect, tokenSource } from "./common.js";
import { staffSignIn } from "./staff-signin.js";
import { api, problemText, Problem, submitting } from "./api.js";

const cfg = config();
await loadCatalog(cfg.i18n_url, cfg.locale);
const tokens = tokenSource(cfg, "hh_staff_token");
const subjectLabels = Object.fromEntries((cfg.subjects || []).map((s) => [s.id, t(s.label)]));
const subjectName = (id) => subjectLabels[id] || id;
const vendorNames = Object.fromEntries(Object.entries(cfg.vendor_names || {}).map(([id, name]) => [id, t(name)]));
const vendorName = (id) => vendorNames[id] || id;
const state = { token: null, school: "", offer: null, offers: [], roster: null, groups: [], week: null, cancelling: null, changing: null };

const call = (path, options) => api(path, { ...options, token: state.token });
const gradeName = (g) => (g === 0 ? t("Kindergarten") : t("Grade {n}", { n: g }));
const ACCOMMODATIONS = { asl: () => t("ASL"), enlarged_print: () => t("Enlarged print"), braille: () => t("Braille") };
const accommodationNames = (list) => (list || []).map((a) => (ACCOMMODATIONS[a] ? ACCOMMODATIONS[a]() : a)).join(", ");
const tutorName = (id) => {
  const found = ((state.roster && state.roster.tutors) || []).find((x) => x.id === id);
  return (found && found.display_name) || id;
};

// -- school and offer --------------------------------------------------------------------
function offerLabel(o) {
  const programme = o.programme === "school_based" ? t("School-based") : t("Home-based");
  return t("{programme}: {vendor}, {subjects}, grades {low}-{high}, until {end}", {
    programme, vendor: vendorName(o.vendor), subjects: o.subjects.map(subjectName).join(", "),
    low: o.low_grade === 0 ? "K" : o.low_grade, high: o.high_grade, end: o.term_end,
  });
}

async function loadOffers() {
  const data = await call(`${cfg.api}/offers`);
  state.offers = data.offers || [];
  fillSelect($("pick-offer"), state.offers.map((o) => ({ value: o.id, label: offerLabel(o) })));
}

async function pick() {
  state.school = $("pick-school").value.trim();
  state.offer = state.offers.find((o) => o.id === $("pick-offer").value) || null;
  if (!state.offer) throw new Problem(400, { code: "invalid_payload", title: t("Choose a programme offer.") });
  const schoolBased = state.offer.programme === "school_based";
  for (const section of document.querySelectorAll(".school-based")) section.hidden = !schoolBased;
  $("links-section").hidden = schoolBased;
  $("links").replaceChildren();
  await loadRoster();
  $("work").hidden = false;
  if (schoolBased) {
    await loadGroups();
    await loadWeek();
  }
}

// -- roster and enrolment ------------------------------------------------------------------
async function loadRoster() {
  const url = `${cfg.roster_url}/${encodeURIComponent(state.school)}/roster?offer=${encodeURIComponent(state.offer.id)}`;
  state.roster = await call(url);
  const rows = state.roster.students.map((s) => {
    const name = `${s.given_name} ${s.family_initial ? `${s.family_initial}.` : ""}`.trim();
    const enrolled = s.enrolment
      ? [languageName(s.enrolment.language), accommodationNames(s.enrolment.accommodations)].filter(Boolean).join(", ")
      : t("Not enrolled");
    return el("tr", { "data-student": s.id },
      el("td", {}, el("input", { type: "checkbox", class: "pick-student", value: s.id, id: `st-${s.id}`, "aria-label": t("Select {name}", { name }) })),
      el("th", { scope: "row" }, el("label", { for: `st-${s.id}` }, name)),
      el("td", {}, gradeName(s.grade)),
      el("td", {}, enrolled));
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 4, class: "empty" }, t("No students of this school are in the programme's grades."))));
  $("roster").replaceChildren(...rows);
  const languages = state.offer.languages.map((code) => ({ value: code, label: languageName(code) }));
  fillSelect($("enrol-language"), languages);
  fillSelect($("group-language"), languages);
  fillSelect($("links-language"), languages);
  fillSelect($("group-subject"), state.offer.subjects.map((id) => ({ value: id, label: subjectName(id) })));
  const noAccommodations = t("no accommodations"); // not nested in t(): see i18n.js
  fillSelect($("group-tutor"), state.roster.tutors.map((x) => ({
    value: x.id,
    label: t("{name} ({languages}; {accommodations})", {
      name: x.display_name || x.id,
      languages: x.languages.map(languageName).join(", "),
      accommodations: accommodationNames(x.accommodations) || noAccommodations,
    }),
  })));
  say($("group-hint"), t("At most {limit} students per group, all enrolled, of the same language and inside the grade band.", { limit: state.offer.group_limit }));
  $("book-minutes").value = String(state.offer.session_minutes);
  if (!$("book-first").value) $("book-first").value = state.offer.term_start > cfg.today ? state.offer.term_start : cfg.today;
  if (!$("book-last").value) $("book-last").value = state.offer.term_end;
}

const ticked = () => Array.from(document.querySelectorAll(".pick-student:checked")).map((box) => box.value);

async function enrol() {
  const students = ticked();
  if (!students.length) throw new Problem(400, { code: "invalid_payload", title: t("Tick at least one student first.") });
  const accommodations = Array.from($("enrol-form").querySelectorAll("input[name=accommodations]:checked")).map((b) => b.value);
  const done = await call(`${cfg.api}/offers/${encodeURIComponent(state.offer.id)}/enrolments`, {
    method: "POST",
    body: { students: students.map((student) => ({ student, language: $("enrol-language").value, accommodations })) },
  });
  for (const box of $("enrol-form").querySelectorAll("input[name=accommodations]")) box.checked = false;
  await loadRoster();
  return t("Enrolled: {count}. Already enrolled: {already}.", { count: fmtNumber(done.enrolled.length), already: fmtNumber(done.already.length) });
}

// -- parent links (home-based offers) ---------------------------------------------------------
async function makeLinks() {
  const students = ticked();
  if (!students.length) throw new Problem(400, { code: "invalid_payload", title: t("Tick at least one student first.") });
  const names = Object.fromEntries(state.roster.students.map((s) => [s.id, `${s.given_name} ${s.family_initial ? `${s.family_initial}.` : ""}`.trim()]));
  for (const student of students) {
    const link = await call(`${cfg.api}/parent-links`, {
      method: "POST", body: { student, language: $("links-language").value, offer: state.offer.id },
    });
    const url = new URL(`/parent/${encodeURIComponent(link.token)}`, window.location.origin).href;
    $("links").append(el("li", { "data-student": student },
      el("span", {}, t("{name}, until {date}:", { name: names[student] || student, date: link.expires_at.slice(0, 10) })), " ",
      el("a", { href: url, class: "parent-link" }, url)));
  }
  return t("Links made: {count}.", { count: fmtNumber(students.length) });
}

// -- groups ------------------------------------------------------------------------------
function groupLabel(g) {
  return t("{subject}, grades {band}, {language}, with {tutor} ({count} students)", {
    subject: subjectName(g.subject), band: g.grade_band, language: languageName(g.language),
    tutor: tutorName(g.tutor), count: g.students.length,
  });
}

async function loadGroups(selected) {
  const data = await call(`${cfg.api}/schools/${encodeURIComponent(state.school)}/groups?offer=${encodeURIComponent(state.offer.id)}`);
  state.groups = data.groups || [];
  fillSelect($("book-group"), state.groups.map((g) => ({ value: g.id, label: groupLabel(g) })), selected);
}

async function formGroup() {
  const group = await call(`${cfg.api}/groups`, {
    method: "POST",
    body: {
      offer: state.offer.id, school: state.school, subject: $("group-subject").value,
      language: $("group-language").value, grade_band: $("group-band").value.trim(),
      tutor: $("group-tutor").value, students: ticked(),
    },
  });
  await loadGroups(group.id);
  return t("Group formed: {group}", { group: groupLabel(group) });
}

// -- booking -----------------------------------------------------------------------------
async function book() {
  const days = Array.from($("book-form").querySelectorAll("input[name=weekday]:checked")).map((b) => b.value);
  const until = $("book-last").value.replace(/-/g, "");
  const booked = await call(`${cfg.api}/series`, {
    method: "POST",
    body: {
      group: $("book-group").value, first_day: $("book-first").value, start: $("book-start").value,
      minutes: Number($("book-minutes").value),
      rrule: `FREQ=WEEKLY;BYDAY=${days.join(",")};UNTIL=${until}T235959`,
      skip_holidays: $("book-skip").checked,
    },
  });
  $("week-date").value = $("book-first").value;
  await loadWeek();
  return t("Booked: {count} sessions.", { count: fmtNumber(booked.occurrences) });
}

async function addDay() {
  const done = await call(`${cfg.api}/schools/${encodeURIComponent(state.school)}/calendar`, {
    method: "POST",
    body: { days: [{ date: $("cal-date").value, kind: $("cal-kind").value, label: $("cal-label").value.trim() }] },
  });
  await loadWeek();
  const cancelled = Array.isArray(done.cancelled_occurrences) ? done.cancelled_occurrences.length : Number(done.cancelled_occurrences) || 0;
  return t("Added to the calendar. Sessions cancelled: {count}.", { count: fmtNumber(cancelled) });
}

// -- the week ----------------------------------------------------------------------------
const WEEKDAYS = [() => t("Monday"), () => t("Tuesday"), () => t("Wednesday"), () => t("Thursday"),
  () => t("Friday"), () => t("Saturday"), () => t("Sunday")];

function addDays(iso, n) {
  const [y, m, d] = iso.split("-").map(Number);
  const day = new Date(Date.UTC(y, m - 1, d + n));
  return day.toISOString().slice(0, 10);
}

function occurrenceItem(o) {
  const group = state.groups.find((g) => g.id === o.group);
  const time = o.local.slice(11, 16);
  const what = group ? groupLabel(group) : subjectName(o.subject || "");
  const item = el("li", { class: `occ occ-${o.status}`, "data-occurrence": o.id, "data-status": o.status },
    el("span", { class: "occ-time" }, el("time", { datetime: o.local }, time)),
    el("span", { class: "occ-what" }, what));
  if (o.tutor && group && o.tutor !== group.tutor) {
    item.append(el("span", { class: "occ-sub" }, t("Substitute: {tutor}", { tutor: tutorName(o.tutor) })));
  }
  if (o.status === "cancelled") {
    item.append(el("span", { class: "occ-status" }, o.cancel_reason
      ? t("Cancelled: {reason}", { reason: o.cancel_reason }) : t("Cancelled")));
  } else if (o.status === "scheduled") {
    const button = el("button", { type: "button", class: "secondary small", "aria-label": t("Cancel the session of {day} at {time}", { day: o.local.slice(0, 10), time }) }, t("Cancel…"));
    button.addEventListener("click", () => openCancel(o, button));
    item.append(button);
  } else {
    item.append(el("span", { class: "occ-status" }, t("Held")));
  }
  if (o.status !== "cancelled") {
    const change = el("button", { type: "button", class: "secondary small", "aria-label": t("Change the session of {day} at {time}", { day: o.local.slice(0, 10), time }) }, t("Change…"));
    change.addEventListener("click", () => openChange(o, change));
    item.append(change);
  }
  return item;
}

async function loadWeek() {
  say($("week-error"), "");
  if (!$("week-date").value) $("week-date").value = cfg.today;
  try {
    state.week = await call(`${cfg.api}/schools/${encodeURIComponent(state.school)}/week?date=${$("week-date").value}`);
  } catch (error) {
    say($("week-error"), problemText(error));
    return;
  }
  renderWeek();
}

// Cancelled sessions leave the week (as they leave everyone's calendar); the box shows them.
function renderWeek() {
  if (!state.week) return;
  const withCancelled = $("week-cancelled").checked;
  const shown = (state.week.occurrences || []).filter((o) => o.status !== "cancelled" || withCancelled);
  const days = WEEKDAYS.map((name, i) => {
    const date = addDays(state.week.week, i);
    const mine = shown.filter((o) => o.local.slice(0, 10) === date);
    return el("section", { class: "week-day", "aria-labelledby": `day-${date}`, "data-date": date },
      el("h3", { id: `day-${date}` }, `${name()} ${date}`),
      mine.length ? el("ul", { class: "occ-list" }, ...mine.map(occurrenceItem)) : el("p", { class: "empty" }, t("No sessions")));
  });
  $("week").replaceChildren(...days);
  const count = shown.filter((o) => o.status === "scheduled").length;
  $("week-state").textContent = t("Week of {monday} ({zone}): {count} sessions booked.", { monday: state.week.week, zone: state.week.timezone, count: fmtNumber(count) });
}

function openCancel(occurrence, opener) {
  closeChange(false);
  state.cancelling = { occurrence, opener };
  $("cancel-title").textContent = t("Cancel the session of {day} at {time}", { day: occurrence.local.slice(0, 10), time: occurrence.local.slice(11, 16) });
  $("cancel-reason").value = "";
  say($("cancel-error"), "");
  $("cancel-confirm").hidden = true;
  $("cancel-form").hidden = false;
  $("cancel-reason").focus();
}

function closeCancel() {
  const opener = state.cancelling && state.cancelling.opener;
  state.cancelling = null;
  $("cancel-form").hidden = true;
  $("cancel-confirm").hidden = true;
  if (opener && opener.isConnected) opener.focus();
  else $("week-title").focus();
}

const cancelScope = () => $("cancel-form").querySelector("input[name=scope]:checked").value;

async function cancel() {
  const { occurrence } = state.cancelling;
  await call(`${cfg.api}/occurrences/${encodeURIComponent(occurrence.id)}/cancel`, {
    method: "POST", body: { scope: cancelScope(), reason: $("cancel-reason").value.trim() },
  });
  await loadWeek();
  return "done";
}

// Cancelling the rest of a series asks first (an in-page confirmation, not a dialog).
async function confirmedCancel(event) {
  event.preventDefault();
  if (!$("cancel-form").reportValidity()) return;
  if (cancelScope() === "rest" && $("cancel-confirm").hidden) {
    $("cancel-confirm").hidden = false;
    $("cancel-confirm-text").focus();
    return;
  }
  if (await submitting($("cancel-form"), $("cancel-error"), null, cancel)) closeCancel();
}

// -- changing one session: move, substitute, attendance, the series' history ---------------------
const STATUS_LABELS = { present: () => t("Present"), late: () => t("Late"), absent: () => t("Absent") };
const studentName = (id) => {
  const found = ((state.roster && state.roster.students) || []).find((s) => s.id === id);
  return found ? `${found.given_name} ${found.family_initial ? `${found.family_initial}.` : ""}`.trim() : id;
};

function openChange(occurrence, opener) {
  if (state.cancelling) closeCancel();
  state.changing = { occurrence, opener };
  const day = occurrence.local.slice(0, 10);
  const time = occurrence.local.slice(11, 16);
  $("change-title").textContent = t("Change the session of {day} at {time}", { day, time });
  $("move-day").value = day;
  $("move-start").value = time;
  for (const id of ["move-reason", "sub-reason"]) $(id).value = "";
  for (const id of ["move-error", "move-done", "sub-error", "sub-done", "marks-error", "marks-done", "history-error"]) say($(id), "");
  const group = state.groups.find((g) => g.id === occurrence.group);
  const tutors = ((state.roster && state.roster.tutors) || []).filter((x) => x.id !== occurrence.tutor);
  fillSelect($("sub-tutor"), tutors.map((x) => ({ value: x.id, label: x.display_name || x.id })));
  const students = occurrence.students || (group ? group.students : []);
  $("marks").replaceChildren(...students.map((student) => el("div", { class: "field" },
    el("label", { for: `mark-${student}` }, studentName(student)),
    el("select", { id: `mark-${student}`, "data-student": student },
      el("option", { value: "" }, t("Not marked here")),
      ...Object.entries(STATUS_LABELS).map(([value, label]) => el("option", { value }, label()))))));
  $("history").hidden = true;
  $("history").replaceChildren();
  $("change-panel").hidden = false;
  $("change-title").focus();
}

function closeChange(refocus = true) {
  const opener = state.changing && state.changing.opener;
  state.changing = null;
  $("change-panel").hidden = true;
  if (!refocus) return;
  if (opener && opener.isConnected) opener.focus();
  else $("week-title").focus();
}

const occurrenceUrl = (action) => `${cfg.api}/occurrences/${encodeURIComponent(state.changing.occurrence.id)}/${action}`;

async function move() {
  const scope = $("move-form").querySelector("input[name=move-scope]:checked").value;
  const body = { scope, day: $("move-day").value, start: $("move-start").value, reason: $("move-reason").value.trim() };
  const done = await call(occurrenceUrl("reschedule"), { method: "POST", body });
  $("week-date").value = $("move-day").value;
  await loadWeek();
  if (scope === "one") return t("Moved to {day} at {time}.", { day: body.day, time: body.start });
  return t("Moved: {cancelled} sessions replaced by {count} at the new time.", {
    cancelled: fmtNumber(done.cancelled.length), count: fmtNumber(done.occurrences) });
}

async function substitute() {
  const tutor = $("sub-tutor").value;
  await call(occurrenceUrl("substitute"), { method: "POST", body: { tutor, reason: $("sub-reason").value.trim() } });
  await loadWeek();
  return t("Substitute recorded: {tutor}.", { tutor: tutorName(tutor) });
}

async function saveMarks() {
  const marks = {};
  for (const select of $("marks").querySelectorAll("select")) if (select.value) marks[select.dataset.student] = select.value;
  if (!Object.keys(marks).length) throw new Problem(400, { code: "invalid_payload", title: t("Choose a mark for at least one student.") });
  const saved = await call(occurrenceUrl("attendance"), { method: "POST", body: { marks } });
  return t("Attendance saved: {marks}.", { marks: Object.entries(saved).map(([student, status]) =>
    `${studentName(student)}: ${STATUS_LABELS[status] ? STATUS_LABELS[status]() : status}`).join(", ") });
}

const ACTIONS = {
  book: () => t("Booked"), book_replacing: () => t("Booked to replace a series"), cancel_one: () => t("Cancelled one session"),
  cancel_rest: () => t("Cancelled the rest of the series"), reschedule_one: () => t("Moved one session"),
  reschedule_rest: () => t("Moved the rest of the series"), substitute: () => t("Substitute tutor"),
  calendar_cancel: () => t("Cancelled by the school calendar"), add_student: () => t("Student added"),
  remove_student: () => t("Student removed"), continues: () => t("Continues a series"), withdraw: () => t("Enrolment withdrawn"),
};

// A history row's details (JSON written by broker/scheduler/booking.py's change_row), each
// field named in the page's language; instants in the series' zone, people by name.
const DETAILS = {
  occurrences: () => t("Sessions"), cancelled: () => t("Sessions cancelled"), rrule: () => t("Repeats"),
  start: () => t("Start"), day: () => t("Day"), skipped_for_holidays: () => t("Skipped for holidays"),
  old: () => t("Was"), new: () => t("Now"), old_tutor: () => t("Tutor before"), tutor: () => t("Tutor"),
  replaced_by: () => t("Replaced by series"), continued_as: () => t("Continued as series"), series: () => t("Series"),
  student: () => t("Student"), removed: () => t("Student"), from_occurrence: () => t("From session"),
  cancel_reason: () => t("Cancelled because"),
};

function detailText(detail, when) {
  let fields = {};
  try { fields = JSON.parse(detail || "{}"); } catch (_) { return detail || ""; }
  const shown = (key, value) => {
    if (key === "old" || key === "new") return when.format(new Date(value));
    if (key === "tutor" || key === "old_tutor") return tutorName(value);
    if (key === "student" || key === "removed") return studentName(value);
    return Array.isArray(value) ? value.join(", ") : String(value);
  };
  const order = Object.keys(DETAILS);
  const rank = (key) => (order.includes(key) ? order.indexOf(key) : order.length);
  return Object.entries(fields).filter(([, value]) => !(Array.isArray(value) && !value.length) && value !== null && value !== "")
    .sort(([a], [b]) => rank(a) - rank(b))
    .map(([key, value]) => `${DETAILS[key] ? DETAILS[key]() : key}: ${shown(key, value)}`).join("; ");
}

async function showHistory() {
  say($("history-error"), "");
  const { occurrence } = state.changing;
  let data;
  try {
    data = await call(`${cfg.api}/series/${encodeURIComponent(occurrence.series)}`);
  } catch (error) {
    say($("history-error"), problemText(error));
    return;
  }
  const when = new Intl.DateTimeFormat(getLocale(), { dateStyle: "medium", timeStyle: "short", timeZone: data.series.timezone });
  const rows = data.history.map((h) => el("tr", { "data-action": h.action },
    el("td", {}, el("time", { datetime: h.at }, when.format(new Date(h.at)))),
    el("th", { scope: "row" }, ACTIONS[h.action] ? ACTIONS[h.action]() : h.action),
    el("td", {}, h.actor), el("td", {}, h.reason || "–"), el("td", {}, detailText(h.detail, when))));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 5, class: "empty" }, t("No changes yet."))));
  $("history").replaceChildren(el("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-labelledby": "history-title" },
    el("table", {},
      el("caption", { class: "visually-hidden" }, t("Change history of the series")),
      el("thead", {}, el("tr", {}, ...[t("When ({zone})", { zone: data.series.timezone }), t("Change"), t("By"), t("Reason"), t("Details")]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows))));
  $("history").hidden = false;
}

// -- importing a school calendar ---------------------------------------------------------------
async function importCalendar() {
  const file = $("import-file").files[0];
  if (!file) throw new Problem(400, { code: "invalid_payload", title: t("Choose a calendar file first.") });
  const format = /\.ics$/i.test(file.name) || file.type === "text/calendar" ? "ics" : "csv";
  let done;
  try {
    done = await call(`${cfg.api}/schools/${encodeURIComponent(state.school)}/calendar/import?format=${format}`, { method: "POST", body: file });
  } catch (error) {
    if (!(error instanceof Problem) || !error.body.line) throw error;
    // Name the refused line and quote it from the file, so it can be found and fixed.
    const lines = (await file.text()).split(/\r\n|\n|\r/);
    throw new Problem(error.status, { ...error.body, title: t("Line {line} ({reason}): {message}. The line reads: {text}", {
      line: error.body.line, reason: error.body.reason || error.code, message: error.message,
      text: lines[error.body.line - 1] === undefined ? "–" : `“${lines[error.body.line - 1]}”` }) });
  }
  $("import-file").value = "";
  await loadWeek();
  return t("Imported: {days} days. Sessions cancelled: {count}.", { days: fmtNumber(done.days), count: fmtNumber(done.cancelled_occurrences.length) });
}

// -- wiring ------------------------------------------------------------------------------
function wire() {
  const on = (id, work, errorId, doneId) => $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    submitting($(id), $(errorId), doneId ? $(doneId) : null, work);
  });
  on("pick-form", pick, "pick-error");
  on("enrol-form", enrol, "enrol-error", "enrol-done");
  on("group-form", formGroup, "group-error", "group-done");
  on("book-form", book, "book-error", "book-done");
  on("calendar-form", addDay, "calendar-error", "calendar-done");
  on("links-form", makeLinks, "links-error", "links-done");
  on("week-form", loadWeek, "week-error");
  on("import-form", importCalendar, "import-error", "import-done");
  on("move-form", move, "move-error", "move-done");
  on("sub-form", substitute, "sub-error", "sub-done");
  on("marks-form", saveMarks, "marks-error", "marks-done");
  $("history-show").addEventListener("click", showHistory);
  $("change-close").addEventListener("click", () => closeChange());
  $("change-panel").addEventListener("keydown", (event) => { if (event.key === "Escape") closeChange(); });
  $("cancel-form").addEventListener("submit", confirmedCancel);
  $("cancel-confirm-yes").addEventListener("click", confirmedCancel);
  $("cancel-confirm-no").addEventListener("click", () => { $("cancel-confirm").hidden = true; $("cancel-reason").focus(); });
  $("cancel-form").addEventListener("change", () => { $("cancel-confirm").hidden = true; });
  $("cancel-keep").addEventListener("click", closeCancel);
  $("week-cancelled").addEventListener("change", renderWeek);
  $("cancel-form").addEventListener("keydown", (event) => { if (event.key === "Escape") closeCancel(); });
  $("week-prev").addEventListener("click", () => { $("week-date").value = addDays($("week-date").value || cfg.today, -7); loadWeek(); });
  $("week-next").addEventListener("click", () => { $("week-date").value = addDays($("week-date").value || cfg.today, 7); loadWeek(); });
}

async function start(token, claims) {
  state.token = token;
  if (claims.scope === "school" && claims.scope_id) {
    $("pick-school").value = claims.scope_id;
    $("pick-school").readOnly = true;
  }
  // The desk shows once the offers are in: "Show students" clicked before then would find
  // no offer to pick (seen as a browser test that clicked at once, on a loaded machine).
  try {
    await loadOffers();
  } catch (error) {
    say($("pick-error"), problemText(error));
  }
  $("desk").hidden = false;
}

wire();
staffSignIn(tokens, start);
