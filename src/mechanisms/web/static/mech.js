// Shows why an htmx request was refused (htmx 2 does not swap 4xx/5xx answers), keeps
// the menu unfolded on wide screens (it is a <details> that folds on phones), and copies
// shown-once secrets to the clipboard.
(function () {
  function flash(message) {
    var box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
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

  // The menu's toggle is hidden by CSS on wide screens; there the menu stays open.
  function fitMenu() {
    var menu = document.getElementById("main-menu");
    if (!menu) return;
    var wide = getComputedStyle(menu.querySelector("summary")).display === "none";
    if (wide) {
      menu.open = true;
      menu.dataset.autoOpened = "1";
    } else if (menu.dataset.autoOpened) {
      menu.open = false;
      delete menu.dataset.autoOpened;
    }
  }
  document.addEventListener("DOMContentLoaded", fitMenu);
  window.addEventListener("resize", fitMenu);

  // Close the phone menu when a tap lands outside it or Escape is pressed.
  document.addEventListener("click", function (event) {
    var menu = document.getElementById("main-menu");
    if (menu && menu.open && !menu.dataset.autoOpened && !menu.contains(event.target)) {
      menu.open = false;
    }
  });
  document.addEventListener("keydown", function (event) {
    var menu = document.getElementById("main-menu");
    if (event.key === "Escape" && menu && menu.open && !menu.dataset.autoOpened) {
      menu.open = false;
    }
  });

  // The pages' behaviours, declared by attributes: the Content-Security-Policy refuses
  // inline scripts and on*= handlers (an injected one would run as well as ours).
  // <select data-autosubmit> submits its form when changed.
  document.addEventListener("change", function (event) {
    var field = event.target.closest && event.target.closest("[data-autosubmit]");
    if (field && field.form) field.form.submit();
  });
  // <button data-confirm="question"> asks before it acts.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
  });
  // <form data-reset-on-success> empties itself once htmx's request succeeded.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target;
    if (event.detail.successful && form.matches && form.matches("form[data-reset-on-success]")) {
      form.reset();
    }
  });

  // <button data-copy="#id"> copies the text of the element it names.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(
      function () { button.textContent = "Copied"; },
      function () { button.textContent = "Select and copy it by hand"; }
    );
  });
})();
