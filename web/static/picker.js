/* The student picker (web/templates/_student_picker.html, web/picker.py): as one types a
   name, a student number, pinyin or its initials into a [data-student-picker] field, the
   students that fit (only those the person may see; GET data-source?q=…, the gated and
   recorded search) are listed under it as a listbox. Arrow keys move, Enter or a click
   chooses, Escape closes; the chosen student's label (张小明（七年级1班，2026001）) goes into
   the field and is what the form posts. Without this script the field is a text box and
   the server settles what was typed. No library, no inline script (the CSP). */
(function () {
  "use strict";

  var WAIT_MS = 150; /* after the last key, before asking: one search per pause, not per key */

  function setup(box) {
    var input = box.querySelector("input[role=combobox]");
    var list = box.querySelector("[role=listbox]");
    var status = box.querySelector("[role=status]");
    var timer = null;
    var asked = 0;
    var items = [];
    var active = -1;
    var chosen = null;

    function say(text) {
      status.textContent = text || "";
    }

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function mark(i) {
      var options = list.querySelectorAll("[role=option]");
      for (var k = 0; k < options.length; k++) {
        options[k].setAttribute("aria-selected", k === i ? "true" : "false");
      }
      active = i;
      if (i >= 0 && options[i]) {
        input.setAttribute("aria-activedescendant", options[i].id);
        if (options[i].scrollIntoView) {
          options[i].scrollIntoView({ block: "nearest" });
        }
      }
    }

    function choose(i) {
      var s = items[i];
      if (!s) {
        return;
      }
      input.value = s.label;
      chosen = s.label;
      close();
      say((box.getAttribute("data-chosen") || "").replace("{label}", s.label));
    }

    function show(found) {
      items = found;
      list.textContent = "";
      found.forEach(function (s, i) {
        var li = document.createElement("li");
        li.id = input.id + "-opt-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        var name = document.createElement("span");
        name.className = "picker-name";
        name.textContent = s.name;
        var meta = document.createElement("span");
        meta.className = "picker-meta";
        meta.textContent = [s.class_name, s.student_no].filter(Boolean).join(" · ");
        li.appendChild(name);
        li.appendChild(meta);
        li.addEventListener("mousedown", function (event) {
          event.preventDefault(); /* keep the focus in the field */
          choose(i);
        });
        list.appendChild(li);
      });
      if (found.length) {
        list.hidden = false;
        input.setAttribute("aria-expanded", "true");
        say((box.getAttribute("data-count") || "").replace("{n}", String(found.length)));
      } else {
        close();
        say(box.getAttribute("data-none"));
      }
    }

    function ask() {
      var q = input.value.trim();
      if (!q || q === chosen) {
        close();
        return;
      }
      var mine = ++asked;
      var url = box.getAttribute("data-source") + "?q=" + encodeURIComponent(q);
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (r.status === 403) {
            return { denied: true };
          }
          if (!r.ok) {
            throw new Error(String(r.status));
          }
          return r.json();
        })
        .then(function (found) {
          if (mine !== asked) {
            return; /* an older answer than the one now wanted */
          }
          if (found && found.denied) {
            close();
            say(box.getAttribute("data-denied"));
            return;
          }
          show(found);
        })
        .catch(function () {
          if (mine === asked) {
            close();
            say("");
          }
        });
    }

    input.addEventListener("input", function () {
      chosen = null;
      clearTimeout(timer);
      timer = setTimeout(ask, WAIT_MS);
    });

    input.addEventListener("keydown", function (event) {
      var open = !list.hidden && items.length > 0;
      if (event.key === "ArrowDown") {
        event.preventDefault();
        if (open) {
          mark(Math.min(active + 1, items.length - 1));
        } else {
          ask();
        }
      } else if (event.key === "ArrowUp") {
        if (open) {
          event.preventDefault();
          mark(Math.max(active - 1, 0));
        }
      } else if (event.key === "Enter") {
        if (open && (active >= 0 || items.length === 1)) {
          event.preventDefault(); /* choosing, not sending the form */
          choose(active >= 0 ? active : 0);
        }
      } else if (event.key === "Escape") {
        if (open) {
          event.preventDefault();
          close();
        }
      }
    });

    input.addEventListener("blur", function () {
      setTimeout(close, 150);
    });
  }

  var boxes = document.querySelectorAll("[data-student-picker]");
  for (var i = 0; i < boxes.length; i++) {
    setup(boxes[i]);
  }
})();
