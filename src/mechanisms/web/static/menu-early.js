// Wide screens show the menu unfolded; runs right after the menu is parsed, so the choice
// is made before the first paint (mech.js keeps it right when the window is resized).
(function (menu) {
  if (menu && getComputedStyle(menu.querySelector("summary")).display === "none") menu.open = true;
})(document.getElementById("main-menu"));
