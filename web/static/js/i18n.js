// The scripts' translation layer: t("English text", {name: value}) looks the text up in the
// locale's catalog (GET /i18n/{locale}.json, built from i18n/locales/*/messages.po) and
// falls back to the English source. Babel extracts t("...") calls (see i18n/babel.cfg), so
// every visible string must be a literal first argument of t(), never built by concatenation,
// and each t() call must stand on its own: Babel's extractor does not see a t() inside a
// template literal's `${...}` nor one nested in another t()'s arguments (hoist it into a
// const first; tests/test_catalogs_complete.py checks every t("...") is in the catalog).
// Numbers, times and language names come from Intl, which knows every locale's plural rules.

let messages = {};
let locale = "en";

export async function loadCatalog(url, wanted) {
  locale = wanted || document.documentElement.lang || "en";
  if (!url || locale === "en") return locale;
  try {
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.ok) {
      const body = await response.json();
      messages = body.messages || {};
      locale = body.locale || locale;
    }
  } catch (_) {
    // No catalog: the page stays usable in English.
  }
  return locale;
}

export function getLocale() {
  return locale;
}

export function t(msgid, vars) {
  const text = Object.prototype.hasOwnProperty.call(messages, msgid) ? messages[msgid] : msgid;
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (whole, key) =>
    Object.prototype.hasOwnProperty.call(vars, key) ? String(vars[key]) : whole);
}

export function fmtTime(iso) {
  const date = iso ? new Date(iso) : new Date();
  if (Number.isNaN(date.getTime())) return "";
  return new Intl.DateTimeFormat(locale, { hour: "numeric", minute: "2-digit" }).format(date);
}

function unit(value, name) {
  return new Intl.NumberFormat(locale, { style: "unit", unit: name, unitDisplay: "long" })
    .format(value);
}

function shortUnit(value, name) {
  return new Intl.NumberFormat(locale, { style: "unit", unit: name, unitDisplay: "narrow" })
    .format(value);
}

// "about 3 minutes" style, for a student's estimated wait.
export function fmtWait(seconds) {
  const minutes = Math.max(1, Math.round(seconds / 60));
  if (minutes < 60) return unit(minutes, "minute");
  return unit(Math.round(minutes / 6) / 10, "hour");
}

// "2m 05s" style, for ticking waited-times and staff figures.
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return shortUnit(s, "second");
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${shortUnit(m, "minute")} ${shortUnit(s % 60, "second")}` : shortUnit(m, "minute");
  return `${shortUnit(Math.floor(m / 60), "hour")} ${shortUnit(m % 60, "minute")}`;
}

export function fmtNumber(value, options) {
  if (value === null || value === undefined) return "–";
  return new Intl.NumberFormat(locale, options).format(value);
}

// A language's name in the page's language, capitalised as a menu item or table cell.
export function languageName(code) {
  const name = languageInText(code);
  return name ? name.charAt(0).toLocaleUpperCase(locale) + name.slice(1) : code;
}

// ... and as CLDR writes it inside a sentence ("francés" in Spanish, "French" in English).
export function languageInText(code) {
  try {
    return new Intl.DisplayNames([locale], { type: "language" }).of(code) || code;
  } catch (_) {
    return code;
  }
}
