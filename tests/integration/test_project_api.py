"""Project files over the live server's API (ADR 0100): validate lists every problem with file
and line; plan, apply, plan again (no changes); a stale saved plan is refused with 409; the
export is planned as no changes; bad input is a 400 in the documented shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.live_server import MODEL, LiveServer

FAQ = "".join(
    json.dumps({"messages": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"A{i}."}]}) + "\n" for i in range(10)
)
FILES = {
    "faq.jsonl": FAQ,
    "docs/claims.md": "# Claims\n\nClaims must be filed within 30 days of treatment.\n",
    "project.yaml": f"""\
apiVersion: plinth/v1
kind: Dataset
metadata: {{name: api-faq}}
spec: {{file: faq.jsonl}}
---
apiVersion: plinth/v1
kind: KnowledgeBase
metadata: {{name: api-claims}}
spec: {{sources: [docs]}}
---
apiVersion: plinth/v1
kind: Deployment
metadata: {{name: api-assistant}}
spec:
  description: through the API
  targets: [{{model: {MODEL}, knowledge_base: api-claims}}]
""",
}


@pytest.fixture(scope="module")
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url + "/api/v1/project", timeout=120) as c:
        yield c


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return dict(body["error"])


def test_validate_plan_apply_export_through_the_api(api: httpx.Client) -> None:
    bad = {"a.yaml": "apiVersion: plinth/v1\nkind: Dataset\nmetadata: {name: x}\nspec:\n  file: none.jsonl\n  colour: 1\n"}
    r = api.post("/validate", json={"files": bad})
    assert r.status_code == 200 and r.json()["valid"] is False
    assert {(p["file"], p["line"]) for p in r.json()["problems"]} == {("a.yaml", 6)}  # the unknown field first
    r = api.post("/validate", json={"files": FILES})
    assert r.status_code == 200 and r.json()["valid"], r.text
    assert {x["name"] for x in r.json()["resources"]} == {"api-faq", "api-claims", "api-assistant"}

    plan = api.post("/plan", json={"files": FILES})
    assert plan.status_code == 200 and plan.json()["summary"] == {"create": 3, "update": 0, "delete": 0}, plan.text
    applied = api.post("/apply", json={"files": FILES, "plan": plan.json()})
    assert applied.status_code == 200 and applied.json()["summary"]["create"] == 3, applied.text
    again = api.post("/plan", json={"files": FILES})
    assert again.json()["changes"] == []
    stale = api.post("/apply", json={"files": FILES, "plan": plan.json()})
    assert "live state changed" in _error(stale, 409, "conflict")["message"]

    edited = {**FILES, "project.yaml": FILES["project.yaml"].replace("through the API", "edited")}
    r = api.post("/plan", json={"files": edited})
    assert r.json()["changes"] == [
        {
            "action": "update",
            "kind": "Deployment",
            "name": "api-assistant",
            "diff": [{"path": "description", "before": "through the API", "after": "edited"}],
        }
    ]

    exported = api.get("/export")
    assert exported.status_code == 200, exported.text
    files = exported.json()["files"]
    assert "resources/deployment/api-assistant.yaml" in files and files["datasets/api-faq.jsonl"] == FAQ
    r = api.post("/plan", json={"files": files})
    assert r.status_code == 200 and r.json()["changes"] == [], r.text


def test_bad_input_is_a_400_in_the_documented_shape(api: httpx.Client) -> None:
    _error(api.post("/plan", json={"files": {"../escape.yaml": "x: 1"}}), 400, "invalid_request")
    _error(api.post("/plan", json={"files": {"/abs.yaml": "x: 1"}}), 400, "invalid_request")
    _error(api.post("/plan", json={"files": "not a mapping"}), 400, "invalid_request")
    err = _error(api.post("/plan", json={"files": {"a.yaml": "kind: Nope\n"}}), 400, "invalid_request")
    assert "a.yaml:1" in err["message"]
    # files a spec names must be among those sent: never the server's own
    outside = {"d.yaml": "apiVersion: plinth/v1\nkind: Dataset\nmetadata: {name: leak}\nspec:\n  file: /etc/hostname\n"}
    r = api.post("/validate", json={"files": outside})
    assert r.status_code == 200 and [(p["line"], "outside the project" in p["message"]) for p in r.json()["problems"]] == [(5, True)]
    _error(api.post("/apply", json={"files": outside}), 400, "invalid_request")
    err = _error(api.post("/apply", json={"files": FILES, "plan": {"live_digest": "sha256:0"}}), 409, "conflict")
    assert "live state changed" in err["message"]
