// Staff dashboard: live figures (/staff namespace, staff:live), history from
// GET /api/stats/* (docs/stats.md) and the booked programmes from /api/stats/scheduled, drawn with the vendored uPlot, each chart with a table
// view and a CSV download. No figure is ever invented: missing data says so.
import { t, loadCatalog, getLocale, fmtDuration, fmtNumber, fmtTime, languageName } from "./i18n.js";
import { $, el, say, call, connect, config, tokenSource, categoryList } from "./common.js";
import { staffSignIn } from "./staff-signin.js";
import { table, kpi, barChart, lineChart, barList, heatTable, hourLabel, weekdayNames } from "./staff-charts.js";
import { rangeWords, zoneName, bucketLabel, gradeName, gradeParam, gradeKey, reasonName, groupName, bucketName } from "./staff-words.js";
import { staffCapacity } from "./staff-capacity.js";

const cfg = config();
await loadCatalog(cfg.i18n_url, cfg.locale);
// A teacher's or administrator's LMS launch brings its token in the fragment too (inside
// the LMS's iframe the browser may refuse the sign-in cookie): kept in this tab, erased
// from the address bar.
const launched = /(?:^#|&)token=([^&]+)/.exec(location.hash);
if (launched) {
  try { sessionStorage.setItem("hh_staff_token", decodeURIComponent(launched[1])); } catch (_) { /* the cookie, then */ }
  history.replaceState(null, "", location.pathname + location.search);
}
const tokens = tokenSource(cfg, "hh_staff_token");
const vendorNames = Object.fromEntries(Object.entries(cfg.vendor_names || {}).map(([id, name]) => [id, t(name)]));
const subjectLabels = Object.fromEntries((cfg.subjects || []).map((s) => [s.id, t(s.label)]));
let currentToken = null;

// -- live --------------------------------------------------------------------------------
function queueName(key) {
  const [vendor, language] = String(key).split(":");
  return t("{vendor}, {language}", { vendor: vendorNames[vendor] || vendor, language: languageName(language || "") });
}

function showLive(f) {
  if (!f) return;
  $("live-queued").textContent = fmtNumber(f.queued);
  $("live-longest").textContent = fmtDuration(f.longest_wait_s);
  $("live-available").textContent = fmtNumber(f.tutors_available);
  $("live-busy").textContent = fmtNumber(f.tutors_busy);
  $("live-away").textContent = fmtNumber(f.tutors_away);
  const rows = (f.queues || []).map((q) => el("tr", {},
    el("th", { scope: "row" }, queueName(q.queue)),
    el("td", { class: "num" }, fmtNumber(q.queued)),
    el("td", { class: "num" }, fmtDuration(q.longest_wait_s))));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 3, class: "empty" }, t("Nobody is waiting."))));
  $("live-queues").replaceChildren(...rows);
  $("live-at").textContent = t("Updated at {time}", { time: fmtTime(f.at) });
}

// -- history -----------------------------------------------------------------------------
const isoDay = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
const dayOf = (iso) => { const [y, m, d] = String(iso).split("-").map(Number); return new Date(y, m - 1, d); };
const nextDay = (iso) => { const d = dayOf(iso); return isoDay(new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1)); };
const DISTRICT_TZ = cfg.timezone || "America/Los_Angeles"; // the statistics' days and hours

// The period menu fills the first and last day (today included); editing a day makes it
// "Chosen days". Staff ask "is it getting better" first: four weeks by default.
function applyPeriod(period) {
  if (period === "custom") return;
  const today = new Date();
  const first = period === "year"
    ? new Date(today.getMonth() >= 7 ? today.getFullYear() : today.getFullYear() - 1, 7, 1)
    : new Date(today.getFullYear(), today.getMonth(), today.getDate() - Number(period) + 1);
  $("f-from").value = isoDay(first);
  $("f-last").value = isoDay(today);
}

function defaults() {
  applyPeriod($("f-period").value);
}

$("f-period").addEventListener("change", () => { applyPeriod($("f-period").value); if ($("f-period").value !== "custom") loadHistory(); });
for (const id of ["f-from", "f-last"]) $(id).addEventListener("input", () => { $("f-period").value = "custom"; });

// The filters this account may use (GET /api/stats/filters, held to its scope by the
// server): a school's staff and teachers see their school only, a vendor manager their
// vendor only; a filter the scope sets is shown, not offered.
let scopeInfo = null;

// `item.data`: the label is the district's data (a region's name), not a message.
function offer(select, allLabel, items, fixed) {
  const options = items.map((item) => el("option", { value: item.value, "data-i18n-skip": item.data ? "" : null }, item.label));
  select.replaceChildren(...(fixed ? options : [el("option", { value: "" }, allLabel), ...options]));
  select.disabled = Boolean(fixed);
}

