// Math in the chat (docs/protocol.md "Math"): LaTeX between \( \), \[ \] or $$ $$ is rendered
// with the vendored KaTeX on the reader's page; a single $ is always a dollar sign (money in
// homework: "$5 and $10"). The message stays text: only the pieces between delimiters go to
// KaTeX, which builds DOM nodes itself (trust off, limits on), everything else is a text node.
// KaTeX (script, styles, fonts) is fetched the first time it is needed, so pages load small.
// Also the students' equation toolbar: labelled buttons that insert LaTeX at the cursor.
import { t } from "./i18n.js";
import { el } from "./common.js";

const KATEX_DIR = new URL("../vendor/katex-0.16.47/", import.meta.url);
// throwOnError stays on: KaTeX's own error node sets a style attribute, which the pages'
// Content-Security-Policy refuses; a piece KaTeX cannot parse is shown here as its source.
const OPTIONS = Object.freeze({
  throwOnError: true, trust: false, strict: "ignore", maxExpand: 500, maxSize: 10,
  output: "htmlAndMathml",
});
const MAX_PIECES = 40; // per message: the rest stays text
const MAX_TEX = 500; // characters of one piece
const PAIRS = [["\\(", "\\)", false], ["\\[", "\\]", true], ["$$", "$$", true]];

// "a \(x^2\) b" -> [{text: "a "}, {tex: "x^2", display: false}, {text: " b"}]. An opener
// without its closer, an empty pair or a piece over MAX_TEX stays text.
export function splitMath(text) {
  const pieces = [];
  let plain = "";
  let i = 0;
  let found = 0;
  while (i < text.length) {
    let next = null;
    for (const [open, close, display] of PAIRS) {
      const at = text.indexOf(open, i);
      if (at !== -1 && (next === null || at < next.at)) next = { at, open, close, display };
    }
    if (next === null || found >= MAX_PIECES) break;
    const end = text.indexOf(next.close, next.at + next.open.length);
    const tex = end === -1 ? "" : text.slice(next.at + next.open.length, end);
    if (end === -1 || !tex.trim() || tex.length > MAX_TEX) {
      plain += text.slice(i, next.at + next.open.length);
      i = next.at + next.open.length;
      continue;
    }
    plain += text.slice(i, next.at);
    if (plain) pieces.push({ text: plain });
    plain = "";
    pieces.push({ tex, display: next.display });
    found += 1;
    i = end + next.close.length;
  }
  plain += text.slice(i);
  if (plain) pieces.push({ text: plain });
  return pieces;
}

export function hasMath(text) {
  return splitMath(String(text || "")).some((piece) => piece.tex !== undefined);
}

let katexLoad = null;
// The first call adds KaTeX's stylesheet (its fonts load when a glyph needs them) and
// imports its script (UMD: it sets self.katex).
export function loadKatex() {
  if (!katexLoad) {
    document.head.append(el("link", { rel: "stylesheet", href: new URL("katex.min.css", KATEX_DIR).href }));
    katexLoad = import(new URL("katex.min.js", KATEX_DIR).href).then(() => window.katex);
  }
  return katexLoad;
}

function mathNode(katex, piece) {
  const node = el(piece.display ? "div" : "span", { class: piece.display ? "math math-display" : "math" });
  try {
    katex.render(piece.tex, node, { ...OPTIONS, displayMode: piece.display });
  } catch (_) {
    // a typo or beyond the limits: the source as typed, as text, marked
    const open = piece.display ? "\\[" : "\\(";
    const close = piece.display ? "\\]" : "\\)";
    node.className = "math-error";
    node.title = t("This math could not be shown. Check what you typed.");
    node.replaceChildren(`${open}${piece.tex}${close}`);
  }
  return node;
}

// Render the math in `node`'s text (its only content), once.
export async function renderMath(node) {
  if (!node || node.dataset.math) return;
  const text = node.textContent;
  const pieces = splitMath(text);
  if (!pieces.some((piece) => piece.tex !== undefined)) return;
  node.dataset.math = "pending";
  let katex;
  try {
    katex = await loadKatex();
  } catch (_) {
    node.dataset.math = "unavailable"; // the text stays as typed
    return;
  }
  if (node.textContent !== text) return;
  node.replaceChildren(...pieces.map((piece) => (piece.tex !== undefined
    ? mathNode(katex, piece) : document.createTextNode(piece.text))));
  node.dataset.math = "done";
}

// Render math in every message shown in `container` (a chat log, or a holder of several),
// now and as messages arrive: `.msg > .text` as insertMessage (common.js) builds them.
export function watchMath(container) {
  const scan = (root) => {
    if (!(root instanceof Element)) return;
    if (root.matches(".msg > .text")) renderMath(root);
    for (const node of root.querySelectorAll(".msg > .text")) renderMath(node);
  };
  scan(container);
  new MutationObserver((changes) => {
    for (const change of changes) for (const node of change.addedNodes) scan(node);
  }).observe(container, { childList: true, subtree: true });
}

