/* plinth console: progressive enhancement over server-rendered pages (ADR 0110).
   No inline scripts anywhere (the CSP forbids them): pages describe behaviour with data-
   attributes and pass data in <script type="application/json"> blocks. Every string from the
   server is put into the page with textContent, never innerHTML. */
(function () {
  "use strict";

  function cookie(name) {
    const found = document.cookie.split(";").map(function (c) { return c.trim(); })
      .find(function (c) { return c.startsWith(name + "="); });
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }
  function project() {
    const m = document.querySelector('meta[name="plinth-project"]');
    return m ? m.content : "";
  }
  function headers(extra) {
    const h = Object.assign({ "Accept": "application/json" }, extra || {});
    const csrf = cookie("plinth_csrf");
    if (csrf) h["X-CSRF-Token"] = csrf;
    const p = project();
    if (p) h["X-Plinth-Project"] = p;
    return h;
  }

  function toast(message, kind) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.className = "show " + (kind || "ok");
    clearTimeout(box._timer);
    box._timer = setTimeout(function () { box.className = ""; }, kind === "error" ? 8000 : 3000);
  }

  /* fetch JSON from the API; a non-2xx answer throws an Error whose message is the API's */
  async function api(method, url, body) {
    const init = { method: method, headers: headers(), credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = typeof body === "string" ? body : JSON.stringify(body);
    }
    const resp = await fetch(url, init);
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
    if (!resp.ok) {
      const err = data && data.error ? data.error : null;
      const e = new Error(err && err.message ? err.message : ("HTTP " + resp.status));
      e.status = resp.status;
      e.data = data;
      throw e;
    }
    return data;
  }

  /* the fields of a form as JSON: number inputs as numbers, checkboxes as booleans, empty
     optional fields left out, data-json fields parsed as JSON, names with dots nested */
  function formJSON(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled || el.type === "submit" || el.type === "button") continue;
      let value;
      if (el.type === "checkbox") value = el.checked;
      else if (el.type === "radio") { if (!el.checked) continue; value = el.value; }
      else if (el.tagName === "SELECT" && el.multiple) value = Array.from(el.selectedOptions).map(function (o) { return o.value; });
      else {
        value = el.value;
        if (value === "" && !el.hasAttribute("data-keep-empty")) continue;
        if (el.type === "number" || el.hasAttribute("data-number")) value = Number(value);
        else if (el.hasAttribute("data-json")) {
          try { value = JSON.parse(value); } catch (e) { throw new Error(el.name + " is not valid JSON"); }
        } else if (el.hasAttribute("data-list")) value = value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
      }
      const path = el.name.split(".");
      let obj = out;
      for (let i = 0; i < path.length - 1; i++) obj = obj[path[i]] = obj[path[i]] || {};
      obj[path[path.length - 1]] = value;
    }
    return out;
  }

  function then(el, data) {
    const next = el.getAttribute("data-then") || "reload";
    const resultSel = el.getAttribute("data-result");
    if (resultSel) {
      const target = document.querySelector(resultSel);
      if (target) target.textContent = typeof data === "string" ? data : JSON.stringify(data, null, 2);
    }
    const msg = el.getAttribute("data-done");
    if (msg) toast(msg, "ok");
    if (next === "reload") window.location.reload();
    else if (next === "none") return;
    else if (next.startsWith("/")) {
      let url = next;
      if (data && typeof data === "object") url = url.replace(/\{(\w+)\}/g, function (_, k) { return encodeURIComponent(data[k] === undefined ? "" : data[k]); });
      window.location.assign(url);
    } else document.dispatchEvent(new CustomEvent(next, { detail: data }));
  }

  /* <button data-api="POST /api/v1/..." data-body='{"..."}' data-confirm="..." data-then="reload|/url|none|event"> */
  document.addEventListener("click", async function (ev) {
    const el = ev.target.closest("[data-api]");
    if (!el || el.tagName === "FORM") return;
    ev.preventDefault();
    const confirmText = el.getAttribute("data-confirm");
    if (confirmText && !window.confirm(confirmText)) return;
    const spec = el.getAttribute("data-api").split(" ");
    const body = el.getAttribute("data-body");
    el.disabled = true;
    el.setAttribute("aria-busy", "true");
    try {
      const data = await api(spec[0], spec[1], body === null ? undefined : body);
      then(el, data);
    } catch (e) {
      toast(e.message, "error");
    } finally {
      el.disabled = false;
      el.removeAttribute("aria-busy");
    }
  });

  /* <form data-api="POST /api/v1/..."> sends its fields as JSON */
  document.addEventListener("submit", async function (ev) {
    const form = ev.target.closest("form[data-api]");
    if (!form) return;
    ev.preventDefault();
    const spec = form.getAttribute("data-api").split(" ");
    const submit = form.querySelector("[type=submit]");
    if (submit) { submit.disabled = true; submit.setAttribute("aria-busy", "true"); }
    try {
      let url = spec[1];
      const body = formJSON(form);
      url = url.replace(/\{(\w+)\}/g, function (_, k) { const v = body[k]; delete body[k]; return encodeURIComponent(v === undefined ? "" : v); });
      const data = await api(spec[0], url, spec[0] === "GET" || spec[0] === "DELETE" ? undefined : body);
      then(form, data);
    } catch (e) {
      toast(e.message, "error");
      const errSel = form.getAttribute("data-error");
      const target = errSel ? document.querySelector(errSel) : null;
      if (target) { target.textContent = e.message; target.hidden = false; }
    } finally {
      if (submit) { submit.disabled = false; submit.removeAttribute("aria-busy"); }
    }
  });

  /* htmx requests carry the same headers as fetch calls */
  document.addEventListener("htmx:configRequest", function (ev) {
    Object.assign(ev.detail.headers, headers());
  });
  document.addEventListener("htmx:responseError", function (ev) {
    let message = "HTTP " + ev.detail.xhr.status;
    try { message = JSON.parse(ev.detail.xhr.responseText).error.message || message; } catch (e) { /* not JSON */ }
    toast(message, "error");
  });

  /* ---- charts: <div data-chart="#json-block-id"> or data-chart-src="/url" (uPlot) ----
     spec: {x: [...], series: [{label, values, color?, dash?}], time: bool, xlabel, ylabel,
            height, bars: bool, stacked: bool} */
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04"];
  function drawChart(el, spec) {
    el.textContent = "";
    if (!spec || !spec.x || spec.x.length === 0) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = el.getAttribute("data-empty") || "No data yet.";
      el.appendChild(p);
      return;
    }
    const width = Math.max(200, el.clientWidth || 600);
    const series = [{ label: spec.xlabel || (spec.time ? "time" : "x") }];
    const data = [spec.x];
    spec.series.forEach(function (s, i) {
      const opts = { label: s.label, stroke: s.color || PALETTE[i % PALETTE.length], width: 1.5, spanGaps: true };
      if (s.dash) opts.dash = [6, 4];
      if (spec.bars) { opts.fill = (s.color || PALETTE[i % PALETTE.length]) + "55"; opts.paths = uPlot.paths.bars({ size: [0.8, 40] }); }
      if (s.points) opts.points = { show: true, size: 6 };
      series.push(opts);
      data.push(s.values);
    });
    const opts = {
      width: width, height: spec.height || 240, series: series,
      scales: { x: { time: !!spec.time } },
      axes: [{ label: spec.xlabel || "" }, { label: spec.ylabel || "" }],
      legend: { live: true },
    };
    if (spec.ymin !== undefined || spec.ymax !== undefined) opts.scales.y = { range: [spec.ymin === undefined ? null : spec.ymin, spec.ymax === undefined ? null : spec.ymax] };
    if (el._plot) el._plot.destroy();
    el._plot = new uPlot(opts, data, el);
  }
  async function loadChart(el) {
    try {
      const src = el.getAttribute("data-chart-src");
      let spec;
      if (src) spec = await api("GET", src);
      else {
        const block = document.querySelector(el.getAttribute("data-chart"));
        spec = block ? JSON.parse(block.textContent) : null;
      }
      drawChart(el, spec);
    } catch (e) {
      el.textContent = "Could not draw the chart: " + e.message;
    }
  }
  function initCharts(root) {
    root.querySelectorAll("[data-chart],[data-chart-src]").forEach(function (el) {
      if (el._chartInit) return;
      el._chartInit = true;
      loadChart(el);
      const every = Number(el.getAttribute("data-chart-refresh") || 0);
      if (every > 0 && el.getAttribute("data-chart-src")) el._refresh = setInterval(function () { loadChart(el); }, every * 1000);
    });
  }

  /* ---- live job logs: <pre data-sse="/api/v1/jobs/ID/logs?follow=true" data-status="#sel" data-progress="#sel"> ---- */
  function initStreams(root) {
    root.querySelectorAll("[data-sse]").forEach(function (el) {
      if (el._sse) return;
      const source = new EventSource(el.getAttribute("data-sse"));
      el._sse = source;
      const status = document.querySelector(el.getAttribute("data-status") || "#none");
      const progress = document.querySelector(el.getAttribute("data-progress") || "#none");
      source.addEventListener("log", function (e) {
        const line = JSON.parse(e.data);
        const atBottom = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
        el.appendChild(document.createTextNode((line.text !== undefined ? line.text : line.line || "") + "\n"));
        if (atBottom) el.scrollTop = el.scrollHeight;
      });
      source.addEventListener("job", function (e) {
        const job = JSON.parse(e.data);
        const state = job.state || job.status || "";  /* a job's public dict names it "state" */
        if (status) {
          status.textContent = state;
          if (status.classList.contains("badge")) status.className = "badge " + state;
        }
        if (progress && job.progress) {
          const p = job.progress;
          const frac = p.total ? p.done / p.total : (p.fraction || 0);
          progress.value = Math.round(frac * 100);
          progress.textContent = Math.round(frac * 100) + "%";
          progress.title = (p.message || "") + (p.total ? " " + p.done + "/" + p.total : "");
        }
        document.dispatchEvent(new CustomEvent("plinth:job", { detail: job }));
      });
      source.addEventListener("end", function () { source.close(); document.dispatchEvent(new CustomEvent("plinth:job-end")); });
      source.addEventListener("error", function () { if (source.readyState === EventSource.CLOSED) return; });
    });
  }

  function init(root) { initCharts(root); initStreams(root); }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (ev) { init(ev.target); });

  window.plinth = { api: api, headers: headers, toast: toast, drawChart: drawChart, initCharts: initCharts, cookie: cookie };
})();
