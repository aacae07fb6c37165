// LTI client-side postMessage storage (1EdTech lti-pm-s) for launches whose state cookie
// the browser refuses inside the platform's iframe; the page's hh-config says what to do.
(function () {
  "use strict";
  // LTI client-side postMessage storage (1EdTech lti-pm-s): lti.put_data / lti.get_data.
  var cfg = JSON.parse(document.getElementById("hh-config").textContent);
  function targetFrame() {
    var parent = window.opener || window.parent;
    if (!cfg.target || cfg.target === "_parent") { return parent; }
    try { return parent.frames[cfg.target] || parent; } catch (e) { return parent; }
  }
  function send(subject, extra) {
    return new Promise(function (resolve, reject) {
      var id = subject + "-" + Math.random().toString(36).slice(2) + Date.now().toString(36);
      var timer = setTimeout(function () { window.removeEventListener("message", onMessage); reject("timeout"); }, 2500);
      function onMessage(event) {
        if (event.origin !== cfg.origin) { return; }
        var data = event.data || {};
        if (data.message_id !== id || data.subject !== subject + ".response") { return; }
        clearTimeout(timer);
        window.removeEventListener("message", onMessage);
        if (data.error) { reject(data.error); } else { resolve(data); }
      }
      window.addEventListener("message", onMessage);
      var message = { subject: subject, message_id: id };
      for (var k in extra) { message[k] = extra[k]; }
      try { targetFrame().postMessage(message, cfg.origin); } catch (e) { clearTimeout(timer); reject(e); }
    });
  }
  if (cfg.mode === "put") {
    var go = function () { window.location.replace(cfg.next); };
    send("lti.put_data", { key: cfg.key, value: cfg.value }).then(go, go);
  } else {
    var form = document.getElementById("launch-form");
    send("lti.get_data", { key: cfg.key }).then(function (data) {
      document.getElementById("storage-value").value = typeof data.value === "string" ? data.value : "";
      form.submit();
    }, function () { form.submit(); });
  }
})();
