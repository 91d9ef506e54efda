"""Kubernetes export (ADR 0104): the manifests of a live project — a deployment with LoRA
adapters and a canary, queues, priority classes, a tuning job, a guardrail policy, a named
secret — validate against the pinned schemas; the canary takes the shape of the KServe mode;
jobs carry Kueue's labels; no secret value is ever written."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from plinth.automation.k8s import (
    PRIORITY_LABEL,
    QUEUE_LABEL,
    K8sExport,
    K8sExporter,
    K8sOptions,
    k8s_name,
    schema_files,
    validate_export,
    validate_manifest,
)
from plinth.config import load_settings
from plinth.domain.jobs import Job, PreemptionPolicy, Resources, new_job_id
from plinth.domain.models import AdapterFormat, AdapterRecord
from plinth.domain.projects import DEFAULT_PROJECT, project_scope
from plinth.errors import PlinthError
from plinth.services import Services, build_services
from tests.support.cli import plinth

SECRET_VALUE = "sk-this-must-never-be-written-9f3a"
DEPLOYMENT = "Acme_Assistant"  # not a DNS label: the export makes one


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("k8s-home")


@pytest.fixture(scope="module")
def services(home: Path) -> Iterator[Services]:
    s = build_services(
        load_settings(
            home=home,
            database_url=f"sqlite:///{home}/plinth.db",
            threads=1,
            context_length=1024,
            max_batch_size=4,
            # what the workers offer, as on a GPU node (quotas are bounded by it); no worker runs here
            worker_cpu=32,
            worker_memory_bytes=128 << 30,
            worker_gpus=8,
            jobs_local_worker=False,
            secrets={"openai": {"value": SECRET_VALUE, "hosts": ["api.openai.com"]}},
        )
    )
    base = s.catalog.ensure_embedded().name
    for name, rank in (("faq-v1", 8), ("faq-v2", 32)):
        s.store.add_adapter(
            AdapterRecord(
                base_model=base, name=name, format=AdapterFormat.PEFT_LORA, digest=f"{rank:064x}", size_bytes=1000, rank=rank, alpha=16.0
            )
        )
    s.guardrails.apply({"name": "acme-pii", "rules": [{"detector": "pii", "on": ["input", "output"]}]})
    s.deployments.create(DEPLOYMENT, [{"model": f"{base}:faq-v1", "guardrail_policy": "acme-pii"}], actor="test")
    s.deployments.canary(DEPLOYMENT, [{"model": f"{base}:faq-v2"}], percent=10, actor="test")
    s.jobs.create_queue(
        "gpu-train", Resources(cpu=16, memory=64 << 30, gpus=4), preemption=PreemptionPolicy.NEVER, description="tuning on GPUs"
    )
    s.jobs.create_priority_class("urgent", 5000, "retraining after drift")
    spec = {"base_model": base, "dataset": "acme-faq@2", "method": "lora", "lora": {"rank": 16}}
    job = Job(
        id=new_job_id(1_765_000_000_000, "ab" * 5),
        kind="tune",
        spec=spec,
        queue="gpu-train",
        priority_class="urgent",
        priority=5000,
        resources=Resources(cpu=8, memory=32 << 30, gpus=1),
        name="acme-faq-retrain",
    )
    s.store.add_job(job)
    yield s
    s.close()


def _export(s: Services, mode: str) -> K8sExport:
    return K8sExporter.from_services(s).export(K8sOptions(kserve_mode=mode, namespace="acme"))


def _by_kind(e: K8sExport, kind: str) -> list[dict[str, Any]]:
    return [m.obj for m in e.manifests if m.kind == kind]


@pytest.mark.parametrize("mode", ["serverless", "raw"])
def test_every_manifest_validates_against_the_pinned_schemas(services: Services, mode: str, tmp_path: Path) -> None:
    e = _export(services, mode)
    assert validate_export(e) == {}
    kinds = set(e.summary())
    assert {"InferenceService", "ClusterQueue", "LocalQueue", "ResourceFlavor", "WorkloadPriorityClass", "TrainJob"} <= kinds
    assert {"Deployment", "Service", "ConfigMap"} <= kinds
    assert ("HTTPRoute" in kinds) is (mode == "raw")
    # every kind emitted has a pinned schema, and the files on disk are the manifests
    pinned = schema_files()
    assert all((m.obj["apiVersion"], m.kind) in pinned for m in e.manifests)
    written = e.write(tmp_path)
    kust = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert kust["resources"] == sorted(m.path for m in e.manifests if m.applied)
    for rel in kust["resources"]:
        assert (tmp_path / rel).is_file()
        assert validate_manifest(yaml.safe_load((tmp_path / rel).read_text())) == []
    assert (tmp_path / "README.md") in written
    assert "kubectl apply -k ." in (tmp_path / "README.md").read_text()


@pytest.mark.parametrize(
    ("kind", "change", "expected"),
    [
        ("InferenceService", lambda o: o["spec"]["predictor"].update(canaryTrafficPercentage=10), "canaryTrafficPercentage"),
        ("InferenceService", lambda o: o["spec"]["predictor"].update(canaryTrafficPercent=150), "150"),
        ("ClusterQueue", lambda o: o["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0].pop("nominalQuota"), "nominalQuota"),
        ("ClusterQueue", lambda o: o["spec"]["preemption"].update(withinClusterQueue="Sometimes"), "Sometimes"),
        ("LocalQueue", lambda o: o["metadata"].pop("namespace"), "namespace"),
        ("WorkloadPriorityClass", lambda o: o.update(spec={"value": 1}), "spec"),
        ("TrainJob", lambda o: o["spec"]["trainer"].update(numNodes=0), "numNodes"),
        ("TrainJob", lambda o: o["spec"]["runtimeRef"].update(kind="PyTorchJob"), "PyTorchJob"),
        (
            "Deployment",
            lambda o: o["spec"]["template"]["spec"]["containers"][0]["env"][0].update(valueFrom={"secretKeyRef": {"name": "x"}}),
            "key",
        ),
        ("ConfigMap", lambda o: o.update(data={"n": 1}), "1"),
    ],
)
def test_a_manifest_with_a_wrong_field_fails_validation(services: Services, kind: str, change: Any, expected: str) -> None:
    e = _export(services, "serverless")
    obj = copy.deepcopy(_by_kind(e, kind)[0])
    assert validate_manifest(obj) == []
    change(obj)
    problems = validate_manifest(obj)
    assert problems, f"{kind} with a wrong field validated"
    assert any(expected in p for p in problems), problems


def test_a_kind_without_a_pinned_schema_is_a_clear_error() -> None:
    with pytest.raises(PlinthError) as err:
        validate_manifest({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "x"}})
    assert err.value.param == "kind" and "PyTorchJob" in err.value.message


def _predictor_args(isvc: dict[str, Any]) -> list[str]:
    (container,) = isvc["spec"]["predictor"]["containers"]
    return list(container["args"])


def test_serverless_canary_is_canary_traffic_percent_applied_after_the_stable_service(services: Services) -> None:
    e = _export(services, "serverless")
    isvcs = {m.path: m for m in e.manifests if m.kind == "InferenceService"}
    name = k8s_name(DEPLOYMENT, max_len=45)
    stable = isvcs[f"serving/inferenceservice-{name}.yaml"]
    canary = isvcs[f"rollout/inferenceservice-{name}-canary.yaml"]
    assert stable.applied and not canary.applied  # KServe splits between the last rolled-out revision and the new spec
    assert stable.name == canary.name == name
    for m in (stable, canary):
        assert m.obj["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert "canaryTrafficPercent" not in stable.obj["spec"]["predictor"]
    assert canary.obj["spec"]["predictor"]["canaryTrafficPercent"] == 10
    # vLLM with the revision's LoRA adapter; the canary's rank 32 needs --max-lora-rank
    s_args, c_args = _predictor_args(stable.obj), _predictor_args(canary.obj)
    assert s_args[:2] == ["serve", "/mnt/models/models/smollm2-135m-instruct/model.gguf"]
    assert s_args[s_args.index("--served-model-name") + 1] == DEPLOYMENT
    assert (
        "--enable-lora" in s_args
        and s_args[s_args.index("--lora-modules") + 1] == "faq-v1=/mnt/models/adapters/smollm2-135m-instruct/faq-v1"
    )
    assert "--max-lora-rank" not in s_args
    assert c_args[c_args.index("--lora-modules") + 1].startswith("faq-v2=") and c_args[c_args.index("--max-lora-rank") + 1] == "32"
    assert not any(m.kind == "HTTPRoute" for m in e.manifests)


def test_raw_mode_is_two_inference_services_and_a_weighted_http_route(services: Services) -> None:
    e = _export(services, "raw")
    isvcs = _by_kind(e, "InferenceService")
    assert len(isvcs) == 2 and all(m.applied for m in e.manifests)
    for isvc in isvcs:
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
        assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]  # RawDeployment ignores it
    revisions = {isvc["metadata"]["annotations"]["plinth.dev/revision"]: isvc["metadata"]["name"] for isvc in isvcs}
    assert set(revisions) == {"1", "2"}
    (route,) = _by_kind(e, "HTTPRoute")
    backends = {b["name"]: b["weight"] for rule in route["spec"]["rules"] for b in rule["backendRefs"]}
    assert backends == {f"{revisions['1']}-predictor": 9000, f"{revisions['2']}-predictor": 1000}
    assert route["spec"]["parentRefs"] == [{"name": "plinth-inference"}]
    assert any("RawDeployment mode has no canaryTrafficPercent" in n for n in e.notes)


def test_kueue_objects_follow_the_queues_and_jobs_carry_the_labels(services: Services) -> None:
    e = _export(services, "serverless")
    cqs = {o["metadata"]["annotations"]["plinth.dev/queue"]: o for o in _by_kind(e, "ClusterQueue")}
    assert set(cqs) == {q.name for q in services.jobs.list_queues()}
    gpu = cqs["gpu-train"]
    (group,) = gpu["spec"]["resourceGroups"]
    quota = {r["name"]: r["nominalQuota"] for r in group["flavors"][0]["resources"]}
    assert quota == {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "4"}
    assert gpu["spec"]["preemption"] == {"withinClusterQueue": "Never"}
    assert cqs["default"]["spec"]["preemption"] == {"withinClusterQueue": "LowerPriority"}
    assert group["flavors"][0]["name"] in {o["metadata"]["name"] for o in _by_kind(e, "ResourceFlavor")}
    local = {o["metadata"]["name"]: o for o in _by_kind(e, "LocalQueue")}
    assert local["gpu-train"]["spec"]["clusterQueue"] == gpu["metadata"]["name"]
    assert local["gpu-train"]["metadata"]["namespace"] == "acme"
    classes = {o["metadata"]["name"]: o["value"] for o in _by_kind(e, "WorkloadPriorityClass")}
    assert classes["urgent"] == 5000 and set(classes) == {c.name for c in services.jobs.list_priority_classes()}
    (train,) = _by_kind(e, "TrainJob")
    labels = train["metadata"]["labels"]
    assert labels[QUEUE_LABEL] == "gpu-train" and labels[QUEUE_LABEL] in local
    assert labels[PRIORITY_LABEL] == "urgent" and labels[PRIORITY_LABEL] in classes
    trainer = train["spec"]["trainer"]
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "1"
    assert trainer["resourcesPerNode"]["requests"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}
    assert train["spec"]["runtimeRef"]["name"] == "torch-distributed"
    # the tuning spec travels in a ConfigMap the container reads through env
    env = {v["name"]: v for v in trainer["env"]}
    cm_name = env["PLINTH_TUNE_SPEC"]["valueFrom"]["configMapKeyRef"]["name"]
    (cm,) = [o for o in _by_kind(e, "ConfigMap") if o["metadata"]["name"] == cm_name]
    assert json.loads(cm["data"]["spec.json"])["dataset"] == "acme-faq@2"
    assert trainer["command"][:2] == ["plinth", "tune"] and "$(PLINTH_TUNE_SPEC)" in trainer["command"]


def test_secrets_are_references_and_never_values(services: Services) -> None:
    db_url = services.settings.database_url
    assert db_url
    for mode in ("serverless", "raw"):
        e = _export(services, mode)
        text = json.dumps(e.files())
        assert SECRET_VALUE not in text
        assert db_url not in text
        assert not _by_kind(e, "Secret")
    (gw,) = _by_kind(e, "Deployment")
    env = {v["name"]: v for v in gw["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PLINTH_DATABASE_URL"] == {
        "name": "PLINTH_DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "plinth-database", "key": "url"}},
    }
    assert env["PLINTH_SECRETS"]["valueFrom"]["secretKeyRef"]["name"] == "plinth-secrets"
    assert "value" not in env["PLINTH_DATABASE_URL"] and "value" not in env["PLINTH_SECRETS"]
    settings_cm = next(o for o in _by_kind(e, "ConfigMap") if o["metadata"]["name"] == "plinth-settings")
    assert settings_cm["data"]["PLINTH_CONTEXT_LENGTH"] == "1024"
    assert not any("SECRETS" in k or "DATABASE" in k or "HOME" in k for k in settings_cm["data"])
    assert "openai" in " ".join(e.notes)  # the secret's name is named, for the platform team to provide


def test_guardrail_policies_are_a_config_map(services: Services) -> None:
    e = _export(services, "serverless")
    (cm,) = [o for o in _by_kind(e, "ConfigMap") if o["metadata"]["name"] == "plinth-guardrail-policies"]
    doc = yaml.safe_load(cm["data"]["acme-pii.yaml"])
    assert doc["rules"][0]["detector"] == "pii"


def test_names_become_dns_labels_that_stay_apart() -> None:
    a, b = k8s_name("Acme_Assistant"), k8s_name("acme-assistant")
    assert b == "acme-assistant" and a != b and a.startswith("acme-assistant-")
    long = k8s_name("x" * 100, max_len=45)
    assert len(long) <= 45 and long != k8s_name("x" * 99, max_len=45)


@pytest.mark.parametrize(
    ("field", "value"),
    [("kserve_mode", "knative"), ("namespace", "Acme"), ("gateway", "a b"), ("model_storage", "/models"), ("gpus_per_replica", -1)],
)
def test_bad_options_are_clear_errors(services: Services, field: str, value: Any) -> None:
    with pytest.raises(PlinthError) as err:
        K8sExporter.from_services(services).export(K8sOptions(**{field: value}))
    assert err.value.param == field and str(value) in err.value.message


def test_cli_writes_valid_manifests(services: Services, home: Path, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    r = plinth(home, "k8s", "export", str(out), "--kserve-mode", "raw", "--namespace", "acme", "--validate", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["problems"] == {} and report["summary"]["HTTPRoute"] == 1
    assert (out / "kustomization.yaml").is_file() and (out / "README.md").is_file()
    assert SECRET_VALUE not in "".join(p.read_text() for p in out.rglob("*.yaml"))
    r = plinth(home, "k8s", "export", str(tmp_path / "again"), "--validate")
    assert r.returncode == 0, r.stderr
    assert "manifests valid" in r.stdout and "InferenceService" in r.stdout


def test_cli_bad_mode_is_one_error_line(home: Path, tmp_path: Path) -> None:
    r = plinth(home, "k8s", "export", str(tmp_path / "x"), "--kserve-mode", "knative")
    assert r.returncode != 0
    assert "serverless or raw" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


def test_a_project_export_holds_shared_queues_and_its_own_only(services: Services) -> None:
    services.jobs.create_queue("claims-only", Resources(cpu=1, memory=1 << 30, gpus=0), project="claims")
    with project_scope(DEFAULT_PROJECT):
        names = {o["metadata"]["annotations"]["plinth.dev/queue"] for o in _by_kind(_export(services, "raw"), "ClusterQueue")}
    assert "claims-only" not in names and {"default", "gpu-train"} <= names
    with project_scope("claims"):
        names = {o["metadata"]["annotations"]["plinth.dev/queue"] for o in _by_kind(_export(services, "raw"), "ClusterQueue")}
    assert "claims-only" in names and "default" in names


def test_plinth_export_k8s_dispatches_to_the_kubernetes_export(services: Services, home: Path, tmp_path: Path) -> None:
    r = plinth(home, "export", "k8s", str(tmp_path / "out"), "--kserve-mode", "raw", "--validate", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["problems"] == {} and report["summary"]["HTTPRoute"] == 1
    assert (tmp_path / "out" / "kustomization.yaml").is_file()


def test_a_setting_with_url_credentials_is_left_out(services: Services, home: Path) -> None:
    settings = load_settings(home=home, alert_external_url="https://ops:hunter2-pw@plinth.example.com", kb_top_k=6)
    e = K8sExporter(deployments=None, jobs=services.jobs, settings=settings).export()
    assert "hunter2-pw" not in json.dumps(e.files())
    data = next(o for o in _by_kind(e, "ConfigMap") if o["metadata"]["name"] == "plinth-settings")["data"]
    assert data["PLINTH_KB_TOP_K"] == "6" and "PLINTH_ALERT_EXTERNAL_URL" not in data
    assert any("alert_external_url" in w for w in e.warnings)
    assert validate_export(e) == {}
