// The staff dashboard's drawings: tables, bar and line charts (the vendored uPlot), a bar
// list for long names, and the day-by-hour heat table. Every chart names its axes and
// their units, is an image whose label says the same figures are in its table, and says
// why when it has nothing to draw (the caller's `empty` text).
import { t, getLocale, fmtNumber } from "./i18n.js";
import { el } from "./common.js";

const INK = "#1f2937";
const GRID = "#e5e7eb";

export function table(caption, header, rows, empty) {
  return el("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": caption }, el("table", {},
    el("caption", { class: "visually-hidden" }, caption),
    el("thead", {}, el("tr", {}, ...header.map((h, i) => el("th", { scope: "col", class: i ? "num" : null }, h)))),
    el("tbody", {}, ...(rows.length ? rows.map((row) => el("tr", {},
      ...row.map((cell, i) => (i ? el("td", { class: "num" }, cell) : el("th", { scope: "row" }, cell)))))
      : [el("tr", {}, el("td", { colspan: header.length, class: "empty" }, empty || t("No data for these filters.")))]))));
}

export function kpi(label, value) {
  return el("div", { class: "kpi" }, el("span", { class: "label" }, label), el("span", { class: "value" }, value));
}

function emptyNote(holder, text) {
  holder.removeAttribute("role");
  holder.removeAttribute("aria-label");
  holder.replaceChildren(el("p", { class: "empty" }, text || t("No data for these filters.")));
}

function describe(holder, label) {
  holder.setAttribute("role", "img");
  holder.setAttribute("aria-label", label);
}

function chartWidth(holder) {
  return Math.max(260, Math.min(holder.clientWidth || 320, 1180));
}

// An axis with its name and unit ("Requests", "Wait (minutes)"), readable ink and grid.
function axis(label, extra) {
  return { stroke: INK, label, labelSize: 24, labelFont: "600 13px system-ui, sans-serif", font: "12px system-ui, sans-serif", ...extra };
}

// A value axis as wide as its longest tick ("20,000" must not run into the axis's name).
const valueAxis = (label) => axis(label, {
  grid: { stroke: GRID },
  size: (u, values) => Math.max(50, 30 + 7 * Math.max(0, ...(values || []).map((v) => String(v).length))),
});

