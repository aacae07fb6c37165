// The staff dashboard's "Staffing" section (issue 15): one local week of one queue from
// GET /api/capacity/coverage, as a heat table (half-hours 00:00-23:30 down, the week's
// seven dated days across, the district's wall clock). Each cell is one local half-hour:
// tutors scheduled (the vendor's plan with its dated exceptions) against tutors needed for
// the target from that half-hour's requests. A gap is marked by colour AND by text (−2 on a
// striped cell: two short; +1: one spare; ▾: fewer tutors observed than scheduled),
// and every figure of the cell (scheduled, observed, needed, requests, gave up, p90 wait,
// service level, unmet) is in its aria-label/title and in the detail line that follows
// the keyboard (one Tab stop, then the arrow keys). Beside the days: per half-hour and per
// day, the requests nobody could serve (coverage's `unmet`, district staff only) and the
// longest p90 wait; per day, those who gave up.
// The what-if (POST /api/capacity/what-if over the same week's demand) starts from the
// week's own schedule (exceptions included), applies the change and redraws the table:
// each cell the what-if's tutors against the tutors needed at the what-if's target, with
// its expected service level; "Back to the plan" redraws the published week.
// Accounts the API refuses (school staff, teachers: 403) never see the section.
import { t, fmtNumber, fmtDuration, getLocale } from "./i18n.js";
import { $, el, say } from "./common.js";
import { kpi, weekdayNames } from "./staff-charts.js";
import { zoneName, utcDay } from "./staff-words.js";

const API = "/api/capacity";
const SLOTS = 48; // half-hours in a day
const DAYS = 7;
const clock = (slot) => `${String(Math.floor(slot / 2)).padStart(2, "0")}:${slot % 2 ? "30" : "00"}`;
const percent = (x) => fmtNumber(x, { style: "percent", maximumFractionDigits: 1 });
const hours = (x) => t("{n} tutor-hours", { n: fmtNumber(x, { maximumFractionDigits: 1 }) });
const signedHours = (x) => t("{n} tutor-hours", {
  n: fmtNumber(x, { maximumFractionDigits: 1, signDisplay: "exceptZero" }) });
const addDays = (iso, n) => {
  const d = utcDay(iso);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
};
const mondayOf = (iso) => addDays(iso, -((utcDay(iso).getUTCDay() + 6) % 7));
const queueKey = (q) => `${q.vendor}:${q.language}`;

// "2024-11-03T01:00:00-08:00" -> its local day, weekday (0 = Monday), half-hour of the day
// and UTC offset, read from the text: the browser's own time zone plays no part.
function localParts(iso) {
  const day = iso.slice(0, 10);
  return {
    day, weekday: (utcDay(day).getUTCDay() + 6) % 7,
    slot: Number(iso.slice(11, 13)) * 2 + (Number(iso.slice(14, 16)) >= 30 ? 1 : 0),
    offset: iso.slice(19),
  };
}

// The week as grid[slot][weekday] = the coverage half-hours at that local time: one, none
// (the spring-forward gap) or two (the repeated fall-back hour), each with its unmet count.
function gridOf(queue, unmet) {
  const grid = Array.from({ length: SLOTS }, () => Array.from({ length: DAYS }, () => []));
  queue.slots.forEach((s, i) => {
    const at = localParts(s.local);
    grid[at.slot][at.weekday].push({ ...s, at, unmet: unmet ? unmet.half_hours[i] : null });
  });
  return grid;
}

