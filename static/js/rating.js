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

  // Long prompts are clipped to a few lines; "show more" opens them (only when something is hidden).
  function initPrompt(item) {
    var text = item.querySelector(".prompt");
    var more = item.querySelector("button.show-more");
    if (!text || !more) { return; }
    more.hidden = text.scrollHeight <= text.clientHeight + 2;
  }

  // Full size: the image at its own pixels in a dialog, panned by scrolling or dragging.
  // For pairs, X (or the button) flips A/B at the same spot: both share one canvas size.
  var zoomIndex = 0;
  function zoomImages() { return Array.prototype.slice.call(document.querySelectorAll("#rating-item .zoom-open")); }
  function zoomShow(index, keepSpot) {
    var dialog = document.getElementById("zoom");
    var buttons = zoomImages();
    if (!dialog || !buttons.length) { return; }
    zoomIndex = (index + buttons.length) % buttons.length;
    var source = buttons[zoomIndex].querySelector("img");
    var pane = dialog.querySelector(".zoom-pane");
    var img = pane.querySelector("img");
    var left = pane.scrollLeft, top = pane.scrollTop;
    img.src = source.currentSrc || source.src;
    img.alt = source.alt;
    img.width = source.getAttribute("width");
    img.height = source.getAttribute("height");
    dialog.querySelector(".zoom-label").textContent = buttons[zoomIndex].getAttribute("data-label");
    dialog.classList.toggle("pair", buttons.length > 1);
    if (!dialog.open) { dialog.showModal(); }
    if (keepSpot) { pane.scrollLeft = left; pane.scrollTop = top; }
    return pane;
  }
  function zoomOpen(index, fx, fy) {
    var pane = zoomShow(index, false);
    if (!pane) { return; }
    pane.scrollLeft = Math.max(0, fx * pane.scrollWidth - pane.clientWidth / 2);
    pane.scrollTop = Math.max(0, fy * pane.scrollHeight - pane.clientHeight / 2);
  }
  function zoomSetup() {
    var dialog = document.getElementById("zoom");
    if (!dialog || dialog.dataset.ready) { return; }
    dialog.dataset.ready = "1";
    dialog.querySelector(".zoom-close").addEventListener("click", function () { dialog.close(); });
    dialog.querySelector(".zoom-flip").addEventListener("click", function () { zoomShow(zoomIndex + 1, true); });
    dialog.addEventListener("close", function () { var b = zoomImages()[zoomIndex]; if (b) { b.focus(); } });
    var pane = dialog.querySelector(".zoom-pane"), drag = null;
    pane.addEventListener("pointerdown", function (ev) {
      if (ev.pointerType !== "mouse") { return; }
      drag = { x: ev.clientX, y: ev.clientY, l: pane.scrollLeft, t: pane.scrollTop };
      ev.preventDefault();
    });
    window.addEventListener("pointermove", function (ev) {
      if (drag) { pane.scrollLeft = drag.l - (ev.clientX - drag.x); pane.scrollTop = drag.t - (ev.clientY - drag.y); }
    });
    window.addEventListener("pointerup", function () { drag = null; });
  }
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest ? ev.target.closest("#rating-item .zoom-open") : null;
    if (button) {
      var box = button.getBoundingClientRect();
      var fx = ev.clientX ? (ev.clientX - box.left) / box.width : 0.5;
      var fy = ev.clientY ? (ev.clientY - box.top) / box.height : 0.5;
      zoomOpen(zoomImages().indexOf(button), fx, fy);
    }
    var more = ev.target.closest ? ev.target.closest("button.show-more") : null;
    if (more) {
      var text = document.getElementById(more.getAttribute("aria-controls"));
      var open = text.classList.toggle("expanded");
      more.setAttribute("aria-expanded", String(open));
      more.textContent = open ? "show less" : "show more";
    }
  });

  function init() {
    var item = document.getElementById("rating-item");
    if (!item) { return; }
    shownAt = Date.now();
    zoomSetup();
    initPrompt(item);
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
    var dialog = document.getElementById("zoom");
    if (dialog && dialog.open) {
      if (ev.key === "x" || ev.key === "X") { ev.preventDefault(); zoomShow(zoomIndex + 1, true); }
      else if (ev.key === "z" || ev.key === "Z") { ev.preventDefault(); dialog.close(); }
      return;
    }
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
    } else if (ev.key === "z" || ev.key === "Z") {
      var cur = form.querySelector("fieldset.scale.current");
      var shot = cur ? cur.closest(".shot") : null;
      var buttons = zoomImages();
      var at = shot ? buttons.indexOf(shot.querySelector(".zoom-open")) : 0;
      ev.preventDefault();
      zoomOpen(Math.max(at, 0), 0.5, 0.5);
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
