// Tessera console: the only script. Every page works without it; it adds the "Copy" buttons
// next to secrets shown once, and puts the keyboard focus on such a secret.
(function () {
  "use strict";

  function say(button, text) {
    var box = button.closest(".secret");
    var status = box && box.querySelector(".copy-status");
    if (status) {
      status.textContent = text;
    }
  }

  function legacyCopy() {
    try {
      return document.execCommand("copy");
    } catch (e) {
      return false;
    }
  }

  function copy(button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) {
      return;
    }
    input.focus();
    input.select();
    var ok = "Copied to the clipboard.";
    var failed = "Could not copy: the text is selected, copy it with Ctrl+C or \u2318C.";
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(
        function () { say(button, ok); },
        function () { say(button, legacyCopy() ? ok : failed); }
      );
    } else {
      say(button, legacyCopy() ? ok : failed);
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) {
      event.preventDefault();
      copy(button);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-copy]").forEach(function (b) {
      b.hidden = false;
    });
    var secret = document.getElementById("secret-value");
    if (secret) {
      secret.focus();
      secret.select();
    }
  });
})();
