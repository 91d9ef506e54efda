/* plinth console, catalog pages: show a new API key's secret once (keys page).
   Server strings go into the page with textContent only. */
(function () {
  "use strict";
  document.addEventListener("plinth:key-created", function (ev) {
    const key = ev.detail || {};
    const box = document.getElementById("new-key");
    if (!box) return;
    document.getElementById("new-key-name").textContent = key.name || "";
    document.getElementById("new-key-id").textContent = key.id || "";
    document.getElementById("new-key-secret").textContent = key.key || "";
    box.hidden = false;
    const form = document.getElementById("key-create");
    if (form) form.reset();
    box.scrollIntoView({ block: "nearest" });
  });
})();
