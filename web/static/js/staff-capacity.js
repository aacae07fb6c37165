// The staff dashboard's "Staffing" section (issue 15): for the history's chosen days and one
// queue, a week heat table (half-hours 00:00-23:30 down, Monday to Sunday across, the
// district's wall clock) of scheduled against needed tutors from GET /api/capacity/advice,
// gaps marked by colour AND a text mark (−2 short, +1 spare) with a striped pattern; a
// what-if form (POST /api/capacity/what-if) giving the expected service level, wait and
// cost in tutor-hours; and the coverage CSV (GET /api/capacity/coverage?format=csv).
// Accounts the API refuses (school staff, teachers: 403) never see the section.
import { t, fmtNumber, fmtDuration } from "./i18n.js";
import { $, el, say } from "./common.js";
import { kpi, weekdayNames } from "./staff-charts.js";
import { zoneName } from "./staff-words.js";

const API = "/api/capacity";
const COVERAGE_DAYS = 31; // the coverage API's longest period
const clock = (slot) => `${String(Math.floor(slot / 2)).padStart(2, "0")}:${slot % 2 ? "30" : "00"}`;
const percent = (x) => fmtNumber(x, { style: "percent", maximumFractionDigits: 1 });
const hours = (x) => t("{n} tutor-hours", { n: fmtNumber(x, { maximumFractionDigits: 1 }) });
const addDays = (iso, n) => {
  const d = new Date(`${iso}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
};

// opts: token(fresh) -> the bearer token or null (fresh: after a 401), range() -> {from, to}
// (ISO local days, `to` exclusive), queueName("vendor:language") -> words.
export function staffCapacity(opts) {
  const state = { report: null, range: null };

  async function send(url, init = {}) {
    const go = (token) => fetch(url, {
      credentials: "same-origin", ...init,
      headers: { Accept: "application/json", ...(init.headers || {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    });
    const first = await go(await opts.token(false));
    return first.status === 401 ? go(await opts.token(true)) : first;
  }

  function selected() {
    const key = $("cap-queue").value;
    return state.report && state.report.queues.find((q) => `${q.vendor}:${q.language}` === key);
  }

  function problemText(status) {
    if (status === 401) return t("Your sign-in has expired. Please sign in again.");
    if (status === 400) return t("Check the days and the what-if figures: one of them is out of range.");
    return t("The staffing figures could not be loaded. Try again later.");
  }

  // One cell: "scheduled/needed", then the gap as text; class for the colour and stripes.
  function cell(s) {
    const needed = s.capped ? `≥${s.needed.tutors}` : s.needed.tutors; // beyond the search's bound
    if (!s.scheduled) return el("td", { class: needed ? "cap-need" : null }, needed ? `–/${needed}` : "");
    const gap = s.scheduled.tutors - s.needed.tutors;
    const text = `${s.scheduled.tutors}/${needed}`;
    if (gap < 0) return el("td", { class: "cap-short" }, text, " ", el("strong", {}, `−${-gap}`));
    if (gap > 0) return el("td", { class: "cap-spare" }, text, " ", el("span", {}, `+${gap}`));
    return el("td", {}, needed ? text : "");
  }

  function heat(queue) {
    const name = opts.queueName(`${queue.vendor}:${queue.language}`);
    const caption = t("Scheduled and needed tutors per half-hour, {queue}", { queue: name });
    const days = weekdayNames();
    const longDays = weekdayNames("long");
    const rows = Array.from({ length: 48 }, (_, slot) => el("tr", {},
      el("th", { scope: "row" }, clock(slot)),
      ...days.map((_, d) => cell(queue.slots[d * 48 + slot]))));
    return el("div", { class: "table-wrap cap-wrap", tabindex: 0, role: "region", "aria-label": caption },
      el("table", { class: "cap-heat" }, el("caption", { class: "visually-hidden" }, caption),
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("Time")),
          ...days.map((day, d) => el("th", { scope: "col" }, el("abbr", { title: longDays[d] }, day))))),
        el("tbody", {}, ...rows)));
  }

  function coverageLink(queue) {
    const { from, to } = state.range;
    const start = from && to && addDays(to, -COVERAGE_DAYS) > from ? addDays(to, -COVERAGE_DAYS) : from;
    const params = new URLSearchParams({ from: start, to, vendor: queue.vendor, language: queue.language, format: "csv" });
    const href = `${API}/coverage?${params}`;
    const link = el("a", { href, download: "coverage.csv" },
      t("Download coverage CSV ({first} to {last})", { first: start, last: addDays(to, -1) }));
    link.addEventListener("click", async (event) => {
      if (!(await opts.token(false))) return; // the sign-in cookie: a plain download
      event.preventDefault();
      const response = await send(href, { headers: { Accept: "text/csv" } });
      if (!response.ok) { say($("cap-state"), problemText(response.status)); return; }
      const blobUrl = URL.createObjectURL(await response.blob());
      const save = el("a", { href: blobUrl, download: "coverage.csv" });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(blobUrl), 10000);
    });
    return link;
  }

  function show() {
    const queue = selected();
    $("what-if-result").replaceChildren();
    if (!queue) { $("cap-body").hidden = true; return; }
    $("cap-body").hidden = false;
    const zone = zoneName(state.report.timezone);
    const target = state.report.target;
    say($("cap-words"), queue.published
      ? t("Times in {zone}. Target: {pct} of students accepted within {wait}. The plan schedules {scheduled}; the advice needs {needed}.", {
        zone, pct: percent(target.fraction), wait: fmtDuration(target.wait_s),
        scheduled: hours(queue.scheduled_tutor_hours), needed: hours(queue.needed_tutor_hours) })
      : t("Times in {zone}. Target: {pct} of students accepted within {wait}. {vendor} has published no plan for this queue; the advice needs {needed}.", {
        zone, pct: percent(target.fraction), wait: fmtDuration(target.wait_s),
        vendor: opts.queueName(`${queue.vendor}:${queue.language}`), needed: hours(queue.needed_tutor_hours) }));
    $("cap-heat").replaceChildren(heat(queue));
    $("cap-csv").replaceChildren(coverageLink(queue));
  }

  async function load() {
    const range = opts.range();
    state.range = range;
    const params = new URLSearchParams();
    if (range.from && range.to) { params.set("from", range.from); params.set("to", range.to); }
    let response;
    try {
      response = await send(`${API}/advice?${params}`);
    } catch (_) {
      response = { ok: false, status: 0 };
    }
    if (response.status === 403 || response.status === 404) { $("staffing").hidden = true; return; }
    $("staffing").hidden = false;
    if (!response.ok) { say($("cap-state"), problemText(response.status)); $("cap-body").hidden = true; return; }
    say($("cap-state"), "");
    state.report = await response.json();
    $("wi-target").value = String(Math.round(state.report.target.fraction * 100)); // the district's
    $("wi-wait").value = String(state.report.target.wait_s);
    const before = $("cap-queue").value;
    $("cap-queue").replaceChildren(...state.report.queues.map((q) => {
      const key = `${q.vendor}:${q.language}`;
      return el("option", { value: key }, opts.queueName(key));
    }));
    const busiest = [...state.report.queues].sort((a, b) => b.needed_tutor_hours - a.needed_tutor_hours)[0];
    if (state.report.queues.some((q) => `${q.vendor}:${q.language}` === before)) $("cap-queue").value = before;
    else if (busiest) $("cap-queue").value = `${busiest.vendor}:${busiest.language}`;
    show();
  }

  async function whatIf(event) {
    event.preventDefault();
    const queue = selected();
    if (!queue) return;
    const form = new FormData($("what-if"));
    const delta = Number(form.get("delta") || 0);
    const change = { vendor: queue.vendor, language: queue.language, delta };
    if (form.get("day") !== "") change.weekday = Number(form.get("day"));
    if (form.get("time") !== "") change.slot = Number(form.get("time"));
    const body = {
      ...state.range.from && state.range.to ? { from: state.range.from, to: state.range.to } : {},
      vendor: queue.vendor, language: queue.language,
      target: Number(form.get("target")) / 100, target_wait_s: Number(form.get("wait")),
      changes: delta ? [change] : [],
    };
    const response = await send(`${API}/what-if`, {
      method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
    }).catch(() => ({ ok: false, status: 0 }));
    if (!response.ok) { say($("cap-state"), problemText(response.status)); return; }
    say($("cap-state"), "");
    const answer = await response.json();
    const mine = answer.queues[0];
    $("what-if-result").replaceChildren(
      kpi(t("Expected service level"), percent(mine.service_level)),
      kpi(t("Average wait"), mine.average_wait_s === null ? t("No limit: overloaded") : fmtDuration(mine.average_wait_s)),
      kpi(t("Students giving up"), percent(mine.abandonment)),
      kpi(t("Cost per week"), hours(mine.tutor_hours)),
      kpi(t("The advice needs"), hours(mine.needed_tutor_hours)));
  }

  // The form's choices: every day or one, every half-hour or one.
  $("wi-day").replaceChildren(el("option", { value: "" }, t("Every day")),
    ...weekdayNames("long").map((name, d) => el("option", { value: String(d) }, name)));
  $("wi-time").replaceChildren(el("option", { value: "" }, t("Every half-hour")),
    ...Array.from({ length: 48 }, (_, slot) => el("option", { value: String(slot) }, clock(slot))));
  $("cap-queue").addEventListener("change", show);
  $("what-if").addEventListener("submit", whatIf);
  return { load };
}