// -- the equation toolbar ----------------------------------------------------------------
const SNIPPETS = [
  // [face, accessible name, LaTeX, cursor offset from the snippet's start]
  ["a⁄b", () => t("Fraction"), "\\frac{}{}", 6],
  ["xⁿ", () => t("Power"), "^{}", 2],
  ["x₁", () => t("Index (subscript)"), "_{}", 2],
  ["√", () => t("Square root"), "\\sqrt{}", 6],
  ["ⁿ√", () => t("Nth root"), "\\sqrt[]{}", 6],
  ["π", () => t("Pi"), "\\pi ", 4],
  ["×", () => t("Times"), "\\times ", 7],
  ["÷", () => t("Divided by"), "\\div ", 5],
  ["±", () => t("Plus or minus"), "\\pm ", 4],
  ["≤", () => t("Less than or equal to"), "\\le ", 4],
  ["≥", () => t("Greater than or equal to"), "\\ge ", 4],
  ["≠", () => t("Not equal to"), "\\ne ", 4],
  ["°", () => t("Degrees"), "^{\\circ}", 8],
];

// Whether position `at` of `text` is inside an open \( \), \[ \] or $$ $$.
function insideMath(text, at) {
  const before = text.slice(0, at);
  const count = (s) => before.split(s).length - 1;
  return count("\\(") > count("\\)") || count("\\[") > count("\\]") || count("$$") % 2 === 1;
}

function insert(box, snippet, offset) {
  const start = box.selectionStart ?? box.value.length;
  const end = box.selectionEnd ?? start;
  const wrap = !insideMath(box.value, start);
  const text = wrap ? `\\(${snippet}\\)` : snippet;
  const caret = start + (wrap ? 2 : 0) + offset;
  box.setRangeText(text, start, end, "end");
  box.setSelectionRange(caret, caret);
  box.focus();
  box.dispatchEvent(new Event("input", { bubbles: true }));
}

// Arrow keys move between a toolbar's buttons (one tab stop: roving tabindex).
function roving(toolbar) {
  const buttons = () => Array.from(toolbar.querySelectorAll("button"));
  toolbar.addEventListener("keydown", (event) => {
    const list = buttons();
    const i = list.indexOf(document.activeElement);
    if (i === -1) return;
    const rtl = getComputedStyle(toolbar).direction === "rtl";
    const step = { ArrowRight: rtl ? -1 : 1, ArrowLeft: rtl ? 1 : -1, Home: -i, End: list.length - 1 - i }[event.key];
    if (step === undefined) return;
    event.preventDefault();
    const next = list[(i + step + list.length) % list.length];
    for (const b of list) b.tabIndex = b === next ? 0 : -1;
    next.focus();
  });
  buttons().forEach((b, n) => { b.tabIndex = n === 0 ? 0 : -1; });
}

// The students' equation toolbar for `box` (a textarea in a form with .send-actions): a
// "Math" button beside Send shows the toolbar above the box and a preview of the message.
export function mountMathTools(box, idPrefix = "") {
  const form = box.form;
  const toolbarId = `${idPrefix}math-tools`;
  const toggle = el("button", { type: "button", class: "secondary math-toggle", "aria-expanded": "false",
    "aria-controls": toolbarId }, t("Math"));
  const toolbar = el("div", { role: "toolbar", id: toolbarId, class: "math-tools", "aria-label": t("Insert math"), hidden: true },
    ...SNIPPETS.map(([face, name, snippet, offset]) => {
      const button = el("button", { type: "button", class: "secondary", "aria-label": name(), title: name() }, face);
      button.addEventListener("click", () => insert(box, snippet, offset));
      return button;
    }));
  let previewBody = el("p", { class: "math-preview-body" });
  const preview = el("div", { class: "math-preview", hidden: true },
    el("span", { class: "hint" }, t("Preview:")), " ", previewBody);
  const hint = el("p", { class: "hint math-hint", hidden: true },
    t("Math goes between \\( and \\), for example \\(x^2\\). A single $ stays a dollar sign."));
  roving(toolbar);
  box.before(toolbar, hint);
  box.after(preview);
  const actions = form && form.querySelector(".send-actions");
  if (actions) actions.prepend(toggle);
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    toolbar.hidden = !open;
    hint.hidden = !open;
    if (open) {
      loadKatex().catch(() => {}); // ready for the preview
      toolbar.querySelector("button[tabindex='0']").focus();
    }
  });
  const refresh = () => {
    const text = box.value;
    if (!hasMath(text)) { preview.hidden = true; previewBody.replaceChildren(); return; }
    preview.hidden = false;
    const fresh = el("p", { class: "math-preview-body" }, text);
    previewBody.replaceWith(fresh);
    renderMath(fresh);
    previewBody = fresh;
  };
  box.addEventListener("input", refresh);
  // The page empties the box once the message is acknowledged (not an input event): the
  // preview follows the box's value until then.
  if (form) {
    form.addEventListener("submit", () => {
      const sent = box.value;
      const watch = setInterval(() => { if (box.value !== sent) { clearInterval(watch); refresh(); } }, 100);
      setTimeout(() => clearInterval(watch), 15000);
    });
  }
  return { toggle, toolbar, preview };
}
