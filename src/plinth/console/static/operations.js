/* plinth console, operations pages: the "Explain" button of a logged request renders the
   explanation (which cited passages and which words of the question the answer depends on).
   Every server string goes into the page with textContent. */
(function () {
  "use strict";

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function table(caption, columns, rows) {
    const t = el("table");
    t.appendChild(el("caption", caption));
    const head = el("tr");
    columns.forEach(function (c) { const th = el("th", c[0]); th.scope = "col"; if (c[2]) th.className = "num"; head.appendChild(th); });
    t.appendChild(el("thead")).appendChild(head);
    const body = el("tbody");
    rows.forEach(function (r) {
      const tr = el("tr");
      columns.forEach(function (c) { const td = el("td", r[c[1]] === undefined || r[c[1]] === null ? "" : r[c[1]]); if (c[2]) td.className = "num"; tr.appendChild(td); });
      body.appendChild(tr);
    });
    t.appendChild(body);
    return t;
  }

  function render(box, x) {
    box.textContent = "";
    const summary = el("p");
    summary.textContent = "Answer log-likelihood " + x.log_likelihood + " over " + x.answer_tokens + " tokens (mean " +
      x.mean_token_logprob + " per token); " + x.forward_passes + " forward passes in " + (x.cost ? x.cost.seconds : "?") + " s.";
    box.appendChild(summary);
    if (x.without_passages) {
      box.appendChild(el("p", "Without any passage the answer's log-likelihood drops by " + x.without_passages.drop + " nats."));
    }
    if (x.passages && x.passages.length) {
      box.appendChild(table("Cited passages, most relied on first (drop in log-likelihood without the passage)", [
        ["#", "index"], ["Document", "document"], ["Heading", "heading"], ["Drop (nats)", "drop", true], ["Per token", "drop_per_token", true], ["Text", "text"],
      ], x.passages));
    } else {
      box.appendChild(el("p", "The answer cited no passages.", "muted"));
    }
    if (x.prompt_tokens && x.prompt_tokens.length) {
      box.appendChild(table("Words of the question (drop in log-likelihood with the span removed)", [
        ["Span", "text"], ["Drop (nats)", "drop", true],
      ], x.prompt_tokens));
    }
  }

  document.addEventListener("click", async function (ev) {
    const button = ev.target.closest("[data-explain]");
    if (!button) return;
    ev.preventDefault();
    const box = document.getElementById("explanation");
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    if (box) box.textContent = "Explaining…";
    try {
      const x = await window.plinth.api("GET", button.getAttribute("data-explain"));
      if (box) render(box, x);
    } catch (e) {
      if (box) { box.textContent = ""; box.appendChild(el("p", e.message, "error-box")); }
      window.plinth.toast(e.message, "error");
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });
})();
