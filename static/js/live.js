// Live regions (accounts/templatetags/live.py: the overview, plan cards, a wave's panel, the
// blockers, a cluster's preflight and timeline) are replaced every few seconds by htmx polling. A
// poll already under way when someone starts typing a comment must not wipe what they typed:
// keep the region as it is while one of its text inputs has focus or text (or one of its lists
// is being chosen from); the next poll after they send or clear it brings the page up to date.
(function () {
  "use strict";

  function busy(region) {
    var inputs = region.querySelectorAll("input[type=text], textarea");
    for (var i = 0; i < inputs.length; i++) {
      if (inputs[i] === document.activeElement || inputs[i].value !== "") {
        return true;
      }
    }
    // Someone choosing in a list (a state filter), or resting on any control in the region
    // with the keyboard, keeps it as it is too: a swap would lose their place (htmx restores
    // focus only to elements with an id). Its "Updated" time then says how old it is.
    var active = document.activeElement;
    return !!(active && active !== document.body && region.contains(active));
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    // A session that ended answers a poll with the sign-in page: go there, whole.
    var xhr = event.detail.xhr;
    if (xhr && xhr.responseURL && xhr.responseURL.indexOf("/accounts/login/") !== -1) {
      event.detail.shouldSwap = false;
      window.location.assign(xhr.responseURL);
      return;
    }
    var region = event.detail.target;
    if (region && region.hasAttribute("data-live") && busy(region)) {
      event.detail.shouldSwap = false;
    }
  });
})();
