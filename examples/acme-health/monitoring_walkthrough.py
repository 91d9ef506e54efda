"""Issue 14's monitoring walkthrough for the Acme Health assistant, against a running server.

    make demo                                                     # terminal 1 (or: plinth up)
    .venv/bin/python examples/acme-health/monitoring_walkthrough.py   # terminal 2

It uses only the public HTTP API (httpx and the openai client), so it works against any plinth
server. Step by step it: creates (or reuses) the knowledge base ``acme-policies``, the guardrail
policy ``acme-health`` (PII redacted in questions and answers), the dataset ``acme-faq`` and the
deployment ``acme-assistant``; starts a webhook receiver on 127.0.0.1 and an alert rule on
``drift_detected`` that notifies it; asks member questions (one with an email address and a phone
number); shows the request log (redacted); measures drift against ``acme-faq@1`` (quiet), asks a
shifted batch (the same kind of questions in Spanish and German) and measures again (drift);
evaluates the rule (firing, delivered to the receiver); runs the Acme bias suite against the
deployment; and explains one answer. It exits non-zero when a step's expectation fails.

The server must be allowed to call the receiver: ``PLINTH_OUTBOUND_ALLOW='["127.0.0.1"]'``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml
from openai import OpenAI
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
KB = "acme-policies"
POLICY = "acme-health"
DATASET = "acme-faq"
DEPLOYMENT = "acme-assistant"
RULE = "acme-walkthrough-drift"
MAX_TOKENS = 24
IN_DISTRIBUTION = 32  # the drift window's minimum is 30 prompts
PII_QUESTION = "I'm jane.doe@example.com, phone 415-555-0134. How do I file a claim for a doctor I paid myself?"

# The shifted batch: members' questions of the same kind, asked in Spanish and German.
SHIFTED = [
    "¿Cuánto cuesta el deducible del plan Gold?",
    "¿Mi plan cubre las vacunas para viajar al extranjero?",
    "¿Necesito una referencia para ver a un especialista?",
    "¿Cómo presento una apelación si mi reclamo fue negado?",
    "¿Cuál es el copago de una visita de urgencias en el plan Bronze?",
    "¿Puedo agregar a mi bebé recién nacido a mi plan?",
    "¿Qué medicamentos cubre la farmacia por correo?",
    "¿La terapia de salud mental está cubierta por mi seguro?",
    "¿Cuánto tiempo tengo para presentar un reclamo después de pagar al médico?",
    "¿Dónde encuentro un médico de la red Acme Select?",
    "¿Qué hago si perdí mi tarjeta de miembro?",
    "¿La telemedicina es gratis con el plan Silver?",
    "¿Cuál es el máximo de gastos de bolsillo del plan Bronze?",
    "¿Necesito autorización previa para una resonancia magnética?",
    "¿Está cubierta la atención de emergencia fuera del país?",
    "Wie hoch ist die Selbstbeteiligung im Gold-Tarif?",
    "Übernimmt meine Versicherung die Kosten für Reiseimpfungen?",
    "Brauche ich eine Überweisung für einen Facharzt?",
    "Wie lege ich Widerspruch ein, wenn meine Rechnung abgelehnt wurde?",
    "Wie viel kostet ein Besuch in der Notaufnahme im Bronze-Tarif?",
    "Kann ich mein neugeborenes Kind in meinen Tarif aufnehmen?",
    "Welche Medikamente bekomme ich über die Versandapotheke?",
    "Ist eine Psychotherapie in meinem Tarif enthalten?",
    "Wie lange habe ich Zeit, eine Rechnung einzureichen?",
    "Wo finde ich einen Arzt im Netzwerk von Acme Select?",
    "Was soll ich tun, wenn ich meine Versichertenkarte verloren habe?",
    "Ist die Videosprechstunde im Silber-Tarif kostenlos?",
    "Wie hoch sind die maximalen Eigenkosten im Bronze-Tarif?",
    "Brauche ich eine Genehmigung für eine MRT-Untersuchung?",
    "Bin ich im Ausland bei einem Notfall versichert?",
    "¿Cubre mi plan los anteojos y los exámenes de la vista?",
    "Werden Vorsorgeuntersuchungen vollständig bezahlt?",
]

console = Console()


class StepFailed(Exception):
    pass


def expect(ok: bool, message: str) -> None:
    if not ok:
        raise StepFailed(message)


def step(n: int, title: str) -> None:
    console.rule(f"[bold cyan]{n}. {title}", align="left")


# -- the webhook receiver ---------------------------------------------------------------------------
class Receiver:
    """An Alertmanager-style webhook receiver on 127.0.0.1 (a random port) in a thread."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        received = self.payloads

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    received.append(json.loads(body))
                except ValueError:
                    received.append({"unparsed": body.decode(errors="replace")})
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, status: str, timeout_s: float = 30) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for p in self.payloads:
                if p.get("status") == status:
                    return p
            time.sleep(0.2)
        return None

    def close(self) -> None:
        self.server.shutdown()


