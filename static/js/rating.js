/* Keyboard-first rating: digits score the highlighted question, Enter saves, S opens skip.
   The next item arrives through htmx (no page reload); answers and refusals both swap in. */
(function () {
  "use strict";
  var shownAt = Date.now();

  function scales(root) { return Array.prototype.slice.call(root.querySelectorAll("fieldset.scale")); }
  function answered(fs) { return !!fs.querySelector("input[type=radio]:checked"); }

  function focusScale(fs) {
    if (!fs) { return; }
    var target = fs.querySelector("input:checked") || fs.querySelector("input[type=radio]");
    if (target) { target.focus({ preventScroll: false }); }
    markCurrent(fs);
  }

  function markCurrent(fs) {
    document.querySelectorAll("fieldset.scale.current").forEach(function (el) { el.classList.remove("current"); });
    if (fs) { fs.classList.add("current"); }
  }

  function init() {
    var item = document.getElementById("rating-item");
    if (!item) { return; }
    shownAt = Date.now();
    var form = item.querySelector("form.rate-form");
    if (!form) { item.focus(); return; }
    var list = scales(form);
    var first = list.filter(function (fs) { return !answered(fs); })[0] || list[0];
    focusScale(first);
  }

  function advance(form, fs) {
    var list = scales(form);
    var i = list.indexOf(fs);
    for (var j = 1; j <= list.length; j++) {
      var next = list[(i + j) % list.length];
      if (!answered(next)) { focusScale(next); return; }
    }
    var save = form.querySelector("button.save");
    if (save) { markCurrent(null); save.focus(); }
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    var el = document.activeElement;
    if (el && (el.type === "text" || el.tagName === "TEXTAREA")) { return; }
    var form = document.querySelector("#rating-item form.rate-form");
    if (!form) { return; }
    if (/^[0-9]$/.test(ev.key)) {
      var fs = el && el.closest ? el.closest("fieldset.scale") : null;
      if (!fs || !form.contains(fs)) { fs = form.querySelector("fieldset.scale.current") || scales(form).filter(function (f) { return !answered(f); })[0]; }
      if (!fs) { return; }
      var value = ev.key === "0" ? "10" : ev.key;
      var radio = fs.querySelector('input[type=radio][value="' + value + '"]');
      if (!radio) { return; }
      ev.preventDefault();
      radio.checked = true;
      radio.dispatchEvent(new Event("change", { bubbles: true }));
      advance(form, fs);
    } else if (ev.key === "Enter" && el && form.contains(el) && el.tagName !== "BUTTON") {
      ev.preventDefault();
      form.requestSubmit();
    } else if ((ev.key === "s" || ev.key === "S") && !(el && el.closest && el.closest("details.skip"))) {
      var details = document.querySelector("#rating-item details.skip");
      if (details) {
        ev.preventDefault();
        details.open = true;
        var r = details.querySelector("input[type=radio]:checked") || details.querySelector("input[type=radio]");
        if (r) { r.focus(); }
      }
    }
  });

  document.addEventListener("focusin", function (ev) {
    var fs = ev.target.closest ? ev.target.closest("fieldset.scale") : null;
    if (fs) { markCurrent(fs); }
  });

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.classList && form.classList.contains("rate-form")) {
      var field = form.querySelector("input[name=elapsed_ms]");
      if (field) { field.value = String(Date.now() - shownAt); }
    }
  }, true);

  // Refusals (4xx) carry a message to show in place; let htmx swap them in.
  document.addEventListener("htmx:beforeSwap", function (ev) {
    var status = ev.detail.xhr.status;
    if (status >= 400 && status < 500) { ev.detail.shouldSwap = true; ev.detail.isError = false; }
  });
  document.addEventListener("htmx:afterSwap", function () { init(); window.scrollTo(0, 0); });

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