function fillFilters(o) {
  const fixed = new Set(o.fixed || []);
  const schoolLabel = (s) => (s.name ? t("{school} ({id})", { school: s.name, id: s.id }) : s.id);
  offer($("f-school"), t("All schools"), o.schools.map((s) => ({ value: s.id, label: schoolLabel(s) })), fixed.has("school"));
  offer($("f-region"), t("All regions"), o.regions.map((r) => ({ value: r, label: r, data: true })), false);
  $("f-region-field").hidden = !o.regions.length;
  offer($("f-vendor"), t("All vendors"), o.vendors.map((v) => ({ value: v.id, label: vendorNames[v.id] || (v.name ? t(v.name) : v.id) })), fixed.has("vendor"));
  offer($("f-language"), t("All languages"), o.languages.map((code) => ({ value: code, label: languageName(code) })), false);
  offer($("f-grade"), t("All grades"), o.grades.map((g) => ({ value: gradeParam(g), label: gradeName(g) })), false);
  const scope = o.scope || {};
  scopeInfo.kind = scope.kind; // the Staffing section is not a school's (staff-capacity.js)
  const school = o.schools[0] ? (o.schools[0].name || o.schools[0].id) : scope.id;
  const vendor = vendorNames[scope.id] || scope.name || scope.id;
  if (scope.kind === "school") {
    say($("scope-note"), t("This account sees {school} only.", { school }));
    say($("who"), scopeInfo.role === "teacher" ? t("Signed in: teacher at {school}", { school }) : t("Signed in: staff of {school}", { school }));
  } else if (scope.kind === "vendor") {
    say($("scope-note"), t("This account sees the requests {vendor} served only.", { vendor }));
    say($("who"), t("Signed in: manager at {vendor}", { vendor }));
  }
}

function query(extra) {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData($("filters"))) {
    if (!value) continue;
    if (key === "last") params.set("to", nextDay(String(value))); // the API's end is exclusive
    else params.set(key, String(value));
  }
  for (const [key, value] of Object.entries(extra || {})) params.set(key, value);
  return params.toString();
}

class StatsError extends Error {
  constructor(status, body) { super(String(status)); this.status = status; this.body = body || {}; }
}

async function statsFetch(url) {
  const send = () => fetch(url, {
    credentials: "same-origin",
    headers: { Accept: "application/json", ...(currentToken ? { Authorization: `Bearer ${currentToken}` } : {}) },
  });
  let response = await send();
  if (response.status === 401) { // the 5-minute token ran out: once more with a fresh one
    currentToken = (await tokens.get()) || currentToken;
    response = await send();
  }
  if (!response.ok) throw new StatsError(response.status, await response.json().catch(() => ({})));
  return response.json();
}

const getStats = (name) => statsFetch(`${cfg.stats_url}/${name}?${query()}`);

// Why there are no figures: not allowed (and what to do), expired, bad filters, or down.
function refusalText(error) {
  const status = error instanceof StatsError ? error.status : 0;
  const why = (error && error.body) || {};
  if (status === 401) return t("Your sign-in has expired. Please sign in again.");
  if (status === 403 && (why.parameter === "school" || why.parameter === "vendor")) {
    return t("Not allowed: this account sees its own school or vendor only. Choose it, or all, in the filters.");
  }
  if (status === 403 && scopeInfo && scopeInfo.role === "teacher") {
    return t("Not allowed: your course's Homework Help link names no school, so there is no school to show. Ask the district to add your school to the link.");
  }
  if (status === 403) return t("Not allowed: this account may not see statistics. Ask the district for a district, school or vendor staff account.");
  if (status === 404) return t("No data: history statistics are not available on this server yet.");
  if (status === 400) return t("Check the filters: the last day must not be before the first day.");
  return t("The statistics could not be loaded. Try again later.");
}

// A CSV link that works with the sign-in cookie as a plain link, and with the bearer token
// when clicked (fetched, then saved from a blob).
function csvLink(name) {
  const href = `${cfg.stats_url}/${name}?${query({ format: "csv" })}`;
  const link = el("a", { href, download: `stats-${name}.csv` }, t("Download CSV"));
  link.addEventListener("click", async (event) => {
    if (!currentToken) return;
    event.preventDefault();
    const send = () => fetch(href, { credentials: "same-origin", headers: { Authorization: `Bearer ${currentToken}` } });
    let response = await send();
    if (response.status === 401) { // the 5-minute token ran out: once more with a fresh one
      currentToken = (await tokens.get()) || currentToken;
      response = await send();
    }
    if (!response.ok) { say($("history-state"), t("The download failed.")); return; }
    const url = URL.createObjectURL(await response.blob());
    const save = el("a", { href: url, download: `stats-${name}.csv` });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });
  return link;
}

// A figure in `holder` (the history's charts by default) with a table view and the CSV
// download of the stats endpoint `csv` (by default the figure's own name).
function figure(name, caption, build, { holder = $("charts"), csv = name, wide = false } = {}) {
  const plot = el("div", { class: "chart-plot" });
  const details = el("details", {}, el("summary", {}, t("Table view")));
  const fig = el("figure", { class: wide ? "chart wide-chart" : "chart", "data-stats": name },
    el("figcaption", {}, caption), plot, details,
    el("div", { class: "chart-tools" }, csvLink(csv)));
  holder.append(fig);
  build(plot, details);
  return fig;
}

