"""Kubernetes export (issue 15, ADR 0104): the live project as manifests a platform team applies.

From the store, through the services below this layer:

* each deployment -> KServe ``InferenceService`` (serving.kserve.io/v1beta1) running
  ``vllm serve`` in a custom container, its LoRA adapters given by ``--enable-lora
  --lora-modules name=path``; a canary is exported by the KServe mode: ``serverless``
  (Knative) -> the stable service plus a rollout manifest with ``canaryTrafficPercent``;
  ``raw`` (RawDeployment, where ``canaryTrafficPercent`` does nothing) -> a stable and a canary
  ``InferenceService`` and a Gateway API ``HTTPRoute`` splitting by weight;
* queues and priority classes -> Kueue ``ResourceFlavor``, ``ClusterQueue``, ``LocalQueue``,
  ``WorkloadPriorityClass`` (kueue.x-k8s.io/v1beta2);
* tuning jobs -> Kubeflow Trainer ``TrainJob`` (trainer.kubeflow.org/v1alpha1) labelled with
  ``kueue.x-k8s.io/queue-name`` and ``kueue.x-k8s.io/priority-class``, the spec in a ConfigMap;
* guardrail policies and the explicitly set settings -> ConfigMaps; named secrets and the
  database URL -> Secret *references* (``secretKeyRef``), never values;
* plinth's own gateway -> Deployment + Service on Postgres (``PLINTH_DATABASE_URL`` from a Secret);
* ``kustomization.yaml`` listing what ``kubectl apply -k`` applies and a README.

:func:`validate_manifest` checks a manifest against the schemas in ``k8s_schemas/`` (written
from the documented APIs, pinned per version), offline, with ``jsonschema`` when installed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from plinth import __version__
from plinth.domain.deployments import Deployment, Revision, Target
from plinth.domain.jobs import Job, PreemptionPolicy, PriorityClass, Queue, Resources
from plinth.domain.projects import current_scope
from plinth.errors import ErrorCode, PlinthError

KServeMode = Literal["serverless", "raw"]
KSERVE_MODES: tuple[str, ...] = ("serverless", "raw")

KSERVE_API = "serving.kserve.io/v1beta1"
KUEUE_API = "kueue.x-k8s.io/v1beta2"
TRAINER_API = "trainer.kubeflow.org/v1alpha1"
GATEWAY_API = "gateway.networking.k8s.io/v1"
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
GPU_RESOURCE = "nvidia.com/gpu"
MANAGED = {"app.kubernetes.io/managed-by": "plinth", "app.kubernetes.io/part-of": "plinth"}

#: Kubernetes Secrets the manifests refer to (the platform team creates them; plinth never writes values)
DATABASE_SECRET = "plinth-database"
DATABASE_SECRET_KEY = "url"
SECRETS_SECRET = "plinth-secrets"
SECRETS_SECRET_KEY = "secrets.json"

_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: what an image reference and a storage URI may hold (ASCII; the API's query patterns are these)
IMAGE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$"
STORAGE_PATTERN = r"^[a-z][a-z0-9+.-]*://[A-Za-z0-9._/:@%+=~-]*$"
_SCHEMA_DIR = Path(__file__).with_name("k8s_schemas")
#: settings never put in the settings ConfigMap: machine-local paths, the server's own address,
#: the database URL and the secrets (those two travel as Secret references)
_SETTINGS_KEPT_OUT = frozenset({"home", "config", "database_url", "secrets", "host", "port", "import_dirs"})
#: a URL with user information (``scheme://user:password@host``)
_URL_CREDENTIALS_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s\"]*:[^/@\s\"]*@")
#: vLLM's default --max-lora-rank
_VLLM_DEFAULT_MAX_LORA_RANK = 16


@dataclass(frozen=True)
class K8sOptions:
    """What the export cannot read from the store: where things run and from which images."""

    namespace: str = "plinth"
    kserve_mode: str = "serverless"
    image: str = f"ghcr.io/plinth-ai/plinth:{__version__}"
    vllm_image: str = "vllm/vllm-openai:v0.11.0"
    #: where model and adapter files live in the cluster (KServe storage URI, mounted at /mnt/models)
    model_storage: str = "pvc://plinth-models"
    #: the Gateway API Gateway that raw-mode HTTPRoutes attach to
    gateway: str = "plinth-inference"
    #: the Kubeflow Trainer (Cluster)TrainingRuntime TrainJobs run on
    training_runtime: str = "torch-distributed"
    gpus_per_replica: int = 1

    def check(self) -> None:
        if not _DNS_LABEL_RE.fullmatch(self.namespace) or len(self.namespace) > 63:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"namespace {self.namespace!r} is not a DNS label (a-z, 0-9, '-')", param="namespace"
            )
        if self.kserve_mode not in KSERVE_MODES:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"kserve_mode must be serverless or raw, not {self.kserve_mode!r}", param="kserve_mode"
            )
        if not _DNS_LABEL_RE.fullmatch(self.gateway):
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"gateway {self.gateway!r} is not a DNS label", param="gateway")
        if not _DNS_LABEL_RE.fullmatch(self.training_runtime):
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"training_runtime {self.training_runtime!r} is not a DNS label", param="training_runtime"
            )
        if not 0 <= self.gpus_per_replica <= 64:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"gpus_per_replica must be from 0 to 64, not {self.gpus_per_replica}", param="gpus_per_replica"
            )
        for name, pattern in (("image", IMAGE_PATTERN), ("vllm_image", IMAGE_PATTERN), ("model_storage", STORAGE_PATTERN)):
            value = getattr(self, name)
            if not re.fullmatch(pattern, value) or len(value) > 500:
                what = "a KServe storage URI (pvc://, s3://, gs://, hf://...)" if name == "model_storage" else "an image reference"
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"{name} must be {what}, not {value!r}", param=name)


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object and the file it is written to (relative to the export folder).
    ``applied`` says whether ``kustomization.yaml`` lists it (a serverless canary is applied
    after the stable service, by hand)."""

    path: str
    obj: dict[str, Any]
    applied: bool = True

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", ""))

    @property
    def name(self) -> str:
        return str(self.obj.get("metadata", {}).get("name", ""))


