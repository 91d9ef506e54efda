/* plinth console, training pages (no inline scripts: the CSP forbids them).
   - After a fine-tune is submitted, open the new job's page (POST /api/v1/tuning/jobs answers
     {"job": {...}, "created": bool}; console.js fires "plinth:tuned" with that answer).
   - On a job's page, when the job ends (the log stream's "end" event): draw the loss curve a
     last time, stop refreshing it, and drop the Cancel button. */
(function () {
  "use strict";
  document.addEventListener("plinth:tuned", function (ev) {
    const job = ev.detail && ev.detail.job;
    if (job && job.id) window.location.assign("/console/jobs/" + encodeURIComponent(job.id));
  });
  document.addEventListener("plinth:job-end", function () {
    document.querySelectorAll("[data-chart-src][data-chart-refresh]").forEach(function (el) {
      if (el._refresh) { clearInterval(el._refresh); el._refresh = null; }
      window.plinth.api("GET", el.getAttribute("data-chart-src"))
        .then(function (spec) { window.plinth.drawChart(el, spec); })
        .catch(function (e) { el.textContent = "Could not draw the chart: " + e.message; });
    });
    const cancel = document.getElementById("cancel-job");
    if (cancel) cancel.remove();
  });
})();

/* a form's error box (data-error="#id", hidden while empty) shows once console.js writes the API's message into it */
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-error]").forEach(function (form) {
      const box = document.querySelector(form.getAttribute("data-error"));
      if (!box) return;
      new MutationObserver(function () { box.hidden = !box.textContent; }).observe(box, { childList: true, characterData: true, subtree: true });
    });
  });
})();