# -- the API ------------------------------------------------------------------------------------------
class Api:
    def __init__(self, base_url: str, api_key: str | None) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/") + "/api/v1", headers=headers, timeout=600)

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201), **kw: Any) -> httpx.Response:
        r = self.http.request(method, path, **kw)
        if r.status_code not in ok:
            raise StepFailed(f"{method} /api/v1{path} answered {r.status_code}: {r.text[:800]}")
        return r

    def exists(self, path: str) -> dict[str, Any] | None:
        r = self.call("GET", path, ok=(200, 404))
        return r.json() if r.status_code == 200 else None


def _documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for p in sorted((HERE / "policies").iterdir()):
        if p.suffix == ".pdf":
            docs.append({"name": p.name, "content_base64": base64.b64encode(p.read_bytes()).decode()})
        else:
            docs.append({"name": p.name, "text": p.read_text(encoding="utf-8")})
    return docs


def _questions(path: Path) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(next(m["content"] for m in json.loads(line)["messages"] if m["role"] == "user"))
    return out


def setup(api: Api, model: str) -> None:
    step(1, "The knowledge base, the guardrail policy, the dataset and the deployment")
    kb = api.exists(f"/knowledge-bases/{KB}")
    if kb is None:
        api.call("POST", "/knowledge-bases", json={"name": KB, "description": "Acme Health policy documents"})
    if kb is None or not kb.get("version"):
        with console.status(f"adding examples/acme-health/policies to {KB} (embedding the chunks) ..."):
            report = api.call("POST", f"/knowledge-bases/{KB}/documents", json={"documents": _documents()}).json()
        console.print(f"knowledge base [bold]{KB}[/] created: version {report.get('version')}, {len(_documents())} documents")
    else:
        console.print(f"knowledge base [bold]{KB}[/] reused (version {kb.get('version')})")

    if api.exists(f"/guardrails/policies/{POLICY}") is None:
        text = (REPO / "examples" / "guardrails" / "acme-health.yaml").read_text(encoding="utf-8")
        api.call("POST", "/guardrails/policies", json={"yaml": text})
        console.print(
            f"guardrail policy [bold]{POLICY}[/] created from examples/guardrails/acme-health.yaml (PII redacted on input and output)"
        )
    else:
        console.print(f"guardrail policy [bold]{POLICY}[/] reused")

    if api.exists(f"/datasets/{DATASET}") is None:
        api.call(
            "POST",
            f"/datasets/{DATASET}/versions",
            content=(HERE / "faq.jsonl").read_bytes(),
            params={"filename": "faq.jsonl"},
            headers={"content-type": "application/x-ndjson"},
        )
        console.print(f"dataset [bold]{DATASET}[/] version 1 uploaded from examples/acme-health/faq.jsonl")
    else:
        console.print(f"dataset [bold]{DATASET}[/] reused")

    dep = api.exists(f"/deployments/{DEPLOYMENT}")
    if dep is None:
        body = {"name": DEPLOYMENT, "model": model, "knowledge_base": KB, "guardrail_policy": POLICY}
        api.call("POST", "/deployments", json=body)
        console.print(f"deployment [bold]{DEPLOYMENT}[/] created: {model} + {KB} + {POLICY}")
    else:
        console.print(f"deployment [bold]{DEPLOYMENT}[/] reused")