// Bars of `values` over `labels`; `opts`: {x, y} axis names with units, `empty` (why
// nothing is drawn), `line` ({label, values}: a dashed line over the bars, a target).
export function barChart(holder, caption, labels, values, opts = {}) {
  const { line, x, y, empty } = opts;
  if (!window.uPlot || !labels.length || (!values.some((v) => v) && !(line && line.values.some((v) => v)))) {
    emptyNote(holder, empty);
    return;
  }
  describe(holder, x && y
    ? t("{chart}: bar chart, {y} by {x}; the same figures are in the table below.", { chart: caption, x, y })
    : t("{chart}: bar chart; the same figures are in the table below.", { chart: caption }));
  const series = [{}, { label: caption, fill: "#1d4ed8", stroke: "#1e3a8a", width: 1, points: { show: false },
    paths: window.uPlot.paths.bars({ size: [0.7, 80] }) }];
  const data = [labels.map((_, i) => i), values];
  if (line) {
    series.push({ label: line.label, stroke: "#b45309", width: 2, dash: [6, 4], points: { show: true, size: 6 } });
    data.push(line.values);
  }
  const plot = {
    width: Math.min(chartWidth(holder), 720), height: 240, legend: { show: false }, cursor: { show: false }, select: { show: false },
    scales: { x: { time: false, range: [-0.6, labels.length - 0.4] }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [
      axis(x, { grid: { show: false }, splits: () => labels.map((_, i) => i), values: (u, splits) => splits.map((i) => labels[i] ?? "") }),
      valueAxis(y),
    ],
    series,
  };
  holder.replaceChildren();
  new window.uPlot(plot, data, holder);
  if (line) {
    holder.append(el("p", { class: "chart-legend" },
      el("span", { class: "swatch bars" }), caption, " ", el("span", { class: "swatch line" }), line.label));
  }
}

// Lines over time: `labels` are the x ticks (dates as text), `lines` [{label, values,
// style}] with style one of "solid", "dashed", "dotted" (told apart without colour too);
// `opts`: {x, y, empty}. Missing values (null) are gaps.
const LINE_STYLES = {
  solid: { stroke: "#1d4ed8", dash: [] },
  dashed: { stroke: "#166534", dash: [8, 4] },
  dotted: { stroke: "#991b1b", dash: [2, 3] },
};

export function lineChart(holder, caption, labels, lines, opts = {}) {
  const { x, y, empty } = opts;
  if (!window.uPlot || !labels.length || !lines.some((l) => l.values.some((v) => v))) {
    emptyNote(holder, empty);
    return;
  }
  describe(holder, t("{chart}: line chart, {y} by {x}; the same figures are in the table below.", { chart: caption, x, y }));
  const every = Math.max(1, Math.ceil(labels.length / 8));
  const plot = {
    width: chartWidth(holder), height: 240, legend: { show: false }, cursor: { show: false }, select: { show: false },
    scales: { x: { time: false, range: [-0.3, Math.max(labels.length - 0.7, 0.7)] }, y: { range: (u, min, max) => [0, Math.max(1, (max || 0) * 1.1)] } },
    axes: [
      axis(x, { grid: { show: false }, splits: () => labels.map((_, i) => i).filter((i) => i % every === 0), values: (u, splits) => splits.map((i) => labels[i] ?? "") }),
      valueAxis(y),
    ],
    series: [{}, ...lines.map((l) => ({ label: l.label, width: 2, ...LINE_STYLES[l.style || "solid"],
      points: { show: labels.length <= 31, size: 5 }, spanGaps: false }))],
  };
  holder.replaceChildren();
  new window.uPlot(plot, [labels.map((_, i) => i), ...lines.map((l) => l.values)], holder);
  holder.append(el("p", { class: "chart-legend" }, ...lines.flatMap((l) =>
    [el("span", { class: `swatch ${l.style || "solid"}` }), l.label, " "])));
}

// Horizontal bars with their names written out in full (long names do not fit under a
// chart's bars): rows [{label, value, text}], value a share 0-1 of the longest bar.
export function barList(holder, caption, rows, empty) {
  if (!rows.length || !rows.some((r) => r.value)) {
    emptyNote(holder, empty);
    return;
  }
  describe(holder, t("{chart}: bar chart; the same figures are in the table below.", { chart: caption }));
  const max = Math.max(...rows.map((r) => r.value || 0)) || 1;
  holder.replaceChildren(el("div", { class: "bar-list" }, ...rows.map((r) => {
    const fill = el("span", { class: "bar-fill" });
    fill.style.width = `${Math.round((100 * (r.value || 0)) / max)}%`; // CSSOM: allowed by the CSP
    return el("div", { class: "bar-row" }, el("span", { class: "bar-label" }, r.label),
      el("span", { class: "bar-track" }, fill), el("span", { class: "bar-value" }, r.text));
  })));
}

// Weekday names of the page's locale, Monday first (2024-01-01 was a Monday).
export function weekdayNames(style = "short") {
  const fmt = new Intl.DateTimeFormat(getLocale(), { weekday: style, timeZone: "UTC" });
  return Array.from({ length: 7 }, (_, d) => fmt.format(new Date(Date.UTC(2024, 0, 1 + d))));
}

export const hourLabel = (h) => `${String(h).padStart(2, "0")}:00`;

// The day-by-hour table: every hour 00:00-23:00 as a column (the whole day fits a laptop's
// width; a phone scrolls it sideways, with a visible scroll bar and a hint).
export function heatTable(cells, caption) {
  const max = Math.max(0, ...cells.flat());
  const level = (n) => (n && max ? Math.min(5, 1 + Math.floor((4 * n) / max)) : 0);
  const days = weekdayNames();
  const longDays = weekdayNames("long");
  return el("div", { class: "table-wrap heat-wrap", tabindex: 0, role: "region", "aria-label": caption }, el("table", { class: "heat" },
    el("caption", { class: "visually-hidden" }, caption),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("Day")),
      ...Array.from({ length: 24 }, (_, h) => el("th", { scope: "col" }, hourLabel(h))))),
    el("tbody", {}, ...cells.map((row, d) => el("tr", {},
      el("th", { scope: "row" }, el("abbr", { title: longDays[d] }, days[d])),
      ...row.map((n) => el("td", { class: `heat-${level(n)}` }, n ? fmtNumber(n) : "")))))));
}
