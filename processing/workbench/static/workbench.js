// framewatch workbench: chart controls apply on change (the Apply button still works without JS)
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll(".autosubmit")) {
    input.addEventListener("change", () => input.form.requestSubmit());
  }
});
