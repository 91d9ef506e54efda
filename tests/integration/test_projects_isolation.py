"""Projects and roles on a live server with PLINTH_AUTH=true (issue 13, "Done when").

One server holds two projects set up through the real API: ``claims`` (alice owner, vic
viewer, app inference-only) and ``marketing`` (bob editor, mia owner). alice makes one
resource of every kind the API can make cheaply in claims; then:

- the generated walk: every operation of ``/openapi.json`` whose path has parameters is
  called with claims' ids and marketing's keys (bob, and mia who may also manage keys and
  members): 404 or 403, never 2xx, never claims data, and always the same answer as for an id
  that does not exist; operations that list things show marketing nothing of claims; bodies
  that name a claims resource (a chat's model or knowledge base, a deployment's target...)
  are 404 too. A route whose parameter the walk cannot fill fails the walk, so a new route is
  covered (or consciously allow-listed) when it is added;
- roles: the viewer reads and cannot write, the inference role calls ``/v1`` and cannot
  manage, the owner manages claims' members and keys and nothing of marketing; keys never
  exceed their user's rights, and ``/keys/self`` only reads;
- login sessions (cookie, CSRF, lockout, logout, ``X-Plinth-Project``), the single-sign-on
  header from trusted proxies only, and turning auth on over data made without it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.live_server import MODEL, LiveServer, start_server, stop_server

PASSWORD = "correct horse battery staple"
MESSAGES = [{"role": "user", "content": "When must claims be filed?"}]
DOC_TEXT = "Claims must be filed within 30 days of treatment."
#: the smallest valid bias suite (POST /api/v1/bias/runs is walked with it)
BIAS_SUITE = {
    "name": "mkt-bias",
    "max_tokens": 1,
    "template": "I'm {name}. {question}",
    "profile": {"name": "Ann"},
    "questions": ["When must claims be filed?"],
    "attributes": [{"name": "names", "slot": "name", "variants": {"a": "Ann", "b": "Bo"}}],
}
SERVER_ENV: dict[str, Any] = {  # Any: passed as keyword arguments
    "PLINTH_AUTH": "true",
    "PLINTH_MAX_BATCH_SIZE": "2",
    "PLINTH_CONTEXT_LENGTH": "1024",
    "PLINTH_THREADS": "1",
    # claims registers a remote engine at 127.0.0.1 (never called): allowed as an operator would
    "PLINTH_OUTBOUND_ALLOW": '["127.0.0.1"]',
    # the single-sign-on header is configured but no proxy is trusted: it must be ignored
    "PLINTH_SSO_USER_HEADER": "X-Forwarded-User",
}


# -- bootstrapping ------------------------------------------------------------------------------------
def bootstrap_admin_key(home: Path) -> str:
    """The first key of a server with auth on is made with the CLI, on the server's store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env.update({"PLINTH_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    out = subprocess.run(
        [sys.executable, "-m", "plinth", "keys", "create", "root", "--scope", "admin", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return str(json.loads(out.stdout)["key"])


def _h(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def _ok(r: httpx.Response, *codes: int) -> Any:
    assert r.status_code in (codes or (200, 201, 202)), f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:500]}"
    return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None


def _login(c: httpx.Client, user: str, password: str = PASSWORD) -> tuple[str, str, httpx.Response]:
    """(the session cookie, the CSRF token, the answer) of a login."""
    r = c.post("/api/v1/auth/login", json={"user": user, "password": password})
    body = _ok(r)
    return r.cookies["plinth_session"], body["csrf_token"], r


def _session(cookie: str, csrf: str | None = None, **extra: str) -> dict[str, str]:
    """Headers of a call made with a session cookie (sent by hand: the cookie is Secure and
    the server speaks plain HTTP here)."""
    headers = {"Cookie": f"plinth_session={cookie}", **extra}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    return headers


@dataclass
class World:
    server: LiveServer
    root: str
    keys: dict[str, str]  # user -> their key in their project (mia, bob: marketing; alice, vic, app: claims)
    key_ids: dict[str, str]
    #: claims' resources by kind (the kinds PATH_PARAMS, QUERY_PARAMS and BODY_REFS name)
    claims: dict[str, list[str]]
    #: what must never reach marketing: every claims id and name, and contents only claims holds
    markers: list[str]
    #: marketing's own resources, where a body names a claims resource from marketing's side
    marketing: dict[str, list[str]] = field(default_factory=dict)
    adapter_file: Path | None = None

    @property
    def url(self) -> str:
        return self.server.url


def _register_claims_version(home: Path, adapter_digest: str) -> None:
    """A registered model version in claims, written through the store: the API registers
    versions only at the end of a ``tune`` job, which needs the embedded model dequantised
    (about 40 s) and training; the registry routes read what the store holds either way."""
    from plinth.domain.projects import project_scope
    from plinth.domain.tracking import ModelVersion
    from plinth.store.sql import SqlStore

    store = SqlStore(f"sqlite:///{home / 'plinth.db'}")
    try:
        with project_scope("claims"):
            store.create_registered_model("claims-reg", "claims registered model")
            store.add_model_version(
                ModelVersion(
                    name="claims-reg",
                    version=1,
                    kind="adapter",
                    base_model=MODEL,
                    base_digest=None,
                    served_as=f"{MODEL}:claims-lora",
                    artifact_digest=adapter_digest,
                    model_card="# claims-reg card",
                )
            )
            store.set_alias("claims-reg", "prod", 1)
    finally:
        store.close()


def _add_claims_drift_run(home: Path) -> str:
    """A stored drift run of claims' deployment, written through the store (a run through the
    API needs 30 logged prompts with text); the drift routes read what the store holds."""
    from datetime import UTC, datetime

    from plinth.domain.drift import DriftRun
    from plinth.domain.projects import project_scope
    from plinth.store.sql import SqlStore

    store = SqlStore(f"sqlite:///{home / 'plinth.db'}")
    try:
        now = datetime.now(UTC)
        with project_scope("claims"):
            run = store.add_drift_run(
                DriftRun("claims-chat", now, now, 30, 30, {"kind": "dataset", "dataset": "claims-data@1"}, {"methods": {}}, False, 0.1)
            )
        return str(run.id)
    finally:
        store.close()


def _add_claims_bias_report(home: Path) -> str:
    """A stored bias report of claims' deployment, written through the store (a run through the
    API replays a suite on the model); the bias routes read what the store holds."""
    from plinth.domain.bias import BiasReport
    from plinth.domain.projects import project_scope
    from plinth.store.sql import SqlStore

    store = SqlStore(f"sqlite:///{home / 'plinth.db'}")
    try:
        with project_scope("claims"):
            report = store.add_bias_report(BiasReport("", "claims-chat", "claims-bias", {"failures": [], "attributes": {}}, True))
        return report.id
    finally:
        store.close()


