// Small enhancements; every page works without them.
"use strict";
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) {
    event.preventDefault();
  }
});
document.addEventListener("change", (event) => {
  const target = event.target;
  if (target.matches("select[data-autosubmit]")) {
    target.form.requestSubmit();
  }
  if (target.matches("input[data-select-all]")) {
    const name = target.dataset.selectAll;
    for (const box of target.form.querySelectorAll(`input[type=checkbox][name="${name}"]`)) {
      box.checked = target.checked;
    }
  }
});