@dataclass
class K8sExport:
    manifests: list[Manifest] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the README tells the platform team
    warnings: list[str] = field(default_factory=list)  # what could not be exported as it is
    options: K8sOptions = field(default_factory=K8sOptions)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def files(self) -> dict[str, str]:
        """Every file of the export folder: path -> text."""
        out = {m.path: to_yaml(m.obj) for m in self.manifests}
        kustomization = {
            "apiVersion": KUSTOMIZE_API,
            "kind": "Kustomization",
            "resources": sorted(m.path for m in self.manifests if m.applied),
        }
        out["kustomization.yaml"] = to_yaml(kustomization)
        out["README.md"] = self.readme()
        return dict(sorted(out.items()))

    def write(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for rel, text in self.files().items():
            p = directory / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
            written.append(p)
        return written

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for m in self.manifests:
            counts[m.kind] = counts.get(m.kind, 0) + 1
        return dict(sorted(counts.items()))

    def readme(self) -> str:
        o = self.options
        lines = [
            "# plinth on Kubernetes",
            "",
            f"Written by `plinth export k8s` (plinth {__version__}). Namespace `{o.namespace}`, KServe mode `{o.kserve_mode}`.",
            "",
            "## Needs",
            "",
            "- KServe (InferenceService serving.kserve.io/v1beta1)"
            + (
                " in Serverless mode (Knative)"
                if o.kserve_mode == "serverless"
                else " in RawDeployment mode, and a Gateway API implementation"
            )
            + ";",
            "- Kueue 0.15+ (kueue.x-k8s.io/v1beta2) with the TrainJob integration enabled;",
            f"- Kubeflow Trainer v2 (trainer.kubeflow.org/v1alpha1) and its `{o.training_runtime}` ClusterTrainingRuntime;",
            f"- the namespace `{o.namespace}` and a Postgres database for plinth's gateway.",
            "",
            "## Secrets (create them; this export holds no secret values)",
            "",
            f"- `{DATABASE_SECRET}` with key `{DATABASE_SECRET_KEY}`: the Postgres URL "
            "(`kubectl -n "
            + o.namespace
            + f" create secret generic {DATABASE_SECRET} --from-literal={DATABASE_SECRET_KEY}=postgresql://...`);",
            f"- `{SECRETS_SECRET}` with key `{SECRETS_SECRET_KEY}`: plinth's named secrets as the JSON of `PLINTH_SECRETS` (optional).",
            "",
            "## Apply",
            "",
            "```",
            "kubectl apply -k .",
            "```",
            "",
            (
                f"vLLM reads model and adapter files from `{o.model_storage}` (mounted at `/mnt/models`): "
                "`models/<model>/` and `adapters/<base>/<adapter>/`; copy them there from plinth's artifact store "
                "(the export writes manifests, not weights)."
            ),
        ]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        if self.warnings:
            lines += ["", "## Not exported as it is", ""] + [f"- {w}" for w in self.warnings]
        lines += ["", "## Files", ""] + [
            f"- `{m.path}`: {m.kind} `{m.name}`" + ("" if m.applied else " (not in kustomization.yaml)") for m in self.manifests
        ]
        return "\n".join(lines) + "\n"


def to_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True)