def _wait_job(c: httpx.Client, key: str, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = _ok(c.get(f"/api/v1/jobs/{job_id}", headers=_h(key)))
        if job["state"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return dict(job)
        time.sleep(0.3)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("projects-home")
    root = bootstrap_admin_key(home)
    server = start_server(home, **SERVER_ENV)
    try:
        yield _build(server, root)
    finally:
        stop_server(server)
    log = server.log_text()
    assert "Traceback" not in log, log[-5000:]


def _build(server: LiveServer, root: str) -> World:
    c = httpx.Client(base_url=server.url, timeout=120)
    R = _h(root)
    for project in ("claims", "marketing"):
        _ok(c.post("/api/v1/projects", headers=R, json={"name": project, "description": f"the {project} team"}))
    for user in ("alice", "bob", "vic", "app", "mia", "carol", "dave"):
        _ok(c.post("/api/v1/users", headers=R, json={"name": user, "password": PASSWORD}))
    for user, project, role in (
        ("alice", "claims", "owner"),
        ("vic", "claims", "viewer"),
        ("app", "claims", "inference"),
        ("bob", "marketing", "editor"),
        ("mia", "marketing", "owner"),
    ):
        _ok(c.put(f"/api/v1/projects/{project}/members/{user}", headers=R, json={"role": role}))
    keys: dict[str, str] = {}
    key_ids: dict[str, str] = {}
    # alice makes her own key in her session; the others are made by the root admin for them
    cookie, csrf, _ = _login(c, "alice")
    made = _ok(c.post("/api/v1/keys", headers=_session(cookie, csrf), json={"name": "alice-key", "scopes": ["admin"]}))
    assert made["project"] == "claims" and made["user"] == "alice"
    keys["alice"], key_ids["alice"] = made["key"], made["id"]
    _ok(c.post("/api/v1/auth/logout", headers=_session(cookie, csrf)))
    for user, project, scopes in (
        ("vic", "claims", ["read"]),
        ("app", "claims", ["inference"]),
        ("bob", "marketing", ["inference", "manage"]),
        ("mia", "marketing", ["admin"]),
    ):
        made = _ok(c.post("/api/v1/keys", headers=R, json={"name": f"{user}-key", "user": user, "project": project, "scopes": scopes}))
        assert made["project"] == project and made["user"] == user
        keys[user], key_ids[user] = made["key"], made["id"]

    A = _h(keys["alice"])
    # an eval job first: it runs in a worker process while the rest is made (it makes a run
    # and an evaluation report)
    rows = "".join(
        json.dumps(
            {"messages": [{"role": "user", "content": f"claims question {i}"}, {"role": "assistant", "content": f"claims answer {i}"}]}
        )
        + "\n"
        for i in range(6)
    )
    dataset = _ok(
        c.post(
            "/api/v1/datasets/claims-data/versions",
            headers={**A, "Content-Type": "application/x-ndjson"},
            params={"filename": "claims-rows.jsonl"},
            content=rows.encode(),
        )
    )
    assert dataset["ref"] == "claims-data@1"
    evaluation = _ok(
        c.post("/api/v1/evaluations", headers=A, json={"model": MODEL, "dataset": "claims-data", "max_samples": 1, "max_tokens": 1})
    )
    selftest = _ok(
        c.post("/api/v1/jobs", headers=A, json={"kind": "selftest", "spec": {"steps": 1, "sleep_s": 0}, "name": "claims-selftest"})
    )
    _ok(c.post("/api/v1/knowledge-bases", headers=A, json={"name": "claims-kb", "description": "claims knowledge"}))
    added = _ok(
        c.post(
            "/api/v1/knowledge-bases/claims-kb/documents",
            headers=A,
            json={"documents": [{"name": "claims-policy.md", "text": f"# Claims\n{DOC_TEXT}"}]},
        )
    )
    assert added["counts"] == {"added": 1}, added
    rules = {"rules": [{"detector": "pii", "on": ["output"], "entities": ["US_SSN"]}]}
    _ok(c.post("/api/v1/guardrails/policies", headers=A, json={"name": "claims-guard", "description": "claims guard", **rules}))
    _ok(
        c.post(
            "/api/v1/models",
            headers=A,
            json={"name": "claims-remote", "base_url": "http://127.0.0.1:9/v1", "upstream_model": "claims-upstream"},
        )
    )
    imports = server.home / "imports"
    imports.mkdir(exist_ok=True)
    from plinth.formats import locate_embedded_gguf
    from tests.support.adapters import write_random_gguf_lora

    (imports / "mkt-rows.jsonl").write_text(rows.replace("claims", "marketing"))
    lora = write_random_gguf_lora(imports / "claims-lora.gguf", base_gguf=locate_embedded_gguf(), rank=1, layers=[0])
    adapter = _ok(c.post(f"/api/v1/models/{MODEL}/adapters", headers=A, json={"path": str(lora), "name": "claims-lora"}))
    _register_claims_version(server.home, adapter["digest"])
    drift_run = _add_claims_drift_run(server.home)
    bias_report = _add_claims_bias_report(server.home)
    _ok(
        c.post(
            "/api/v1/deployments",
            headers=A,
            json={
                "name": "claims-chat",
                "model": MODEL,
                "knowledge_base": "claims-kb",
                "guardrail_policy": "claims-guard",
                "description": "claims bot",
            },
        )
    )
    _ok(
        c.post(
            "/api/v1/alerts/rules",
            headers=A,
            json={"name": "claims-alert", "signal": "requests", "deployment": "claims-chat", "threshold": 0},
        )
    )
    pipeline = {
        "name": "claims-pipeline",
        "params": {"n": 1},
        "steps": [{"name": "prepare", "action": "set", "spec": {"n": "${params.n}"}}],
    }
    _ok(c.post("/api/v1/pipelines", headers=A, json=pipeline))
    pipeline_run = _ok(c.post("/api/v1/pipelines/claims-pipeline/runs", headers=A, json={"reason": "claims-run"}))["id"]
    _ok(c.post("/api/v1/triggers", headers=A, json={"name": "claims-trigger", "pipeline": "claims-pipeline", "kind": "manual"}))
    chat = _ok(c.post("/v1/chat/completions", headers=A, json={"model": "claims-chat", "messages": MESSAGES, "max_tokens": 2}))
    response_id = chat["id"]
    stored = _ok(c.post("/v1/responses", headers=A, json={"model": MODEL, "input": "claims question", "max_output_tokens": 2}))
    _ok(c.post("/api/v1/feedback", headers=A, json={"response_id": response_id, "rating": 1, "comment": "claims-feedback comment"}))
    cited = _ok(c.get(f"/api/v1/citations/{response_id}", headers=A))
    assert cited["knowledge_base"] == "claims-kb"
    for model_id, prompt in ((MODEL, "claims-attachment on the shared model"), ("claims-remote", "claims-attachment on its own model")):
        _ok(c.patch(f"/api/v1/models/{model_id}/attachments", headers=A, json={"system_prompt": prompt}))
    jobs = [evaluation["job"]["id"], selftest["id"]]
    finished = {j: _wait_job(c, keys["alice"], j) for j in jobs}
    assert all(j["state"] == "succeeded" for j in finished.values()), finished
    run_id = finished[jobs[0]]["result"]["run_id"]
    report_id = finished[jobs[0]]["result"]["report"]

    # marketing's own resources (bob), for the calls whose body names a claims resource
    _ok(c.post("/api/v1/queues", headers=R, json={"name": "claims-queue", "quota": {"cpu": 1, "memory": "1GiB"}, "project": "claims"}))
    B = _h(keys["bob"])
    _ok(c.post("/api/v1/deployments", headers=B, json={"name": "mkt-chat", "model": MODEL}))
    _ok(
        c.post(
            "/api/v1/datasets/mkt-data/versions",
            headers={**B, "Content-Type": "application/x-ndjson"},
            content=rows.replace("claims", "marketing").encode(),
        )
    )
    _ok(c.post("/api/v1/knowledge-bases", headers=B, json={"name": "mkt-kb"}))
    c.close()

    claims = {
        "project": ["claims"],
        "user": ["alice"],
        "queue": ["claims-queue"],
        "dataset": ["claims-data"],
        "dataset_version": ["1"],
        "kb": ["claims-kb"],
        "document": ["claims-policy.md"],
        "policy": ["claims-guard"],
        "deployment": ["claims-chat"],
        "revision": ["1"],
        "job": jobs,
        "run": [run_id],
        "report": [report_id],
        "drift_run": [drift_run],
        "bias_report": [bias_report],
        "alert_rule": ["claims-alert"],
        "pipeline": ["claims-pipeline"],
        "pipeline_run": [pipeline_run],
        "trigger": ["claims-trigger"],
        "catalog_model": ["claims-remote"],
        "adapter": ["claims-lora"],
        "registered": ["claims-reg"],
        "registered_version": ["1"],
        "alias": ["prod"],
        "response": [response_id],
        "stored_response": [stored["id"]],  # a response of /v1/responses, stored in claims
        "key": [key_ids["alice"], "alice-key", key_ids["app"]],
        # every id a /v1 request may name: the deployment, the remote engine, the adapter, the
        # registry version (by number and alias)
        "model_id": ["claims-chat", "claims-remote", f"{MODEL}:claims-lora", "claims-reg", "claims-reg@1", "claims-reg@prod"],
        "attachable": ["claims-remote", f"{MODEL}:claims-lora"],
        "kb_ref": ["claims-kb", "claims-kb@1"],
        "policy_ref": ["claims-guard", "claims-guard@1"],
        "dataset_ref": ["claims-data", "claims-data@1"],
    }
    markers = sorted(
        {v for k, vs in claims.items() if k not in ("dataset_version", "revision", "registered_version", "alias", "drift_run") for v in vs}
        | {DOC_TEXT, "claims-feedback comment", "claims-attachment", "claims-selftest", "claims question", "claims answer"}
        | {"claims-rows.jsonl", "claims-upstream", "the claims team", "claims knowledge", "claims guard", "claims bot"}
        | {key_ids["vic"], "vic-key", "app-key", run_id, report_id}
    )
    marketing = {"deployment": ["mkt-chat"], "dataset": ["mkt-data"], "kb": ["mkt-kb"], "shared_model": [MODEL]}
    return World(server, root, keys, key_ids, claims, markers, marketing, lora)


# -- the walk: how each parameter is filled --------------------------------------------------------------
#: A path parameter is filled with the claims values of a kind: the entry of the template up to
#: and including the parameter applies to every route below it (a new route under a known
#: resource is walked without a change here); an entry of the whole template and the parameter
#: overrides it. A value starting with "=" is a literal that belongs to no project.
PATH_PARAMS: dict[str, str] = {
    "/v1/models/{model_id}": "model_id",
    "/v1/responses/{response_id}": "stored_response",
    "/api/v1/models/{name}": "catalog_model",
    "/api/v1/models/{model_id}": "attachable",  # .../attachments
    "/api/v1/models/{name}/adapters/{adapter}": "adapter",
    "/api/v1/knowledge-bases/{name}": "kb",
    "/api/v1/knowledge-bases/{name}/documents/{document}": "document",
    "/api/v1/citations/{response_id}": "response",
    "/api/v1/requests/{response_id}": "response",
    "/api/v1/jobs/{job_id}": "job",
    "/api/v1/datasets/{name}": "dataset",
    "/api/v1/datasets/{name}/versions/{version}": "dataset_version",
    "/api/v1/guardrails/policies/{name}": "policy",
    "/api/v1/evaluations/{report_id}": "report",
    "/api/v1/runs/{run_id}": "run",
    "/api/v1/drift-runs/{run_id}": "drift_run",
    "/api/v1/alerts/rules/{name}": "alert_rule",
    "/api/v1/pipelines/{name}": "pipeline",
    "/api/v1/pipeline-runs/{run_id}": "pipeline_run",
    "/api/v1/pipeline-runs/{run_id}/steps/{step}": "=prepare",  # the step of claims' run (a name, not a resource)
    "/api/v1/triggers/{name}": "trigger",
    "/api/v1/bias/reports/{report_id}": "bias_report",
    "/api/v1/responses/{response_id}": "response",
    "/api/v1/registry/models/{name}": "registered",
    "/api/v1/registry/models/{name}/versions/{version}": "registered_version",
    "/api/v1/registry/models/{name}/aliases/{alias}": "alias",
    "/api/v1/deployments/{name}": "deployment",
    "/api/v1/deployments/{name}/revisions/{number}": "revision",
    "/api/v1/keys/{ref}": "key",
    "/api/v1/projects/{name}": "project",
    "/api/v1/projects/{name}/members/{user}": "user",
    "/api/v1/users/{name}": "user",
    "/api/v1/queues/{name}": "queue",  # a queue the server admin dedicated to claims
}
PATH_OVERRIDES: dict[tuple[str, str], str] = {
    # a claims adapter lives on the shared built-in base model
    ("/api/v1/models/{name}/adapters/{adapter}", "name"): "=" + MODEL,
}
#: Routes the walk does not fill, each with why (test_server_wide_job_settings_need_a_server_admin
#: checks that only server admins change them).
NOT_PROJECT_RESOURCES: dict[str, str] = {
    "/api/v1/priority-classes/{name}": "priority classes are the server's, shared by every project",
}
#: Query parameters filled with claims values wherever a route has them (required ones must be
#: here: the walk fails on an unfilled required parameter).
QUERY_PARAMS: dict[str, str] = {
    "from": "dataset_version",
    "to": "dataset_version",
    "models": "model_id",
    "ids": "run",
    "model": "model_id",
    "deployment": "deployment",
    "response_id": "response",
    "key": "key",
    "policy": "policy",
    "registry": "registered",
    "knowledge_base": "kb",
    "rule": "alert_rule",
    "pipeline": "pipeline",
    "trigger": "trigger",
}
#: The body each operation that needs one is walked with: valid, so that nothing but the
#: lookup can refuse it. Values naming claims resources come from the path only.
BODIES: dict[tuple[str, str], Callable[[World], Any]] = {
    ("POST", "/v1/chat/completions"): lambda w: {"model": MODEL, "messages": MESSAGES, "max_tokens": 1},
    ("POST", "/v1/completions"): lambda w: {"model": MODEL, "prompt": "Claims are", "max_tokens": 1},
    ("POST", "/v1/embeddings"): lambda w: {"model": "minilm", "input": "claims"},
    ("POST", "/v1/moderations"): lambda w: {"input": "claims"},
    ("POST", "/v1/responses"): lambda w: {"model": MODEL, "input": "marketing", "max_output_tokens": 1},
    ("POST", "/api/v1/models"): lambda w: {"name": "mkt-remote", "base_url": "http://127.0.0.1:9/v1"},
    ("POST", "/api/v1/models/{name}/adapters"): lambda w: {"path": str(w.adapter_file), "name": "mkt-lora"},
    ("PATCH", "/api/v1/models/{model_id}/attachments"): lambda w: {"system_prompt": "marketing"},
    ("POST", "/api/v1/knowledge-bases"): lambda w: {"name": "mkt-kb2"},
    ("POST", "/api/v1/knowledge-bases/{name}/documents"): lambda w: {"documents": [{"name": "mkt.md", "text": "marketing"}]},
    ("POST", "/api/v1/knowledge-bases/{name}/documents:remove"): lambda w: {"documents": ["mkt.md"]},
    ("POST", "/api/v1/knowledge-bases/{name}/search"): lambda w: {"query": "when to file"},
    ("POST", "/api/v1/knowledge-bases/{name}/prune"): lambda w: {"keep": 1},
    ("POST", "/api/v1/knowledge-bases/{name}/eval"): lambda w: {
        "questions": [{"question": "when to file?", "expected": [{"document": "mkt.md"}]}]
    },
    ("POST", "/api/v1/jobs"): lambda w: {"kind": "selftest", "spec": {"steps": 1, "sleep_s": 0}},
    ("POST", "/api/v1/bias/runs"): lambda w: {"suite": BIAS_SUITE, "target": MODEL},
    ("PUT", "/api/v1/alerts/rules/{name}"): lambda w: {"signal": "requests", "deployment": "mkt-chat", "threshold": 1},
    ("POST", "/api/v1/queues"): lambda w: {"name": "mkt-queue", "quota": {"cpu": 1, "memory": "1GiB"}},
    ("PATCH", "/api/v1/queues/{name}"): lambda w: {"description": "marketing"},
    ("POST", "/api/v1/priority-classes"): lambda w: {"name": "mkt-priority", "value": 1},
    ("POST", "/api/v1/datasets"): lambda w: {"name": "mkt-data2", "path": str(w.server.home / "imports" / "mkt-rows.jsonl")},
    ("POST", "/api/v1/datasets/{name}/versions"): lambda w: b'{"prompt": "marketing?", "completion": "yes."}\n',
    ("POST", "/api/v1/guardrails/policies"): lambda w: {"name": "mkt-guard", "rules": [{"detector": "pii", "on": ["output"]}]},
    ("PUT", "/api/v1/guardrails/policies/{name}"): lambda w: {"rules": [{"detector": "pii", "on": ["output"]}]},
    ("POST", "/api/v1/guardrails/policies/{name}/test"): lambda w: {"text": "hello"},
    ("POST", "/api/v1/guardrails/policies/{name}/eval"): lambda w: {"records": [{"text": "hello", "entities": []}]},
    ("POST", "/api/v1/tuning/jobs"): lambda w: {"base_model": MODEL, "dataset": "mkt-data", "max_steps": 1},
    ("POST", "/api/v1/evaluations"): lambda w: {"model": MODEL, "dataset": "mkt-data", "max_samples": 1, "max_tokens": 1},
    ("PUT", "/api/v1/registry/models/{name}/aliases/{alias}"): lambda w: {"version": 1},
    ("POST", "/api/v1/deployments"): lambda w: {"name": "mkt-chat2", "model": MODEL},
    ("PATCH", "/api/v1/deployments/{name}"): lambda w: {"description": "marketing"},
    ("POST", "/api/v1/deployments/{name}/revisions"): lambda w: {"model": MODEL},
    ("POST", "/api/v1/deployments/{name}/canary"): lambda w: {"model": MODEL, "percent": 10},
    ("PUT", "/api/v1/deployments/{name}/traffic"): lambda w: {"percent": 50},
    ("POST", "/api/v1/deployments/{name}/promote"): lambda w: {},
    ("POST", "/api/v1/deployments/{name}/rollback"): lambda w: {},
    ("POST", "/api/v1/keys"): lambda w: {"name": "mkt-key2", "scopes": ["read"]},
    ("PATCH", "/api/v1/keys/{ref}"): lambda w: {"scopes": ["read"]},
    ("POST", "/api/v1/feedback"): lambda w: {"response_id": "chatcmpl-" + "0" * 32, "rating": 1},
    ("POST", "/api/v1/projects"): lambda w: {"name": "mkt-sub"},
    ("PATCH", "/api/v1/projects/{name}"): lambda w: {"description": "marketing was here"},
    ("PUT", "/api/v1/projects/{name}/members/{user}"): lambda w: {"role": "viewer"},
    ("POST", "/api/v1/users"): lambda w: {"name": "mkt-user", "password": PASSWORD},
    ("PATCH", "/api/v1/users/{name}"): lambda w: {"display_name": "marketing"},
    ("POST", "/api/v1/auth/login"): lambda w: {"user": "bob", "password": PASSWORD},
}
#: Upserts by name: the name in the path is the caller's own (names are unique per project),
#: so marketing may make its own "claims-data" — in marketing, never touching claims'.
UPSERTS = {("POST", "/api/v1/datasets/{name}/versions"), ("PUT", "/api/v1/guardrails/policies/{name}")}
#: Fields of request bodies that name a resource, and the claims values that fill them.
BODY_REFS: dict[str, str] = {
    "model": "model_id",
    "base_model": "model_id",
    "knowledge_base": "kb_ref",
    "guardrail_policy": "policy_ref",
    "response_id": "response",
    "previous_response_id": "stored_response",
    "dataset": "dataset_ref",
}
#: Body fields that look like references and are not: each with why.
NOT_BODY_REFS: dict[tuple[str, str], str] = {
    ("POST", "/v1/embeddings"): "model: embedding models are the server's (no project registers one)",
}
#: Operations that answer a body reference they cannot find with 400 rather than 404, each with
#: why; the answer must still be the one a reference to nothing gets (compared with the ghost).
BODY_REFS_400: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/tuning/jobs"): "a tune spec is validated as a whole before any job: 400 naming spec.base_model / spec.dataset",
}
#: Where the walk fills a body reference, the marketing resource in the path (a claims path is
#: refused before its body matters).
MARKETING_PATHS: dict[str, str] = {
    "/api/v1/models/{model_id}": "shared_model",
    "/api/v1/deployments/{name}": "deployment",
}


def _kind_values(world: World, kind: str) -> list[str]:
    if kind.startswith("="):
        return [kind[1:]]
    return world.claims[kind]


def _ghost(value: str) -> str:
    """An id of the same shape as ``value`` that names nothing."""
    if value.isdigit():
        return "999"
    m = re.fullmatch(r"(.*?)([0-9a-f]{12,})", value)
    if m:
        return m.group(1) + "0" * (len(m.group(2)) - 1) + "1"
    return value.replace("claims", "ghost") if "claims" in value else "ghost-" + value


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    order = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}  # deletions last
    ops = [(m.upper(), p, op) for p, item in spec["paths"].items() for m, op in item.items() if m.upper() in order]
    return sorted(ops, key=lambda o: order[o[0]])