// -- trends: requests, sessions, unmet and the p90 wait per day or week --------------------
function showTrends(tr) {
  const holder = $("trends-charts");
  holder.replaceChildren();
  $("trends").hidden = false;
  const byWeek = tr.bucket === "week";
  say($("trends-hint"), byWeek
    ? t("Per week (Monday to Sunday): the range is longer than two months.")
    : t("Per day. Ranges longer than two months are shown per week."));
  const points = tr.points || [];
  const labels = points.map((p) => bucketLabel(p.start, tr.bucket));
  const xName = byWeek ? t("Week (starting Monday)") : t("Day");
  const none = t("No requests for help in this range.");
  const tableRows = () => points.map((p) => [bucketLabel(p.start, tr.bucket, { year: "numeric" }), fmtNumber(p.requests),
    fmtNumber(p.sessions), fmtNumber(p.unmet), fmtDuration(p.p90_wait_s)]);
  const header = [xName, t("Requests"), t("Sessions"), t("Unmet requests"), t("90th percentile wait")];
  const wide = { holder, csv: "trends", wide: true };
  figure("trends-demand", byWeek ? t("Requests, sessions and unmet requests per week") : t("Requests, sessions and unmet requests per day"), (plot, details) => {
    lineChart(plot, t("Requests, sessions and unmet requests"), labels, [
      { label: t("Requests"), values: points.map((p) => p.requests), style: "solid" },
      { label: t("Sessions"), values: points.map((p) => p.sessions), style: "dashed" },
      { label: t("Unmet requests"), values: points.map((p) => p.unmet), style: "dotted" },
    ], { x: xName, y: t("Requests or sessions"), empty: none });
    details.append(table(t("Trends"), header, tableRows(), none));
  }, wide);
  figure("trends-wait", byWeek ? t("Wait before a tutor accepted, 90th percentile, per week") : t("Wait before a tutor accepted, 90th percentile, per day"), (plot, details) => {
    lineChart(plot, t("90th percentile wait"), labels, [
      { label: t("90th percentile wait (minutes)"), values: points.map((p) => (p.p90_wait_s === null ? null : Math.round(p.p90_wait_s / 6) / 10)), style: "solid" },
    ], { x: xName, y: t("Minutes"), empty: t("No request was accepted in this range, so there is no wait to show.") });
    details.append(table(t("Trends"), header, tableRows(), none));
  }, wide);
}

// -- booked tutoring (GET /api/stats/scheduled) --------------------------------------------
const PROGRAMMES = { school_based: () => t("School-based"), home_based: () => t("Home-based") };
const programmeName = (key) => (PROGRAMMES[key] ? PROGRAMMES[key]() : key || "–");
const percent = (share) => (share === null || share === undefined ? "–" : fmtNumber(share, { style: "percent", maximumFractionDigits: 1 }));
// A school's name is the district's data, not a message: marked so (bdi: any direction).
const schoolName = (row) => el("bdi", { "data-i18n-skip": "" }, row.school_name || row.school);

// Each load of the figures takes a ticket; a response whose ticket is no longer the latest
// (the filters changed while it was on its way) is dropped, so what is shown is always
// what the filters say, whichever response arrives last.
const tickets = { history: 0, scheduled: 0 };