def alert_rule(api: Api, receiver: Receiver) -> None:
    step(2, "A webhook receiver and an alert rule on drift")
    rule = {
        "signal": "drift_detected",
        "deployment": DEPLOYMENT,
        "comparison": ">=",
        "threshold": 1,
        "window": "1h",
        "severity": "warning",
        "runbook": "What members ask no longer looks like the FAQ the assistant was built for; see plinth monitor drift acme-assistant.",
        "actions": [{"kind": "webhook", "url": receiver.url}],
    }
    exists = api.exists(f"/alerts/rules/{RULE}") is not None
    r = api.http.request("PUT" if exists else "POST", f"/alerts/rules/{RULE}" if exists else "/alerts/rules", json=rule | {"name": RULE})
    if r.status_code == 400 and "url" in str(r.json().get("error", {}).get("param", "")):
        console.print(f"[bold red]the server refuses the webhook:[/] {r.json()['error']['message']}")
        console.print("Restart the server allowing calls to this machine, then run this again:")
        console.print("    PLINTH_OUTBOUND_ALLOW='[\"127.0.0.1\"]' make demo", highlight=False, markup=False)
        raise StepFailed("outbound calls to 127.0.0.1 are not allowed: set PLINTH_OUTBOUND_ALLOW='[\"127.0.0.1\"]' on the server")
    if r.status_code not in (200, 201):
        raise StepFailed(f"creating the alert rule answered {r.status_code}: {r.text[:800]}")
    console.print(f"receiver listening on [bold]{receiver.url}[/]")
    console.print(f"rule [bold]{RULE}[/]: {r.json()['description']} -> webhook")


def ask(client: OpenAI, questions: list[str], label: str) -> list[str]:
    ids = []
    with console.status(f"asking {len(questions)} {label} ...") as status:
        for i, q in enumerate(questions, 1):
            status.update(f"asking {label}: {i}/{len(questions)}")
            r = client.chat.completions.create(
                model=DEPLOYMENT, messages=[{"role": "user", "content": q}], max_tokens=MAX_TOKENS, temperature=0
            )
            ids.append(r.id)
    console.print(f"asked {len(questions)} {label} (max_tokens {MAX_TOKENS})")
    return ids


def logged(api: Api, ids: list[str], timeout_s: float = 180) -> dict[str, dict[str, Any]]:
    """The request log's entries of these responses, once its writer has written them all."""
    want = set(ids)
    deadline = time.monotonic() + timeout_s
    while True:
        entries = api.call("GET", "/requests", params={"deployment": DEPLOYMENT, "limit": 500}).json()["requests"]
        found = {e["response_id"]: e for e in entries if e["response_id"] in want}
        if len(found) == len(want):  # the writer stores an entry with its prompt's vector at once
            return found
        if time.monotonic() > deadline:
            raise StepFailed(f"the request log holds {len(found)} of the {len(want)} requests after {timeout_s:.0f} s")
        time.sleep(0.5)


def show_requests(entries: list[dict[str, Any]], pii_id: str) -> None:
    table = Table(title="plinth requests list -d acme-assistant (newest first, as the log keeps them)")
    for col in ("response id", "outcome", "latency s", "findings", "prompt (redacted)", "response (redacted)"):
        table.add_column(col, overflow="fold")
    for e in entries:
        style = "bold yellow" if e["response_id"] == pii_id else None
        table.add_row(
            e["response_id"],
            e["outcome"],
            f"{e['latency_s']:.2f}" if e.get("latency_s") is not None else "-",
            str(e["finding_count"]),
            e["prompt"] or "-",
            (e["response"] or "-")[:80],
            style=style,
        )
    console.print(table)


def drift(api: Api, n: int) -> dict[str, Any]:
    body = {"window": "1h", "reference": f"dataset:{DATASET}@1", "limit": n}
    with console.status(f"measuring drift of the newest {n} prompts against {DATASET}@1 ..."):
        run: dict[str, Any] = api.call("POST", f"/deployments/{DEPLOYMENT}/drift", json=body).json()
    table = Table(title=f"drift run {run['id']}: {run['n_recent']} prompts vs {run['n_reference']} reference questions")
    for col in ("method", "p-value", "drifted"):
        table.add_column(col)
    for name, m in (run["results"] or {}).get("methods", {}).items():
        p = m.get("p_value")
        table.add_row(name, "-" if p is None else f"{p:.4f}", "[bold red]yes[/]" if m.get("drifted") else "no")
    console.print(table)
    verdict = "[bold red]DRIFT[/]" if run["drifted"] else "[bold green]quiet[/]"
    console.print(f"drift run {run['id']}: {verdict}, score {run['score']:.2f} (1.0 = a method at its drift floor)")
    terms = ((run["results"] or {}).get("changed") or {}).get("terms", {}).get("recent") or []
    if run["drifted"] and terms:
        console.print("most characteristic words of the recent prompts: " + ", ".join(t["term"] for t in terms[:10]))
    return run