def _path_params(template: str) -> list[str]:
    return re.findall(r"{([^}:]+)(?::[^}]*)?}", template)


def _path_kind(template: str, param: str) -> str | None:
    if (template, param) in PATH_OVERRIDES:
        return PATH_OVERRIDES[(template, param)]
    prefix = template[: template.index("{" + param) + len(param) + 2]
    return PATH_PARAMS.get(prefix)


@dataclass
class Call:
    method: str
    template: str
    path: str
    params: dict[str, list[str]]
    body: Any
    claims_values: list[str]  # the claims values the call names (its answer may echo them)


def _fill_path(template: str, values: dict[str, str]) -> str:
    out = template
    for name, value in values.items():
        out = re.sub(r"{" + re.escape(name) + r"(?::[^}]*)?}", quote(value, safe=":@"), out)
    return out


def _required_query(op: dict[str, Any]) -> list[str]:
    return [p["name"] for p in op.get("parameters", []) if p["in"] == "query" and p.get("required")]


def _query(world: World, op: dict[str, Any], ghost: bool) -> tuple[dict[str, list[str]], list[str]]:
    params: dict[str, list[str]] = {}
    used: list[str] = []
    for p in op.get("parameters", []):
        if p["in"] != "query" or p["name"] not in QUERY_PARAMS:
            continue
        vals = _kind_values(world, QUERY_PARAMS[p["name"]])
        if p["name"] == "ids":
            vals = [vals[0], vals[0]]  # a comparison needs two
        used += vals
        params[p["name"]] = [_ghost(v) for v in vals] if ghost else vals
    return params, used


