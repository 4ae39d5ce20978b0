/* The copy buttons: <button data-copy="ID" data-copied="已复制"> copies the value (or the
   text) of the element with that id. No library: the Clipboard API where the page is a
   secure context (HTTPS, or 127.0.0.1), else the selection and execCommand("copy"), which
   plain-HTTP pages on a school's network still allow. The field stays selectable by hand. */
(function () {
  "use strict";

  function copied(button) {
    var label = button.getAttribute("data-copied");
    if (label) {
      button.textContent = label;
    }
  }

  function bySelection(source) {
    source.focus();
    if (typeof source.select === "function") {
      source.select();
    }
    try {
      return document.execCommand("copy");
    } catch (e) {
      return false;
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (!button) {
      return;
    }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    var text = "value" in source ? source.value : source.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { copied(button); },
        function () { if (bySelection(source)) { copied(button); } }
      );
    } else if (bySelection(source)) {
      copied(button);
    }
  });
})();