def evaluate(api: Api) -> dict[str, Any]:
    out: dict[str, Any] = api.call("POST", f"/alerts/rules/{RULE}/evaluate").json()
    console.print(f"rule [bold]{RULE}[/] evaluated: value {out['value']}, state [bold]{out['rule']['state']}[/]")
    return out


def bias(api: Api, questions: int | None) -> dict[str, Any]:
    suite = yaml.safe_load((HERE / "bias" / "acme-health-bias.yaml").read_text(encoding="utf-8"))
    suite["max_tokens"] = MAX_TOKENS  # short answers keep the walkthrough to minutes on a laptop
    if questions is not None:
        suite["questions"] = suite["questions"][:questions]
    with console.status(f"replaying the Acme bias suite against {DEPLOYMENT} ..."):
        report: dict[str, Any] = api.call("POST", "/bias/runs", json={"suite": suite, "target": DEPLOYMENT, "wait": True}).json()["report"]
    gen = report.get("generation") or {}
    verdict = "[bold green]PASSED[/]" if report["passed"] else "[bold red]FAILED[/]"
    generated = f"{gen.get('prompts')} prompts, max_tokens {gen.get('max_tokens')}, {gen.get('seconds')} s"
    console.print(f"bias report [bold]{report['id']}[/]: {verdict}  ({generated})")
    table = Table(title="gaps per attribute (value vs threshold)")
    for col in ("attribute", "metric", "value", "threshold", "result"):
        table.add_column(col)
    for name, a in (report.get("attributes") or {}).items():
        for metric, m in (a.get("metrics") or {}).items():
            threshold = m.get("threshold")
            bound = "-" if threshold is None else f"{'>=' if m.get('direction') == 'min' else '<='} {threshold:g}"
            value = m.get("value")
            passed = m.get("passed")
            result = "not judged" if passed is None else ("pass" if passed else "[bold red]FAIL[/]")
            table.add_row(
                name + (" (control)" if a.get("control") else ""), metric, "-" if value is None else f"{value:.3f}", bound, result
            )
    console.print(table)
    for f in report.get("failures") or []:
        console.print(f"  [red]failure:[/] {f}")
    return report


def explain(api: Api, entries: list[dict[str, Any]]) -> dict[str, Any]:
    cited = [e for e in entries if e["citations"] and e["response"] and e["outcome"] == "ok"]
    expect(bool(cited), "no logged answer cites a passage of the knowledge base: nothing to explain")
    entry = cited[0]
    with console.status(f"explaining {entry['response_id']} (loads the model on torch the first time) ..."):
        out: dict[str, Any] = api.call("GET", f"/responses/{entry['response_id']}/explanation", params={"max_spans": 8}).json()
    console.print(f"[bold]question:[/] {out['question']}")
    console.print(f"[bold]answer:[/]   {out['answer']}")
    table = Table(title="cited passages by how much the answer depends on them (drop in log-likelihood without it)")
    for col in ("document", "heading", "drop (nats)"):
        table.add_column(col, overflow="fold")
    for p in out["passages"]:
        table.add_row(str(p["document"]), str(p["heading"]), f"{p['drop']:+.3f}")
    console.print(table)
    console.print("question words that mattered most: " + ", ".join(repr(t) for t in out["top_prompt_tokens"]))
    console.print(f"[dim]{out['cost']['forward_passes']} forward passes, {out['cost']['seconds']} s[/]")
    return out