def _body(world: World, method: str, template: str) -> Any:
    maker = BODIES.get((method, template))
    return maker(world) if maker is not None else None


def path_calls(world: World, spec: dict[str, Any], unmapped: list[str]) -> list[tuple[Call, Call]]:
    """(call naming claims' resources, the same call naming resources that do not exist) for
    every operation whose path has parameters."""
    out = []
    for method, template, op in _operations(spec):
        names = _path_params(template)
        if not names or any(template.startswith(p) for p in NOT_PROJECT_RESOURCES):
            continue
        kinds = {n: _path_kind(template, n) for n in names}
        missing = [n for n, k in kinds.items() if k is None]
        missing += [f"?{q}" for q in _required_query(op) if q not in QUERY_PARAMS]
        if missing:
            unmapped.append(f"{method} {template}: {', '.join(missing)}")
            continue
        if "requestBody" in op and op["requestBody"].get("required") and (method, template) not in BODIES:
            unmapped.append(f"{method} {template}: no body in BODIES")
            continue
        choices = [[(n, v) for v in _kind_values(world, k or "")] for n, k in kinds.items()]
        for combo in itertools.product(*choices):
            values = dict(combo)
            named = [v for n, v in values.items() if not (kinds[n] or "").startswith("=")]
            ghosts = {n: (_ghost(v) if v in named else v) for n, v in values.items()}
            q, q_used = _query(world, op, ghost=False)
            gq, _ = _query(world, op, ghost=True)
            body = _body(world, method, template)
            out.append(
                (
                    Call(method, template, _fill_path(template, values), q, body, named + q_used),
                    Call(method, template, _fill_path(template, ghosts), gq, body, []),
                )
            )
            if (method, template) in UPSERTS and q:  # and the upsert itself, naming nothing else of claims
                out.append((Call(method, template, _fill_path(template, values), {}, body, named), out[-1][1]))
    return out


def _send(c: httpx.Client, key: str, call: Call, **headers: str) -> httpx.Response:
    h = _h(key, **headers)
    if isinstance(call.body, bytes):
        return c.request(
            call.method, call.path, params=call.params, content=call.body, headers={**h, "Content-Type": "application/x-ndjson"}
        )
    return c.request(call.method, call.path, params=call.params, json=call.body, headers=h)


