/* Every page (base.html loads it in <head>; the CSP allows no inline script):
   1. marks the page as scripted before it is drawn, so that on a phone the menu starts
      folded behind its button (app.css, "The top menu"); without script it stays open;
   2. the menu button opens and closes the menu (aria-expanded), Escape closes it;
   3. a form refused for what was typed: the page shows it again with its message
      (<p class="error" role="alert">); focus goes to the field the message is about, marked
      aria-invalid="true" and described by the message. The field is the one the server marked
      (aria-invalid, or the message's data-field="name"), else the one whose label the message
      names ("请填写发生时间" names 发生时间), else the first the browser finds invalid; with none,
      focus goes to the message itself. */
(function () {
  "use strict";
  document.documentElement.className += " js";

  function visible(el) {
    return !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  }

  function setUpMenu() {
    var button = document.querySelector("header.top .menu-button");
    var menu = document.getElementById("site-menu");
    if (!button || !menu) {
      return;
    }
    function show(open) {
      button.setAttribute("aria-expanded", open ? "true" : "false");
      menu.classList.toggle("open", open);
    }
    button.addEventListener("click", function () {
      show(button.getAttribute("aria-expanded") !== "true");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
        show(false);
        button.focus();
      }
    });
  }

  function formFor(message) {
    var form = message.closest("form");
    if (form) {
      return form;
    }
    // The message stands just before its form: the first form after it, looked for in the
    // message's own section first, then in wider ones.
    for (var box = message.parentElement; box && box !== document.body; box = box.parentElement) {
      var forms = box.querySelectorAll("form");
      for (var i = 0; i < forms.length; i++) {
        if (message.compareDocumentPosition(forms[i]) & Node.DOCUMENT_POSITION_FOLLOWING) {
          return forms[i];
        }
      }
    }
    return null;
  }

  function fieldsOf(form) {
    var out = [];
    for (var i = 0; i < form.elements.length; i++) {
      var el = form.elements[i];
      var type = (el.getAttribute("type") || "").toLowerCase();
      if (el.disabled || type === "hidden" || type === "submit" || type === "button" || el.tagName === "BUTTON" ||
          el.tagName === "FIELDSET" || el.tagName === "OUTPUT") {
        continue;
      }
      out.push(el);
    }
    return out;
  }

  function labelText(field) {
    var label = field.labels && field.labels.length ? field.labels[0] : null;
    if (!label) {
      return field.getAttribute("aria-label") || "";
    }
    var text = "";
    label.childNodes.forEach(function (node) {
      if (node.nodeType === Node.TEXT_NODE || (node.nodeType === Node.ELEMENT_NODE && !node.matches("input, select, textarea, small, .hint"))) {
        text += node.textContent;
      }
    });
    return text.replace(/[（(][^）)]*[）)]/g, "").replace(/[:：*]/g, "").trim();
  }

  function fieldFor(message, form) {
    var fields = fieldsOf(form);
    var marked = form.querySelector("[aria-invalid=true]");
    if (marked) {
      return marked;
    }
    var name = message.getAttribute("data-field");
    if (name && form.elements[name]) {
      var named = form.elements[name];
      return named.length && !named.tagName ? named[0] : named;
    }
    var said = message.textContent;
    for (var i = 0; i < fields.length; i++) {
      var text = labelText(fields[i]);
      if (text.length >= 2 && said.indexOf(text) !== -1) {
        return fields[i];
      }
    }
    for (var j = 0; j < fields.length; j++) {
      if (fields[j].validity && !fields[j].validity.valid && visible(fields[j])) {
        return fields[j];
      }
    }
    return null;
  }

  function focusFailedForm() {
    var message = document.querySelector("main .error[role=alert]");
    if (!message) {
      return;
    }
    if (!message.id) {
      message.id = "form-error";
    }
    var form = formFor(message);
    var field = form ? fieldFor(message, form) : null;
    if (field) {
      var closed = field.closest("details:not([open])");
      if (closed) {
        closed.open = true;
      }
      field.setAttribute("aria-invalid", "true");
      var described = (field.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
      if (described.indexOf(message.id) === -1) {
        described.push(message.id);
      }
      field.setAttribute("aria-describedby", described.join(" "));
      field.focus();
    } else {
      message.setAttribute("tabindex", "-1");
      message.focus();
    }
  }

  function ready() {
    setUpMenu();
    focusFailedForm();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
