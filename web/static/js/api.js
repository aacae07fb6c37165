// JSON calls for the scheduler's pages: the caller's bearer token (tutors, staff) or the
// sign-in cookie; a refusal becomes a Problem carrying the server's typed problem body
// (code, title: the message, and the rule's details such as dates), shown next to the form.
import { t } from "./i18n.js";
import { say } from "./common.js";

export class Problem extends Error {
  constructor(status, body) {
    super((body && (body.title || body.message)) || String(status));
    this.status = status;
    this.body = body || {};
    this.code = this.body.code || `http_${status}`;
  }
}

// `body`: an object sent as JSON, or a File/Blob sent as it is (an import's raw file).
export async function api(url, { method = "GET", body, token } = {}) {
  const headers = { Accept: "application/json" };
  const raw = body instanceof Blob;
  if (body !== undefined) headers["Content-Type"] = raw ? body.type || "application/octet-stream" : "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, {
      method, credentials: "same-origin", headers,
      body: body === undefined || raw ? body : JSON.stringify(body),
    });
  } catch (_) {
    throw new Problem(0, { code: "network", title: t("The server did not answer. Check your connection and try again.") });
  }
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) throw new Problem(response.status, data);
  return data;
}

// "the message (code)", with the first refused dates when the rule names them.
export function problemText(error) {
  if (!(error instanceof Problem)) return t("Something went wrong. Please try again.");
  // a database or Redis outage (503): nothing was changed; said in the reader's language
  if (error.code === "unavailable") return t("The service is briefly unavailable. Nothing was changed. Please try again in a minute.");
  const dates = Array.isArray(error.body.dates) ? error.body.dates : [];
  const text = t("{message} (code: {code})", { message: error.message, code: error.code });
  if (!dates.length) return text;
  const shown = dates.slice(0, 5).join(", ") + (dates.length > 5 ? "…" : "");
  const listed = t("Dates: {dates}", { dates: shown }); // not inside `${...}`: see i18n.js
  return `${text} ${listed}`;
}

// Run `work` for a form: clear its messages, show the refusal or the success text.
export async function submitting(form, errorNode, doneNode, work) {
  say(errorNode, "");
  if (doneNode) say(doneNode, "");
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  try {
    const done = await work();
    if (doneNode && done) say(doneNode, done);
    return true;
  } catch (error) {
    say(errorNode, problemText(error));
    return false;
  } finally {
    if (button) button.disabled = false;
  }
}