def k8s_name(value: str, *, max_len: int = 63) -> str:
    """A DNS-1123 label for a plinth name: lower case, other characters -> '-', and a short
    digest of the original when that changed it (``Acme_FAQ`` and ``acme-faq`` stay apart)."""
    low = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-") or "x"
    if low == value and len(low) <= max_len:
        return low
    digest = hashlib.sha256(value.encode()).hexdigest()[:6]
    return f"{low[: max_len - 7].rstrip('-')}-{digest}"


def quantity_memory(n_bytes: int) -> str:
    for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n_bytes and n_bytes % size == 0:
            return f"{n_bytes // size}{unit}"
    return str(n_bytes)


def _meta(
    name: str, namespace: str | None, *, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {**MANAGED, **(labels or {})}
    if annotations:
        meta["annotations"] = annotations
    return meta


def _resources(r: Resources) -> dict[str, Any]:
    req: dict[str, str] = {"cpu": str(r.cpu), "memory": quantity_memory(r.memory)}
    out: dict[str, Any] = {"requests": req, "limits": {"memory": quantity_memory(r.memory)}}
    if r.gpus:
        out["limits"][GPU_RESOURCE] = str(r.gpus)
        req[GPU_RESOURCE] = str(r.gpus)
    return out


class K8sExporter:
    """Reads the live project through the services and builds the manifests.

    ``deployments``, ``jobs``, ``guardrails``, ``registry`` and ``catalog`` are the services of
    those names (``guardrails``/``registry``/``catalog`` may be None); ``settings`` the server's."""

    def __init__(
        self,
        *,
        deployments: Any,
        jobs: Any,
        settings: Any,
        guardrails: Any = None,
        registry: Any = None,
        catalog: Any = None,
    ) -> None:
        self.deployments = deployments
        self.jobs = jobs
        self.settings = settings
        self.guardrails = guardrails
        self.registry = registry
        self.catalog = catalog

    @classmethod
    def from_services(cls, services: Any) -> K8sExporter:
        """The exporter over a :class:`plinth.services.Services` (the API and the CLI build it so)."""
        return cls(
            deployments=services.deployments,
            jobs=services.jobs,
            settings=services.settings,
            guardrails=services.guardrails,
            registry=services.registry,
            catalog=services.catalog,
        )

    def export(self, options: K8sOptions | None = None, *, job_limit: int = 1000) -> K8sExport:
        opts = options or K8sOptions()
        opts.check()
        out = K8sExport(options=opts)
        self._gateway(out)
        self._settings(out)
        self._guardrails(out)
        # queues are the server's; a project's export holds the shared ones and its own
        scope = current_scope.get()
        queues = [q for q in self.jobs.list_queues() if scope is None or scope.everything or q.project in ("", scope.project)]
        classes = self.jobs.list_priority_classes()
        self._kueue(out, queues, classes)
        self._train_jobs(out, self.jobs.list(kind="tune", limit=job_limit), {q.name for q in queues}, {c.name for c in classes})
        for dep in self.deployments.list() if self.deployments is not None else []:
            self._deployment(out, dep)
        return out

    # -- plinth's own gateway ---------------------------------------------------------------
    def _gateway(self, out: K8sExport) -> None:
        o = out.options
        labels = {"app.kubernetes.io/name": "plinth-gateway"}
        env: list[dict[str, Any]] = [
            {"name": "PLINTH_HOST", "value": "0.0.0.0"},
            {"name": "PLINTH_PORT", "value": "8000"},
            {"name": "PLINTH_HOME", "value": "/var/lib/plinth"},
            # jobs run as Kueue-admitted TrainJobs, not inside the gateway
            {"name": "PLINTH_JOBS_LOCAL_WORKER", "value": "false"},
            {"name": "PLINTH_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": DATABASE_SECRET, "key": DATABASE_SECRET_KEY}}},
        ]
        secret_names = sorted((getattr(self.settings, "secrets", None) or {}).keys())
        if secret_names:
            env.append(
                {
                    "name": "PLINTH_SECRETS",
                    "valueFrom": {"secretKeyRef": {"name": SECRETS_SECRET, "key": SECRETS_SECRET_KEY, "optional": False}},
                }
            )
            out.notes.append(
                f"plinth's named secrets ({', '.join(secret_names)}) are read from Secret `{SECRETS_SECRET}` "
                f"(key `{SECRETS_SECRET_KEY}`, the JSON of PLINTH_SECRETS); their values are not exported."
            )
        container = {
            "name": "plinth",
            "image": o.image,
            "args": ["serve"],
            "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
            "env": env,
            "envFrom": [{"configMapRef": {"name": "plinth-settings"}}],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 10},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 20},
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
            "volumeMounts": [{"name": "home", "mountPath": "/var/lib/plinth"}],
        }
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta("plinth-gateway", o.namespace, labels=labels),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": {**MANAGED, **labels}},
                    "spec": {"containers": [container], "volumes": [{"name": "home", "emptyDir": {}}]},
                },
            },
        }
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("plinth-gateway", o.namespace, labels=labels),
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                "type": "ClusterIP",
            },
        }
        out.manifests += [Manifest("gateway/deployment.yaml", deployment), Manifest("gateway/service.yaml", service)]

    def _settings(self, out: K8sExport) -> None:
        data: dict[str, str] = {}
        dumped = self.settings.model_dump(mode="json")
        for name in sorted(self.settings.model_fields_set):
            if name in _SETTINGS_KEPT_OUT or name not in dumped:
                continue
            value = dumped[name]
            text = value if isinstance(value, str) else json.dumps(value)
            if _URL_CREDENTIALS_RE.search(text):  # user:password@ in a URL is a secret: never written
                out.warn(f"setting {name} holds credentials in a URL; it is left out of ConfigMap plinth-settings: set it from a Secret")
                continue
            data[f"PLINTH_{name.upper()}"] = text
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("plinth-settings", out.options.namespace), "data": data}
        out.manifests.append(Manifest("config/settings.yaml", cm))

    def _guardrails(self, out: K8sExport) -> None:
        if self.guardrails is None:
            return
        data: dict[str, str] = {}
        for summary in self.guardrails.list():
            if summary.builtin:
                continue
            pv = self.guardrails.get(summary.name)
            data[f"{summary.name}.yaml"] = self.guardrails.as_yaml(pv)
        if not data:
            return
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("plinth-guardrail-policies", out.options.namespace), "data": data}
        out.manifests.append(Manifest("config/guardrail-policies.yaml", cm))
        out.notes.append(
            "guardrail policies are in ConfigMap `plinth-guardrail-policies` (one YAML per policy, the latest version); "
            "`plinth guardrails apply FILE` loads one into a fresh database."
        )

    # -- Kueue ------------------------------------------------------------------------------
    def _kueue(self, out: K8sExport, queues: list[Queue], classes: list[PriorityClass]) -> None:
        if not queues and not classes:
            return
        flavor = {"apiVersion": KUEUE_API, "kind": "ResourceFlavor", "metadata": _meta("plinth-default", None), "spec": {}}
        out.manifests.append(Manifest("kueue/resourceflavor-plinth-default.yaml", flavor))
        for q in queues:
            cq_name = k8s_name(f"plinth-{q.name}")
            resources = [
                {"name": "cpu", "nominalQuota": str(q.quota.cpu)},
                {"name": "memory", "nominalQuota": quantity_memory(q.quota.memory)},
                {"name": GPU_RESOURCE, "nominalQuota": str(q.quota.gpus)},
            ]
            cq = {
                "apiVersion": KUEUE_API,
                "kind": "ClusterQueue",
                "metadata": _meta(
                    cq_name,
                    None,
                    annotations={"plinth.dev/queue": q.name}
                    if q.description == ""
                    else {"plinth.dev/queue": q.name, "plinth.dev/description": q.description},
                ),
                "spec": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": out.options.namespace}},
                    "resourceGroups": [
                        {
                            "coveredResources": ["cpu", "memory", GPU_RESOURCE],
                            "flavors": [{"name": "plinth-default", "resources": resources}],
                        }
                    ],
                    "preemption": {"withinClusterQueue": "LowerPriority" if q.preemption is PreemptionPolicy.LOWER_PRIORITY else "Never"},
                },
            }
            lq = {
                "apiVersion": KUEUE_API,
                "kind": "LocalQueue",
                "metadata": _meta(k8s_name(q.name), out.options.namespace),
                "spec": {"clusterQueue": cq_name},
            }
            out.manifests += [Manifest(f"kueue/clusterqueue-{cq_name}.yaml", cq), Manifest(f"kueue/localqueue-{k8s_name(q.name)}.yaml", lq)]
        for c in classes:
            wpc: dict[str, Any] = {
                "apiVersion": KUEUE_API,
                "kind": "WorkloadPriorityClass",
                "metadata": _meta(k8s_name(c.name), None),
                "value": c.value,
            }
            if c.description:
                wpc["description"] = c.description
            out.manifests.append(Manifest(f"kueue/workloadpriorityclass-{k8s_name(c.name)}.yaml", wpc))

    # -- Kubeflow Trainer -------------------------------------------------------------------
    def _train_jobs(self, out: K8sExport, jobs: Iterable[Job], queues: set[str], classes: set[str]) -> None:
        o = out.options
        for job in jobs:
            # job names need not be unique: the id's tail keeps two jobs of one name apart
            name = k8s_name(f"tune-{job.name}-{job.id[-6:]}" if job.name else f"tune-{job.id}")
            spec_cm = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(f"{name}-spec", o.namespace, labels={"plinth.dev/job": k8s_name(job.id)}),
                "data": {"spec.json": json.dumps(job.spec, sort_keys=True, indent=2)},
            }
            labels = {QUEUE_LABEL: k8s_name(job.queue), "plinth.dev/job": k8s_name(job.id)}
            if job.priority_class in classes:
                labels[PRIORITY_LABEL] = k8s_name(job.priority_class)
            if job.queue not in queues:
                out.warn(f"job {job.id} names queue {job.queue!r}, which has no LocalQueue in this export")
            res = _resources(job.resources)
            trainer: dict[str, Any] = {
                "image": o.image,
                # `plinth tune` runs the job in this pod (no worker is alive: the gateway runs none) and
                # reports into the shared store; Kubernetes expands $(PLINTH_TUNE_SPEC) from env
                "command": [
                    "plinth",
                    "tune",
                    "--base-model",
                    str(job.spec.get("base_model", "")),
                    "--dataset",
                    str(job.spec.get("dataset", "")),
                    "--method",
                    str(job.spec.get("method", "lora")),
                    "--spec",
                    "$(PLINTH_TUNE_SPEC)",
                ],
                "env": [
                    {"name": "PLINTH_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": DATABASE_SECRET, "key": DATABASE_SECRET_KEY}}},
                    {"name": "PLINTH_TUNE_SPEC", "valueFrom": {"configMapKeyRef": {"name": f"{name}-spec", "key": "spec.json"}}},
                ],
                "numNodes": 1,
                "resourcesPerNode": res,
            }
            train = {
                "apiVersion": TRAINER_API,
                "kind": "TrainJob",
                "metadata": _meta(
                    name, o.namespace, labels=labels, annotations={"plinth.dev/job-id": job.id, "plinth.dev/state": job.state.value}
                ),
                "spec": {
                    "runtimeRef": {"name": o.training_runtime, "apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime"},
                    "trainer": trainer,
                },
            }
            out.manifests += [Manifest(f"training/configmap-{name}-spec.yaml", spec_cm), Manifest(f"training/trainjob-{name}.yaml", train)]
        if any(m.kind == "TrainJob" for m in out.manifests):
            out.notes.append(
                "TrainJobs carry `kueue.x-k8s.io/queue-name` (and `kueue.x-k8s.io/priority-class`): Kueue suspends them until "
                "their ClusterQueue's quota admits them. The tuning spec is in the ConfigMap `<job>-spec` (env PLINTH_TUNE_SPEC)."
            )

    # -- KServe -----------------------------------------------------------------------------
    def _deployment(self, out: K8sExport, dep: Deployment) -> None:
        o = out.options
        base = k8s_name(dep.name, max_len=45)  # KServe derives longer names (…-predictor-…) from it
        stable = self.deployments.revision(dep.name, dep.stable_revision)
        canary = self.deployments.revision(dep.name, dep.canary_revision) if dep.canary_revision is not None else None
        labels = {"plinth.dev/deployment": base}
        if o.kserve_mode == "serverless":
            ann = {DEPLOYMENT_MODE_ANNOTATION: "Serverless"}
            isvc = self._isvc(out, base, dep, stable, labels, ann)
            out.manifests.append(Manifest(f"serving/inferenceservice-{base}.yaml", isvc))
            if canary is not None:
                rollout = self._isvc(out, base, dep, canary, labels, ann)
                pct = round(dep.canary_percent)
                rollout["spec"]["predictor"]["canaryTrafficPercent"] = pct
                out.manifests.append(Manifest(f"rollout/inferenceservice-{base}-canary.yaml", rollout, applied=False))
                out.notes.append(
                    f"deployment {dep.name}: canary revision {canary.number} at {pct}% — after `kubectl apply -k .`, "
                    f"`kubectl apply -f rollout/inferenceservice-{base}-canary.yaml` (KServe splits between the last "
                    "rolled-out revision and this one; set canaryTrafficPercent to 100 to promote)."
                )
                if pct != dep.canary_percent:
                    out.warn(f"deployment {dep.name}: canary share {dep.canary_percent:g}% rounded to {pct}% (KServe takes whole percents)")
            return
        ann = {DEPLOYMENT_MODE_ANNOTATION: "RawDeployment"}
        stable_name = k8s_name(f"{base}-stable", max_len=45)
        out.manifests.append(
            Manifest(f"serving/inferenceservice-{stable_name}.yaml", self._isvc(out, stable_name, dep, stable, labels, ann))
        )
        backends = [(stable_name, 10_000)]
        if canary is not None:
            canary_name = k8s_name(f"{base}-canary", max_len=45)
            out.manifests.append(
                Manifest(f"serving/inferenceservice-{canary_name}.yaml", self._isvc(out, canary_name, dep, canary, labels, ann))
            )
            share = round(dep.canary_percent * 100)  # weights in hundredths of a percent
            backends = [(stable_name, 10_000 - share), (canary_name, share)]
        route = {
            "apiVersion": GATEWAY_API,
            "kind": "HTTPRoute",
            "metadata": _meta(base, o.namespace, labels=labels),
            "spec": {
                "parentRefs": [{"name": o.gateway}],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": f"/deployments/{base}/"}}],
                        "filters": [
                            {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}
                        ],
                        "backendRefs": [{"name": f"{n}-predictor", "port": 80, "weight": w} for n, w in backends],
                    }
                ],
            },
        }
        out.manifests.append(Manifest(f"serving/httproute-{base}.yaml", route))
        if canary is not None:
            out.notes.append(
                f"deployment {dep.name}: RawDeployment mode has no canaryTrafficPercent; stable revision {stable.number} and canary "
                f"revision {canary.number} are two InferenceServices and HTTPRoute `{base}` (Gateway `{o.gateway}`) splits "
                f"{dep.canary_percent:g}% to the canary by weight (the services are `<name>-predictor`, port 80)."
            )

    def _isvc(
        self, out: K8sExport, name: str, dep: Deployment, rev: Revision, labels: dict[str, str], ann: dict[str, str]
    ) -> dict[str, Any]:
        o = out.options
        base_model, adapters, gguf = self._serving_plan(out, dep, rev)
        model_path = f"/mnt/models/models/{base_model}"
        if gguf:
            model_path += "/model.gguf"
        # the OpenAI server answers as the deployment's name; each adapter under its own name
        args = ["serve", model_path, "--port", "8080", "--served-model-name", dep.name]
        if adapters:
            args += ["--enable-lora", "--lora-modules"] + [f"{a}=/mnt/models/adapters/{base_model}/{a}" for a, _ in adapters]
            rank = max((r or 0) for _, r in adapters)
            if rank > _VLLM_DEFAULT_MAX_LORA_RANK:
                args += ["--max-lora-rank", str(rank)]
        resources: dict[str, Any] = {"requests": {"cpu": "2", "memory": "16Gi"}, "limits": {"memory": "16Gi"}}
        if o.gpus_per_replica:
            resources["limits"][GPU_RESOURCE] = str(o.gpus_per_replica)
        container = {
            "name": "kserve-container",
            "image": o.vllm_image,
            "command": ["vllm"],
            "args": args,
            "env": [{"name": "STORAGE_URI", "value": o.model_storage}],
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "resources": resources,
        }
        annotations = {**ann, "plinth.dev/deployment": dep.name, "plinth.dev/revision": str(rev.number)}
        return {
            "apiVersion": KSERVE_API,
            "kind": "InferenceService",
            "metadata": _meta(name, o.namespace, labels=labels, annotations=annotations),
            "spec": {"predictor": {"minReplicas": 1, "containers": [container]}},
        }

    def _serving_plan(self, out: K8sExport, dep: Deployment, rev: Revision) -> tuple[str, list[tuple[str, int | None]], bool]:
        """The base model a revision's vLLM server loads and the LoRA adapters (name, rank) it
        adds. Targets on another base cannot share the server: they are reported."""
        served = [self._catalog_id(t) for t in rev.targets]
        first_base = served[0].split(":", 1)[0]
        adapters: list[tuple[str, int | None]] = []
        for t, cid in zip(rev.targets, served, strict=True):
            b, _, adapter = cid.partition(":")
            if b != first_base:
                out.warn(
                    f"deployment {dep.name} revision {rev.number}: target {t.model} is on base {b}, not {first_base}; "
                    "one vLLM server serves one base model, so it is left out"
                )
                continue
            if adapter and adapter not in [a for a, _ in adapters]:
                adapters.append((adapter, self._adapter_rank(b, adapter)))
        weights = [t.weight for t in rev.targets]
        if len(rev.targets) > 1 and len(set(weights)) > 1:
            out.warn(
                f"deployment {dep.name} revision {rev.number}: the weights between its targets ({weights}) are plinth's routing; "
                "the vLLM server serves every adapter by name and plinth's gateway keeps choosing"
            )
        record = self._model(first_base)
        if record is not None and getattr(record, "runtime", "") in ("openai", "upstream"):
            out.warn(f"deployment {dep.name}: {first_base} is a remote model; its InferenceService is a placeholder")
        gguf = record is not None and str(getattr(getattr(record, "format", ""), "value", "")) == "gguf"
        if gguf:
            out.warn(f"deployment {dep.name}: {first_base} is a GGUF file; vLLM's GGUF support is experimental (give it --tokenizer)")
        return first_base, adapters, gguf

    def _catalog_id(self, t: Target) -> str:
        served = t.served
        if self.registry is not None and "@" in served:
            mv = self.registry.resolve_version(served)
            if mv is not None:
                return str(mv.served_as)
        return served

    def _model(self, name: str) -> Any:
        if self.catalog is None:
            return None
        try:
            return self.catalog.get(name)
        except PlinthError:
            return None

    def _adapter_rank(self, base: str, adapter: str) -> int | None:
        if self.catalog is None:
            return None
        try:
            return self.catalog.get_adapter(base, adapter).rank
        except PlinthError:
            return None