async function loadScheduled() {
  const ticket = ++tickets.scheduled;
  const stateNote = $("scheduled-state");
  say(stateNote, t("Loading…"));
  $("scheduled-charts").replaceChildren();
  $("scheduled-summary").hidden = true;
  $("scheduled-charts").hidden = true;
  let d;
  try {
    d = await getStats("scheduled");
  } catch (error) {
    if (ticket === tickets.scheduled) say(stateNote, refusalText(error));
    return;
  }
  if (ticket !== tickets.scheduled) return; // a later choice of filters won
  say(stateNote, d.weeks.length ? "" : t("No booked tutoring for these filters."));
  const tot = d.totals;
  $("scheduled-summary").replaceChildren(
    kpi(t("Student-weeks booked"), fmtNumber(tot.student_weeks)),
    kpi(t("Weeks on target"), percent(tot.share_on_target)),
    kpi(t("Attendance rate"), percent(tot.attendance.rate)),
    kpi(t("Student no-shows"), fmtNumber(tot.no_shows.students)),
    kpi(t("Tutor no-shows"), fmtNumber(tot.no_shows.tutors)));
  $("scheduled-summary").hidden = false;
  $("scheduled-charts").hidden = false;
  const where = { holder: $("scheduled-charts"), csv: "scheduled" };
  const weeks = d.weeks;

  figure("scheduled-dosage", t("Sessions per student each week, against the target"), (plot, details) => {
    barChart(plot, t("Sessions attended per student"), weeks.map((w) => w.week), weeks.map((w) => w.sessions_per_student || 0), {
      line: { label: t("Target"), values: weeks.map((w) => w.target_sessions_per_student || 0) },
      x: t("Week"), y: t("Sessions per student"), empty: t("No booked tutoring for these filters."),
    });
    details.append(table(t("Dosage per week"), [t("Week"), t("Students booked"), t("Sessions per student"), t("Target"),
      t("Minutes per student"), t("Target minutes"), t("On target")],
    weeks.map((w) => [w.week, fmtNumber(w.students), fmtNumber(w.sessions_per_student), fmtNumber(w.target_sessions_per_student),
      fmtNumber(w.minutes_per_student), fmtNumber(w.target_minutes_per_student), percent(w.share_on_target)])));
  }, where);

  figure("scheduled-attendance", t("Attendance rate each week (%)"), (plot, details) => {
    barChart(plot, t("Attendance rate each week (%)"), weeks.map((w) => w.week), weeks.map((w) => (w.attendance_rate || 0) * 100),
      { x: t("Week"), y: t("Attendance (%)"), empty: t("No booked tutoring for these filters.") });
    details.append(table(t("Attendance and no-shows per week"), [t("Week"), t("Marked"), t("Attended"), t("Attendance rate"),
      t("Student no-shows"), t("Tutor no-shows")],
    weeks.map((w) => [w.week, fmtNumber(w.marked), fmtNumber(w.attended), percent(w.attendance_rate),
      fmtNumber(w.no_shows.students), fmtNumber(w.no_shows.tutors)])));
  }, where);

  const tables = el("div", { class: "scheduled-tables" },
    el("h3", { id: "scheduled-programmes-title" }, t("Schools and programmes")),
    table(t("Schools and programmes"), [t("School"), t("Programme"), t("Vendor"), t("Student-weeks"), t("On target"),
      t("Attendance rate"), t("Student no-shows"), t("Tutor no-shows"), t("Groups below target")],
    d.programmes.map((p) => [schoolName(p), programmeName(p.programme), vendorNames[p.vendor] || p.vendor || "–",
      fmtNumber(p.student_weeks), percent(p.share_on_target), percent(p.attendance.rate),
      fmtNumber(p.no_shows.students), fmtNumber(p.no_shows.tutors), fmtNumber(p.groups_below_target)])),
    el("h3", { id: "scheduled-below-title" }, t("Groups below target")),
    table(t("Groups below target"), [t("School"), t("Group"), t("Weeks below target")],
      d.groups_below_target.map((g) => [schoolName(g), t("{subject}, grades {band}, {language}, with {tutor}", {
        subject: subjectLabels[g.subject] || g.subject, band: g.grade_band, language: languageName(g.language), tutor: g.tutor_name,
      }), g.weeks.map((w) => t("{week}: {sessions} of {target} sessions", {
        week: w.week, sessions: fmtNumber(w.sessions), target: fmtNumber(w.target) })).join("; ")])),
    el("p", { class: "chart-tools" }, csvLink("scheduled")));
  $("scheduled-charts").append(tables);
}