def walk(api: Api, client: OpenAI, model: str, bias_questions: int | None = None) -> None:
    started = time.monotonic()
    receiver = Receiver()
    try:
        setup(api, model)
        alert_rule(api, receiver)

        step(3, "Members ask in-distribution questions (one with an email address and a phone number)")
        questions = [*_questions(HERE / "faq-eval.jsonl")[: IN_DISTRIBUTION - 1], PII_QUESTION]
        ids = ask(client, questions, "member questions from faq-eval.jsonl")

        step(4, "The request log: what was asked, as the policy's redaction left it")
        entries = logged(api, ids)
        ordered = sorted(entries.values(), key=lambda e: -e["id"])
        show_requests(ordered[:8], ids[-1])
        pii = entries[ids[-1]]
        console.print(f"logged with the PII redacted: [bold]{pii['prompt']}[/]  (plinth requests show {pii['response_id']})")
        text = json.dumps(pii)
        expect(pii["prompt"] is not None, "the PII question was logged without text (no policy redacts input?)")
        expect("jane.doe@example.com" not in text and "415-555-0134" not in text, "the email address or phone number is in the request log")

        step(5, f"Drift of those questions against the dataset {DATASET}@1: quiet")
        quiet = drift(api, len(ids))
        expect(not quiet["drifted"], f"drift fired on in-distribution questions (score {quiet['score']:.2f})")
        evaluate(api)

        step(6, "A shifted batch (the same kind of questions in Spanish and German): drift fires")
        shifted_ids = ask(client, SHIFTED, "shifted questions")
        logged(api, shifted_ids)
        loud = drift(api, len(shifted_ids))
        expect(loud["drifted"], f"drift stayed quiet on the shifted batch (score {loud['score']:.2f})")

        step(7, "The alert fires and is delivered to the webhook receiver")
        ev = evaluate(api)
        expect(ev["rule"]["state"] == "firing", f"the rule is {ev['rule']['state']}, not firing")
        for d in (ev.get("event") or {}).get("delivered", []):
            console.print(f"  action {d.get('kind')}: {'ok' if d.get('ok') else 'FAILED'} {d.get('message', '')}")
        payload = receiver.wait_for("firing")
        expect(payload is not None, "the webhook receiver got no firing alert")
        assert payload is not None
        alert = payload["alerts"][0]
        console.print(
            f"webhook received (Alertmanager payload version {payload.get('version')}): status [bold]{payload['status']}[/], "
            f"alertname {alert['labels'].get('alertname')}, deployment {alert['labels'].get('deployment')}, "
            f"severity {alert['labels'].get('severity')}"
        )
        console.print(f"  summary: {alert['annotations'].get('summary', '')}")
        expect(payload.get("version") == "4" and alert["labels"].get("alertname") == RULE, "the webhook payload is not the rule's alert")

        step(8, "The Acme bias suite against acme-assistant")
        report = bias(api, bias_questions)
        console.print(f"plinth bias show {report['id']}   # the whole report")

        step(9, "An explanation of one logged answer")
        explanation = explain(api, ordered)
        console.print(f"plinth explain {explanation['response_id']}   # the same on the command line")
    finally:
        receiver.close()
    console.rule(f"[bold green]walkthrough complete in {time.monotonic() - started:.0f} s", align="left")


def main(argv: list[str] | None = None) -> int:
    global MAX_TOKENS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--base-url", default=os.environ.get("PLINTH_URL", "http://127.0.0.1:8000"), help="the plinth server")
    ap.add_argument("--api-key", default=os.environ.get("PLINTH_API_KEY"), help="an API key (a server with auth)")
    ap.add_argument("--model", default="smollm2-135m-instruct", help="the model acme-assistant serves when it is created")
    ap.add_argument("--bias-questions", type=int, default=None, help="replay only the suite's first N questions (default: all)")
    ap.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help=f"tokens per answer (default {MAX_TOKENS})")
    args = ap.parse_args(argv)
    MAX_TOKENS = max(1, args.max_tokens)
    api = Api(args.base_url, args.api_key)
    client = OpenAI(base_url=args.base_url.rstrip("/") + "/v1", api_key=args.api_key or "x", max_retries=2, timeout=600)
    try:
        httpx.get(args.base_url.rstrip("/") + "/readyz", timeout=10).raise_for_status()
    except httpx.HTTPError as e:
        console.print(f"[bold red]no plinth server ready at {args.base_url}:[/] {e}  (start one with `make demo`)")
        return 2
    try:
        walk(api, client, args.model, args.bias_questions)
    except StepFailed as e:
        console.print(f"[bold red]walkthrough failed:[/] {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
