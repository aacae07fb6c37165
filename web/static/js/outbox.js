// The demo outbox (district staff): reminders and notices as the sender would send them,
// from GET /api/scheduling/outbox, so a demo shows reminders without a mail server.
import { t, loadCatalog, languageName, getLocale } from "./i18n.js";
import { $, el, say, config, tokenSource } from "./common.js";
import { staffSignIn } from "./staff-signin.js";
import { api, problemText } from "./api.js";

const cfg = config();
await loadCatalog(cfg.i18n_url, cfg.locale);
const tokens = tokenSource(cfg, "hh_staff_token");
let token = null;

const STATUS = {
  pending: () => t("Waiting"), sent: () => t("Sent"), cancelled: () => t("Withdrawn"), failed: () => t("Gave up"),
};
const KINDS = {
  reminder: () => t("Reminder"), booked: () => t("Booked"), cancelled: () => t("Cancelled"),
  moved: () => t("Moved"), tutor_no_show: () => t("Tutor no-show"),
};
const RECIPIENTS = { student: () => t("Student"), tutor: () => t("Tutor"), parent: () => t("Parent") };
const named = (table, key) => (table[key] ? table[key]() : key);

function when(iso) {
  if (!iso) return "–";
  return new Intl.DateTimeFormat(getLocale(), {
    year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit", timeZone: "UTC", timeZoneName: "short",
  }).format(new Date(iso));
}

async function load() {
  say($("outbox-state"), t("Loading…"));
  let data;
  try {
    data = await api(cfg.outbox_url, { token });
  } catch (error) {
    say($("outbox-state"), problemText(error));
    return;
  }
  const rows = data.messages.map((m) => el("tr", { "data-status": m.status, "data-kind": m.kind },
    el("td", {}, el("time", { datetime: m.created_at }, when(m.created_at))),
    el("td", {}, named(KINDS, m.kind)),
    el("td", {}, named(RECIPIENTS, m.recipient_kind), " ", el("bdi", { "data-i18n-skip": "" }, m.recipient_id)),
    el("td", {}, languageName(m.locale)),
    // the message as it is sent, in the recipient's language
    el("td", { lang: (m.locale || "en").replace("_", "-") }, el("strong", {}, m.subject), el("br", {}), m.body),
    el("td", {}, named(STATUS, m.status), m.sent_at ? ` (${when(m.sent_at)})` : "")));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 6, class: "empty" }, t("The outbox is empty."))));
  $("outbox").replaceChildren(...rows);
  const waiting = data.messages.filter((m) => m.status === "pending").length;
  say($("outbox-state"), t("{count} messages, {waiting} waiting.", { count: data.messages.length, waiting }));
}

async function start(signedIn) {
  token = signedIn;
  $("messages").hidden = false;
  await load();
}

$("refresh").addEventListener("click", load);
staffSignIn(tokens, start);