async function loadHistory() {
  const ticket = ++tickets.history;
  if (scopeInfo.kind !== "school") capacity.load(); // Staffing follows the same days (staff-capacity.js)
  const stateNote = $("history-state");
  $("charts").replaceChildren();
  $("trends-charts").replaceChildren();
  $("summary").hidden = true;
  $("charts").hidden = true;
  $("trends").hidden = true;
  if ($("f-from").value && $("f-last").value && $("f-last").value < $("f-from").value) {
    say($("range-words"), "");
    say(stateNote, t("Check the filters: the last day must not be before the first day."));
    tickets.scheduled++; // nor booked tutoring's figures for the filters before
    return;
  }
  say($("range-words"), rangeWords($("f-from").value, $("f-last").value, DISTRICT_TZ));
  loadScheduled();
  say(stateNote, t("Loading…"));
  let data;
  try {
    const names = ["summary", "waits", "service-level", "heatmap", "unmet", "groups", "vendors", "trends"];
    const results = await Promise.all(names.map(getStats));
    data = Object.fromEntries(names.map((n, i) => [n, results[i]]));
  } catch (error) {
    if (ticket === tickets.history) say(stateNote, refusalText(error));
    return;
  }
  if (ticket !== tickets.history) return; // a later choice of filters won
  say(stateNote, data.summary.requests ? "" : t("No requests for help in this range with these filters: nobody asked, or the filters leave everyone out."));
  const s = data.summary;
  const sl = data["service-level"];
  $("summary").replaceChildren(
    kpi(t("Requests"), fmtNumber(s.requests)),
    kpi(t("Sessions"), fmtNumber(s.sessions)),
    kpi(t("Students served"), fmtNumber(s.students_served)),
    kpi(t("Unmet requests"), fmtNumber(s.unmet)),
    kpi(t("Answered within {time}", { time: fmtDuration(sl.threshold_s) }),
      sl.share === null ? "–" : fmtNumber(sl.share, { style: "percent", maximumFractionDigits: 1 })));
  $("summary").hidden = false;
  $("charts").hidden = false;
  showTrends(data.trends);
  const noSessions = t("No sessions in this range.");

  const w = data.waits;
  figure("waits", t("Wait before a tutor accepted"), (plot, details) => {
    barChart(plot, t("Wait before a tutor accepted"), w.histogram.map((b, i) => bucketName(i, b.bucket)), w.histogram.map((b) => b.count),
      { x: t("Wait before a tutor accepted"), y: t("Requests"), empty: t("No request was accepted in this range.") });
    details.append(table(t("Wait percentiles"), [t("Statistic"), t("Value")], [
      [t("Accepted requests"), fmtNumber(w.count)],
      [t("Average"), fmtDuration(w.mean_s)], [t("Median (p50)"), fmtDuration(w.p50_s)],
      [t("90th percentile"), fmtDuration(w.p90_s)], [t("95th percentile"), fmtDuration(w.p95_s)],
      [t("99th percentile"), fmtDuration(w.p99_s)], [t("Longest"), fmtDuration(w.max_s)],
      [t("Gave up while waiting"), fmtNumber(w.gave_up.total)], [t("Still waiting"), fmtNumber(w.still_waiting)],
    ]));
    details.append(table(t("Wait distribution"), [t("Wait"), t("Requests")], w.histogram.map((b, i) => [bucketName(i, b.bucket), fmtNumber(b.count)])));
  });

  figure("service-level", t("Service level"), (plot, details) => {
    barChart(plot, t("Service level"), [t("Within"), t("Later"), t("Gave up")], [sl.within, sl.accepted_later, sl.gave_up],
      { x: t("Answered within {time}", { time: fmtDuration(sl.threshold_s) }), y: t("Requests"), empty: t("No request was accepted or given up in this range.") });
    details.append(table(t("Service level"), [t("Statistic"), t("Value")], [
      [t("Threshold"), fmtDuration(sl.threshold_s)], [t("Accepted within"), fmtNumber(sl.within)],
      [t("Accepted later"), fmtNumber(sl.accepted_later)], [t("Gave up"), fmtNumber(sl.gave_up)],
      [t("Share within"), sl.share === null ? "–" : fmtNumber(sl.share, { style: "percent", maximumFractionDigits: 1 })],
    ]));
  });

  const h = data.heatmap;
  const zone = zoneName(DISTRICT_TZ);
  figure("heatmap", t("Sessions by day and hour"), (plot, details) => {
    plot.replaceChildren(
      el("p", { class: "axis-note" }, t("Across: hour of the day, 00:00 to 23:00 ({zone}). Down: day of the week. Each cell: sessions started in that hour.", { zone })),
      el("p", { class: "hint heat-scroll-hint" }, t("Scroll sideways to see every hour.")),
      heatTable(h.cells, t("Sessions by day and hour")));
    if (!h.total) plot.append(el("p", { class: "empty" }, noSessions));
    const days = weekdayNames("long");
    const peakDay = h.peak ? days[h.days.indexOf(h.peak.day)] || h.peak.day : "";
    details.append(table(t("Busiest hour"), [t("Statistic"), t("Value")], [
      [t("Sessions"), fmtNumber(h.total)],
      [t("Busiest hour"), h.peak ? t("{day} {hour} ({sessions} sessions)", { day: peakDay, hour: hourLabel(h.peak.hour), sessions: fmtNumber(h.peak.sessions) }) : "–"],
    ]));
  }, { wide: true });

  const u = data.unmet;
  figure("unmet", t("Unmet demand by reason"), (plot, details) => {
    barList(plot, t("Unmet demand by reason"), u.by_reason.map((i) => ({ label: reasonName(i.key), value: i.count, text: fmtNumber(i.count) })),
      t("Every request in this range could be routed to a vendor."));
    details.append(
      table(t("Unmet demand by reason"), [t("Reason"), t("Requests")], u.by_reason.map((i) => [reasonName(i.key), fmtNumber(i.count)])),
      table(t("Unmet demand by language"), [t("Language"), t("Requests")], u.by_language.map((i) => [languageName(i.key), fmtNumber(i.count)])),
      table(t("Unmet demand by grade"), [t("Grade"), t("Requests")], u.by_grade.map((i) => [gradeKey(i.key), fmtNumber(i.count)])),
      table(t("Unmet demand by school"), [t("School"), t("Requests")], u.by_school.map((i) => [el("bdi", { "data-i18n-skip": "" }, i.name || String(i.key ?? "–")), fmtNumber(i.count)])));
  });

  const g = data.groups.groups;
  const rostered = g.some((r) => r.enrolled);
  figure("groups", t("Students using Homework Help, percent of enrolled, by group"), (plot, details) => {
    barList(plot, t("Students using Homework Help, percent of enrolled, by group"), g.map((r) => ({
      label: groupName(r.group), value: r.pct_of_enrolled || 0,
      text: r.pct_of_enrolled === null ? "–" : fmtNumber(r.pct_of_enrolled / 100, { style: "percent", maximumFractionDigits: 2 }),
    })), rostered ? t("No student used Homework Help in this range.") : t("No roster is loaded, so there is no enrolment to compare with."));
    details.append(table(t("Usage by student group"), [t("Group"), t("Enrolled"), t("Students using"), t("Percent of enrolled"), t("Sessions")],
      g.map((r) => [groupName(r.group), fmtNumber(r.enrolled), fmtNumber(r.students_using),
        r.pct_of_enrolled === null ? "–" : fmtNumber(r.pct_of_enrolled / 100, { style: "percent", maximumFractionDigits: 2 }),
        fmtNumber(r.sessions)])));
  });

  // Tutor time counts ended sessions only; a day of short chats is minutes, not hours.
  const v = data.vendors.vendors;
  const minutes = v.reduce((sum, r) => sum + (r.tutor_minutes || 0), 0);
  const open = v.reduce((sum, r) => sum + (r.sessions - r.ended_sessions), 0);
  const inHours = minutes >= 120;
  figure("vendors", t("Vendor capacity used"), (plot, details) => {
    barChart(plot, t("Tutor time in sessions by vendor"), v.map((r) => vendorNames[r.vendor] || r.vendor),
      v.map((r) => (inHours ? r.tutor_hours : r.tutor_minutes) || 0), {
        x: t("Vendor"), y: inHours ? t("Tutor time (hours)") : t("Tutor time (minutes)"),
        empty: open ? t("{n} sessions still open: their tutor time counts once they end.", { n: fmtNumber(open) }) : noSessions,
      });
    details.append(table(t("Vendor capacity used"), [t("Vendor"), t("Sessions"), t("Tutor time (minutes)"), t("Tutors"),
      t("Average chat (minutes)"), t("Average sessions at once")],
    v.map((r) => [vendorNames[r.vendor] || r.vendor, fmtNumber(r.sessions), fmtNumber(r.tutor_minutes),
      fmtNumber(r.distinct_tutors), fmtNumber(r.avg_session_min), fmtNumber(r.avg_concurrent)]), noSessions));
  });
}

