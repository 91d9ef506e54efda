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

/* datasets page: upload a file as the next version of a dataset (the API takes the file's bytes as the body) */
(function () {
  "use strict";
  const TYPES = { jsonl: "application/x-ndjson", json: "application/x-ndjson", csv: "text/csv", parquet: "application/vnd.apache.parquet" };
  document.addEventListener("submit", async function (ev) {
    const form = ev.target.closest("#dataset-upload");
    if (!form) return;
    ev.preventDefault();
    const errorBox = document.getElementById("dataset-upload-error");
    errorBox.hidden = true;
    const name = form.elements.name.value.trim();
    const file = form.elements.file.files[0];
    if (!name || !file) return;
    const ext = (file.name.split(".").pop() || "").toLowerCase();
    const params = new URLSearchParams({ filename: file.name, validation_fraction: form.elements.validation_fraction.value || "0.1" });
    if (form.elements.note.value) params.set("note", form.elements.note.value);
    const button = form.querySelector("[type=submit]");
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const headers = window.plinth.headers({ "Content-Type": TYPES[ext] || "application/octet-stream" });
      const resp = await fetch("/api/v1/datasets/" + encodeURIComponent(name) + "/versions?" + params.toString(), {
        method: "POST", headers: headers, body: await file.arrayBuffer(), credentials: "same-origin",
      });
      const data = await resp.json().catch(function () { return null; });
      if (!resp.ok) throw new Error(data && data.error ? data.error.message : "HTTP " + resp.status);
      window.location.assign("/console/datasets/" + encodeURIComponent(name));
    } catch (e) {
      errorBox.textContent = e.message;
      errorBox.hidden = false;
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });
})();
