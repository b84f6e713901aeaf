// Flags pages: the running sum of a split's percentages in the editor, and Enter in an
// editor field does not submit the form. Everything else is plain forms and htmx.
(function () {
  function percentOf(input) {
    var value = parseFloat(String(input.value).replace(",", "."));
    return isFinite(value) ? value : NaN;
  }

  // Shows "Sum: 90 %" under a split and marks it when it is not 100 (to the bucket
  // resolution of 0.001 %), so a wrong split is seen before saving.
  function updateSum(split) {
    var output = split.querySelector("[data-sum]");
    if (!output) return;
    var total = 0;
    var unreadable = false;
    split.querySelectorAll("[data-percent]").forEach(function (input) {
      var value = percentOf(input);
      if (isNaN(value)) unreadable = true;
      else total += value;
    });
    total = Math.round(total * 1000) / 1000;
    output.textContent = "Sum: " + total + " %" + (unreadable ? " (a share is not a number)" : "");
    output.classList.toggle("bad", unreadable || Math.abs(total - 100) > 0.0005);
  }

  function updateAll(root) {
    (root || document).querySelectorAll("[data-split]").forEach(updateSum);
  }

  document.addEventListener("input", function (event) {
    if (!event.target.matches || !event.target.matches("[data-percent]")) return;
    var split = event.target.closest("[data-split]");
    if (split) updateSum(split);
  });
  document.addEventListener("DOMContentLoaded", function () { updateAll(document); });
  document.addEventListener("htmx:load", function (event) { updateAll(event.target); });

  // In the editor, Enter in a one-line field would press the form's first button.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter") return;
    var target = event.target;
    if (target.tagName === "INPUT" && target.closest("#editor-form") && target.type !== "submit") {
      event.preventDefault();
    }
  });
})();
