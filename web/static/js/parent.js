// The parent's link page: the child's open weekly times in the link's language, book one
// (and optionally more days at the same time with the same tutor) through
// POST /api/parent/{token}/book. The link is checked by the server before this page shows.
import { t, loadCatalog, getLocale } from "./i18n.js";
import { $, el, say, config } from "./common.js";
import { api, Problem } from "./api.js";

const cfg = config();
await loadCatalog(cfg.i18n_url, cfg.locale);
const view = cfg.view || { offers: [], slots: [] };
const subjectLabels = Object.fromEntries((cfg.subjects || []).map((s) => [s.id, s.label]));
// The booked programmes teach math and ELA: named for parents in their language.
const SUBJECTS = { math: () => t("Math"), ela: () => t("Reading and writing (English language arts)") };
const subjectName = (id) => (SUBJECTS[id] ? SUBJECTS[id]() : subjectLabels[id] || id);
const DAYS = { mo: () => t("Mondays"), tu: () => t("Tuesdays"), we: () => t("Wednesdays"),
  th: () => t("Thursdays"), fr: () => t("Fridays"), sa: () => t("Saturdays"), su: () => t("Sundays") };
const ORDER = ["mo", "tu", "we", "th", "fr", "sa", "su"];
const dayKey = (weekday) => String(weekday).slice(0, 2).toLowerCase();
const dayName = (weekday) => (DAYS[dayKey(weekday)] || (() => weekday))();

// "Tuesday" / "martes": the locale's own weekday name (1 January 2024 was a Monday).
function weekdayName(weekday) {
  const index = Math.max(0, ORDER.indexOf(dayKey(weekday)));
  try {
    return new Intl.DateTimeFormat(getLocale(), { weekday: "long", timeZone: "UTC" }).format(new Date(Date.UTC(2024, 0, 1 + index)));
  } catch (_) {
    return weekday;
  }
}

function listOf(items) {
  try { return new Intl.ListFormat(getLocale(), { type: "conjunction" }).format(items); } catch (_) { return items.join(", "); }
}

function clock(hhmm) {
  const [h, m] = hhmm.split(":").map(Number);
  try {
    return new Intl.DateTimeFormat(getLocale(), { hour: "numeric", minute: "2-digit", timeZone: "UTC" })
      .format(new Date(Date.UTC(2000, 0, 1, h, m)));
  } catch (_) {
    return hhmm;
  }
}

function longDate(iso) {
  const [y, m, d] = iso.split("-").map(Number);
  try {
    return new Intl.DateTimeFormat(getLocale(), { dateStyle: "long", timeZone: "UTC" }).format(new Date(Date.UTC(y, m - 1, d)));
  } catch (_) {
    return iso;
  }
}

// "Pacific Time" / "hora del Pacífico" rather than the zone's id, where the browser knows it.
function zoneName(zone) {
  try {
    const parts = new Intl.DateTimeFormat(getLocale(), { timeZone: zone, timeZoneName: "longGeneric" }).formatToParts(new Date());
    const found = parts.find((p) => p.type === "timeZoneName");
    return found ? found.value : zone;
  } catch (_) {
    return zone;
  }
}

const slotKey = (s) => `${s.offer}|${s.tutor}|${s.weekday}|${s.start}`;

function slotText(s) {
  return t("{days} at {time} with {tutor}, starting {date}", {
    days: dayName(s.weekday), time: clock(s.start), tutor: s.tutor_name || s.tutor, date: longDate(s.first_date),
  });
}

function radio(name, value, label, checked) {
  const id = `${name}-${value.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  return el("div", { class: "choice-row" },
    el("input", { type: "radio", name, value, id, checked: checked || null, required: true }),
    el("label", { for: id }, label));
}

function render() {
  const subjects = [...new Set(view.offers.flatMap((o) => o.subjects))];
  $("subjects").append(...subjects.map((s, i) => radio("subject", s, subjectName(s), i === 0)));
  const slots = [...view.slots].sort((a, b) => ORDER.indexOf(dayKey(a.weekday)) - ORDER.indexOf(dayKey(b.weekday)) || a.start.localeCompare(b.start));
  $("slots").append(...slots.map((s) => radio("slot", slotKey(s), slotText(s), false)));
  const zones = [...new Set(slots.map((s) => s.timezone))];
  const minutes = [...new Set(view.offers.map((o) => o.session_minutes))];
  say($("book-help"), t("Each session lasts {minutes} minutes. Times are in {zone}.", {
    minutes: minutes.join(", "), zone: zones.map(zoneName).join(", ") || "—",
  }));
  if (!slots.length) {
    $("no-slots").hidden = false;
    $("book-button").disabled = true;
  }
}

function chosen() {
  const picked = document.querySelector("input[name=slot]:checked");
  return picked ? view.slots.find((s) => slotKey(s) === picked.value) : null;
}

function showAlso() {
  const slot = chosen();
  const box = $("also");
  box.querySelectorAll(".choice-row").forEach((n) => n.remove());
  if (!slot) { box.hidden = true; return; }
  const more = view.slots.filter((s) => s.offer === slot.offer && s.tutor === slot.tutor && s.start === slot.start && s.weekday !== slot.weekday);
  box.hidden = !more.length;
  box.append(...more.map((s) => {
    const id = `also-${dayKey(s.weekday)}`;
    return el("div", { class: "choice-row" },
      el("input", { type: "checkbox", name: "also", value: s.weekday, id }),
      el("label", { for: id }, dayName(s.weekday)));
  }));
}

async function book(event) {
  event.preventDefault();
  say($("book-error"), "");
  const slot = chosen();
  const subject = document.querySelector("input[name=subject]:checked");
  if (!slot || !subject) { say($("book-error"), t("Please choose a subject and a time.")); return; }
  const weekdays = [slot.weekday, ...Array.from(document.querySelectorAll("input[name=also]:checked")).map((b) => b.value)];
  $("book-button").disabled = true;
  try {
    const booked = await api(cfg.book_url, {
      method: "POST",
      body: { offer: slot.offer, tutor: slot.tutor, start: slot.start, weekdays, subject: subject.value },
    });
    $("book-form").hidden = true;
    const days = listOf(weekdays.sort((a, b) => ORDER.indexOf(dayKey(a)) - ORDER.indexOf(dayKey(b))).map(weekdayName));
    $("booked").replaceChildren(
      el("h2", { tabindex: -1, id: "booked-title" }, t("Your sessions are booked")),
      el("p", {}, t("Every week on {days} at {time} with {tutor}: {count} sessions, the first on {date}.", {
        days, time: clock(slot.start), tutor: slot.tutor_name || slot.tutor, count: booked.occurrences,
        date: longDate(slot.first_date),
      })),
      el("p", {}, t("You will get a reminder before each session. This link cannot be used again.")));
    $("booked").hidden = false;
    $("booked-title").focus();
  } catch (error) {
    $("book-button").disabled = false;
    const code = error instanceof Problem ? error.code : "";
    if (code === "link_expired" || code === "link_invalid") say($("book-error"), t("This link can no longer be used. Ask your child's school for a new link."));
    else if (code.startsWith("overlap")) say($("book-error"), t("That time was just taken. Please choose another time."));
    else say($("book-error"), t("The sessions could not be booked ({code}). Please choose another time or try again.", { code: code || "error" }));
  }
}

render();
$("slots").addEventListener("change", showAlso);
$("book-form").addEventListener("submit", book);
