// Staff dashboard: live figures (/staff namespace, staff:live), history from
// GET /api/stats/* (docs/stats.md) and the booked programmes from /api/stats/scheduled, drawn with the vendored uPlot, each chart with a table
// view and a CSV download. No figure is ever invented: missing data says so.
import { t, loadCatalog, getLocale, fmtDuration, fmtNumber, fmtTime, languageName } from "./i18n.js";
import { $, el, say, call, connect, config, tokenSource, categoryList } from "./common.js";
import { staffSignIn } from "./staff-signin.js";

const cfg = config();
await loadCatalog(cfg.i18n_url, cfg.locale);
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

function defaults() {
  const today = new Date();
  const tomorrow = new Date(today.getFullYear(), today.getMonth(), today.getDate() + 1);
  const weekAgo = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 6);
  $("f-from").value = isoDay(weekAgo);
  $("f-to").value = isoDay(tomorrow);
  const languages = new Set((cfg.vendors || []).flatMap((v) => v.languages));
  for (const code of languages) $("f-language").append(el("option", { value: code }, languageName(code)));
}

function query(extra) {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData($("filters"))) if (value) params.set(key, String(value));
  for (const [key, value] of Object.entries(extra || {})) params.set(key, value);
  return params.toString();
}

class StatsError extends Error {
  constructor(status) { super(String(status)); this.status = status; }
}

async function getStats(name) {
  const response = await fetch(`${cfg.stats_url}/${name}?${query()}`, {
    credentials: "same-origin",
    headers: { Accept: "application/json", ...(currentToken ? { Authorization: `Bearer ${currentToken}` } : {}) },
  });
  if (!response.ok) throw new StatsError(response.status);
  return response.json();
}