$("filters").addEventListener("submit", (event) => { event.preventDefault(); loadHistory(); });
const capacity = staffCapacity({
  token: async (fresh) => (fresh ? (currentToken = (await tokens.get()) || currentToken) : currentToken),
  range: () => ({ from: $("f-from").value, to: $("f-last").value ? nextDay($("f-last").value) : "" }),
  queueName,
});

// -- safety: open alerts and the review queue (web/safety_api.py) ---------------------------
// Polled every 10 s while the page is shown; a caller the API refuses (a vendor manager:
// 403) never sees the section. Held words are read one flag at a time ("View"), audited.
const SAFETY_URL = "/api/safety";
const SAFETY_POLL_MS = 10000;
const safety = { timer: null, suspendFlag: null, suspendButton: null, viewButton: null };

class SafetyRefused extends Error {
  constructor(status) { super(String(status)); this.status = status; }
}

async function safetyResponse(path, body, accept = "application/json") {
  const send = () => fetch(`${SAFETY_URL}${path}`, {
    method: body ? "POST" : "GET",
    credentials: "same-origin",
    cache: "no-store",
    headers: {
      Accept: accept,
      ...(body ? { "Content-Type": "application/json" } : {}),
      ...(currentToken ? { Authorization: `Bearer ${currentToken}` } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  let response = await send();
  if (response.status === 401) { // the 5-minute token ran out: once more with a fresh one
    currentToken = (await tokens.get()) || currentToken;
    response = await send();
  }
  if (!response.ok) throw new SafetyRefused(response.status);
  return response;
}

async function safetyFetch(path, body) {
  return (await safetyResponse(path, body)).json();
}

// A flagged session's picture (GET /api/safety/flags/{id}/images/{image_id}, audited), shown
// inline from a data: URL (the page allows data: images; nothing is kept after the view).
function flagPicture(flagId, image, alt) {
  const note = el("p", { class: "hint" }, t("Loading the picture…"));
  const figure = el("figure", { class: "chat-image" }, note);
  (async () => {
    const path = `/flags/${encodeURIComponent(flagId)}/images/${encodeURIComponent(image.id)}`;
    const blob = await (await safetyResponse(path, null, "image/*")).blob();
    const url = await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
    note.replaceWith(el("img", { src: url, alt, width: image.width, height: image.height }));
  })().catch(() => { note.textContent = t("This picture is no longer available."); });
  return figure;
}

const PICTURE_FROM = {
  student: () => t("Picture from the student"),
  tutor: () => t("Picture from the tutor"),
};

const fmtWhen = (iso) => {
  const date = iso ? new Date(iso) : null;
  if (!date || Number.isNaN(date.getTime())) return "–";
  return new Intl.DateTimeFormat(getLocale(), { dateStyle: "short", timeStyle: "short" }).format(date);
};
const shortId = (id) => (id ? String(id).slice(0, 8) : "–");

const FLAG_KINDS = {
  held: () => t("Message held"),
  masked: () => t("Message masked"),
  distress: () => t("Distress"),
  report: () => t("Report"),
};
const FLAG_STATUSES = {
  open: () => t("Open"),
  dismissed: () => t("Dismissed"),
  session_ended: () => t("Session ended"),
  tutor_suspended: () => t("Tutor suspended"),
};
const SENDERS = { student: () => t("The student"), tutor: () => t("The tutor") };
const label = (table, key) => (table[key] ? table[key]() : key || "–");

function alertItem(alert) {
  const urgent = alert.kind === "distress";
  const titleId = `alert-${alert.id}`;
  const title = urgent ? t("A student may be in distress") : t("Students are waiting and no tutor is on shift");
  const where = alert.session_id ? t("Session {id}", { id: shortId(alert.session_id) })
    : alert.queue ? queueName(alert.queue) : "";
  const ack = el("button", { type: "button", class: urgent ? "danger" : "secondary", "aria-describedby": titleId }, t("Acknowledge"));
  ack.addEventListener("click", async () => {
    ack.disabled = true;
    try {
      await safetyFetch(`/alerts/${encodeURIComponent(alert.id)}/acknowledge`, {});
      say($("safety-status"), t("Alert acknowledged."));
    } catch (error) {
      ack.disabled = false;
      say($("safety-status"), safetyErrorText(error));
    }
    refreshSafety();
  });
  return el("li", { class: `alert-item ${urgent ? "urgent" : ""}`, "data-kind": alert.kind },
    el("strong", { id: titleId }, title), " ",
    el("span", { class: "hint" }, [where, fmtWhen(alert.raised_at)].filter(Boolean).join(" · ")),
    el("p", {}, alert.detail || ""), ack);
}

function flagRow(flag) {
  const view = el("button", { type: "button", class: "secondary" }, t("View"));
  view.addEventListener("click", () => viewFlag(flag.id, view));
  const actions = [view];
  if (flag.status === "open") {
    const act = (name, text, cls) => {
      const button = el("button", { type: "button", class: cls }, text);
      button.addEventListener("click", () => (name === "suspend_tutor"
        ? askSuspend(flag.id, button) : actOnFlag(flag.id, name)));
      actions.push(button);
    };
    act("dismiss", t("Dismiss"), "secondary");
    act("end_session", t("End session"), "secondary");
    act("suspend_tutor", t("Suspend tutor"), "danger");
  }
  const who = [label(SENDERS, flag.by), vendorNames[flag.vendor] || flag.vendor].filter(Boolean).join(" · ");
  return el("tr", { "data-flag": flag.id, "data-kind": flag.kind },
    el("th", { scope: "row" }, fmtWhen(flag.created_at)),
    el("td", {}, label(FLAG_KINDS, flag.kind)),
    el("td", {}, flag.categories && flag.categories.length ? categoryList(flag.categories) : "–"),
    el("td", {}, who),
    el("td", {}, shortId(flag.session_id)),
    el("td", {}, label(FLAG_STATUSES, flag.status)),
    el("td", { class: "actions" }, ...actions));
}

function safetyErrorText(error) {
  const status = error instanceof SafetyRefused ? error.status : 0;
  if (status === 409) return t("Someone has already decided this.");
  if (status === 404) return t("It no longer exists.");
  if (status === 401 || status === 403) return t("You are not allowed to do that.");
  return t("Something went wrong. Please try again.");
}

async function refreshSafety() {
  let alerts;
  let flags;
  try {
    [alerts, flags] = await Promise.all([safetyFetch("/alerts"), safetyFetch("/flags")]);
  } catch (error) {
    if (error instanceof SafetyRefused && (error.status === 401 || error.status === 403)) {
      // Not for this account (a vendor manager): no section, no polling.
      $("safety").hidden = true;
      clearInterval(safety.timer);
      safety.timer = null;
    } else {
      say($("safety-at"), t("The safety review could not be loaded. Trying again shortly."));
    }
    return;
  }
  $("safety").hidden = false;
  // Distress first, then the newest.
  const open = (alerts.alerts || []).slice().sort((a, b) =>
    (a.kind === "distress" ? 0 : 1) - (b.kind === "distress" ? 0 : 1) || String(b.raised_at).localeCompare(String(a.raised_at)));
  $("safety-alerts").replaceChildren(...(open.length ? open.map(alertItem)
    : [el("li", { class: "empty" }, t("No open alerts."))]));
  const rows = (flags.flags || []).map(flagRow);
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 7, class: "empty" }, t("Nothing is waiting for review."))));
  $("safety-flags").replaceChildren(...rows);
  say($("safety-at"), t("Updated at {time}", { time: fmtTime() }));
}

