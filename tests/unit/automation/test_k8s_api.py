"""``GET /api/v1/export/k8s`` on a live server (``plinth up`` on a prepared home): the files as
JSON or a tar.gz, validated on request; bad options are 400s in the canonical error shape; no
secret value travels."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator

import httpx
import pytest
import yaml

from plinth.automation.k8s import validate_manifest
from plinth.config import load_settings
from plinth.services import build_services
from tests.support.live_server import LiveServer, start_server, stop_server

SECRET_VALUE = "sk-api-export-never-4b1d"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("k8s-api-home")
    s = build_services(load_settings(home=home, threads=1, context_length=1024))
    try:
        base = s.catalog.ensure_embedded().name
        s.deployments.create("acme-assistant", [{"model": base}], actor="test")
        s.deployments.canary("acme-assistant", [{"model": base, "system_prompt": "Be brief."}], percent=25, actor="test")
    finally:
        s.close()
    srv = start_server(home, PLINTH_SECRETS=json.dumps({"upstream": {"value": SECRET_VALUE}}), PLINTH_PRELOAD_DEFAULT_MODEL="false")
    yield srv
    stop_server(srv)
    assert "Traceback" not in srv.log_text()


def test_json_export_validates_and_names_no_secret_value(server: LiveServer) -> None:
    r = httpx.get(server.url + "/api/v1/export/k8s", params={"kserve_mode": "raw", "namespace": "acme", "validate": "true"}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["problems"] == {}
    assert body["summary"]["InferenceService"] == 2 and body["summary"]["HTTPRoute"] == 1
    assert SECRET_VALUE not in r.text
    route = yaml.safe_load(body["files"]["serving/httproute-acme-assistant.yaml"])
    assert sorted(b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]) == [2500, 7500]
    assert {"kustomization.yaml", "README.md"} <= set(body["files"])


def test_tar_gz_export_holds_the_same_files(server: LiveServer) -> None:
    r = httpx.get(server.url + "/api/v1/export/k8s", params={"format": "tar.gz"}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        names = tar.getnames()
        isvc = tar.extractfile("k8s/serving/inferenceservice-acme-assistant.yaml")
        assert isvc is not None
        obj = yaml.safe_load(isvc.read())
    assert "k8s/kustomization.yaml" in names and "k8s/rollout/inferenceservice-acme-assistant-canary.yaml" in names
    assert validate_manifest(obj) == []
    assert obj["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"


@pytest.mark.parametrize(
    ("params", "param"),
    [({"kserve_mode": "knative"}, "kserve_mode"), ({"namespace": "Not_A_Label"}, "namespace"), ({"gpus": "99"}, "gpus")],
)
def test_bad_options_are_400_in_the_canonical_shape(server: LiveServer, params: dict[str, str], param: str) -> None:
    r = httpx.get(server.url + "/api/v1/export/k8s", params=params, timeout=30)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == "invalid_request"
    assert param in json.dumps(body["error"])


def test_the_route_is_in_the_openapi_document(server: LiveServer) -> None:
    spec = httpx.get(server.url + "/openapi.json", timeout=30).json()
    op = spec["paths"]["/api/v1/export/k8s"]["get"]
    assert "application/gzip" in op["responses"]["200"]["content"]
    assert {p["name"] for p in op["parameters"]} >= {"kserve_mode", "namespace", "validate", "format"}