// A CSV link that works with the sign-in cookie as a plain link, and with the bearer token
// when clicked (fetched, then saved from a blob).
function csvLink(name) {
  const href = `${cfg.stats_url}/${name}?${query({ format: "csv" })}`;
  const link = el("a", { href, download: `stats-${name}.csv` }, t("Download CSV"));
  link.addEventListener("click", async (event) => {
    if (!currentToken) return;
    event.preventDefault();
    const response = await fetch(href, { credentials: "same-origin", headers: { Authorization: `Bearer ${currentToken}` } });
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

function table(caption, header, rows) {
  return el("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": caption }, el("table", {},
    el("caption", { class: "visually-hidden" }, caption),
    el("thead", {}, el("tr", {}, ...header.map((h, i) => el("th", { scope: "col", class: i ? "num" : null }, h)))),
    el("tbody", {}, ...(rows.length ? rows.map((row) => el("tr", {},
      ...row.map((cell, i) => (i ? el("td", { class: "num" }, cell) : el("th", { scope: "row" }, cell)))))
      : [el("tr", {}, el("td", { colspan: header.length, class: "empty" }, t("No data for these filters.")))]))));
}

// Bars of `values`; with `line` ({label, values}), a dashed line over them (a target) and
// a legend naming both.
function barChart(holder, caption, labels, values, line) {
  holder.setAttribute("role", "img");
  holder.setAttribute("aria-label", t("{chart}: bar chart; the same figures are in the table below.", { chart: caption }));
  if (!window.uPlot || !labels.length || (!values.some((v) => v) && !(line && line.values.some((v) => v)))) {
    holder.replaceChildren(el("p", { class: "empty" }, t("No data for these filters.")));
    return;
  }
  const width = Math.max(260, Math.min(holder.clientWidth || 320, 720));
  const series = [{}, { label: caption, fill: "#1d4ed8", stroke: "#1e3a8a", width: 1, points: { show: false },
    paths: window.uPlot.paths.bars({ size: [0.7, 80] }) }];
  const data = [labels.map((_, i) => i), values];
  if (line) {
    series.push({ label: line.label, stroke: "#b45309", width: 2, dash: [6, 4], points: { show: true, size: 6 } });
    data.push(line.values);
  }
  const opts = {
    width, height: 220, legend: { show: false }, cursor: { show: false }, select: { show: false },
    scales: { x: { time: false, range: [-0.6, labels.length - 0.4] }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [
      { stroke: "#1f2937", grid: { show: false }, splits: () => labels.map((_, i) => i), values: (u, splits) => splits.map((i) => labels[i] ?? "") },
      { stroke: "#1f2937", grid: { stroke: "#e5e7eb" } },
    ],
    series,
  };
  holder.replaceChildren();
  new window.uPlot(opts, data, holder);
  if (line) {
    holder.append(el("p", { class: "chart-legend" },
      el("span", { class: "swatch bars" }), caption, " ", el("span", { class: "swatch line" }), line.label));
  }
}

// A figure in `holder` (the history's charts by default) with a table view and the CSV
// download of the stats endpoint `csv` (by default the figure's own name).
function figure(name, caption, build, { holder = $("charts"), csv = name } = {}) {
  const plot = el("div", { class: "chart-plot" });
  const details = el("details", {}, el("summary", {}, t("Table view")));
  const fig = el("figure", { class: "chart", "data-stats": name },
    el("figcaption", {}, caption), plot, details,
    el("div", { class: "chart-tools" }, csvLink(csv)));
  holder.append(fig);
  build(plot, details);
  return fig;
}

function kpi(label, value) {
  return el("div", { class: "kpi" }, el("span", { class: "label" }, label), el("span", { class: "value" }, value));
}

const REASONS = {
  language_unsupported: () => t("Language not offered"),
  grade_unsupported: () => t("Grade not served"),
  subject_unsupported: () => t("Subject not served"),
  outside_hours: () => t("Outside hours"),
  school_unknown_grade_ambiguous: () => t("Unknown school, grade 6-8"),
  no_vendor: () => t("No vendor for the school"),
  invalid_grade: () => t("Invalid grade"),
  invalid_language: () => t("Invalid language"),
};
const reasonName = (key) => (REASONS[key] ? REASONS[key]() : key);

// -- booked tutoring (GET /api/stats/scheduled) --------------------------------------------
const PROGRAMMES = { school_based: () => t("School-based"), home_based: () => t("Home-based") };
const programmeName = (key) => (PROGRAMMES[key] ? PROGRAMMES[key]() : key || "–");
const percent = (share) => (share === null || share === undefined ? "–" : fmtNumber(share, { style: "percent", maximumFractionDigits: 1 }));
const schoolName = (row) => row.school_name || row.school;

async function loadScheduled() {
  const stateNote = $("scheduled-state");
  say(stateNote, t("Loading…"));
  $("scheduled-charts").replaceChildren();
  $("scheduled-summary").hidden = true;
  $("scheduled-charts").hidden = true;
  let d;
  try {
    d = await getStats("scheduled");
  } catch (error) {
    const status = error instanceof StatsError ? error.status : 0;
    if (status === 401 || status === 403) say(stateNote, t("No data: sign in with a staff account that may see these statistics."));
    else if (status === 400) say(stateNote, t("No data: check the filters (dates must be in order)."));
    else say(stateNote, t("No data: the statistics could not be loaded. Try again later."));
    return;
  }
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
    barChart(plot, t("Sessions attended per student"), weeks.map((w) => w.week), weeks.map((w) => w.sessions_per_student || 0),
      { label: t("Target"), values: weeks.map((w) => w.target_sessions_per_student || 0) });
    details.append(table(t("Dosage per week"), [t("Week"), t("Students booked"), t("Sessions per student"), t("Target"),
      t("Minutes per student"), t("Target minutes"), t("On target")],
    weeks.map((w) => [w.week, fmtNumber(w.students), fmtNumber(w.sessions_per_student), fmtNumber(w.target_sessions_per_student),
      fmtNumber(w.minutes_per_student), fmtNumber(w.target_minutes_per_student), percent(w.share_on_target)])));
  }, where);

  figure("scheduled-attendance", t("Attendance rate each week (%)"), (plot, details) => {
    barChart(plot, t("Attendance rate each week (%)"), weeks.map((w) => w.week), weeks.map((w) => (w.attendance_rate || 0) * 100));
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
  loadScheduled();
  const stateNote = $("history-state");
  say(stateNote, t("Loading…"));
  $("charts").replaceChildren();
  $("summary").hidden = true;
  $("charts").hidden = true;
  let data;
  try {
    const names = ["summary", "waits", "service-level", "heatmap", "unmet", "groups", "vendors"];
    const results = await Promise.all(names.map(getStats));
    data = Object.fromEntries(names.map((n, i) => [n, results[i]]));
  } catch (error) {
    const status = error instanceof StatsError ? error.status : 0;
    if (status === 404) say(stateNote, t("No data: history statistics are not available on this server yet."));
    else if (status === 401 || status === 403) say(stateNote, t("No data: sign in with a staff account that may see these statistics."));
    else if (status === 400) say(stateNote, t("No data: check the filters (dates must be in order)."));
    else say(stateNote, t("No data: the statistics could not be loaded. Try again later."));
    return;
  }
  say(stateNote, data.summary.requests ? "" : t("No data for these filters."));
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

  const w = data.waits;
  figure("waits", t("Wait before a tutor accepted"), (plot, details) => {
    barChart(plot, t("Wait before a tutor accepted"), w.histogram.map((b) => b.bucket), w.histogram.map((b) => b.count));
    details.append(table(t("Wait percentiles"), [t("Statistic"), t("Value")], [
      [t("Accepted requests"), fmtNumber(w.count)],
      [t("Average"), fmtDuration(w.mean_s)], [t("Median (p50)"), fmtDuration(w.p50_s)],
      [t("90th percentile"), fmtDuration(w.p90_s)], [t("95th percentile"), fmtDuration(w.p95_s)],
      [t("99th percentile"), fmtDuration(w.p99_s)], [t("Longest"), fmtDuration(w.max_s)],
      [t("Gave up while waiting"), fmtNumber(w.gave_up.total)], [t("Still waiting"), fmtNumber(w.still_waiting)],
    ]));
    details.append(table(t("Wait distribution"), [t("Wait"), t("Requests")], w.histogram.map((b) => [b.bucket, fmtNumber(b.count)])));
  });

  figure("service-level", t("Service level"), (plot, details) => {
    barChart(plot, t("Service level"), [t("Within"), t("Later"), t("Gave up")], [sl.within, sl.accepted_later, sl.gave_up]);
    details.append(table(t("Service level"), [t("Statistic"), t("Value")], [
      [t("Threshold"), fmtDuration(sl.threshold_s)], [t("Accepted within"), fmtNumber(sl.within)],
      [t("Accepted later"), fmtNumber(sl.accepted_later)], [t("Gave up"), fmtNumber(sl.gave_up)],
      [t("Share within"), sl.share === null ? "–" : fmtNumber(sl.share, { style: "percent", maximumFractionDigits: 1 })],
    ]));
  });

  const h = data.heatmap;
  figure("heatmap", t("Sessions by hour of the week ({zone})", { zone: h.timezone }), (plot, details) => {
    const max = Math.max(0, ...h.cells.flat());
    const level = (n) => (n && max ? Math.min(5, 1 + Math.floor((4 * n) / max)) : 0);
    plot.replaceChildren(el("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": t("Sessions by day and hour") }, el("table", { class: "heat" },
      el("caption", { class: "visually-hidden" }, t("Sessions by day and hour")),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("Day")), ...h.hours.map((hr) => el("th", { scope: "col" }, String(hr))))),
      el("tbody", {}, ...h.days.map((day, d) => el("tr", {}, el("th", { scope: "row" }, day),
        ...h.cells[d].map((n) => el("td", { class: `heat-${level(n)}` }, n ? String(n) : ""))))))));
    details.append(table(t("Busiest hour"), [t("Statistic"), t("Value")], [
      [t("Sessions"), fmtNumber(h.total)],
      [t("Busiest hour"), h.peak ? `${h.peak.day} ${String(h.peak.hour).padStart(2, "0")}:00 (${h.peak.sessions})` : "–"],
    ]));
  });

  const u = data.unmet;
  figure("unmet", t("Unmet demand by reason"), (plot, details) => {
    barChart(plot, t("Unmet demand by reason"), u.by_reason.map((i) => reasonName(i.key)), u.by_reason.map((i) => i.count));
    details.append(
      table(t("Unmet demand by reason"), [t("Reason"), t("Requests")], u.by_reason.map((i) => [reasonName(i.key), fmtNumber(i.count)])),
      table(t("Unmet demand by language"), [t("Language"), t("Requests")], u.by_language.map((i) => [languageName(i.key), fmtNumber(i.count)])),
      table(t("Unmet demand by grade"), [t("Grade"), t("Requests")], u.by_grade.map((i) => [String(i.key ?? "–"), fmtNumber(i.count)])),
      table(t("Unmet demand by school"), [t("School"), t("Requests")], u.by_school.map((i) => [i.name || String(i.key ?? "–"), fmtNumber(i.count)])));
  });

  const g = data.groups.groups;
  figure("groups", t("Usage by student group (percent of enrolled)"), (plot, details) => {
    barChart(plot, t("Usage by student group (percent of enrolled)"), g.map((r) => r.group), g.map((r) => r.pct_of_enrolled || 0));
    details.append(table(t("Usage by student group"), [t("Group"), t("Enrolled"), t("Students using"), t("Percent of enrolled"), t("Sessions")],
      g.map((r) => [r.group, fmtNumber(r.enrolled), fmtNumber(r.students_using),
        r.pct_of_enrolled === null ? "–" : fmtNumber(r.pct_of_enrolled / 100, { style: "percent", maximumFractionDigits: 2 }),
        fmtNumber(r.sessions)])));
  });

  const v = data.vendors.vendors;
  figure("vendors", t("Vendor capacity used"), (plot, details) => {
    barChart(plot, t("Tutor hours by vendor"), v.map((r) => vendorNames[r.vendor] || r.vendor), v.map((r) => r.tutor_hours || 0));
    details.append(table(t("Vendor capacity used"), [t("Vendor"), t("Sessions"), t("Tutor hours"), t("Tutors"), t("Average chat (min)")],
      v.map((r) => [vendorNames[r.vendor] || r.vendor, fmtNumber(r.sessions), fmtNumber(r.tutor_hours),
        fmtNumber(r.distinct_tutors), fmtNumber(r.avg_session_min)])));
  });
}

