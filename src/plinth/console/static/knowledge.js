/* plinth console: knowledge-base and guardrail pages.
   - the upload form (a file as base64, or pasted text) -> POST /api/v1/knowledge-bases/{kb}/documents
   - the search playground -> POST /api/v1/knowledge-bases/{kb}/search, passages with the
     query's terms in <mark>
   - the policy test box -> POST /api/v1/guardrails/policies/{name}/test, the findings' spans in
     <mark> and the redacted text
   Every string from the server goes into the page with textContent or createTextNode, never
   innerHTML: a document that contains markup shows as its characters. */
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function escapeRe(s) { return s.replace(/[.*+?^${}()|[\]\\\/]/g, "\\$&"); }

  const STOP = new Set(("a an and are as at be by can do does for from has have how i if in is it its me my " +
    "no not of on or our so that the their there this to was we what when where which who why will with you your").split(" "));

  /* the words of a query worth marking: letters/digits runs, 2+ characters, no stop words */
  function queryTerms(query) {
    const words = (query.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []).filter(function (w) { return w.length >= 2 && !STOP.has(w); });
    return Array.from(new Set(words)).sort(function (a, b) { return b.length - a.length; });
  }

  /* ``text`` into ``container`` as text nodes, each occurrence of a term (at a word's start,
     any case) wrapped in <mark> */
  function highlightTerms(container, text, terms) {
    container.textContent = "";
    if (!terms.length) { container.appendChild(document.createTextNode(text)); return 0; }
    const re = new RegExp("(?<![\\p{L}\\p{N}])(" + terms.map(escapeRe).join("|") + ")", "giu");
    let marks = 0;
    text.split(re).forEach(function (part, i) {
      if (!part) return;
      if (i % 2 === 1) { container.appendChild(el("mark", part)); marks += 1; }
      else container.appendChild(document.createTextNode(part));
    });
    return marks;
  }

  /* ``text`` with the code-point ranges of ``spans`` ([{start, end, label}]) in <mark> */
  function highlightSpans(container, text, spans) {
    container.textContent = "";
    const cps = Array.from(text);
    const sorted = spans.filter(function (s) { return typeof s.start === "number" && typeof s.end === "number" && s.end > s.start; })
      .sort(function (a, b) { return a.start - b.start || b.end - a.end; });
    const merged = [];
    sorted.forEach(function (s) {
      const last = merged[merged.length - 1];
      if (last && s.start < last.end) { last.end = Math.max(last.end, s.end); if (last.labels.indexOf(s.label) < 0) last.labels.push(s.label); }
      else merged.push({ start: s.start, end: s.end, labels: [s.label] });
    });
    let at = 0;
    merged.forEach(function (s) {
      if (s.start > at) container.appendChild(document.createTextNode(cps.slice(at, s.start).join("")));
      const mark = el("mark", cps.slice(Math.max(s.start, at), s.end).join(""));
      mark.title = s.labels.join(", ");
      container.appendChild(mark);
      at = Math.max(at, s.end);
    });
    if (at < cps.length) container.appendChild(document.createTextNode(cps.slice(at).join("")));
  }

  function fileAsBase64(file) {
    return new Promise(function (resolve, reject) {
      const reader = new FileReader();
      reader.onload = function () { const url = String(reader.result); resolve(url.slice(url.indexOf(",") + 1)); };
      reader.onerror = function () { reject(new Error("could not read " + file.name)); };
      reader.readAsDataURL(file);
    });
  }

  /* ---- upload ---- */
  async function upload(form) {
    const kb = form.getAttribute("data-kb");
    const status = $("kb-upload-status");
    const file = form.elements.file.files[0];
    const name = form.elements.name.value.trim() || (file ? file.name : "");
    const text = form.elements.text.value;
    status.className = "";
    if (!file && !text) { status.textContent = "Choose a file or paste some text."; status.className = "error-box"; return; }
    if (!name) { status.textContent = "Give the pasted text a name, e.g. notes.md."; status.className = "error-box"; return; }
    const doc = { name: name };
    if (file) doc.content_base64 = await fileAsBase64(file);
    else doc.text = text;
    const button = form.querySelector("[type=submit]");
    button.disabled = true;
    status.textContent = "Uploading and indexing " + name + "…";
    try {
      const report = await window.plinth.api("POST", "/api/v1/knowledge-bases/" + encodeURIComponent(kb) + "/documents", { documents: [doc] });
      const outcome = (report.files || [])[0] || {};
      if (outcome.outcome === "failed" || outcome.outcome === "skipped") {
        status.textContent = name + ": " + (outcome.error || outcome.outcome);
        status.className = "error-box";
        return;
      }
      status.textContent = name + ": " + (outcome.outcome || "done") + " (" + (outcome.chunks || 0) + " chunks), version " + report.version + ".";
      window.plinth.toast(status.textContent, "ok");
      if (report.changed) setTimeout(function () { window.location.reload(); }, 600);
    } catch (e) {
      status.textContent = e.message;
      status.className = "error-box";
    } finally {
      button.disabled = false;
    }
  }

  /* ---- search playground ---- */
  async function search(form) {
    const kb = form.getAttribute("data-kb");
    const status = $("kb-search-status");
    const list = $("kb-search-results");
    const query = form.elements.query.value.trim();
    if (!query) return;
    const body = { query: query };
    const k = form.elements.k.value;
    if (k) body.k = Number(k);
    const version = form.getAttribute("data-version");
    if (version) body.version = Number(version);
    status.textContent = "Searching…";
    list.textContent = "";
    const started = performance.now();
    try {
      const result = await window.plinth.api("POST", "/api/v1/knowledge-bases/" + encodeURIComponent(kb) + "/search", body);
      const terms = queryTerms(query);
      const passages = result.passages || [];
      status.textContent = passages.length + " passage" + (passages.length === 1 ? "" : "s") + " from version " + result.version +
        " in " + Math.round(performance.now() - started) + " ms (relevant: similarity ≥ " + result.min_score + ").";
      passages.forEach(function (p, i) {
        const li = el("li", null, "passage");
        const head = el("p");
        head.appendChild(el("code", p.document, "document"));
        if (p.heading) head.appendChild(el("span", " › " + p.heading));
        head.appendChild(document.createTextNode(" "));
        head.appendChild(el("span", "score " + Number(p.score).toFixed(4) + " · similarity " + Number(p.similarity).toFixed(3), "muted score"));
        head.appendChild(document.createTextNode(" "));
        head.appendChild(el("span", p.relevant ? "relevant" : "below the threshold", "badge " + (p.relevant ? "ok" : "")));
        li.appendChild(head);
        const text = el("div", null, "msg passage-text");
        text.setAttribute("aria-label", "passage " + (i + 1));
        highlightTerms(text, p.text || "", terms);
        li.appendChild(text);
        list.appendChild(li);
      });
    } catch (e) {
      status.textContent = e.message;
      window.plinth.toast(e.message, "error");
    }
  }

  /* ---- guardrail policy test ---- */
  async function testPolicy(form) {
    const name = form.getAttribute("data-policy");
    const text = form.elements.text.value;
    if (!text) return;
    const body = { text: text, direction: form.elements.direction.value };
    const version = form.getAttribute("data-version");
    if (version) body.version = Number(version);
    const button = form.querySelector("[type=submit]");
    button.disabled = true;
    try {
      const r = await window.plinth.api("POST", "/api/v1/guardrails/policies/" + encodeURIComponent(name) + "/test", body);
      const findings = r.findings || [];
      $("gr-result").hidden = false;
      $("gr-verdict").textContent = (r.blocked ? "Blocked" : "Not blocked") + " by " + r.policy + " (" + r.direction + "): " +
        findings.length + " finding" + (findings.length === 1 ? "" : "s") + ".";
      $("gr-verdict").className = r.blocked ? "error-box" : "note";
      const tbody = $("gr-findings");
      tbody.textContent = "";
      findings.forEach(function (f) {
        const tr = document.createElement("tr");
        tr.appendChild(el("td", f.label));
        tr.appendChild(el("td", f.detector + (f.kind && f.kind !== f.detector ? " (" + f.kind + ")" : "")));
        const td = document.createElement("td");
        td.appendChild(el("span", f.action, "badge " + (f.action === "block" ? "bad" : f.action === "redact" ? "warn" : "")));
        tr.appendChild(td);
        tr.appendChild(el("td", typeof f.start === "number" ? f.start + "–" + f.end + " “" + Array.from(text).slice(f.start, f.end).join("") + "”" : "whole text"));
        tr.appendChild(el("td", typeof f.score === "number" ? f.score.toFixed(3) : "", "num"));
        tr.appendChild(el("td", f.reason || ""));
        tbody.appendChild(tr);
      });
      if (!findings.length) {
        const tr = document.createElement("tr");
        const td = el("td", "Nothing found.", "muted");
        td.colSpan = 6;
        tr.appendChild(td);
        tbody.appendChild(tr);
      }
      highlightSpans($("gr-marked"), text, findings);
      const after = $("gr-redacted");
      after.textContent = "";
      if (r.blocked && r.safe_answer) {
        after.appendChild(el("strong", "Answered instead: "));
        after.appendChild(document.createTextNode(r.safe_answer));
      } else {
        after.appendChild(document.createTextNode(r.text));
      }
    } catch (e) {
      window.plinth.toast(e.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("submit", function (ev) {
    const form = ev.target;
    const handlers = { "kb-upload": upload, "kb-search": search, "gr-test": testPolicy };
    const fn = handlers[form.id];
    if (!fn) return;
    ev.preventDefault();
    fn(form);
  });

  window.plinthKnowledge = { queryTerms: queryTerms, highlightTerms: highlightTerms, highlightSpans: highlightSpans };
})();
