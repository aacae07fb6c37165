// A tutor's booked sessions (GET /api/scheduler/me/upcoming) with a countdown to each.
// The server says how far away each session is (starts_in_s, from its own clock); the page
// counts down from there with the browser's monotonic clock, and asks again every minute.
import { t, fmtDuration, getLocale } from "./i18n.js";
import { el, say } from "./common.js";
import { api, problemText } from "./api.js";

const REFRESH_MS = 60000;
const DAY_S = 86400;

// "1h 29m" within a day, "2d 1h" beyond.
function until(seconds) {
  if (seconds < DAY_S) return fmtDuration(seconds);
  const unit = (value, name) => new Intl.NumberFormat(getLocale(), { style: "unit", unit: name, unitDisplay: "narrow" }).format(value);
  const hours = Math.floor((seconds % DAY_S) / 3600);
  return hours ? `${unit(Math.floor(seconds / DAY_S), "day")} ${unit(hours, "hour")}` : unit(Math.floor(seconds / DAY_S), "day");
}

// The session's start in its own zone (the school's or the tutor's), not the browser's.
function when(o) {
  try {
    return new Intl.DateTimeFormat(getLocale(), {
      weekday: "short", month: "short", day: "numeric", hour: "numeric", minute: "2-digit", timeZone: o.timezone,
    }).format(new Date(o.starts_at));
  } catch (_) {
    return `${o.local.slice(0, 10)} ${o.local.slice(11, 16)}`;
  }
}

// The zone's own name in the page's language ("Pacific Time"), from Intl; its id if unknown.
function zoneName(o) {
  try {
    const parts = new Intl.DateTimeFormat(getLocale(), { timeZone: o.timezone, timeZoneName: "longGeneric" })
      .formatToParts(new Date(o.starts_at));
    const found = parts.find((part) => part.type === "timeZoneName");
    return found ? found.value : o.timezone;
  } catch (_) {
    return o.timezone;
  }
}

const JOIN_EARLY_S = 600; // the Join button shows from 10 minutes before the start

export function startBooked({ section, list, note, url, joinUrl, getToken, subjectName }) {
  let sessions = [];
  let fetchedAt = 0;
  const leftOf = (o) => o.starts_in_s - (performance.now() - fetchedAt) / 1000;
  const lengthOf = (o) => (Date.parse(o.ends_at) - Date.parse(o.starts_at)) / 1000;
  const JOINED = { present: () => t("You joined on time."), late: () => t("You joined late.") };

  function countdown(o) {
    if (o.status === "cancelled") return o.cancel_reason ? t("Cancelled: {reason}", { reason: o.cancel_reason }) : t("Cancelled");
    const left = leftOf(o);
    const length = lengthOf(o);
    if (left > 0) return t("Starts in {time}", { time: until(left) });
    if (left > -length) return t("In progress");
    return t("Ended");
  }

  function tick() {
    for (const item of list.children) {
      const o = sessions.find((s) => s.id === item.dataset.occurrence);
      const span = o && item.querySelector(".countdown");
      if (span) {
        span.textContent = countdown(o);
        span.dataset.secondsLeft = String(Math.round(leftOf(o)));
      }
      const join = o && item.querySelector(".join");
      if (join) {
        const left = leftOf(o);
        join.hidden = !(o.status === "scheduled" && !o.tutor_status && left <= JOIN_EARLY_S && left > -lengthOf(o));
      }
    }
  }

  // Joining records the tutor's attendance (present within the grace period, else late).
  function joinButton(o) {
    const button = el("button", { type: "button", class: "primary small join", hidden: true,
      "aria-label": t("Join the session of {when}", { when: when(o) }) }, t("Join"));
    button.addEventListener("click", async () => {
      const item = button.closest("li");
      button.disabled = true;
      try {
        const done = await api(joinUrl.replace("{occurrence}", encodeURIComponent(o.id)), { method: "POST", token: await getToken(), body: {} });
        o.tutor_status = done.status;
        item.querySelector(".joined").textContent = JOINED[done.status] ? JOINED[done.status]() : done.status;
        button.hidden = true;
      } catch (error) {
        button.disabled = false;
        item.querySelector(".joined").textContent = problemText(error);
      }
    });
    return button;
  }

  async function load() {
    let data;
    try {
      data = await api(url, { token: await getToken() });
    } catch (_) {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    sessions = data.occurrences || [];
    fetchedAt = performance.now();
    list.replaceChildren(...sessions.map((o) => el("li", { class: `queue-item booked-item occ-${o.status}`, "data-occurrence": o.id },
      el("span", { class: "what" },
        el("time", { datetime: o.local }, when(o)),
        " ", subjectName(o.subject || ""), " ", el("span", { class: "hint" }, `(${zoneName(o)})`)),
      el("span", { class: "countdown", "aria-live": "off" }, countdown(o)),
      joinButton(o),
      el("span", { class: "joined", role: "status" }, o.tutor_status && JOINED[o.tutor_status] ? JOINED[o.tutor_status]() : ""))));
    say(note, sessions.length ? "" : t("No booked sessions in the next two weeks."));
    tick();
  }

  load();
  setInterval(tick, 1000);
  setInterval(load, REFRESH_MS);
  return { reload: load }; // e.g. once the tutor joined a booked room (their attendance changed)
}
