// keyward dashboard: small enhancements over plain HTML forms. Every page works without it.
"use strict";

// Times: the server writes UTC; show them in the viewer's time zone (UTC stays in the title).
function localTimes(root) {
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const el of root.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(at.getTime())) el.textContent = format.format(at);
  }
}

// Copy buttons: <button data-copy="#id"> copies the text of the element it names.
function copyButtons(root) {
  for (const button of root.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.querySelector(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
    });
  }
}

// Destructive forms ask first; a submitted form shows that it is working and cannot be sent twice.
function forms(root) {
  for (const form of root.querySelectorAll("form")) {
    form.addEventListener("submit", (event) => {
      const question = form.dataset.confirm;
      if (question && !window.confirm(question)) {
        event.preventDefault();
        return;
      }
      for (const button of form.querySelectorAll("button[type=submit]")) {
        button.disabled = true;
        button.dataset.label = button.textContent;
        button.textContent = form.dataset.busy || "Working…";
      }
    });
  }
}

// Pages restored from the back/forward cache must not keep buttons disabled.
window.addEventListener("pageshow", () => {
  for (const button of document.querySelectorAll("button[data-label]")) {
    button.disabled = false;
    button.textContent = button.dataset.label;
  }
});

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  copyButtons(document);
  forms(document);
});
