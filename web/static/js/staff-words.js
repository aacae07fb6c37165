// The staff dashboard's words for what the statistics API gives as codes: reasons, student
// groups (written out, abbreviation after), grades, wait buckets, days and weeks, the
// district's time zone by name, and the chosen range as a sentence. Pure: no DOM, no I/O.
import { t, getLocale } from "./i18n.js";

// An ISO date (YYYY-MM-DD) as a Date at UTC midnight: formatted with timeZone "UTC", it is
// that calendar day wherever the browser is.
export const utcDay = (iso) => { const [y, m, d] = String(iso).split("-").map(Number); return new Date(Date.UTC(y, m - 1, d)); };

// "Pacific Time" for America/Los_Angeles, in the page's language (the zone's id if the
// browser cannot name it).
export function zoneName(zone) {
  try {
    const parts = new Intl.DateTimeFormat(getLocale(), { timeZone: zone, timeZoneName: "longGeneric" }).formatToParts(new Date());
    return (parts.find((p) => p.type === "timeZoneName") || {}).value || zone;
  } catch (_) {
    return zone;
  }
}

// "Showing Tue, Nov 24 – Mon, Nov 30, 2026, Pacific Time.": first and last day included.
export function rangeWords(from, last, zone) {
  const fmt = new Intl.DateTimeFormat(getLocale(), { weekday: "short", day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  const name = zoneName(zone);
  if (from && last) return t("Showing {range}, {zone}.", { range: fmt.formatRange(utcDay(from), utcDay(last)), zone: name });
  if (from) return t("Showing from {day} to today, {zone}.", { day: fmt.format(utcDay(from)), zone: name });
  if (last) return t("Showing everything up to {day}, {zone}.", { day: fmt.format(utcDay(last)), zone: name });
  return t("Showing everything recorded, {zone}.", { zone: name });
}

// A trend point's day ("Jan 8") or week ("week of Jan 8").
export function bucketLabel(iso, bucket, style) {
  const fmt = new Intl.DateTimeFormat(getLocale(), { day: "numeric", month: "short", timeZone: "UTC", ...(style || {}) });
  const text = fmt.format(utcDay(iso));
  return bucket === "week" ? t("week of {day}", { day: text }) : text;
}

// Grades as routing numbers them (PK = -2, TK = -1, K = 0) and as the API's `grade` takes them.
export const gradeName = (g) => (g === -2 ? t("Pre-kindergarten") : g === -1 ? t("Transitional kindergarten")
  : g === 0 ? t("Kindergarten") : t("Grade {n}", { n: g }));
const GRADE_PARAM = { "-2": "PK", "-1": "TK", 0: "K" };
export const gradeParam = (g) => GRADE_PARAM[g] || String(g);
export const gradeKey = (key) => (key === null || key === undefined ? "–" : gradeName(key));

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
export const reasonName = (key) => (REASONS[key] ? REASONS[key]() : key);

// The district's student groups, written out with the abbreviation after.
const GROUPS = {
  All: () => t("All students"),
  SWD: () => t("Students with disabilities (SWD)"),
  EL: () => t("English learners (EL)"),
  RFEP: () => t("Reclassified fluent English proficient (RFEP)"),
};
export const groupName = (key) => (GROUPS[key] ? GROUPS[key]() : key);

// The wait histogram's buckets (the API's "0-30s" ... "20+ min"), in the page's language.
const WAIT_BUCKETS = [
  () => t("under 30 s"), () => t("30-60 s"), () => t("1-2 min"), () => t("2-5 min"),
  () => t("5-10 min"), () => t("10-20 min"), () => t("20+ min"),
];
export const bucketName = (i, raw) => (WAIT_BUCKETS[i] ? WAIT_BUCKETS[i]() : raw);
