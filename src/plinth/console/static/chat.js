/* plinth console: the chat playground (/console/chat).
   Sends POST /v1/chat/completions with stream: true through fetch, reads the server-sent
   events from the response body and appends each token to the answer as text (never as
   HTML: a <script> or a markdown image in an answer shows as the characters it is). The
   last chunk carries plinth's extras (citations, guardrail findings); citations are then
   read back from /api/v1/citations/{response id}. Stop aborts the request. */
(function () {
  "use strict";

  const state = { messages: [], controller: null };
  /* for people debugging and for the browser tests: what the last answer's stream did */
  const probe = { chunks: 0, lengths: [], done: false, responseId: null, error: null };
  window.plinthChat = probe;

  function $(id) { return document.getElementById(id); }
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function addMessage(role, text) {
    const box = el("div", null, "msg " + role);
    box.appendChild(el("span", role, "role"));
    const body = el("span", null, "body");
    body.appendChild(document.createTextNode(text || ""));
    box.appendChild(body);
    $("chat-log").appendChild(box);
    box.scrollIntoView({ block: "end" });
    return box;
  }

  function setting(id) {
    const input = $(id);
    return input ? input.value : "";
  }

  function requestBody() {
    const msgs = [];
    const system = setting("chat-system").trim();
    if (system) msgs.push({ role: "system", content: system });
    state.messages.forEach(function (m) { msgs.push(m); });
    const body = { model: setting("chat-model"), messages: msgs, stream: true, stream_options: { include_usage: true } };
    const temperature = setting("chat-temperature");
    if (temperature !== "") body.temperature = Number(temperature);
    const maxTokens = setting("chat-max-tokens");
    if (maxTokens !== "") body.max_tokens = Number(maxTokens);
    const kb = setting("chat-kb");
    if (kb) body.knowledge_base = kb;
    return body;
  }

  function meta(pairs) {
    const dl = $("chat-meta");
    dl.textContent = "";
    pairs.forEach(function (p) {
      if (p[1] === undefined || p[1] === null || p[1] === "") return;
      dl.appendChild(el("dt", p[0]));
      dl.appendChild(el("dd", p[1]));
    });
  }

  function resetSide() {
    meta([]);
    $("chat-citations").textContent = "";
    $("chat-citations-none").hidden = false;
    $("chat-citations-none").textContent = "None.";
    $("chat-findings").textContent = "";
    $("chat-findings-table").hidden = true;
    $("chat-guard-summary").textContent = "No policy applied.";
  }

  function showCitations(list, source) {
    const ol = $("chat-citations");
    ol.textContent = "";
    const none = $("chat-citations-none");
    if (!list || list.length === 0) {
      none.hidden = false;
      none.textContent = source ? "None: nothing in " + source + " was relevant enough." : "None.";
      return;
    }
    none.hidden = true;
    list.forEach(function (c) {
      const li = el("li", null, "citation");
      li.appendChild(el("code", c.document));
      if (c.heading) li.appendChild(el("span", " › " + c.heading));
      const facts = [];
      if (c.knowledge_base) facts.push(c.knowledge_base + (c.version !== undefined ? "@" + c.version : ""));
      if (typeof c.similarity === "number") facts.push("similarity " + c.similarity.toFixed(3));
      else if (typeof c.score === "number") facts.push("score " + c.score.toFixed(4));
      if (facts.length) li.appendChild(el("span", " (" + facts.join(", ") + ")", "muted"));
      if (c.text) {
        const text = String(c.text).trim();
        li.appendChild(el("blockquote", text.length > 400 ? text.slice(0, 400) + "…" : text, "passage"));
      }
      ol.appendChild(li);
    });
  }

  function showGuardrails(g) {
    const summary = $("chat-guard-summary");
    const tbody = $("chat-findings");
    tbody.textContent = "";
    if (!g) { summary.textContent = "No policy applied."; $("chat-findings-table").hidden = true; return; }
    const findings = g.findings || [];
    summary.textContent = "Policy " + g.policy + ": " + (g.blocked ? "blocked" : "not blocked") + ", " +
      findings.length + " finding" + (findings.length === 1 ? "" : "s") + ".";
    findings.forEach(function (f) {
      const tr = document.createElement("tr");
      tr.appendChild(el("td", f.direction));
      tr.appendChild(el("td", f.label));
      const td = document.createElement("td");
      td.appendChild(el("span", f.action, "badge " + (f.action === "block" ? "bad" : f.action === "redact" ? "warn" : "")));
      tr.appendChild(td);
      tr.appendChild(el("td", typeof f.score === "number" ? f.score.toFixed(3) : "", "num"));
      tr.appendChild(el("td", f.start !== undefined && f.start !== null ? f.start + "–" + f.end : "whole text"));
      tbody.appendChild(tr);
    });
    $("chat-findings-table").hidden = findings.length === 0;
  }

  /* the events of a server-sent-events body, one callback per data payload */
  async function readEvents(resp, onData) {
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const part = await reader.read();
      if (part.done) break;
      buffer += decoder.decode(part.value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block.split("\n").filter(function (l) { return l.startsWith("data:"); })
          .map(function (l) { return l.slice(5).replace(/^ /, ""); }).join("\n");
        if (data && onData(data) === false) { reader.cancel(); return; }
      }
    }
  }

  async function send(text) {
    const sendBtn = $("chat-send");
    const stopBtn = $("chat-stop");
    const status = $("chat-status");
    state.messages.push({ role: "user", content: text });
    addMessage("user", text);
    const box = addMessage("assistant", "");
    const answer = box.querySelector(".body").firstChild;  // a Text node: tokens are appended to it
    resetSide();
    Object.assign(probe, { chunks: 0, lengths: [], done: false, responseId: null, error: null });
    const body = requestBody();
    const started = performance.now();
    let firstToken = null;
    let responseId = null;
    let finish = null;
    let usage = null;
    let extras = {};
    let failed = null;
    state.controller = new AbortController();
    sendBtn.disabled = true;
    stopBtn.disabled = false;
    box.setAttribute("aria-busy", "true");
    status.textContent = "Waiting for " + body.model + "…";
    try {
      const resp = await fetch("/v1/chat/completions", {
        method: "POST",
        credentials: "same-origin",
        headers: window.plinth.headers({ "Content-Type": "application/json", "Accept": "text/event-stream" }),
        body: JSON.stringify(body),
        signal: state.controller.signal,
      });
      if (!resp.ok) {
        let message = "HTTP " + resp.status;
        try { const err = await resp.json(); if (err && err.error && err.error.message) message = err.error.message; } catch (e) { /* not JSON */ }
        throw new Error(message);
      }
      status.textContent = "Streaming…";
      await readEvents(resp, function (data) {
        if (data === "[DONE]") return false;
        let chunk;
        try { chunk = JSON.parse(data); } catch (e) { return true; }
        if (chunk.error) { failed = chunk.error.message || "the stream failed"; return false; }
        responseId = chunk.id || responseId;
        if (chunk.usage) usage = chunk.usage;
        if ("citations" in chunk) extras.citations = chunk.citations;
        if ("guardrails" in chunk) extras.guardrails = chunk.guardrails;
        (chunk.choices || []).forEach(function (c) {
          if (c.index !== 0) return;
          const piece = c.delta && typeof c.delta.content === "string" ? c.delta.content : "";
          if (piece) {
            if (firstToken === null) firstToken = performance.now();
            answer.appendData(piece);
            probe.chunks += 1;
            probe.lengths.push(answer.length);
          }
          if (c.finish_reason) finish = c.finish_reason;
        });
        return true;
      });
      if (failed) throw new Error(failed);
      status.textContent = "";
    } catch (e) {
      if (e.name === "AbortError") {
        status.textContent = "Stopped.";
        box.appendChild(el("span", "(stopped)", "muted stopped"));
        finish = "stopped";
      } else {
        failed = e.message;
        status.textContent = "";
        box.appendChild(el("p", e.message, "error-box"));
        probe.error = e.message;
      }
    } finally {
      box.removeAttribute("aria-busy");
      sendBtn.disabled = false;
      stopBtn.disabled = true;
      state.controller = null;
    }
    const said = answer.data;
    if (said) state.messages.push({ role: "assistant", content: said });
    else if (!failed && finish !== "stopped") box.querySelector(".body").appendChild(el("span", "(an empty answer)", "muted"));
    else if (failed) state.messages.pop();  // the question had no answer: leave it out of the next turn
    if (extras.guardrails && extras.guardrails.blocked) box.appendChild(el("span", "blocked by guardrails", "badge blocked"));
    meta([
      ["Response", responseId],
      ["Model", body.model],
      ["Finish", finish],
      ["First token", firstToken === null ? null : Math.round(firstToken - started) + " ms"],
      ["Total", Math.round(performance.now() - started) + " ms"],
      ["Tokens", usage ? usage.prompt_tokens + " in, " + usage.completion_tokens + " out" : null],
    ]);
    showGuardrails(extras.guardrails);
    if ("citations" in extras) {
      showCitations(extras.citations, null);
      if (responseId) {
        try {
          const rec = await window.plinth.api("GET", "/api/v1/citations/" + encodeURIComponent(responseId));
          showCitations(rec.citations, rec.knowledge_base + "@" + rec.version);
          $("chat-meta").appendChild(el("dt", "Knowledge base"));
          $("chat-meta").appendChild(el("dd", rec.knowledge_base + " version " + rec.version));
        } catch (e) { /* the stream's copy stays shown */ }
      }
    }
    probe.responseId = responseId;
    probe.done = true;
    document.dispatchEvent(new CustomEvent("plinth:chat-done", { detail: { id: responseId, finish: finish } }));
  }

  document.addEventListener("DOMContentLoaded", function () {
    const form = $("chat-form");
    if (!form) return;
    $("chat-settings").addEventListener("submit", function (ev) { ev.preventDefault(); });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      const input = $("chat-input");
      const text = input.value.trim();
      if (!text || state.controller) return;
      if (!setting("chat-model")) { window.plinth.toast("choose a model first", "error"); return; }
      input.value = "";
      send(text);
    });
    $("chat-input").addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); form.requestSubmit(); }
    });
    $("chat-stop").addEventListener("click", function () { if (state.controller) state.controller.abort(); });
    $("chat-clear").addEventListener("click", function () {
      if (state.controller) state.controller.abort();
      state.messages = [];
      $("chat-log").textContent = "";
      $("chat-status").textContent = "";
      resetSide();
      $("chat-input").focus();
    });
  });
})();
