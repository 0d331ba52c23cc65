// Small enhancements; every page works without them.
"use strict";

// The ticked boxes of a form, theirs by nesting or by their form attribute.
function ticked(form, name) {
  return [...form.elements].filter((box) => box.name === name && box.checked);
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-confirm]");
  if (!button) {
    return;
  }
  // "{n}" is how many rows are ticked, "{s}" the plural's ending: "Cancel 2 scheduled jobs?"
  const count = button.form ? ticked(button.form, "ids").length : 0;
  const question = button.dataset.confirm
    .replaceAll("{n}", String(count))
    .replaceAll("{s}", count === 1 ? "" : "s");
  if (!window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("change", (event) => {
  const target = event.target;
  if (target.matches("select[data-autosubmit]")) {
    target.form.requestSubmit();
  }
  if (target.matches("input[data-select-all]")) {
    for (const box of target.form.elements) {
      if (box.type === "checkbox" && box.name === target.dataset.selectAll) {
        box.checked = target.checked;
      }
    }
  }
});

// A tab in the background asks nothing: its live parts refresh again once it is shown.
document.addEventListener("htmx:beforeRequest", (event) => {
  if (document.hidden) {
    event.preventDefault();
  }
});
