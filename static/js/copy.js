// The Copy buttons beside preflight rule lines: <button data-copy="ID"> copies the text of the
// element with that id. Listened for on the document, so buttons htmx swaps in work as well.
(function () {
  "use strict";

  function selectAndCopy(source) {
    // Without the Clipboard API (a page served over plain http), copy the selection instead.
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try {
      return document.execCommand("copy");
    } catch (e) {
      return false;
    }
  }

  function say(button, text) {
    button.textContent = text;
    window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { say(button, "Copied"); },
        function () { say(button, selectAndCopy(source) ? "Copied" : "Selected: press Ctrl+C"); }
      );
    } else {
      say(button, selectAndCopy(source) ? "Copied" : "Selected: press Ctrl+C");
    }
  });
})();
