// Stillwater's only script besides htmx. Kept tiny: confirmation prompts for
// forms marked data-confirm, and focus moved to results after a search.
document.addEventListener("submit", function (ev) {
  var msg = ev.target && ev.target.getAttribute && ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) {
    ev.preventDefault();
  }
});

// The floor board and the chair view stay live over server-sent events:
// the board reloads its cards on any change, the chair view reloads itself
// when its own visit changes (unless a form is being filled in). An alert
// also sounds a short tone and marks the tab's title.
(function () {
  function tone() {
    try {
      var C = window.AudioContext || window.webkitAudioContext;
      var ctx = new C();
      var o = ctx.createOscillator();
      var g = ctx.createGain();
      o.frequency.value = 880;
      g.gain.value = 0.15;
      o.connect(g);
      g.connect(ctx.destination);
      o.start();
      o.stop(ctx.currentTime + 0.35);
    } catch (e) { /* no audio: the board still shows it */ }
  }
  // fn at most once per `gap` ms: calls in between fold into one; `now`
  // runs it at once (an alert does not wait behind routine readings).
  function throttled(fn, gap) {
    var last = 0, timer = null;
    return function (now) {
      if (timer && !now) return;
      if (timer) clearTimeout(timer);
      var wait = now ? 0 : Math.max(0, gap - (Date.now() - last));
      timer = setTimeout(function () { timer = null; last = Date.now(); fn(); }, wait);
    };
  }
  function listen(url, onEvent) {
    var state = document.getElementById("live-state");
    var es = new EventSource(url);
    es.addEventListener("floor", function (m) {
      var d = {};
      try { d = JSON.parse(m.data); } catch (e) { return; }
      if (d.kind === "alert") {
        tone();
        if (document.title.indexOf("(!) ") !== 0) document.title = "(!) " + document.title;
      }
      onEvent(d);
    });
    es.onerror = function () { if (state) { state.textContent = "Reconnecting…"; state.className = "small live-state off"; } };
    es.onopen = function () { if (state) { state.textContent = "Live"; state.className = "small live-state"; } };
  }
  document.addEventListener("DOMContentLoaded", function () {
    var board = document.querySelector("[data-floor-events]");
    if (board) {
      var partial = board.getAttribute("data-floor-partial");
      // Monitors send every second per chair: the board redraws at most once
      // a second, and at once for an alert.
      var reload = throttled(function () {
        fetch(partial, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) { if (html) board.innerHTML = html; });
      }, 1000);
      listen(board.getAttribute("data-floor-events"), function (d) { reload(d.kind === "alert"); });
      // Timers and due readings move on without events.
      setInterval(function () { reload(false); }, 30000);
    }
    var chair = document.querySelector("[data-chair-events]");
    if (chair) {
      var id = chair.getAttribute("data-chair-events");
      // A form on its way answers with the fresh page itself; a reload now
      // would cancel it.
      var submitting = false;
      document.addEventListener("submit", function () { submitting = true; });
      var refresh = throttled(function () {
        var busy = submitting || Array.prototype.some.call(document.querySelectorAll("main input:not([type=hidden]), main textarea"), function (el) {
          return el.type !== "checkbox" && el.type !== "radio" && el.value !== "" && el.defaultValue !== el.value;
        });
        // A fresh GET of the visit itself: reloading a page that answered
        // a form would post the form again, and the form's address (a
        // refused step answers at /encounters/<id>/<step>) is not a page.
        if (!busy) window.location.assign("/encounters/" + encodeURIComponent(id));
      }, 15000);
      // A monitor's routine readings redraw the view every 15 s at most;
      // alerts and steps by others at once.
      listen("/api/v1/clinics/" + chair.getAttribute("data-clinic") + "/floor/events", function (d) {
        if (d.encounter !== id || submitting) return;
        refresh(d.kind !== "reading");
      });
    }
  });
})();

// A file input marked data-load-into="<textarea id>" reads the chosen text
// file into that textarea (importing a protocol file); without script, the
// text is pasted instead.
document.addEventListener("change", function (ev) {
  var input = ev.target;
  var into = input && input.getAttribute && input.getAttribute("data-load-into");
  if (!into || !input.files || !input.files[0]) return;
  var area = document.getElementById(into);
  if (!area) return;
  input.files[0].text().then(function (t) { area.value = t; area.focus(); });
});

// A finder whose value is chosen from its list adds it as a new line of the
// box it names (data-append-to), followed by data-append-suffix (a space by
// default: ready for the dose), and empties itself.
document.addEventListener("change", function (ev) {
  var f = ev.target;
  var id = f && f.getAttribute && f.getAttribute("data-append-to");
  var box = id && document.getElementById(id);
  if (!box || !f.value.trim() || !f.list) return;
  // Only a name chosen from the list: free text goes in the box itself.
  var chosen = Array.prototype.some.call(f.list.options, function (o) { return o.value === f.value; });
  if (!chosen) return;
  var text = box.value.replace(/\s+$/, "");
  var after = f.getAttribute("data-append-suffix") || " ";
  box.value = (text ? text + "\n" : "") + f.value.trim() + after;
  f.value = "";
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
});
