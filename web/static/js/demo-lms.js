// The demo LMS (a fake Schoology): launches the tool in its iframe as the chosen user, and
// plays the platform's side of LTI postMessage storage.
(function () {
  "use strict";
  var frame = document.getElementById("tool");
  var links = document.querySelectorAll("a[data-login]");
  links.forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      links.forEach(function (l) { l.classList.remove("active"); });
      link.classList.add("active");
      document.getElementById("hint").hidden = true;
      var url = new URL(link.dataset.login, window.location.href);
      var hint = url.searchParams.get("lti_message_hint").split("|")[0];
      url.searchParams.set("lti_message_hint", hint + "|" + document.getElementById("locale").value);
      frame.src = url.toString();
    });
  });
  // The platform side of LTI postMessage storage (lti.capabilities, lti.put_data, lti.get_data),
  // kept per sender origin like a real platform's.
  var store = {};
  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || typeof data !== "object" || typeof data.subject !== "string" || !event.source) { return; }
    var reply = function (body) {
      body.message_id = data.message_id;
      event.source.postMessage(body, event.origin);
    };
    var slot = event.origin + "\u001f" + data.key;
    if (data.subject === "lti.capabilities") {
      reply({ subject: "lti.capabilities.response",
              supported_messages: [{ subject: "lti.put_data" }, { subject: "lti.get_data" }] });
    } else if (data.subject === "lti.put_data") {
      store[slot] = data.value;
      reply({ subject: "lti.put_data.response", key: data.key, value: data.value });
    } else if (data.subject === "lti.get_data") {
      reply({ subject: "lti.get_data.response", key: data.key, value: store[slot] });
    }
  });
})();
