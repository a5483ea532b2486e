// Progressive enhancement only: every page and form works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // On a phone the navigation folds behind a button; without script it simply stays open.
  const menu = document.querySelector("[data-toggle=nav]");
  const nav = document.getElementById("nav");
  if (menu && nav) {
    menu.hidden = false;
    menu.addEventListener("click", () => nav.classList.toggle("open"));
  }
  // An action submitted twice (a double tap) would replay or reprocess twice.
  for (const form of document.querySelectorAll("form[method=post]")) {
    form.addEventListener("submit", () => {
      for (const button of form.querySelectorAll("button[type=submit]")) {
        setTimeout(() => { button.disabled = true; }, 0);
      }
    });
  }
  // The filter form applies as soon as a choice changes.
  const filters = document.getElementById("filters");
  if (filters) {
    for (const select of filters.querySelectorAll("select")) {
      select.addEventListener("change", () => filters.requestSubmit());
    }
  }
});
