// The shared whiteboard of a session (docs/protocol.md "Whiteboard"): pen, line, rectangle,
// ellipse, text, eraser, undo, clear, for both sides. Pointer events (mouse, touch, pen) and
// the keyboard (arrow keys move a cursor, Space draws, Enter places text) both draw; a
// text alternative (what is on the board, who drew, the texts) is kept for screen readers.
// Coordinates are 0..1 of the board, which is 4:3 on every screen, so both sides see the
// same drawing at any size. Each side keeps the board's strokes; board:sync fills them in
// on opening and after a reconnect, board:stroke / board:undo / board:clear keep them current.
import { t } from "./i18n.js";
import { el, say, call, errorText } from "./common.js";

const BATCH_MS = 50; // a pen stroke goes out in batches this often while drawing
const MAX_BATCH = 200; // points (the server takes up to 256)
const ASPECT = 3 / 4;
const KEY_STEP = 0.02;
const ANNOUNCE_EVERY_MS = 8000;
const TOOLS = [
  ["pen", () => t("Pen")], ["line", () => t("Line")], ["rect", () => t("Rectangle")],
  ["ellipse", () => t("Ellipse")], ["text", () => t("Text")], ["eraser", () => t("Eraser")],
];
const COLOURS = [
  ["#1f2937", () => t("Black")], ["#dc2626", () => t("Red")], ["#1d4ed8", () => t("Blue")],
  ["#15803d", () => t("Green")],
];
const SIZES = [[3, () => t("Thin")], [6, () => t("Medium")], [12, () => t("Thick")]];

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const clamp = (v) => Math.min(1, Math.max(0, Math.round(v * 10000) / 10000));

