// A school's tutoring designee (or district staff): pick a programme offer, enrol the
// school's students, form a group, book a weekly series, mark the school calendar, and
// see and change the week. Calls /api/scheduler/* (docs/scheduler.md) and the roster read
// /api/scheduling/schools/{school}/roster; every refusal shows the server's message and code.
import { t, loadCatalog, languageName, fmtNumber } from "./i18n.js";
import { $, el, say, config, fillSelect, tokenSource } from "./common.js";
import { staffSignIn } from "./staff-signin.js";
import { api, problemText, Problem, submitting } from "./api.js";

const cfg = config();
await loadCatalog(cfg.i18n_url, cfg.locale);
const tokens = tokenSource(cfg, "hh_staff_token");
const subjectLabels = Object.fromEntries((cfg.subjects || []).map((s) => [s.id, s.label]));
const subjectName = (id) => subjectLabels[id] || id;
const state = { token: null, school: "", offer: null, offers: [], roster: null, groups: [], week: null, cancelling: null };

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
    programme, vendor: o.vendor, subjects: o.subjects.map(subjectName).join(", "),
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
  fillSelect($("group-tutor"), state.roster.tutors.map((x) => ({
    value: x.id,
    label: t("{name} ({languages}; {accommodations})", {
      name: x.display_name || x.id,
      languages: x.languages.map(languageName).join(", "),
      accommodations: accommodationNames(x.accommodations) || t("no accommodations"),
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
  state.cancelling = { occurrence, opener };
  $("cancel-title").textContent = t("Cancel the session of {day} at {time}", { day: occurrence.local.slice(0, 10), time: occurrence.local.slice(11, 16) });
  $("cancel-reason").value = "";
  say($("cancel-error"), "");
  $("cancel-form").hidden = false;
  $("cancel-reason").focus();
}

function closeCancel() {
  const opener = state.cancelling && state.cancelling.opener;
  state.cancelling = null;
  $("cancel-form").hidden = true;
  if (opener && opener.isConnected) opener.focus();
  else $("week-title").focus();
}

async function cancel() {
  const { occurrence } = state.cancelling;
  const scope = $("cancel-form").querySelector("input[name=scope]:checked").value;
  await call(`${cfg.api}/occurrences/${encodeURIComponent(occurrence.id)}/cancel`, {
    method: "POST", body: { scope, reason: $("cancel-reason").value.trim() },
  });
  await loadWeek();
  return "done";
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
  $("cancel-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await submitting($("cancel-form"), $("cancel-error"), null, cancel)) closeCancel();
  });
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
  $("desk").hidden = false;
  try {
    await loadOffers();
  } catch (error) {
    say($("pick-error"), problemText(error));
  }
}

wire();
staffSignIn(tokens, start);