// opts: token(fresh) -> the bearer token or null (fresh: after a 401), queueName("vendor:language")
// -> words. (opts.range, the history's days, is not used: the table is one chosen week.)
export function staffCapacity(opts) {
  // report: coverage of the shown queue and week at the district's target; whatIf: null or
  // {answer (the what-if's queue), report (coverage at the what-if's target), needed (a
  // half-hour's UTC start -> needed at that target), byPattern (weekday*48+slot -> the
  // what-if's tutors, service level and wait)}; loads: a ticket, so late answers are dropped.
  const state = { queues: [], report: null, whatIf: null, week: null, focus: null, loads: 0 };

  async function send(url, init = {}) {
    const go = (token) => fetch(url, {
      credentials: "same-origin", ...init,
      headers: { Accept: "application/json", ...(init.headers || {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    });
    const first = await go(await opts.token(false));
    return first.status === 401 ? go(await opts.token(true)) : first;
  }
  const safeSend = (url, init) => send(url, init).catch(() => ({ ok: false, status: 0 }));

  function problemText(status) {
    if (status === 401) return t("Your sign-in has expired. Please sign in again.");
    if (status === 400) return t("Check the week and the what-if figures: one of them is out of range.");
    return t("The staffing figures could not be loaded. Try again later.");
  }

  const selected = () => state.queues.find((q) => queueKey(q) === $("cap-queue").value);
  const shownQueue = () => state.report && state.report.queues[0];

  function coverageUrl(queue, extra = {}) {
    return `${API}/coverage?${new URLSearchParams({ week: state.week, vendor: queue.vendor, language: queue.language, ...extra })}`;
  }

  // -- one cell ---------------------------------------------------------------------------
  // The figures a cell shows: the plan's, or (what-if) the what-if's tutors against the
  // tutors needed at the what-if's target.
  function figures(entry) {
    if (!state.whatIf) {
      const gap = entry.needed === null ? 0 : entry.scheduled - entry.needed;
      return { tutors: entry.scheduled, needed: entry.needed, gap, under: entry.under_delivered, expected: null };
    }
    const needed = state.whatIf.needed.get(entry.start) ?? null;
    const expected = state.whatIf.byPattern.get(entry.at.weekday * SLOTS + entry.at.slot) || null;
    const tutors = expected ? expected.tutors : entry.scheduled;
    return { tutors, needed, gap: needed === null ? 0 : tutors - needed, under: false, expected };
  }

  const weekOf = () => new Intl.DateTimeFormat(getLocale(), {
    day: "numeric", month: "long", year: "numeric", timeZone: "UTC" }).format(utcDay(state.week));
  const longDay = (day) => new Intl.DateTimeFormat(getLocale(), {
    weekday: "long", day: "numeric", month: "long", timeZone: "UTC" }).format(utcDay(day));

  function when(entry, twice) {
    const at = `${longDay(entry.at.day)}, ${clock(entry.at.slot)}`;
    return twice ? t("{when} (UTC{offset})", { when: at, offset: entry.at.offset }) : at;
  }

  // Every figure of one half-hour, in words: the cell's aria-label and title, the detail line.
  function words(entry, twice) {
    const f = figures(entry);
    const needed = f.needed === null ? t("unknown (no chat ended this week)") : fmtNumber(f.needed);
    const parts = [state.whatIf
      ? t("{when}: what-if {tutors} tutors, {needed} needed.", { when: when(entry, twice), tutors: fmtNumber(f.tutors), needed })
      : t("{when}: {scheduled} scheduled, {observed} observed, {needed} needed.", {
        when: when(entry, twice), scheduled: fmtNumber(entry.scheduled), observed: fmtNumber(entry.observed), needed })];
    if (f.gap < 0) parts.push(t("{n} short.", { n: fmtNumber(-f.gap) }));
    if (f.gap > 0) parts.push(t("{n} more than needed.", { n: fmtNumber(f.gap) }));
    if (f.under) parts.push(t("Fewer observed than scheduled."));
    if (f.expected) {
      const overloaded = t("No limit: overloaded"); // not nested in t(): see i18n.js
      parts.push(t("Expected service level {sl}, average wait {wait}.", {
        sl: percent(f.expected.service_level),
        wait: f.expected.average_wait_s === null ? overloaded : fmtDuration(f.expected.average_wait_s) }));
    }
    parts.push(entry.arrivals
      ? t("{arrivals} requests, {accepted} accepted, {gave_up} gave up; p90 wait {p90}; {sl} accepted within {wait}.", {
        arrivals: fmtNumber(entry.arrivals), accepted: fmtNumber(entry.accepted), gave_up: fmtNumber(entry.gave_up),
        p90: fmtDuration(entry.wait_p90_s), sl: entry.service_level === null ? "–" : percent(entry.service_level),
        wait: fmtDuration(state.report.target.wait_s) })
      : t("No requests."));
    if (entry.unmet) parts.push(t("{n} requests nobody could serve (every queue).", { n: fmtNumber(entry.unmet) }));
    return parts.join(" ");
  }

  function cellText(entry) {
    const f = figures(entry);
    const out = [];
    if (!f.tutors && !f.needed && !f.under) return out;
    out.push(`${f.tutors}/${f.needed === null ? "?" : f.needed}`);
    if (f.gap < 0) out.push(" ", el("strong", {}, `−${-f.gap}`));
    if (f.gap > 0) out.push(" ", el("span", {}, `+${f.gap}`));
    if (f.under) out.push(" ", el("span", { class: "cap-under-mark" }, "▾"));
    if (f.expected && f.needed) out.push(el("small", { class: "cap-sl" }, percent(f.expected.service_level)));
    return out;
  }

  function cell(entries, slot, weekday) {
    const attrs = { role: "gridcell", tabindex: -1, "data-slot": slot, "data-day": weekday };
    if (!entries.length) {
      const label = t("{when}: this half-hour did not happen (clock change).", {
        when: `${longDay(addDays(state.week, weekday))}, ${clock(slot)}` });
      return el("td", { ...attrs, class: "cap-none", "aria-label": label, title: label }, "—");
    }
    const all = entries.map(figures);
    const cls = [all.some((f) => f.gap < 0) ? "cap-short" : all.some((f) => f.gap > 0) ? "cap-spare"
      : all.some((f) => f.needed) ? "cap-need" : null, all.some((f) => f.under) ? "cap-under" : null].filter(Boolean);
    const label = entries.map((e) => words(e, entries.length > 1)).join(" ");
    const shown = entries.map(cellText).filter((parts) => parts.length);
    const content = shown.flatMap((parts, i) => (i ? [" · ", ...parts] : parts));
    return el("td", { ...attrs, class: cls.join(" ") || null, "aria-label": label, title: label }, ...content);
  }

  // -- the table --------------------------------------------------------------------------
  const sum = (xs) => xs.reduce((a, b) => a + (b || 0), 0);
  const worst = (xs) => xs.reduce((a, b) => (b === null || b === undefined ? a : Math.max(a ?? 0, b)), null);

  function heat(queue) {
    const grid = gridOf(queue, state.report.unmet);
    const withUnmet = state.report.unmet !== null;
    const name = opts.queueName(queueKey(queue));
    const caption = state.whatIf
      ? t("What-if tutors and needed tutors per half-hour, {queue}, week of {day}", { queue: name, day: weekOf() })
      : t("Scheduled and needed tutors per half-hour, {queue}, week of {day}", { queue: name, day: weekOf() });
    const short = weekdayNames();
    const dayNumber = new Intl.DateTimeFormat(getLocale(), { day: "numeric", timeZone: "UTC" });
    const days = Array.from({ length: DAYS }, (_, d) => addDays(state.week, d));
    const column = (d) => grid.flatMap((row) => row[d]);
    // Beside each row (that half-hour over the week) and under each day: unmet and waits.
    const unmetOf = (es) => sum(es.map((e) => e.unmet));
    const p90Of = (es) => worst(es.map((e) => e.wait_p90_s));
    const besideRow = (es) => [
      withUnmet ? el("td", { class: "cap-beside" }, unmetOf(es) ? fmtNumber(unmetOf(es)) : "") : null,
      el("td", { class: "cap-beside" }, p90Of(es) === null ? "" : fmtDuration(p90Of(es))),
    ];
    const rows = grid.map((row, slot) => el("tr", {},
      el("th", { scope: "row" }, clock(slot)),
      ...row.map((entries, d) => cell(entries, slot, d)),
      ...besideRow(row.flat())));
    const every = grid.flat(2);
    const footRow = (label, figure, unmetTotal, p90Total) => el("tr", {},
      el("th", { scope: "row" }, label),
      ...days.map((_, d) => el("td", { class: "cap-beside" }, figure(column(d)))),
      withUnmet ? el("td", { class: "cap-beside" }, unmetTotal) : null,
      el("td", { class: "cap-beside" }, p90Total));
    const foot = [
      withUnmet ? footRow(t("Nobody could serve"), (es) => fmtNumber(unmetOf(es)), fmtNumber(unmetOf(every)), "") : null,
      footRow(t("Gave up"), (es) => fmtNumber(sum(es.map((e) => e.gave_up))), "", ""),
      footRow(t("Longest p90 wait"), (es) => fmtDuration(p90Of(es)), "", fmtDuration(p90Of(every))),
    ];
    const table = el("table", { class: "cap-heat", role: "grid", "aria-readonly": "true" },
      el("caption", { class: "visually-hidden" }, caption),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("Time")),
        ...days.map((day, d) => el("th", { scope: "col" },
          el("abbr", { title: longDay(day) }, `${short[d]} ${dayNumber.format(utcDay(day))}`))),
        withUnmet ? el("th", { scope: "col", class: "cap-beside" }, t("Nobody could serve")) : null,
        el("th", { scope: "col", class: "cap-beside" }, t("Longest p90 wait")))),
      el("tbody", {}, ...rows),
      el("tfoot", {}, ...foot));
    keyboard(table);
    return el("div", { class: "table-wrap cap-wrap", role: "region", "aria-label": caption }, table);
  }

  // One Tab stop in the table (the chosen cell); the arrow keys, Home and End move it, and the
  // detail line below reads the chosen cell's figures.
  function keyboard(table) {
    const at = (slot, day) => table.querySelector(`td[data-slot="${slot}"][data-day="${day}"]`);
    const focus = state.focus || firstGap(table) || { slot: 0, day: 0 };
    const start = at(focus.slot, focus.day);
    start.tabIndex = 0;
    const choose = (td, move) => {
      for (const other of table.querySelectorAll('td[tabindex="0"]')) other.tabIndex = -1;
      td.tabIndex = 0;
      state.focus = { slot: Number(td.dataset.slot), day: Number(td.dataset.day) };
      say($("cap-detail"), td.getAttribute("aria-label"));
      if (move) td.focus();
    };
    table.addEventListener("focusin", (event) => {
      const td = event.target.closest("td[data-slot]");
      if (td) choose(td, false);
    });
    table.addEventListener("click", (event) => {
      const td = event.target.closest("td[data-slot]");
      if (td) choose(td, true);
    });
    table.addEventListener("keydown", (event) => {
      const td = event.target.closest("td[data-slot]");
      if (!td) return;
      let slot = Number(td.dataset.slot);
      let day = Number(td.dataset.day);
      if (event.key === "ArrowDown") slot = Math.min(SLOTS - 1, slot + 1);
      else if (event.key === "ArrowUp") slot = Math.max(0, slot - 1);
      else if (event.key === "ArrowRight") day = Math.min(DAYS - 1, day + 1);
      else if (event.key === "ArrowLeft") day = Math.max(0, day - 1);
      else if (event.key === "Home") day = 0;
      else if (event.key === "End") day = DAYS - 1;
      else if (event.key === "PageDown") slot = Math.min(SLOTS - 1, slot + 8);
      else if (event.key === "PageUp") slot = Math.max(0, slot - 8);
      else return;
      event.preventDefault();
      choose(at(slot, day), true);
    });
  }

  function firstGap(table) {
    const td = table.querySelector("td.cap-short");
    return td ? { slot: Number(td.dataset.slot), day: Number(td.dataset.day) } : null;
  }

  // -- the CSV ----------------------------------------------------------------------------
  function coverageLink(queue) {
    const href = coverageUrl(queue, { format: "csv" });
    const link = el("a", { href, download: "coverage.csv" },
      t("Download coverage CSV (week of {day})", { day: weekOf() }));
    link.addEventListener("click", async (event) => {
      if (!(await opts.token(false))) return; // the sign-in cookie: a plain download
      event.preventDefault();
      const response = await safeSend(href, { headers: { Accept: "text/csv" } });
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

  // -- drawing ----------------------------------------------------------------------------
  function show() {
    const queue = shownQueue();
    if (!queue) { $("cap-body").hidden = true; return; }
    $("cap-body").hidden = false;
    const zone = zoneName(state.report.timezone);
    if (state.whatIf) {
      const target = state.whatIf.report.target;
      say($("cap-words"), t("What-if for the week of {day}, times in {zone}: each cell shows the what-if's tutors against the tutors needed for {pct} accepted within {wait}, and the expected service level.", {
        day: weekOf(), zone, pct: percent(target.fraction), wait: fmtDuration(target.wait_s) }));
    } else {
      const target = state.report.target;
      say($("cap-words"), t("Week of {day}, times in {zone}. The plan schedules {scheduled} this week, dated exceptions included; {short} half-hours are short of the tutors needed for {pct} accepted within {wait}.", {
        day: weekOf(), zone, scheduled: hours(queue.scheduled_tutor_hours), short: fmtNumber(queue.short_half_hours),
        pct: percent(target.fraction), wait: fmtDuration(target.wait_s) }));
    }
    $("cap-heat").replaceChildren(heat(queue));
    say($("cap-detail"), t("Choose a half-hour (Tab into the table, then the arrow keys) to read its figures."));
    $("cap-csv").replaceChildren(coverageLink(queue));
    $("wi-reset").hidden = !state.whatIf;
  }

  function resetForm() {
    const target = state.report ? state.report.target : { fraction: 0.8, wait_s: 60 };
    $("wi-target").value = String(Math.round(target.fraction * 100)); // the district's
    $("wi-wait").value = String(target.wait_s);
    $("wi-delta").value = "0";
    $("wi-day").value = "";
    $("wi-time").value = "";
    $("what-if-result").replaceChildren();
  }

  // The queue's coverage for the chosen week (no week yet: the API's current local week).
  async function loadWeek() {
    const queue = selected();
    if (!queue) { $("cap-body").hidden = true; return; }
    const ticket = ++state.loads;
    const params = { vendor: queue.vendor, language: queue.language };
    if (state.week) params.week = state.week;
    const response = await safeSend(`${API}/coverage?${new URLSearchParams(params)}`);
    if (ticket !== state.loads) return; // a later choice won
    if (!response.ok) { say($("cap-state"), problemText(response.status)); $("cap-body").hidden = true; return; }
    say($("cap-state"), "");
    state.report = await response.json();
    state.week = state.report.queues[0].slots[0].local.slice(0, 10); // the local Monday
    $("cap-week").value = state.week;
    state.whatIf = null;
    state.focus = null;
    resetForm();
    show();
  }

  async function load() {
    const response = await safeSend(`${API}/plans`);
    if (response.status === 403 || response.status === 404) { $("staffing").hidden = true; return; }
    $("staffing").hidden = false;
    if (!response.ok) { say($("cap-state"), problemText(response.status)); $("cap-body").hidden = true; return; }
    state.queues = (await response.json()).plans;
    const before = $("cap-queue").value;
    $("cap-queue").replaceChildren(...state.queues.map((q) => el("option", { value: queueKey(q) }, opts.queueName(queueKey(q)))));
    const first = state.queues.find((q) => q.published) || state.queues[0];
    if (state.queues.some((q) => queueKey(q) === before)) $("cap-queue").value = before;
    else if (first) $("cap-queue").value = queueKey(first);
    await loadWeek();
  }

  // -- the what-if ------------------------------------------------------------------------
  async function whatIf(event) {
    event.preventDefault();
    const queue = shownQueue();
    if (!queue) return;
    const form = new FormData($("what-if"));
    const target = Number(form.get("target")) / 100;
    const waitS = Number(form.get("wait"));
    // The week's own schedule (exceptions included) as each half-hour of the week's headcount
    // (the first of a repeated fall-back hour; the spring-forward gap keeps the plan's), then
    // the asked change on top of it.
    const base = new Map();
    for (const s of queue.slots) {
      const at = localParts(s.local);
      if (!base.has(at.weekday * SLOTS + at.slot)) base.set(at.weekday * SLOTS + at.slot, s.scheduled);
    }
    const changes = [...base].map(([i, headcount]) => ({
      vendor: queue.vendor, language: queue.language, weekday: Math.floor(i / SLOTS), slot: i % SLOTS, headcount }));
    const delta = Number(form.get("delta") || 0);
    if (delta) {
      const change = { vendor: queue.vendor, language: queue.language, delta };
      if (form.get("day") !== "") change.weekday = Number(form.get("day"));
      if (form.get("time") !== "") change.slot = Number(form.get("time"));
      changes.push(change);
    }
    const body = { from: state.week, to: addDays(state.week, DAYS), vendor: queue.vendor, language: queue.language,
      target, target_wait_s: waitS, changes };
    const ticket = state.loads;
    const [answer, needed] = await Promise.all([
      safeSend(`${API}/what-if`, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } }),
      safeSend(coverageUrl(queue, { target: String(target), t: String(waitS) })),
    ]);
    if (ticket !== state.loads) return; // another week or queue was chosen meanwhile
    const failed = [answer, needed].find((r) => !r.ok);
    if (failed) { say($("cap-state"), problemText(failed.status)); return; }
    say($("cap-state"), "");
    const mine = (await answer.json()).queues[0];
    const report = await needed.json();
    state.whatIf = {
      answer: mine, report,
      needed: new Map(report.queues[0].slots.map((s) => [s.start, s.needed])),
      byPattern: new Map(mine.slots.map((s) => [s.weekday * SLOTS + s.slot, s])),
    };
    $("what-if-result").replaceChildren(
      kpi(t("Expected service level"), percent(mine.service_level)),
      kpi(t("Average wait"), mine.average_wait_s === null ? t("No limit: overloaded") : fmtDuration(mine.average_wait_s)),
      kpi(t("Students giving up"), percent(mine.abandonment)),
      kpi(t("Cost this week"), hours(mine.tutor_hours)),
      kpi(t("Against the plan"), signedHours(mine.tutor_hours - queue.scheduled_tutor_hours)),
      kpi(t("The advice needs"), hours(mine.needed_tutor_hours)));
    show();
  }

  function reset() {
    state.whatIf = null;
    resetForm();
    show();
    $("wi-target").focus();
  }

  // The form's choices: every day or one, every half-hour or one.
  $("wi-day").replaceChildren(el("option", { value: "" }, t("Every day")),
    ...weekdayNames("long").map((name, d) => el("option", { value: String(d) }, name)));
  $("wi-time").replaceChildren(el("option", { value: "" }, t("Every half-hour")),
    ...Array.from({ length: SLOTS }, (_, slot) => el("option", { value: String(slot) }, clock(slot))));
  $("cap-queue").addEventListener("change", () => { state.focus = null; loadWeek(); });
  $("cap-week").addEventListener("change", () => {
    if (!$("cap-week").value) return;
    state.week = mondayOf($("cap-week").value);
    loadWeek();
  });
  $("what-if").addEventListener("submit", whatIf);
  $("wi-reset").addEventListener("click", reset);
  return { load };
}
