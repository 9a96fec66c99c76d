// The filter box above a long checkbox group (the plan form's subscriptions, regions, rings):
// <input data-choice-filter="ID"> hides the choices of the group with that id whose label does
// not contain what is typed. Checked choices stay in view, so that what is chosen is always seen.
(function () {
  "use strict";

  function filterOf(event) {
    return event.target.closest ? event.target.closest("input[data-choice-filter]") : null;
  }

  // Caught on the way down, before the form sees them: filtering changes no field, so the form
  // asks for no new preview, and Enter in the box does not submit the plan.
  document.addEventListener("input", function (event) {
    var box = filterOf(event);
    if (!box) { return; }
    event.stopPropagation();
    var group = document.getElementById(box.getAttribute("data-choice-filter"));
    if (!group) { return; }
    var wanted = box.value.trim().toLowerCase();
    group.querySelectorAll("li").forEach(function (item) {
      var input = item.querySelector("input");
      var shown = !wanted || input.checked || item.textContent.toLowerCase().indexOf(wanted) !== -1;
      item.hidden = !shown;
    });
  }, true);

  document.addEventListener("change", function (event) {
    if (filterOf(event)) { event.stopPropagation(); }
  }, true);

  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && filterOf(event)) { event.preventDefault(); }
  }, true);
})();