# -- offline validation against the pinned schemas -------------------------------------------
def schema_files() -> dict[tuple[str, str], Path]:
    """(apiVersion, kind) -> its schema file."""
    out: dict[tuple[str, str], Path] = {}
    for p in sorted(_SCHEMA_DIR.glob("*.json")):
        doc = json.loads(p.read_text(encoding="utf-8"))
        pinned = doc.get("x-plinth-pinned")
        if pinned:
            out[(pinned["apiVersion"], pinned["kind"])] = p
    return out


def _validator_for(api_version: str, kind: str) -> Callable[[dict[str, Any]], list[str]]:
    try:
        import jsonschema  # type: ignore[import-untyped]
        from referencing import Registry, Resource
    except ImportError:  # pragma: no cover - jsonschema ships with the dev extras
        raise PlinthError(
            ErrorCode.UNSUPPORTED, "manifest validation needs jsonschema: pip install jsonschema (or plinth[dev])", param="validate"
        ) from None
    files = schema_files()
    path = files.get((api_version, kind))
    if path is None:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"no pinned schema for {kind} {api_version}", param="kind")
    resources = []
    for p in _SCHEMA_DIR.glob("*.json"):
        doc = json.loads(p.read_text(encoding="utf-8"))
        resources.append((doc["$id"], Resource.from_contents(doc)))
    registry: Registry[Any] = Registry().with_resources(resources)
    schema = json.loads(path.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, registry=registry)

    def check(obj: dict[str, Any]) -> list[str]:
        return [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in validator.iter_errors(obj)]

    return check


def validate_manifest(obj: dict[str, Any]) -> list[str]:
    """Every problem of one manifest against its pinned schema (empty: valid)."""
    return _validator_for(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))(obj)


def validate_export(export: K8sExport) -> dict[str, list[str]]:
    """path -> problems, for every manifest with any (empty: all valid); the kustomization too."""
    problems: dict[str, list[str]] = {}
    for m in export.manifests:
        errs = validate_manifest(m.obj)
        if errs:
            problems[m.path] = errs
    kust = yaml.safe_load(export.files()["kustomization.yaml"])
    errs = validate_manifest(kust)
    if errs:
        problems["kustomization.yaml"] = errs
    return problems