async function viewFlag(id, button) {
  safety.viewButton = button;
  let flag;
  try {
    flag = await safetyFetch(`/flags/${encodeURIComponent(id)}`);
  } catch (error) {
    say($("safety-status"), safetyErrorText(error));
    return;
  }
  const parts = [el("p", {}, [label(FLAG_KINDS, flag.kind), label(SENDERS, flag.by),
    t("Session {id}", { id: shortId(flag.session_id) }), fmtWhen(flag.created_at)].join(" · "))];
  if (flag.categories && flag.categories.length) parts.push(el("p", {}, t("Categories: {list}", { list: categoryList(flag.categories) })));
  if (flag.note) parts.push(el("p", {}, el("strong", {}, t("Note:")), " ", flag.note));
  if (flag.text) {
    parts.push(el("h4", {}, flag.kind === "held" ? t("The words that were held") : t("The words as written")),
      el("blockquote", { class: "held-words" }, flag.text));
  }
  if (flag.image) { // the flagged message was a picture (its caption held or masked)
    parts.push(el("h4", {}, t("The picture sent with them")),
      flagPicture(flag.id, flag.image, flag.text || label(PICTURE_FROM, flag.by)));
  }
  parts.push(el("h4", {}, t("Messages kept from this chat")));
  const messages = flag.messages || [];
  parts.push(messages.length
    ? el("ol", { class: "kept-messages" }, ...messages.map((m) => el("li", {},
      el("span", { class: "who" }, label(SENDERS, m.from)), " ",
      el("time", { datetime: m.at || "" }, fmtTime(m.at)), " ", el("span", { class: "text" }, m.text),
      ...(m.image ? [flagPicture(flag.id, m.image, m.text || label(PICTURE_FROM, m.from))] : []))))
    : el("p", { class: "empty" }, t("No messages were kept.")));
  $("flag-view-body").replaceChildren(...parts);
  $("flag-view").hidden = false;
  $("flag-view-title").focus();
}

