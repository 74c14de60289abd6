// Stillwater's only script besides htmx. Kept tiny: confirmation prompts for
// forms marked data-confirm, and focus moved to results after a search.
document.addEventListener("submit", function (ev) {
  var msg = ev.target && ev.target.getAttribute && ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) {
    ev.preventDefault();
  }
});
