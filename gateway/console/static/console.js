// Veilbox console: keyboard shortcuts and live progress. Every page works without it.
"use strict";

(function () {
  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  // j / k move between the rows of a list; Enter opens the row's link.
  function rowKeys() {
    var table = document.querySelector("[data-keys=rows]");
    if (!table) return;
    var links = Array.prototype.slice.call(table.querySelectorAll("[data-row-link]"));
    if (!links.length) return;
    document.addEventListener("keydown", function (event) {
      if (event.altKey || event.ctrlKey || event.metaKey || typing(event.target)) return;
      if (event.key !== "j" && event.key !== "k") return;
      var at = links.indexOf(document.activeElement);
      var next = event.key === "j" ? Math.min(at + 1, links.length - 1) : Math.max(at - 1, 0);
      if (at === -1) next = 0;
      links[next].focus();
      links[next].closest("tr").scrollIntoView({ block: "nearest" });
      event.preventDefault();
    });
  }

  // A running ledger verification: poll its progress, then show the finished page.
  function verification() {
    var section = document.getElementById("verification");
    if (!section || section.getAttribute("data-finished") === "yes") return;
    var bar = document.getElementById("verify-progress");
    var url = section.getAttribute("data-progress");
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error(String(response.status));
          return response.json();
        })
        .then(function (run) {
          bar.value = run.percent;
          bar.textContent = run.percent + "%";
          if (run.finished) window.location.reload();
          else window.setTimeout(poll, 400);
        })
        .catch(function () { window.setTimeout(poll, 2000); });
    }
    poll();
  }

  // A job the runner is still working on: look again shortly.
  function reloadWhileWorking() {
    var marked = document.querySelector("[data-reload]");
    if (!marked) return;
    var seconds = Number(marked.getAttribute("data-reload")) || 2;
    window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    rowKeys();
    verification();
    reloadWhileWorking();
  });
})();
