// Pictures in the chat (docs/protocol.md, "Images"). A student's photo of the problem (the
// camera or a file) or a tutor's picture goes up over HTTP (POST
// /api/sessions/{id}/images with the chat's own token, with progress), is announced with
// chat:send {image}, and both sides show it in the chat with alt text; activating it opens
// it full size in an in-page dialog (Escape or Close goes back). The server checks, strips
// and scales every picture: the checks here only spare a long upload that it would refuse.
// The widget loads this module on first use (a picture chosen or received), so its first
// load stays small; the tutor console imports it.
import { t } from "./i18n.js";
import { el, say, call, errorText } from "./common.js";

const MAX_BYTES = 10 * 1024 * 1024;
const SENT_TYPES = ["image/jpeg", "image/png", "image/webp"];

const imagesUrl = (sessionId) => `/api/sessions/${encodeURIComponent(sessionId)}/images`;

export function imageUrl(sessionId, imageId) {
  return `${imagesUrl(sessionId)}/${encodeURIComponent(imageId)}`;
}

// The two ways to pick a picture, as labelled file inputs (keyboard: Tab to one, Space or
// Enter opens it): a file, and on touch screens the camera. `suffix` keeps ids unique.
export function pictureControls(suffix, onFile) {
  const control = (kind, label, attrs) => {
    const id = `photo-${kind}${suffix}`;
    const input = el("input", { type: "file", id, class: "visually-hidden", ...attrs });
    input.addEventListener("change", () => {
      const file = input.files && input.files[0];
      input.value = "";
      if (file) onFile(file);
    });
    return el("span", { class: `attach ${kind}` }, input, el("label", { for: id, class: "button secondary" }, label));
  };
  return [
    control("pick", t("Add a picture"), { accept: SENT_TYPES.join(",") }),
    control("camera", t("Take a photo"), { accept: "image/*", capture: "environment" }),
  ];
}

// What a refused picture means, in the reader's words.
export function imageErrorText(error) {
  const code = error && error.code;
  const detail = (error && error.detail) || error || {};
  switch (code) {
    case "image_too_large": return t("This picture is too big to send. Send one smaller than 10 MB.");
    case "unsupported_image": return t("This file can't be sent. Send a photo or a picture (JPEG, PNG or WebP).");
    case "bad_image":
      return detail.reason === "unreadable"
        ? t("This picture could not be opened. Try taking it again.")
        : t("This picture has too many pixels. Take a smaller photo or a screenshot.");
    case "image_limit": return t("No more pictures can be sent in this chat.");
    case "rate_limited": return t("You are sending pictures too fast. Wait a moment.");
    default: return errorText(error);
  }
}

// POST the file; {ok, image} or {ok: false, error: {code, ...}} (a problem body's fields).
function upload(url, file, token, progress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) progress(Math.floor((100 * event.loaded) / event.total));
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
      if (xhr.status === 201 && body && body.image) resolve({ ok: true, image: body.image });
      else resolve({ ok: false, error: body && body.code ? body : { code: `http_${xhr.status}` } });
    });
    const failed = () => resolve({ ok: false, error: { code: "timeout" } });
    xhr.addEventListener("error", failed);
    xhr.addEventListener("timeout", failed);
    xhr.timeout = 120000;
    xhr.send(file);
  });
}

// Send one picture into the open session: upload, then announce it. The message made (to
// show as one's own), or null with the reason said in `error`. Progress goes to `status`.
export async function sendImage({ socket, sessionId, file, token, status, error }) {
  say(error, "");
  if (file.type && !SENT_TYPES.includes(file.type)) {
    say(error, imageErrorText({ code: "unsupported_image" }));
    return null;
  }
  if (file.size > MAX_BYTES) {
    say(error, imageErrorText({ code: "image_too_large" }));
    return null;
  }
  say(status, t("Sending your picture…"));
  let step = 0; // progress is said at each quarter, not at every event (screen readers)
  const up = await upload(imagesUrl(sessionId), file, await token(), (percent) => {
    if (Math.floor(percent / 25) <= step || percent >= 100) return;
    step = Math.floor(percent / 25);
    say(status, t("Sending your picture… {percent}%", { percent: step * 25 }));
  });
  if (!up.ok) {
    say(status, "");
    say(error, imageErrorText(up.error));
    return null;
  }
  const payload = { session_id: sessionId, image: up.image.id };
  let ack = await call(socket, "chat:send", payload);
  // A lost acknowledgement: send again. The picture's message is made at most once.
  if (!ack.ok && ack.error.code === "timeout") ack = await call(socket, "chat:send", payload);
  say(status, "");
  if (!ack.ok) {
    say(error, imageErrorText(ack.error));
    return null;
  }
  return ack.held ? null : ack.message;
}

const loaded = new Map(); // image id -> Promise of a data: URL (the pages allow data: images)

function fetchImage(sessionId, imageId, token) {
  if (!loaded.has(imageId)) {
    loaded.set(imageId, (async () => {
      const response = await fetch(imageUrl(sessionId, imageId), {
        headers: { Authorization: `Bearer ${await token()}` }, cache: "no-store",
      });
      if (!response.ok) throw new Error(String(response.status));
      const blob = await response.blob();
      return new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result);
        reader.onerror = () => reject(reader.error);
        reader.readAsDataURL(blob);
      });
    })());
    loaded.get(imageId).catch(() => loaded.delete(imageId));
  }
  return loaded.get(imageId);
}

function altText(message, role) {
  if (message.text) return message.text;
  if (message.from === role) return t("Your picture");
  return message.from === "tutor" ? t("Picture from your tutor") : t("Picture from the student");
}

// Show the picture of `message` inside its chat item (from insertMessage's "hh:image"
// event). `role`: who is looking ("student" or "tutor"); `token`: async, the chat's token.
export async function showImage(item, message, { token, role }) {
  const image = message.image;
  const alt = altText(message, role);
  const note = el("p", { class: "hint" }, t("Loading the picture…"));
  const figure = el("figure", { class: "chat-image" }, note);
  item.append(figure);
  let url;
  try {
    url = await fetchImage(message.session_id, image.id, token);
  } catch (_) {
    note.textContent = t("This picture is no longer available.");
    return;
  }
  const img = el("img", { src: url, alt, width: image.width, height: image.height });
  const open = el("button", { type: "button", class: "image-open", "aria-haspopup": "dialog",
    "aria-label": t("Open the picture full size: {description}", { description: alt }) }, img);
  open.addEventListener("click", () => viewFull(url, alt, open));
  note.replaceWith(open);
  const list = item.parentElement;
  if (list) list.scrollTop = list.scrollHeight;
}

let viewer = null;

function viewFull(url, alt, opener) {
  if (!viewer) {
    const close = el("button", { type: "button", class: "secondary" }, t("Close"));
    viewer = el("dialog", { class: "image-view", "aria-label": t("Picture, full size") },
      el("img", { alt: "" }), close);
    close.addEventListener("click", () => viewer.close());
    document.body.append(viewer);
  }
  const img = viewer.querySelector("img");
  img.src = url;
  img.alt = alt;
  viewer.onclose = () => opener.focus();
  viewer.showModal();
  viewer.querySelector("button").focus();
}