$("filters").addEventListener("submit", (event) => { event.preventDefault(); loadHistory(); });

// -- safety: open alerts and the review queue (web/safety_api.py) ---------------------------
// Polled every 10 s while the page is shown; a caller the API refuses (a vendor manager:
// 403) never sees the section. Held words are read one flag at a time ("View"), audited.
const SAFETY_URL = "/api/safety";
const SAFETY_POLL_MS = 10000;
const safety = { timer: null, suspendFlag: null, suspendButton: null, viewButton: null };

class SafetyRefused extends Error {
  constructor(status) { super(String(status)); this.status = status; }
}

async function safetyFetch(path, body) {
  const send = () => fetch(`${SAFETY_URL}${path}`, {
    method: body ? "POST" : "GET",
    credentials: "same-origin",
    headers: {
      Accept: "application/json",
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
  return response.json();
}

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
  parts.push(el("h4", {}, t("Messages kept from this chat")));
  const messages = flag.messages || [];
  parts.push(messages.length
    ? el("ol", { class: "kept-messages" }, ...messages.map((m) => el("li", {},
      el("span", { class: "who" }, label(SENDERS, m.from)), " ",
      el("time", { datetime: m.at || "" }, fmtTime(m.at)), " ", el("span", { class: "text" }, m.text))))
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
async function start(token) {
  currentToken = token;
  $("dashboard").hidden = false;
  defaults();
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
    say($("banner"), code === "unauthenticated" || code === "not_allowed"
      ? t("Your sign-in has expired. Please sign in again.") : t("Connection lost. Reconnecting…"));
  });
  socket.on("staff:live", showLive);
  startSafety();
  loadHistory();
}

staffSignIn(tokens, start);
