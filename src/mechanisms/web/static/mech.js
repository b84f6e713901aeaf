// Shows why an htmx request was refused (htmx 2 does not swap 4xx/5xx answers),
// and keeps the desktop menu open (it is a <details> that folds on phones).
(function () {
  function flash(message) {
    var box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
  }
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var text = xhr.responseText || ("Request failed (" + xhr.status + ")");
    try { text = JSON.parse(text).error.message; } catch (e) { /* plain text */ }
    flash(text);
  });
  document.addEventListener("htmx:sendError", function () {
    flash("The server did not answer. Check your connection and try again.");
  });
  document.addEventListener("htmx:beforeRequest", function () {
    var box = document.getElementById("flash");
    if (box) box.hidden = true;
  });
  document.addEventListener("DOMContentLoaded", function () {
    var menu = document.getElementById("main-menu");
    if (menu && window.matchMedia("(min-width: 768px)").matches) menu.open = true;
  });
})();