def leaked(world: World, text: str, named: list[str]) -> list[str]:
    """The claims markers in ``text`` once what the request itself named is taken out (with the
    parts of a reference such as ``claims-kb@1`` or ``base:adapter``, which answers name)."""
    parts = set(named) | {p for v in named for p in re.split(r"[@:]", v) if p in world.markers}
    for value in sorted(parts, key=len, reverse=True):
        text = text.replace(value, "<named>").replace(quote(value, safe=""), "<named>")
    return [m for m in world.markers if m in text]


def _error_code(r: httpx.Response) -> str | None:
    try:
        return str(r.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


@pytest.fixture(scope="module")
def spec(world: World) -> dict[str, Any]:
    return dict(httpx.get(f"{world.url}/openapi.json", headers=_h(world.root), timeout=30).json())


# -- 1. the generated walk ----------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["bob", "mia"])
def test_lists_show_marketing_nothing_of_claims(world: World, spec: dict[str, Any], who: str) -> None:
    """Every GET without path parameters (lists, filters filled with claims ids), and the shared
    built-in model's and policy's own routes, hold nothing of claims. (It runs before the walk:
    marketing's audit log then holds the claims ids marketing itself sent.)"""
    problems = []
    key = world.keys[who]
    calls: list[tuple[str, dict[str, list[str]], list[str]]] = [("/metrics", {}, [])]
    for method, template, op in _operations(spec):
        if method != "GET":
            continue
        names = _path_params(template)
        if not names:
            missing = [q for q in _required_query(op) if q not in QUERY_PARAMS]
            assert not missing, f"GET {template}: map its required query parameters {missing} in QUERY_PARAMS"
            params, used = _query(world, op, ghost=False)
            calls += [(template, {}, []), (template, params, used)] if params else [(template, {}, [])]
        elif template.startswith(("/api/v1/models/", "/v1/models/")) and names in (["name"], ["model_id"]):
            calls.append((_fill_path(template, {names[0]: MODEL}), {}, []))  # the shared built-in model
        elif template == "/api/v1/guardrails/policies/{name}" or template.startswith("/api/v1/guardrails/policies/{name}/"):
            calls.append((_fill_path(template, {"name": "default"}), {}, []))  # the shared built-in policy
    with httpx.Client(base_url=world.url, timeout=60) as c:
        for path, params, used in calls:
            r = c.get(path, params=params, headers=_h(key))
            found = leaked(world, r.text, used)
            if r.status_code >= 500 or found:
                problems.append(f"GET {path} {params} as {who}: {r.status_code} {found} {r.text[:300]}")
            if path in ("/api/v1/datasets", "/api/v1/deployments", "/api/v1/knowledge-bases") and not params:
                assert r.status_code == 200 and "mkt-" in r.text, r.text  # marketing sees its own
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("who", ["bob", "mia"])
def test_every_route_with_claims_ids_answers_404_or_403_to_marketing(world: World, spec: dict[str, Any], who: str) -> None:
    unmapped: list[str] = []
    calls = path_calls(world, spec, unmapped)
    assert not unmapped, "routes the walk cannot fill (map them in PATH_PARAMS/QUERY_PARAMS/BODIES):\n" + "\n".join(unmapped)
    assert len({(c.method, c.template) for c, _ in calls}) > 70
    key = world.keys[who]
    problems: list[str] = []
    seen_404 = upserts = 0
    with httpx.Client(base_url=world.url, timeout=120) as c:
        for call, ghost in calls:
            r = _send(c, key, call)
            where = f"{call.method} {call.path} as {who}"
            if (call.method, call.template) in UPSERTS and not call.params:
                upserts += 1
                problems += _check_upsert(world, c, key, call, r)
                continue
            g = _send(c, key, ghost)
            if r.status_code not in (403, 404):
                problems.append(f"{where}: {r.status_code} {r.text[:300]}")
            elif (r.status_code, _error_code(r)) != (g.status_code, _error_code(g)):
                problems.append(f"{where}: {r.status_code} {_error_code(r)}, but {g.status_code} {_error_code(g)} for {ghost.path}")
            found = leaked(world, r.text, call.claims_values)
            if found:
                problems.append(f"{where}: the answer holds {found}: {r.text[:300]}")
            seen_404 += r.status_code == 404
    assert not problems, "\n".join(problems)
    assert seen_404 > (40 if who == "bob" else 60)  # the lookups were reached, not only the scope checks
    assert upserts == len(UPSERTS)
    _claims_intact(world)


def _check_upsert(world: World, c: httpx.Client, key: str, call: Call, r: httpx.Response) -> list[str]:
    """An upsert by name made marketing's own resource (or was refused), never claims'."""
    where = f"{call.method} {call.path}"
    if r.status_code in (403, 404):
        return [f"{where}: leaked {leaked(world, r.text, call.claims_values)}"] if leaked(world, r.text, call.claims_values) else []
    if r.status_code not in (200, 201):
        return [f"{where}: {r.status_code} {r.text[:300]}"]
    out = []
    if r.json().get("version") != 1 or leaked(world, r.text, call.claims_values):
        out.append(f"{where}: not a new resource of marketing: {r.text[:300]}")
    gone = c.request("DELETE", call.path.removesuffix("/versions"), headers=_h(key))
    if gone.status_code != 204:
        out.append(f"{where}: marketing could not delete what it made: {gone.status_code} {gone.text[:200]}")
    return out  # and claims' own is untouched: _claims_intact


def _claims_intact(world: World) -> None:
    """After the walk, claims' resources are as alice made them."""
    A = _h(world.keys["alice"])
    with httpx.Client(base_url=world.url, timeout=60) as c:
        assert [(v["version"], v["rows"]) for v in _ok(c.get("/api/v1/datasets/claims-data", headers=A))["versions"]] == [(1, 6)]
        assert [v["version"] for v in _ok(c.get("/api/v1/guardrails/policies/claims-guard/versions", headers=A))["versions"]] == [1]
        assert _ok(c.get("/api/v1/guardrails/policies/claims-guard", headers=A))["spec"]["rules"][0]["entities"] == ["US_SSN"]
        dep = _ok(c.get("/api/v1/deployments/claims-chat", headers=A))
        assert dep["stable_revision"] == 1 and dep["canary_revision"] is None and dep["description"] == "claims bot"
        kb = _ok(c.get("/api/v1/knowledge-bases/claims-kb/documents", headers=A))
        assert [d["name"] for d in kb["documents"]] == ["claims-policy.md"]
        assert _ok(c.get("/api/v1/models/claims-remote/attachments", headers=A))["system_prompt"].startswith("claims-attachment")
        assert _ok(c.get(f"/api/v1/models/{MODEL}/adapters/claims-lora", headers=A))["name"] == "claims-lora"
        assert _ok(c.get("/api/v1/registry/models/claims-reg", headers=A))["aliases"] == {"prod": 1}
        assert _ok(c.get("/api/v1/projects/claims", headers=A))["description"] == "the claims team"
        assert {m["user"] for m in _ok(c.get("/api/v1/projects/claims/members", headers=A))["members"]} >= {"alice", "app"}
        assert _ok(c.get(f"/api/v1/keys/{world.key_ids['alice']}", headers=A))["revoked_at"] is None
        assert _ok(c.get(f"/api/v1/jobs/{world.claims['job'][1]}", headers=A))["state"] == "succeeded"
        queue = _ok(c.get("/api/v1/queues/claims-queue", headers=A))
        assert (queue["project"], queue["quota"]["cpu"], queue["description"]) == ("claims", 1, "")


def test_body_references_to_claims_are_404(world: World, spec: dict[str, Any]) -> None:
    """A body naming a claims resource (a chat's model or knowledge base, a revision's target, an
    attachment, feedback, an evaluation's dataset) answers 404 like one that does not exist."""
    problems: list[str] = []
    unmapped: list[str] = []
    walked = 0
    with httpx.Client(base_url=world.url, timeout=120) as c:
        for method, template, op in _operations(spec):
            rb = op.get("requestBody", {}).get("content", {}).get("application/json")
            if rb is None:
                continue
            schema = rb.get("schema", {})
            if "$ref" in schema:
                schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            refs = [f for f in schema.get("properties", {}) if f in BODY_REFS]
            if (method, template) in (("POST", "/api/v1/tuning/jobs"), ("POST", "/api/v1/evaluations")):
                refs = ["base_model" if "tuning" in template else "model", "dataset"]  # free-form bodies: the fields their specs read
            if not refs or (method, template) in NOT_BODY_REFS:
                continue
            if (method, template) not in BODIES:
                unmapped.append(f"{method} {template}: no body in BODIES")
                continue
            path_values = {}
            for name in _path_params(template):
                prefix = template[: template.index("{" + name) + len(name) + 2]
                if prefix not in MARKETING_PATHS:
                    unmapped.append(f"{method} {template}: {name} (MARKETING_PATHS)")
                    break
                path_values[name] = world.marketing[MARKETING_PATHS[prefix]][0]
            else:
                for ref in refs:
                    for value in _kind_values(world, BODY_REFS[ref]):
                        base = BODIES[(method, template)](world)
                        call = Call(method, template, _fill_path(template, path_values), {}, {**base, ref: value}, [value])
                        ghost = Call(method, template, call.path, {}, {**base, ref: _ghost(value)}, [])
                        r, g = _send(c, world.keys["bob"], call), _send(c, world.keys["bob"], ghost)
                        walked += 1
                        where = f"{method} {call.path} {ref}={value}"
                        expected = 400 if (method, template) in BODY_REFS_400 else 404
                        if r.status_code != expected or (r.status_code, _error_code(r)) != (g.status_code, _error_code(g)):
                            problems.append(f"{where}: {r.status_code} {r.text[:200]} / ghost {g.status_code} {g.text[:200]}")
                        elif leaked(world, r.text, [value]):
                            problems.append(f"{where}: leaked {leaked(world, r.text, [value])}")
    assert not unmapped, "\n".join(unmapped)
    assert not problems, "\n".join(problems)
    assert walked >= 30


# -- 2. server-wide settings -------------------------------------------------------------------------
def test_server_wide_job_settings_need_a_server_admin(world: World) -> None:
    """Queues and priority classes serve every project (a queue may take one project's jobs):
    a project's editor or owner reads them and changes none; the server admin does."""
    with httpx.Client(base_url=world.url, timeout=60) as c:
        for who in ("bob", "mia"):
            k = _h(world.keys[who])
            assert c.get("/api/v1/queues", headers=k).status_code == 200
            for method, path, body in (
                ("POST", "/api/v1/queues", {"name": "mkt-queue", "quota": {"cpu": 1, "memory": "1GiB"}, "project": "claims"}),
                ("PATCH", "/api/v1/queues/default", {"quota": {"cpu": 0, "memory": 0}}),
                ("DELETE", "/api/v1/queues/default", None),
                ("POST", "/api/v1/priority-classes", {"name": "mkt-priority", "value": 999}),
                ("DELETE", "/api/v1/priority-classes/normal", None),
            ):
                r = c.request(method, path, headers=k, json=body)
                assert r.status_code == 403 and _error_code(r) == "permission_denied", (who, method, path, r.text)
        R = _h(world.root)
        _ok(
            c.post("/api/v1/queues", headers=R, json={"name": "claims-only", "quota": {"cpu": 1, "memory": "1GiB"}, "project": "claims"}),
            201,
        )
        assert c.delete("/api/v1/queues/claims-only", headers=R).status_code == 204
        assert _ok(c.get("/api/v1/queues/default", headers=R))["quota"]["cpu"] >= 1


# -- 3. roles --------------------------------------------------------------------------------------------
#: GETs of claims resources a viewer may not make, each with why
VIEWER_CANNOT_READ = {
    "/api/v1/keys/{ref}": "keys are managed by owners (admin scope)",
    "/api/v1/users/{name}": "another user's account: server admins only",
    "/v1/models/{model_id}": "/v1 needs the inference scope",
    "/v1/responses/{response_id}": "/v1 needs the inference scope",
    "/v1/responses/{response_id}/input_items": "/v1 needs the inference scope",
}
#: reads of claims resources that answer 409 to claims too, each with why
VIEWER_READS_CONFLICT = {
    "/api/v1/responses/{response_id}/explanation": "claims' answer is logged without text (ADR 0096): nothing to explain",
}
#: /api/v1 operations an inference-only member may call, each with why
INFERENCE_MAY_CALL = {
    ("GET", "/api/v1/keys/self"): "a key reads itself",
    ("POST", "/api/v1/feedback"): "applications rate answers (404 here: the walk names no response of claims)",
    ("GET", "/api/v1/auth/me"): "who am I",
    ("POST", "/api/v1/auth/logout"): "ends the caller's session (none for a key)",
    ("POST", "/api/v1/auth/login"): "open: where a session starts",
    ("GET", "/api/v1/projects"): "the projects the caller belongs to",
    ("GET", "/api/v1/projects/{name}"): "its own project",
    ("GET", "/api/v1/projects/{name}/members"): "members read their project's member list",
}


def _claims_calls(world: World, spec: dict[str, Any]) -> list[Call]:
    """Every operation, its path filled with claims' values (the first of each kind)."""
    unmapped: list[str] = []
    with_params = {(c.method, c.template): c for c, _ in reversed(path_calls(world, spec, unmapped))}
    assert not unmapped, unmapped
    out = []
    for method, template, op in _operations(spec):
        if template.startswith(tuple(NOT_PROJECT_RESOURCES)):
            continue
        if (method, template) in with_params:
            out.append(with_params[(method, template)])
        elif not _path_params(template):
            q, used = _query(world, op, ghost=False)
            out.append(Call(method, template, template, q, _body(world, method, template), used))
    return out


def test_a_viewer_reads_claims_and_changes_nothing(world: World, spec: dict[str, Any]) -> None:
    problems = []
    reads = 0
    with httpx.Client(base_url=world.url, timeout=60) as c:
        for call in _claims_calls(world, spec):
            if call.template.startswith("/api/v1/auth/"):
                continue  # login, logout and me: any caller
            r = _send(c, world.keys["vic"], call)
            if call.method == "GET" and _path_params(call.template):
                expected = 403 if call.template in VIEWER_CANNOT_READ else 409 if call.template in VIEWER_READS_CONFLICT else 200
                reads += r.status_code == 200
            elif call.method == "GET":
                continue  # lists: test_lists_show_marketing_nothing_of_claims; the viewer's are read below
            else:
                expected = 403
            if r.status_code != expected:
                problems.append(f"{call.method} {call.path} as vic: {r.status_code} (expected {expected}) {r.text[:200]}")
        listed = _ok(c.get("/api/v1/datasets", headers=_h(world.keys["vic"])))
        assert [d["name"] for d in listed["datasets"]] == ["claims-data"]
    assert not problems, "\n".join(problems)
    assert reads > 30
    _claims_intact(world)


def test_the_inference_role_calls_v1_and_manages_nothing(world: World, spec: dict[str, Any]) -> None:
    app = world.keys["app"]
    problems = []
    with httpx.Client(base_url=world.url, timeout=120) as c:
        chat = _ok(c.post("/v1/chat/completions", headers=_h(app), json={"model": "claims-chat", "messages": MESSAGES, "max_tokens": 1}))
        assert chat["model"] == "claims-chat"
        assert "claims-chat" in {m["id"] for m in _ok(c.get("/v1/models", headers=_h(app)))["data"]}
        for call in _claims_calls(world, spec):
            if not call.template.startswith("/api/v1/"):
                continue
            r = _send(c, app, call)
            if (call.method, call.template) in INFERENCE_MAY_CALL:
                if r.status_code >= 500 or (call.template == "/api/v1/feedback" and r.status_code != 404):
                    problems.append(f"{call.method} {call.path} as app: {r.status_code} {r.text[:200]}")
            elif r.status_code != 403:
                problems.append(f"{call.method} {call.path} as app: {r.status_code} {r.text[:200]}")
        rated = c.post("/api/v1/feedback", headers=_h(app), json={"response_id": chat["id"], "rating": -1})
        assert rated.status_code == 201, rated.text
    assert not problems, "\n".join(problems)


def test_an_owner_manages_claims_and_nothing_of_marketing(world: World) -> None:
    A = _h(world.keys["alice"])
    with httpx.Client(base_url=world.url, timeout=60) as c:
        # members of claims: yes; of marketing: the project does not exist for alice
        _ok(c.put("/api/v1/projects/claims/members/carol", headers=A, json={"role": "viewer"}))
        assert "carol" in {m["user"] for m in _ok(c.get("/api/v1/projects/claims/members", headers=A))["members"]}
        _ok(c.delete("/api/v1/projects/claims/members/carol", headers=A))
        for method, path, body in (
            ("GET", "/api/v1/projects/marketing", None),
            ("GET", "/api/v1/projects/marketing/members", None),
            ("PUT", "/api/v1/projects/marketing/members/carol", {"role": "owner"}),
            ("DELETE", "/api/v1/projects/marketing/members/bob", None),
            ("PATCH", "/api/v1/projects/marketing", {"description": "claims was here"}),
        ):
            r = c.request(method, path, headers=A, json=body)
            assert r.status_code == 404 and _error_code(r) == "not_found", (method, path, r.text)
        # projects and users are the server admins'
        assert c.post("/api/v1/projects", headers=A, json={"name": "claims-two"}).status_code == 403
        assert c.post("/api/v1/users", headers=A, json={"name": "eve", "password": PASSWORD}).status_code == 403
        assert c.patch("/api/v1/projects/claims", headers=A, json={"quotas": {"budget_tokens": 10**9}}).status_code == 403
        assert c.patch("/api/v1/users/alice", headers=A, json={"is_admin": True}).status_code == 403
        assert [p["name"] for p in _ok(c.get("/api/v1/projects", headers=A))["projects"]] == ["claims"]
        # keys: claims' only, made with at most alice's rights, for herself in claims
        names = {k["name"] for k in _ok(c.get("/api/v1/keys", headers=A))["keys"]}
        assert {"alice-key", "vic-key", "app-key"} <= names and not names & {"bob-key", "mia-key", "root"}
        made = _ok(c.post("/api/v1/keys", headers=A, json={"name": "alice-admin2", "scopes": ["admin"]}), 201)
        assert made["project"] == "claims" and made["user"] == "alice"
        assert c.get("/api/v1/keys", headers=_h(made["key"])).status_code == 200
        assert c.get("/api/v1/audit", headers=_h(made["key"])).status_code == 200
        for other in ({"user": "bob"}, {"project": "marketing"}, {"user": "vic", "project": "claims"}):
            r = c.post("/api/v1/keys", headers=A, json={"name": "alice-elsewhere", "scopes": ["read"], **other})
            assert r.status_code == 403, (other, r.text)
        _ok(c.delete(f"/api/v1/keys/{made['id']}", headers=A))
        assert c.get("/api/v1/keys", headers=_h(made["key"])).status_code == 401


def test_keys_never_exceed_their_users_rights(world: World) -> None:
    R, A = _h(world.root), _h(world.keys["alice"])
    with httpx.Client(base_url=world.url, timeout=60) as c:
        # vic, a viewer, asks for a key that may manage: refused
        cookie, csrf, _ = _login(c, "vic")
        r = c.post("/api/v1/keys", headers=_session(cookie, csrf), json={"name": "vic-manage", "scopes": ["manage"]})
        assert r.status_code == 403 and _error_code(r) == "permission_denied", r.text
        # a key the server admin made for vic with "manage" still only reads: vic's role bounds it
        wide = _ok(c.post("/api/v1/keys", headers=R, json={"name": "vic-wide", "user": "vic", "project": "claims", "scopes": ["manage"]}))
        assert c.get("/api/v1/datasets/claims-data", headers=_h(wide["key"])).status_code == 200
        r = c.post("/api/v1/deployments", headers=_h(wide["key"]), json={"name": "vic-chat", "model": MODEL})
        assert r.status_code == 403, r.text
        me = _ok(c.get("/api/v1/auth/me", headers=_h(wide["key"])))
        assert me["scopes"] == ["read"] and me["role"] == "viewer"
        # alice removes vic from claims: vic's keys and session read nothing of claims any more
        _ok(c.delete("/api/v1/projects/claims/members/vic", headers=A))
        try:
            for key in (world.keys["vic"], wide["key"]):
                for path in ("/api/v1/datasets", "/api/v1/datasets/claims-data", "/api/v1/deployments/claims-chat"):
                    r = c.get(path, headers=_h(key))
                    assert r.status_code == 403 and "claims-data" not in r.text.replace(path, ""), (path, r.text)
            r = c.get("/api/v1/datasets/claims-data", headers=_session(cookie))
            assert r.status_code == 404, r.text  # the session names no project vic may see
        finally:
            _ok(c.put("/api/v1/projects/claims/members/vic", headers=A, json={"role": "viewer"}))
        assert c.get("/api/v1/datasets/claims-data", headers=_h(world.keys["vic"])).status_code == 200


def test_keys_self_only_reads(world: World) -> None:
    """The escalation hole of issue 13: /keys/self with an inference key changed or revoked
    keys (a key named "self" could make itself admin)."""
    app, A = world.keys["app"], _h(world.keys["alice"])
    with httpx.Client(base_url=world.url, timeout=60) as c:
        me = _ok(c.get("/api/v1/keys/self", headers=_h(app)))
        assert me["name"] == "app-key" and me["scopes"] == ["inference"]
        r = c.post("/api/v1/keys", headers=A, json={"name": "self", "scopes": ["inference"]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "name", r.text
        for method, body in (("PATCH", {"scopes": ["admin"]}), ("DELETE", None)):
            for ref in ("self", world.key_ids["app"], "app-key", world.key_ids["alice"]):
                r = c.request(method, f"/api/v1/keys/{ref}", headers=_h(app), json=body)
                assert r.status_code == 403, (method, ref, r.text)
            # an owner's key cannot change itself through /keys/self either
            r = c.request(method, "/api/v1/keys/self", headers=A, json=body)
            assert r.status_code in (403, 404, 405), (method, r.text)
            r = c.request(method, f"/api/v1/keys/{world.key_ids['alice']}", headers=A, json=body)
            assert r.status_code == 403, (method, r.text)
        assert _ok(c.get("/api/v1/keys/self", headers=_h(app)))["scopes"] == ["inference"]
        assert _ok(c.get("/api/v1/keys/self", headers=A))["revoked_at"] is None
        assert c.get("/api/v1/datasets", headers=_h(app)).status_code == 403


# -- 4. login sessions -------------------------------------------------------------------------------
def test_login_sessions(world: World) -> None:
    R = _h(world.root)
    with httpx.Client(base_url=world.url, timeout=60) as c:
        cookie, csrf, answer = _login(c, "alice")
        set_cookie = answer.headers["set-cookie"].lower()
        assert {"httponly", "samesite=strict", "secure", "path=/"} <= {p.strip() for p in set_cookie.split(";")}, set_cookie
        assert answer.json()["user"]["name"] == "alice" and [m["project"] for m in answer.json()["projects"]] == ["claims"]
        me = _ok(c.get("/api/v1/auth/me", headers=_session(cookie)))
        assert (me["user"], me["project"], me["role"], me["server_admin"]) == ("alice", "claims", "owner", False)
        assert "claims-data" in c.get("/api/v1/datasets", headers=_session(cookie)).text
        # changing requests repeat the CSRF token
        for method, path, body in (
            ("PATCH", "/api/v1/projects/claims", {"description": "changed by a forged request"}),
            ("POST", "/api/v1/keys", {"name": "alice-session-key", "scopes": ["read"]}),
            ("DELETE", "/api/v1/datasets/claims-data", None),
        ):
            for token in (None, "not-the-token"):
                r = c.request(method, path, headers=_session(cookie, token), json=body)
                assert r.status_code == 403 and _error_code(r) == "permission_denied", (method, path, token, r.text)
        _ok(c.patch("/api/v1/projects/claims", headers=_session(cookie, csrf), json={"description": "the claims team"}))
        made = _ok(c.post("/api/v1/keys", headers=_session(cookie, csrf), json={"name": "alice-session-key", "scopes": ["read"]}), 201)
        assert made["user"] == "alice" and made["project"] == "claims"
        assert _ok(c.delete("/api/v1/keys/alice-session-key", headers=_session(cookie, csrf)))["revoked_at"]
        # X-Plinth-Project picks one of alice's projects; one she is not in is 404
        _ok(c.post("/api/v1/projects", headers=R, json={"name": "claims-archive"}), 201)
        _ok(c.put("/api/v1/projects/claims-archive/members/alice", headers=R, json={"role": "viewer"}))
        try:
            archive = _ok(c.get("/api/v1/auth/me", headers=_session(cookie, **{"X-Plinth-Project": "claims-archive"})))
            assert (archive["project"], archive["role"], archive["scopes"]) == ("claims-archive", "viewer", ["read"])
            listed = _ok(c.get("/api/v1/datasets", headers=_session(cookie, **{"X-Plinth-Project": "claims-archive"})))
            assert listed["datasets"] == []
            r = c.post(
                "/api/v1/knowledge-bases", headers=_session(cookie, csrf, **{"X-Plinth-Project": "claims-archive"}), json={"name": "x"}
            )
            assert r.status_code == 403, r.text  # a viewer there
            assert _ok(c.get("/api/v1/auth/me", headers=_session(cookie, **{"X-Plinth-Project": "claims"})))["role"] == "owner"
            for project in ("marketing", "no-such-project"):
                r = c.get("/api/v1/auth/me", headers=_session(cookie, **{"X-Plinth-Project": project}))
                assert r.status_code == 404 and _error_code(r) == "not_found", r.text
            r = c.get("/api/v1/datasets", headers=_h(world.keys["alice"], **{"X-Plinth-Project": "claims-archive"}))
            assert r.status_code == 404, r.text  # a key works in its own project only
        finally:
            _ok(c.delete("/api/v1/projects/claims-archive/members/alice", headers=R))
        # logout ends the session
        _ok(c.post("/api/v1/auth/logout", headers=_session(cookie, csrf)))
        r = c.get("/api/v1/auth/me", headers=_session(cookie))
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), r.text


def test_wrong_passwords(world: World) -> None:
    with httpx.Client(base_url=world.url, timeout=60) as c:
        wrong = c.post("/api/v1/auth/login", json={"user": "alice", "password": "not the password at all"})
        unknown = c.post("/api/v1/auth/login", json={"user": "nobody-here", "password": "not the password at all"})
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.json()["error"] == unknown.json()["error"]
        assert "plinth_session" not in wrong.headers.get("set-cookie", "")
        for _ in range(5):
            assert c.post("/api/v1/auth/login", json={"user": "dave", "password": "guess guess guess"}).status_code == 401
        locked = c.post("/api/v1/auth/login", json={"user": "dave", "password": PASSWORD})
        assert locked.status_code == 429 and _error_code(locked) == "rate_limited", locked.text
        assert int(locked.headers["retry-after"]) >= 1
        _login(c, "alice")  # the lockout is dave's only


# -- 5 and 6. single sign-on, and turning auth on over what was made without it ------------------------
@dataclass
class Legacy:
    server: LiveServer
    root: str
    sam: str  # sam's key in ops


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Legacy]:
    """A home used without auth first (a dataset in the default project), then served with auth
    on and a trusted single-sign-on proxy on 127.0.0.1."""
    home = tmp_path_factory.mktemp("legacy-home")
    light: dict[str, Any] = {"PLINTH_PRELOAD_DEFAULT_MODEL": "false", "PLINTH_JOBS_LOCAL_WORKER": "false", "PLINTH_THREADS": "1"}
    first = start_server(home, **light)
    try:
        rows = json.dumps({"prompt": "legacy-secret question?", "completion": "legacy-secret answer."}) + "\n"
        r = httpx.post(
            f"{first.url}/api/v1/datasets/legacy-data/versions", content=rows.encode(), params={"filename": "legacy.jsonl"}, timeout=60
        )
        assert r.status_code == 201, r.text
    finally:
        stop_server(first)
    root = bootstrap_admin_key(home)
    server = start_server(
        home, PLINTH_AUTH="true", PLINTH_SSO_USER_HEADER="X-Forwarded-User", PLINTH_TRUSTED_PROXIES='["127.0.0.1"]', **light
    )
    try:
        with httpx.Client(base_url=server.url, timeout=60, headers=_h(root)) as c:
            _ok(c.post("/api/v1/projects", json={"name": "ops"}))
            _ok(c.post("/api/v1/users", json={"name": "sam"}))  # no password: single sign-on only
            _ok(c.put("/api/v1/projects/ops/members/sam", json={"role": "editor"}))
            sam = _ok(c.post("/api/v1/keys", json={"name": "sam-key", "user": "sam", "project": "ops", "scopes": ["manage"]}))["key"]
        yield Legacy(server, root, sam)
    finally:
        stop_server(server)
    assert "Traceback" not in server.log_text(), server.log_text()[-5000:]


def test_single_sign_on_only_from_trusted_proxies(world: World, legacy: Legacy) -> None:
    sso = {"X-Forwarded-User": "sam"}
    with httpx.Client(base_url=legacy.server.url, timeout=60) as c:
        me = _ok(c.get("/api/v1/auth/me", headers=sso))
        assert (me["user"], me["project"], me["role"], me["key"]) == ("sam", "ops", "editor", None)
        # a changing request through the proxy needs a header another site cannot make a browser send
        refused = c.post("/api/v1/knowledge-bases", headers=sso, json={"name": "ops-kb"})
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.text, refused.text
        _ok(c.post("/api/v1/knowledge-bases", headers={**sso, "X-CSRF-Token": "1"}, json={"name": "ops-kb"}), 201)
        assert c.get("/api/v1/auth/me", headers={"X-Forwarded-User": "nobody-here"}).status_code == 401
        assert c.get("/api/v1/auth/me").status_code == 401
        assert c.post("/api/v1/auth/login", json={"user": "sam", "password": "any password at all"}).status_code == 401
    # the first server names the header but trusts no proxy: the header is ignored
    with httpx.Client(base_url=world.url, timeout=60) as c:
        for user in ("alice", "bob"):
            r = c.get("/api/v1/auth/me", headers={"X-Forwarded-User": user})
            assert r.status_code == 401 and _error_code(r) == "unauthenticated", r.text
            assert c.get("/api/v1/datasets", headers={"X-Forwarded-User": user}).status_code == 401


def test_turning_auth_on_exposes_nothing_made_before(legacy: Legacy) -> None:
    with httpx.Client(base_url=legacy.server.url, timeout=60) as c:
        for headers in ({"X-Forwarded-User": "sam"}, _h(legacy.sam)):
            listed = c.get("/api/v1/datasets", headers=headers)
            assert listed.status_code == 200 and "legacy" not in listed.text, listed.text
            r = c.get("/api/v1/datasets/legacy-data", headers=headers)
            assert r.status_code == 404 and "legacy-secret" not in r.text, r.text
            r = c.get("/api/v1/datasets/legacy-data/versions/1/rows", headers=headers)
            assert r.status_code == 404 and "legacy-secret" not in r.text, r.text
            r = c.get("/api/v1/datasets", headers={**headers, "X-Plinth-Project": "default"})
            assert r.status_code == 404 and "legacy-secret" not in r.text, r.text
        gone = c.delete("/api/v1/datasets/legacy-data", headers={"X-Forwarded-User": "sam", "X-CSRF-Token": "1"})
        assert gone.status_code == 404
        # the server admin still sees it, in the default project
        shown = _ok(c.get("/api/v1/datasets/legacy-data", headers=_h(legacy.root)))
        assert shown["name"] == "legacy-data" and shown["versions"][0]["rows"] == 1
        rows = _ok(c.get("/api/v1/datasets/legacy-data/versions/1/rows", headers=_h(legacy.root)))
        assert "legacy-secret" in json.dumps(rows)