function closeFlagView() {
  $("flag-view").hidden = true;
  if (safety.viewButton && safety.viewButton.isConnected) safety.viewButton.focus();
}

async function actOnFlag(id, action) {
  try {
    const result = await safetyFetch(`/flags/${encodeURIComponent(id)}/action`, { action });
    const texts = {
      dismiss: t("Dismissed."),
      end_session: t("The session was ended."),
      suspend_tutor: t("The tutor was suspended. Chats ended: {n}.", { n: fmtNumber(result.sessions_ended) }),
    };
    say($("safety-status"), texts[action]);
  } catch (error) {
    say($("safety-status"), safetyErrorText(error));
  }
  refreshSafety();
}

// Suspending asks first, in the page (no browser dialog); Escape keeps the account.
function askSuspend(id, button) {
  safety.suspendFlag = id;
  safety.suspendButton = button;
  $("suspend-confirm").hidden = false;
  $("suspend-yes").focus();
}

function closeSuspend(focus) {
  $("suspend-confirm").hidden = true;
  if (focus && safety.suspendButton && safety.suspendButton.isConnected) safety.suspendButton.focus();
  safety.suspendFlag = null;
}

$("suspend-yes").addEventListener("click", async () => {
  const id = safety.suspendFlag;
  closeSuspend(false);
  if (id) await actOnFlag(id, "suspend_tutor");
  $("safety-title").tabIndex = -1;
  $("safety-title").focus(); // its row was redrawn: the section's heading, then the status
});
$("suspend-no").addEventListener("click", () => closeSuspend(true));
$("suspend-confirm").addEventListener("keydown", (event) => { if (event.key === "Escape") closeSuspend(true); });
$("flag-view-close").addEventListener("click", closeFlagView);
$("flag-view").addEventListener("keydown", (event) => { if (event.key === "Escape") closeFlagView(); });
$("safety-refresh").addEventListener("click", refreshSafety);

function startSafety() {
  refreshSafety();
  safety.timer = setInterval(() => { if (!document.hidden) refreshSafety(); }, SAFETY_POLL_MS);
}

// -- start -------------------------------------------------------------------------------
// The token's role (staff or teacher), unverified, for wording only (the server decides).
function roleOf(token) {
  try {
    return JSON.parse(atob(token.split(".")[0].replace(/-/g, "+").replace(/_/g, "/"))).r || null;
  } catch (_) {
    return null;
  }
}

async function start(token) {
  currentToken = token;
  $("dashboard").hidden = false;
  defaults();
  scopeInfo = { role: roleOf(token) };
  let first = true;
  const socket = connect("/staff", async () => {
    if (first) { first = false; return currentToken; }
    currentToken = (await tokens.get()) || currentToken;
    return currentToken;
  });
  socket.on("connect", async () => {
    say($("banner"), "");
    const ack = await call(socket, "staff:live", {});
    if (ack.ok) showLive(ack.figures);
  });
  socket.on("disconnect", (reason) => {
    if (reason !== "io client disconnect") say($("banner"), t("Connection lost. Reconnecting…"));
  });
  socket.on("connect_error", (error) => {
    const code = error && error.data && error.data.code;
    if (code === "not_allowed") { // signed in, but this account may not see the live figures
      socket.disconnect();
      say($("banner"), t("This account may not see the live figures."));
      return;
    }
    say($("banner"), code === "unauthenticated"
      ? t("Your sign-in has expired. Please sign in again.") : t("Connection lost. Reconnecting…"));
  });
  socket.on("staff:live", showLive);
  startSafety();
  try {
    fillFilters(await statsFetch(`${cfg.stats_url}/filters`));
  } catch (error) {
    say($("history-state"), refusalText(error));
    return;
  }
  loadHistory();
}

staffSignIn(tokens, start);