// Draw one stroke on a 2D context of width w, height h.
function paint(ctx, stroke, w, h) {
  const pts = stroke.points || [];
  if (!pts.length) return;
  ctx.save();
  ctx.globalCompositeOperation = stroke.tool === "eraser" ? "destination-out" : "source-over";
  ctx.strokeStyle = stroke.colour;
  ctx.fillStyle = stroke.colour;
  ctx.lineWidth = Math.max(1, (stroke.width * (stroke.tool === "eraser" ? 3 : 1) * w) / 1000);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const [x0, y0] = [pts[0][0] * w, pts[0][1] * h];
  if (stroke.tool === "text") {
    ctx.font = `${Math.max(12, Math.round(w * 0.04))}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    ctx.fillText(stroke.text || "", x0, y0);
  } else if (stroke.tool === "line" || stroke.tool === "rect" || stroke.tool === "ellipse") {
    const [x1, y1] = [(pts[1] || pts[0])[0] * w, (pts[1] || pts[0])[1] * h];
    ctx.beginPath();
    if (stroke.tool === "line") { ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); }
    else if (stroke.tool === "rect") ctx.rect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    else ctx.ellipse((x0 + x1) / 2, (y0 + y1) / 2, Math.abs(x1 - x0) / 2, Math.abs(y1 - y0) / 2, 0, 0, 2 * Math.PI);
    ctx.stroke();
  } else {
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    if (pts.length === 1) ctx.lineTo(x0 + 0.01, y0 + 0.01); // a dot
    for (const [x, y] of pts.slice(1)) ctx.lineTo(x * w, y * h);
    ctx.stroke();
  }
  ctx.restore();
}

// One session's board: its strokes, its canvas and controls (built into `mount`).
export class Board {
  // `otherSide` names the other side inside a sentence (the tutor's name, "the student");
  // `drawingText` and `clearedText` are what is announced when they draw or clear.
  constructor(desk, sessionId, mount, { otherSide, drawingText, clearedText }) {
    this.desk = desk;
    this.sessionId = sessionId;
    this.otherSide = otherSide;
    this.drawingText = drawingText || t("{other} is drawing on the whiteboard.", { other: otherSide });
    this.clearedText = clearedText || t("{other} cleared the whiteboard.", { other: otherSide });
    this.strokes = []; // [{id, by, tool, colour, width, points, text?}] in drawing order
    this.mine = []; // ids of my strokes, for undo
    this.tool = "pen";
    this.colour = COLOURS[0][0];
    this.width = SIZES[0][0];
    this.drawing = null; // the stroke being drawn here
    this.cursor = [0.5, 0.5]; // the keyboard's cursor
    this.ended = false;
    this.lastAnnounce = 0;
    this.build(mount);
    this.sync();
  }

  get id() { return `board-${this.sessionId}`; }

  build(mount) {
    const id = this.id;
    this.toggle = el("button", { type: "button", class: "secondary board-toggle", "aria-expanded": "false", "aria-controls": id },
      t("Whiteboard"));
    this.badge = el("span", { class: "board-new", hidden: true }, t("New drawing"));
    this.toggle.append(" ", this.badge);
    this.toggle.addEventListener("click", () => this.show(this.section.hidden));

    const toolButtons = TOOLS.map(([tool, label]) => this.choice("tool", tool, label(), label()));
    const colourButtons = COLOURS.map(([colour, label]) => {
      const button = this.choice("colour", colour, label(), el("span", { class: "swatch", "data-colour": colour }));
      button.classList.add("board-colour");
      return button;
    });
    const sizeButtons = SIZES.map(([size, label]) => this.choice("width", size, label(), label()));
    this.undoButton = el("button", { type: "button", class: "secondary" }, t("Undo"));
    this.undoButton.addEventListener("click", () => this.undo());
    this.clearButton = el("button", { type: "button", class: "secondary" }, t("Clear"));
    this.clearButton.addEventListener("click", () => this.askClear(true));
    this.tools = el("div", { class: "board-tools", role: "group", "aria-label": t("Whiteboard tools") },
      el("div", { class: "board-group", role: "group", "aria-label": t("Tool") }, ...toolButtons),
      el("div", { class: "board-group", role: "group", "aria-label": t("Colour") }, ...colourButtons),
      el("div", { class: "board-group", role: "group", "aria-label": t("Line width") }, ...sizeButtons),
      el("div", { class: "board-group" }, this.undoButton, this.clearButton));

    const yes = el("button", { type: "button", class: "danger" }, t("Yes, clear it"));
    const no = el("button", { type: "button", class: "secondary" }, t("Keep it"));
    this.confirm = el("div", { class: "notice board-confirm", role: "group", "aria-labelledby": `${id}-confirm`, hidden: true },
      el("p", { id: `${id}-confirm` }, t("Clear the whiteboard for both of you? This cannot be undone.")), yes, " ", no);
    yes.addEventListener("click", () => { this.askClear(false); this.clear(); });
    no.addEventListener("click", () => { this.askClear(false); this.clearButton.focus(); });
    this.confirm.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { this.askClear(false); this.clearButton.focus(); }
    });

    this.description = el("div", { id: `${id}-desc`, class: "visually-hidden" });
    this.canvas = el("canvas", { class: "board-canvas", tabindex: 0, role: "img",
      "aria-label": t("Shared whiteboard"), "aria-describedby": `${id}-desc ${id}-help` });
    this.frame = el("div", { class: "board-frame" }, this.canvas);
    const help = el("p", { id: `${id}-help`, class: "hint" },
      t("Draw with a finger, a pen or the mouse. With the keyboard: arrow keys move the cursor, Space starts and ends a stroke, Enter places text."));
    this.textInput = el("input", { type: "text", id: `${id}-text`, maxlength: 200, autocomplete: "off" });
    const place = el("button", { type: "submit", class: "secondary" }, t("Place text"));
    this.textForm = el("form", { class: "board-text", hidden: true },
      el("label", { for: `${id}-text` }, t("Text for the whiteboard")), this.textInput, place);
    this.textForm.addEventListener("submit", (event) => { event.preventDefault(); this.placeText(); });
    this.textInput.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { this.textForm.hidden = true; this.canvas.focus(); }
    });
    this.status = el("p", { class: "error", role: "alert", hidden: true });
    this.announcer = el("p", { class: "visually-hidden", role: "status", "aria-live": "polite" });
    this.section = el("section", { id, class: "board", "aria-label": t("Whiteboard"), hidden: true },
      this.tools, this.confirm, this.frame, help, this.textForm, this.status, this.description);
    mount.replaceChildren(el("div", { class: "board-bar" }, this.toggle), this.announcer, this.section);
    this.pick("tool", this.tool);
    this.pick("colour", this.colour);
    this.pick("width", this.width);
    this.bindPointer();
    this.bindKeys();
    new ResizeObserver(() => this.resize()).observe(this.frame);
  }

  choice(kind, value, label, face) {
    const button = el("button", { type: "button", class: "secondary", "aria-pressed": "false",
      "data-kind": kind, "data-value": String(value), "aria-label": label, title: label }, face);
    button.addEventListener("click", () => this.pick(kind, value));
    return button;
  }

  pick(kind, value) {
    this[kind] = value;
    for (const button of this.tools.querySelectorAll(`[data-kind="${kind}"]`)) {
      button.setAttribute("aria-pressed", button.dataset.value === String(value) ? "true" : "false");
    }
    if (kind === "tool" && value !== "text") this.textForm.hidden = true;
  }

  show(open) {
    this.section.hidden = !open;
    this.toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      this.badge.hidden = true;
      this.resize();
      this.canvas.focus();
    }
  }

  askClear(open) {
    this.confirm.hidden = !open;
    this.clearButton.hidden = open;
    if (open) this.confirm.querySelector("button").focus();
  }

  // -- drawing ---------------------------------------------------------------------------
  resize() {
    const width = Math.max(1, Math.round(this.frame.clientWidth));
    const height = Math.round(width * ASPECT);
    const ratio = window.devicePixelRatio || 1;
    this.canvas.style.height = `${height}px`;
    this.canvas.width = Math.round(width * ratio);
    this.canvas.height = Math.round(height * ratio);
    this.redraw();
  }

  redraw() {
    const ctx = this.canvas.getContext("2d");
    const { width: w, height: h } = this.canvas;
    ctx.clearRect(0, 0, w, h);
    for (const stroke of this.strokes) paint(ctx, stroke, w, h);
    if (this.drawing) paint(ctx, this.drawing, w, h);
    if (document.activeElement === this.canvas && this.keyboard) {
      const [x, y] = [this.cursor[0] * w, this.cursor[1] * h];
      ctx.save();
      ctx.strokeStyle = "#b45309";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(x - 10, y); ctx.lineTo(x + 10, y); ctx.moveTo(x, y - 10); ctx.lineTo(x, y + 10);
      ctx.stroke();
      ctx.restore();
    }
    this.describe();
  }

  // The text alternative: how many drawings, by whom, and the texts on the board.
  describe() {
    const by = (side) => this.strokes.filter((s) => s.by === side).length;
    const me = this.desk.role;
    const texts = this.strokes.filter((s) => s.tool === "text").map((s) => s.text);
    const parts = [this.strokes.length
      ? t("Drawings on the whiteboard: {n} by you, {m} by {other}.", { n: by(me), m: by(me === "student" ? "tutor" : "student"), other: this.otherSide })
      : t("The whiteboard is empty.")];
    if (texts.length) parts.push(t("Texts on the whiteboard: {texts}", { texts: texts.join("; ") }));
    this.description.textContent = parts.join(" ");
  }

  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
  }

  start(at) {
    if (this.ended) return;
    if (this.tool === "text") { this.askText(at); return; }
    this.drawing = { id: newId(), by: this.desk.role, tool: this.tool, colour: this.colour, width: this.width, points: [at] };
    this.sentPoints = 0;
    this.part = 0;
    if (this.tool === "pen" || this.tool === "eraser") {
      this.batchTimer = setInterval(() => this.flush(), BATCH_MS);
    }
  }

  move(at) {
    const d = this.drawing;
    if (!d) return;
    if (d.tool === "pen" || d.tool === "eraser") {
      d.points.push(at);
      if (d.points.length - this.sentPoints >= MAX_BATCH) this.flush();
    } else {
      d.points = [d.points[0], at];
    }
    this.redraw();
  }

  finish() {
    const d = this.drawing;
    if (!d) return;
    clearInterval(this.batchTimer);
    if (d.tool === "pen" || d.tool === "eraser") this.flush();
    else {
      if (d.points.length < 2) d.points.push(d.points[0]);
      this.send({ ...d, part: 0, points: d.points });
    }
    this.strokes.push(d);
    this.mine.push(d.id);
    this.drawing = null;
    this.redraw();
  }

  // The points of the pen stroke not sent yet, as the next batch.
  flush() {
    const d = this.drawing;
    if (!d || d.points.length <= this.sentPoints) return;
    const points = d.points.slice(this.sentPoints, this.sentPoints + MAX_BATCH);
    this.sentPoints += points.length;
    this.send({ ...d, part: this.part, points });
    this.part += 1;
  }

  async send(stroke) {
    const payload = { session_id: this.sessionId, id: stroke.id, part: stroke.part, tool: stroke.tool,
      colour: stroke.colour, width: stroke.width, points: stroke.points };
    if (stroke.tool === "text") payload.text = stroke.text;
    const ack = await call(this.desk.socket, "board:stroke", payload);
    if (ack.ok) {
      if (stroke.tool === "text" && ack.stroke.text !== stroke.text) {
        const mine = this.strokes.find((s) => s.id === stroke.id && s.by === this.desk.role);
        if (mine) { mine.text = ack.stroke.text; this.redraw(); } // masked by the chat's rules
      }
      return;
    }
    this.refused(ack.error);
  }

  refused(error) {
    const full = error && error.code === "conflict";
    say(this.status, full ? t("The whiteboard is full. Clear it to keep drawing.")
      : error && error.code === "not_allowed" ? t("This text can't go on the whiteboard.") : errorText(error));
    this.sync(); // show the board as the server has it
  }

  askText(at) {
    this.textAt = at;
    this.textForm.hidden = false;
    this.textInput.value = "";
    this.textInput.focus();
  }

  placeText() {
    const text = this.textInput.value.replace(/[\u0000-\u001f]/g, " ").trim().slice(0, 200);
    this.textForm.hidden = true;
    this.canvas.focus();
    if (!text || this.ended) return;
    const stroke = { id: newId(), by: this.desk.role, tool: "text", colour: this.colour, width: this.width,
      points: [this.textAt || this.cursor], text, part: 0 };
    this.strokes.push(stroke);
    this.mine.push(stroke.id);
    this.redraw();
    this.send(stroke);
  }

  async undo() {
    const id = this.mine.pop();
    if (!id || this.ended) return;
    this.strokes = this.strokes.filter((s) => !(s.id === id && s.by === this.desk.role));
    this.redraw();
    const ack = await call(this.desk.socket, "board:undo", { session_id: this.sessionId, id });
    if (!ack.ok) this.refused(ack.error);
  }

  async clear() {
    if (this.ended) return;
    this.strokes = [];
    this.mine = [];
    this.redraw();
    const ack = await call(this.desk.socket, "board:clear", { session_id: this.sessionId });
    if (!ack.ok) this.refused(ack.error);
    else say(this.status, "");
    this.clearButton.focus();
  }

  bindPointer() {
    const c = this.canvas;
    c.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || this.ended) return;
      event.preventDefault();
      this.keyboard = false;
      c.setPointerCapture(event.pointerId);
      this.start(this.point(event));
    });
    c.addEventListener("pointermove", (event) => {
      if (!this.drawing) return;
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
      for (const e of (events.length ? events : [event])) this.move(this.point(e));
    });
    const end = () => this.finish();
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
  }

  bindKeys() {
    const c = this.canvas;
    // the keyboard's cursor shows when the board was reached by keyboard (focus-visible)
    c.addEventListener("focus", () => { this.keyboard = c.matches(":focus-visible"); this.redraw(); });
    c.addEventListener("blur", () => this.redraw());
    c.addEventListener("keydown", (event) => {
      const step = event.shiftKey ? KEY_STEP / 4 : KEY_STEP;
      const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
        event.preventDefault();
        this.undo();
        return;
      }
      if (moves[event.key]) {
        event.preventDefault();
        this.keyboard = true;
        const [dx, dy] = moves[event.key];
        this.cursor = [clamp(this.cursor[0] + dx), clamp(this.cursor[1] + dy)];
        if (this.drawing) this.move(this.cursor);
        else this.redraw();
      } else if (event.key === " ") {
        event.preventDefault();
        if (this.drawing) this.finish();
        else if (this.tool !== "text") this.start(this.cursor);
      } else if (event.key === "Enter") {
        event.preventDefault();
        if (this.drawing) this.finish();
        else this.start(this.cursor);
      } else if (event.key === "Escape" && this.drawing) {
        clearInterval(this.batchTimer);
        const d = this.drawing;
        this.drawing = null;
        if (this.sentPoints) { this.strokes.push(d); this.mine.push(d.id); } // already sent
        this.redraw();
      }
    });
  }

  // -- what the other side did --------------------------------------------------------------
  remoteStroke(data) {
    const known = this.strokes.find((s) => s.id === data.id && s.by === data.by);
    if (known && (known.tool === "pen" || known.tool === "eraser")) known.points = known.points.concat(data.points);
    else if (!known) this.strokes.push({ id: data.id, by: data.by, tool: data.tool, colour: data.colour,
      width: data.width, points: data.points, text: data.text });
    this.noticed();
    this.redraw();
  }

  remoteUndo(data) {
    this.strokes = this.strokes.filter((s) => !(s.id === data.id && s.by === data.by));
    this.redraw();
  }

  remoteClear() {
    this.strokes = [];
    this.mine = [];
    this.redraw();
    this.announce(this.clearedText);
  }

  noticed() {
    if (this.section.hidden) this.badge.hidden = false;
    this.announce(this.drawingText);
  }

  announce(text) {
    const now = Date.now();
    if (now - this.lastAnnounce < ANNOUNCE_EVERY_MS) return;
    this.lastAnnounce = now;
    this.announcer.textContent = text;
  }

  async sync() {
    const ack = await call(this.desk.socket, "board:sync", { session_id: this.sessionId });
    if (!ack.ok) return;
    const strokes = (ack.strokes || []).map((s) => ({ ...s }));
    if (this.drawing) strokes.push(this.drawing);
    this.strokes = strokes.filter((s) => s !== this.drawing);
    this.mine = this.strokes.filter((s) => s.by === this.desk.role).map((s) => s.id);
    if (this.strokes.some((s) => s.by !== this.desk.role) && this.section.hidden) this.badge.hidden = false;
    this.redraw();
  }

  // The session ended: the drawing stays visible, nothing more can be drawn.
  end() {
    this.ended = true;
    clearInterval(this.batchTimer);
    this.drawing = null;
    for (const button of this.tools.querySelectorAll("button")) button.disabled = true;
    this.textForm.hidden = true;
  }
}

// Every board of a page, by session id, and the socket's board events routed to them.
export class BoardDesk {
  constructor(socket, role) {
    this.socket = socket;
    this.role = role;
    this.boards = new Map();
    socket.on("board:stroke", (data) => { const b = this.boards.get(data.session_id); if (b) b.remoteStroke(data); });
    socket.on("board:undo", (data) => { const b = this.boards.get(data.session_id); if (b) b.remoteUndo(data); });
    socket.on("board:clear", (data) => { const b = this.boards.get(data.session_id); if (b) b.remoteClear(data); });
    const resync = () => { for (const board of this.boards.values()) if (!board.ended) board.sync(); };
    socket.on("server:resync", resync);
    this.connectedOnce = socket.connected;
    socket.on("connect", () => { if (this.connectedOnce) resync(); this.connectedOnce = true; });
  }

  // The board of `sessionId`, built into `mount` (kept when it exists already).
  open(sessionId, mount, options) {
    let board = this.boards.get(sessionId);
    if (!board || board.mount !== mount) {
      board = new Board(this, sessionId, mount, options);
      board.mount = mount;
      this.boards.set(sessionId, board);
    }
    return board;
  }

  // The page's one board (the widget's chat): any other board is closed.
  openOnly(sessionId, mount, options) {
    for (const id of Array.from(this.boards.keys())) if (id !== sessionId) this.close(id);
    return this.open(sessionId, mount, options);
  }

  end(sessionId) {
    const board = this.boards.get(sessionId);
    if (board) board.end();
  }

  close(sessionId) {
    this.end(sessionId);
    this.boards.delete(sessionId);
  }
}
