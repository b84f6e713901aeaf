// The review meeting's silent-reading timer: counts down to the server's end time, so
// every participant sees the same clock, then says that discussion has begun.
(function () {
  "use strict";
  function start(timer) {
    var remaining = parseInt(timer.dataset.remaining, 10) || 0;
    var endsAt = Date.now() + remaining * 1000;
    var done = document.querySelector("[data-testid=timer-done]");
    var meeting = timer.closest("[data-phase]");
    function tick() {
      var left = Math.max(0, Math.round((endsAt - Date.now()) / 1000));
      timer.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
      if (left === 0) {
        if (done) done.hidden = false;
        if (meeting) meeting.dataset.phase = "discussion";
        return;
      }
      setTimeout(tick, 250);
    }
    tick();
  }
  document.querySelectorAll("[data-testid=timer]").forEach(start);
})();
