// Attention (issue 14): what tells someone whose tab is in the background that their chat
// needs them: a count in the tab title, a short sound and a browser notification.
//
// Guarantees:
// - The title is "(n) <page title>" while n > 0, the page's own title otherwise; the page
//   sets n (the tutor console counts waiting students too) or lets `notify` count unread
//   events that arrive while the tab is hidden; showing the tab clears that count.
// - The sound is generated with WebAudio (no file): it can play only after the person's first
//   click or key on the page (browsers refuse sound before), and never when they turned it
//   off (their choice is kept in localStorage under `soundKey`).
// - A notification is shown only while the tab is hidden, only if the browser already has
//   permission; permission is asked only from `askPermission`, which a page calls from a
//   click (a user gesture), never by itself. Its text is already translated by the caller.
export class Attention {
  constructor({ soundKey, soundDefault = true } = {}) {
    this.baseTitle = document.title;
    this.badge = 0;
    this.hiddenUnread = 0;
    this.soundKey = soundKey;
    this.soundOn = soundDefault;
    try {
      const kept = localStorage.getItem(soundKey);
      if (kept === "1" || kept === "0") this.soundOn = kept === "1";
    } catch (_) { /* storage blocked: the default holds */ }
    this.audio = null;
    const unlock = () => this.unlockAudio();
    document.addEventListener("click", unlock, { capture: true });
    document.addEventListener("keydown", unlock, { capture: true });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.hiddenUnread) { this.hiddenUnread = 0; this.render(); }
    });
  }

  get hidden() { return document.hidden; }

  // The page's own count (e.g. unread messages of unselected chats, waiting students).
  setBadge(n) {
    this.badge = Math.max(0, Number(n) || 0);
    this.render();
  }

  render() {
    const n = this.badge + this.hiddenUnread;
    document.title = n ? `(${n}) ${this.baseTitle}` : this.baseTitle;
  }

  setSound(on) {
    this.soundOn = Boolean(on);
    try { localStorage.setItem(this.soundKey, on ? "1" : "0"); } catch (_) { /* */ }
  }

  // Something happened: count it in the title while hidden (unless the page counts it
  // itself: `count: false`), sound it, and show a notification while hidden.
  notify({ title, body = "", count = true, sound = true, tag } = {}) {
    if (count && this.hidden) { this.hiddenUnread += 1; this.render(); }
    if (sound) this.beep();
    if (this.hidden && title && typeof Notification !== "undefined" && Notification.permission === "granted") {
      try {
        const shown = new Notification(title, { body, tag, lang: document.documentElement.lang });
        shown.onclick = () => { window.focus(); shown.close(); };
      } catch (_) { /* some browsers allow notifications only from a service worker */ }
    }
  }

  // Whether asking for notification permission makes sense now (not asked yet).
  get canAsk() {
    return typeof Notification !== "undefined" && Notification.permission === "default";
  }

  // Call from a click only. Resolves to the permission ("granted", "denied", "default").
  async askPermission() {
    if (typeof Notification === "undefined") return "denied";
    try { return await Notification.requestPermission(); } catch (_) { return Notification.permission; }
  }

  unlockAudio() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!this.audio && Context) {
      try { this.audio = new Context(); } catch (_) { return; }
    }
    if (this.audio && this.audio.state === "suspended") this.audio.resume().catch(() => {});
  }

  // Two short notes (880 Hz then 1175 Hz, 0.3 s), quiet.
  beep() {
    const audio = this.audio;
    if (!this.soundOn || !audio || audio.state !== "running") return;
    const now = audio.currentTime;
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.setValueAtTime(880, now);
    osc.frequency.setValueAtTime(1175, now + 0.12);
    gain.gain.setValueAtTime(0.0001, now);
    gain.gain.exponentialRampToValueAtTime(0.25, now + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.3);
    osc.connect(gain).connect(audio.destination);
    osc.start(now);
    osc.stop(now + 0.32);
  }
}

// The controls a page offers: a "Sound" checkbox and a "Turn on notifications" button
// (shown only while the browser has not been asked). Both are in the page's template.
export function attentionControls(attention, soundBox, notifyButton) {
  if (soundBox) {
    soundBox.checked = attention.soundOn;
    soundBox.addEventListener("change", () => attention.setSound(soundBox.checked));
  }
  if (notifyButton) {
    notifyButton.hidden = !attention.canAsk;
    notifyButton.addEventListener("click", async () => {
      await attention.askPermission();
      notifyButton.hidden = !attention.canAsk;
    });
  }
}
