/* The support plan editor and the review form, enhanced (the page works without this file:
   each row button then sends the form and the server shows it again with the rows changed).
   - 添加一行 / 删除 / 上移 change the rows in place, renumbering their labels;
   - the next review date's bounds follow the review date typed (data-review-days). */
(function () {
  "use strict";

  function label(template, n) {
    return template.replace("{n}", String(n));
  }

  function renumber(list) {
    var rows = list.querySelectorAll("li.plan-row");
    var textLabel = list.getAttribute("data-text-label");
    var upLabel = list.getAttribute("data-up-label");
    var removeLabel = list.getAttribute("data-remove-label");
    rows.forEach(function (row, i) {
      var n = i + 1;
      var text = row.querySelector("label.measure-text");
      if (text && text.firstChild && text.firstChild.nodeType === 3 && textLabel) {
        text.firstChild.nodeValue = label(textLabel, n);
      }
      var up = row.querySelector('button[value^="up:"]');
      if (i === 0 && up) {
        up.remove();
      } else if (i > 0 && !up && upLabel) {
        up = document.createElement("button");
        up.type = "submit";
        up.name = "plan_action";
        up.className = "link";
        up.textContent = list.getAttribute("data-up-text") || "上移";
        row.querySelector(".row-buttons").insertBefore(up, row.querySelector('button[value^="remove:"]'));
      }
      if (up) {
        up.value = "up:" + i;
        up.setAttribute("aria-label", label(upLabel, n));
      }
      var remove = row.querySelector('button[value^="remove:"]');
      if (remove) {
        remove.value = "remove:" + i;
        remove.setAttribute("aria-label", label(removeLabel, n));
      }
    });
  }

  function blankRow(list) {
    var last = list.querySelector("li.plan-row:last-child");
    var row = last.cloneNode(true);
    row.querySelectorAll("input").forEach(function (input) {
      input.value = "";
    });
    return row;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest('button[name="plan_action"]') : null;
    if (!button) {
      return;
    }
    var form = button.form;
    var list = form && form.querySelector("ol.plan-rows");
    if (!list) {
      return;
    }
    event.preventDefault();
    var parts = button.value.split(":");
    var rows = list.querySelectorAll("li.plan-row");
    var row = parts.length > 1 ? rows[Number(parts[1])] : null;
    var focus = null;
    if (parts[0] === "add") {
      var fresh = blankRow(list);
      list.appendChild(fresh);
      focus = fresh.querySelector('input[name="measure_text"]');
    } else if (parts[0] === "remove" && row) {
      if (rows.length === 1) {
        row.querySelectorAll("input").forEach(function (input) {
          input.value = "";
        });
        focus = row.querySelector('input[name="measure_text"]');
      } else {
        var next = row.nextElementSibling || row.previousElementSibling;
        row.remove();
        focus = next && next.querySelector('input[name="measure_text"]');
      }
    } else if (parts[0] === "up" && row && row.previousElementSibling) {
      list.insertBefore(row, row.previousElementSibling);
      focus = row.querySelector('input[name="measure_text"]');
    }
    renumber(list);
    if (focus) {
      focus.focus();
    }
  });

  function isoDay(d) {
    return d.toISOString().slice(0, 10);
  }

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (!field || field.name !== "reviewed_on" || !field.hasAttribute("data-review-days")) {
      return;
    }
    var next = field.form && field.form.querySelector('input[name="next_review_due"]');
    if (!next || !field.value) {
      return;
    }
    var on = new Date(field.value + "T00:00:00Z");
    if (isNaN(on.getTime())) {
      return;
    }
    var days = Number(field.getAttribute("data-review-days"));
    var earliest = new Date(on.getTime() + 86400000);
    var latest = new Date(on.getTime() + days * 86400000);
    var wasLatest = next.value === next.max;
    next.min = isoDay(earliest);
    next.max = isoDay(latest);
    if (wasLatest || !next.value || next.value > next.max || next.value < next.min) {
      next.value = next.max;
    }
  });
})();
