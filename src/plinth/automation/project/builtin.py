"""The built-in resource kinds of project files (ADR 0100): KnowledgeBase, Dataset,
GuardrailPolicy, AlertRule and Deployment, each read and changed through its service.

The other kinds live beside them: ModelImport and Adapter (:mod:`.kinds_models`), Queue and
PriorityClass (:mod:`.kinds_queues`), Evaluation and TuningSpec (:mod:`.kinds_eval`);
Pipeline and Trigger in :mod:`plinth.automation.pipeline_kinds`.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from plinth.automation.project.kinds import KindHandler, ProjectContext, Ref, register_kind
from plinth.deployments.service import parse_gate, parse_rules
from plinth.errors import ErrorCode, PlinthError
from plinth.guardrails.policy import canonical, parse_document, validate_policy


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _exists(fn: Any) -> bool:
    try:
        fn()
    except PlinthError:
        return False
    return True


# -- KnowledgeBase ----------------------------------------------------------------------------
class KnowledgeBaseSpec(_Spec):
    description: str = ""
    sources: list[str] = Field(default_factory=list, description="files and folders to ingest, relative to the project folder")
    documents: dict[str, str] = Field(
        default_factory=dict,
        description="documents kept as they are live, by name -> sha256 (what `plinth export` writes: the original bytes are not stored)",
    )


class KnowledgeBaseHandler(KindHandler):
    """A knowledge base and its documents: plan compares document names and content digests;
    apply ingests what changed as one new version and removes the documents no source has."""

    kind = "KnowledgeBase"
    spec_model = KnowledgeBaseSpec
    order = 10

    def _sources(self, ctx: ProjectContext, spec: KnowledgeBaseSpec) -> list[Any]:
        paths = [ctx.path(s, param="spec.sources") for s in spec.sources]
        return list(ctx.services.knowledge.sources_from_paths(paths))

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        assert isinstance(spec, KnowledgeBaseSpec)
        out = []
        for i, s in enumerate(spec.sources):
            if ctx.base_dir is None or not ctx.path(s, param=f"spec.sources.{i}").exists():
                out.append((f"sources.{i}", f"source {s!r} does not exist (relative to the project folder)"))
        return out

    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        assert isinstance(spec, KnowledgeBaseSpec)
        docs = {}
        for src in self._sources(ctx, spec):
            if src.error or src.read is None:
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST, f"knowledge base {name!r}: source {src.name!r}: {src.error}", param="spec.sources"
                )
            docs[src.name] = _sha256(src.read())
        for doc_name, digest in spec.documents.items():
            docs.setdefault(doc_name, digest)
        # The description is set on create only (the store keeps it as created): not compared.
        return {"documents": dict(sorted(docs.items()))}

    def live_names(self, ctx: ProjectContext) -> list[str]:
        return [kb.name for kb in ctx.services.knowledge.list()]

    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        kb = ctx.services.store.find_kb(name)
        if kb is None:
            return None
        docs = ctx.services.knowledge.documents(name)[2] if kb.current_version else []
        return {"documents": dict(sorted((d.name, d.sha256) for d in docs))}

    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None:
        assert isinstance(spec, KnowledgeBaseSpec)
        ctx.services.knowledge.create(name, description=spec.description)
        self._sync(ctx, name, spec)

    def update(self, ctx: ProjectContext, name: str, spec: BaseModel, live: dict[str, Any]) -> None:
        assert isinstance(spec, KnowledgeBaseSpec)
        self._sync(ctx, name, spec)

    def _sync(self, ctx: ProjectContext, name: str, spec: KnowledgeBaseSpec) -> None:
        want = self.desired(ctx, name, spec)["documents"]
        have = (self.read(ctx, name) or {}).get("documents", {})
        sources = self._sources(ctx, spec)
        provided = {s.name for s in sources}
        missing = sorted(n for n, d in spec.documents.items() if n not in provided and have.get(n) != d)
        if missing:
            raise PlinthError(
                ErrorCode.CONFLICT,
                f"knowledge base {name!r}: document {missing[0]!r} is pinned by digest but not live; add it through 'sources'",
                param="spec.documents",
            )
        changed = [s for s in sources if have.get(s.name) != want.get(s.name)]
        if changed:
            report = ctx.services.knowledge.add_sources(name, changed)
            failed = [o for o in report.outcomes if getattr(o, "error", None)] if hasattr(report, "outcomes") else []
            if failed:
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"knowledge base {name!r}: {failed[0].name}: {failed[0].error}")
        gone = sorted(set(have) - set(want))
        if gone:
            ctx.services.knowledge.remove_documents(name, gone)

    def delete(self, ctx: ProjectContext, name: str) -> None:
        ctx.services.knowledge.delete(name)

    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        # The store keeps each document's extracted text, not its original bytes: the export
        # pins the live documents by digest (apply keeps them; new content comes through sources).
        kb = ctx.services.knowledge.get(name)
        live = self.read(ctx, name) or {}
        return {"description": kb.description, "sources": [], "documents": live.get("documents", {})}, {}


# -- Dataset ----------------------------------------------------------------------------------
class DatasetSpec(_Spec):
    file: str = Field(description="a JSONL (or CSV, Parquet) file, relative to the project folder")
    description: str = ""
    validation_fraction: float = 0.1
    seed: int = 0


class DatasetHandler(KindHandler):
    """A dataset whose latest version is the file's content: a changed file (by digest) adds
    a version; the same file adds nothing."""

    kind = "Dataset"
    spec_model = DatasetSpec
    order = 10

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        assert isinstance(spec, DatasetSpec)
        if ctx.base_dir is None or not ctx.path(spec.file, param="spec.file").is_file():
            return [("file", f"dataset file {spec.file!r} does not exist (relative to the project folder)")]
        if not 0 <= spec.validation_fraction <= 0.5:
            return [("validation_fraction", "validation_fraction must be between 0 and 0.5")]
        return []

    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        assert isinstance(spec, DatasetSpec)
        data = ctx.path(spec.file, param="spec.file").read_bytes()
        return {
            "description": spec.description,
            "source_digest": "sha256:" + _sha256(data),
            "validation_fraction": spec.validation_fraction,
            "seed": spec.seed,
        }

    def live_names(self, ctx: ProjectContext) -> list[str]:
        return [d.name for d, _ in ctx.services.datasets.list()]

    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        try:
            ds = ctx.services.datasets.dataset(name)
            v = ctx.services.datasets.get(name)
        except PlinthError:
            return None
        return {
            "description": ds.description,
            "source_digest": v.source_digest,
            "validation_fraction": v.split.get("validation_fraction"),
            "seed": v.split.get("seed"),
        }

    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None:
        assert isinstance(spec, DatasetSpec)
        ctx.services.datasets.add(
            ctx.path(spec.file, param="spec.file"),
            name,
            validation_fraction=spec.validation_fraction,
            seed=spec.seed,
            description=spec.description,
            note="plinth apply",
        )

    def delete(self, ctx: ProjectContext, name: str) -> None:
        ctx.services.datasets.delete(name)

    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        ds = ctx.services.datasets.dataset(name)
        v = ctx.services.datasets.get(name)
        suffix = Path(v.source_name or "").suffix or ".jsonl"
        path = f"datasets/{name}{suffix}"
        data = ctx.services.artifacts.read_bytes(v.source_digest) if v.source_digest else b""
        spec = {"file": path, "description": ds.description}
        spec["validation_fraction"] = v.split.get("validation_fraction", 0.1)
        spec["seed"] = v.split.get("seed", 0)
        return spec, {path: data}


# -- GuardrailPolicy --------------------------------------------------------------------------
class GuardrailPolicySpec(_Spec):
    file: str | None = Field(default=None, description="the policy document, relative to the project folder")
    policy: dict[str, Any] | None = Field(default=None, description="the policy document inline")


class GuardrailPolicyHandler(KindHandler):
    """A guardrail policy: the document inline (``policy``) or in a file (``file``); a
    changed document is stored as the policy's next version."""

    kind = "GuardrailPolicy"
    spec_model = GuardrailPolicySpec
    order = 10

    def _document(self, ctx: ProjectContext, name: str, spec: GuardrailPolicySpec) -> dict[str, Any]:
        if (spec.file is None) == (spec.policy is None):
            raise PlinthError(ErrorCode.INVALID_REQUEST, "a GuardrailPolicy needs exactly one of 'file' and 'policy'", param="spec")
        if spec.file is not None:
            doc = parse_document(ctx.path(spec.file, param="spec.file").read_text(encoding="utf-8"), source=spec.file)
        else:
            doc = dict(spec.policy or {})
        doc.setdefault("name", name)
        return canonical(validate_policy(doc, name=name))

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        assert isinstance(spec, GuardrailPolicySpec)
        if spec.file is not None and (ctx.base_dir is None or not ctx.path(spec.file, param="spec.file").is_file()):
            return [("file", f"policy file {spec.file!r} does not exist (relative to the project folder)")]
        try:
            self._document(ctx, name, spec)
        except PlinthError as e:
            return [("policy" if spec.policy is not None else "file", e.message)]
        return []

    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        assert isinstance(spec, GuardrailPolicySpec)
        return self._document(ctx, name, spec)

    def live_names(self, ctx: ProjectContext) -> list[str]:
        return [p.name for p in ctx.services.guardrails.list() if not p.builtin]

    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        try:
            return dict(ctx.services.guardrails.get(name).spec)
        except PlinthError:
            return None

    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None:
        assert isinstance(spec, GuardrailPolicySpec)
        ctx.services.guardrails.apply(self._document(ctx, name, spec), name=name)

    def delete(self, ctx: ProjectContext, name: str) -> None:
        attached = [d.name for d in ctx.services.deployments.list() if _uses(ctx, d.name, "guardrail_policy", name)]
        ctx.services.guardrails.delete(name, attached_to=attached)

    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        # Inline: a policy file is YAML with its own apiVersion/kind, which the folder's loader
        # would take for a project document.
        return {"policy": dict(ctx.services.guardrails.get(name).spec)}, {}


def _uses(ctx: ProjectContext, deployment: str, key: str, value: str) -> bool:
    live = DeploymentHandler().read(ctx, deployment) or {}
    return any(str(t.get(key) or "").split("@")[0] == value for t in live.get("targets", []))


# -- AlertRule --------------------------------------------------------------------------------
class AlertRuleSpec(BaseModel):
    """The issue-14 alert rule fields (as ``plinth alerts create`` takes them, without the
    name): checked by the alert service's own parser."""

    model_config = ConfigDict(extra="allow")


class AlertRuleHandler(KindHandler):
    kind = "AlertRule"
    spec_model = AlertRuleSpec
    order = 40

    def _definition(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        # The deployment may be defined in the same folder (not live yet): references check it.
        parser = copy.copy(ctx.services.alerts)
        parser.check_deployment = None
        d = parser.parse({**spec.model_dump(), "name": name}).definition()
        d.pop("name", None)
        return dict(d)

    def references(self, spec: BaseModel) -> list[Ref]:
        dep = spec.model_dump().get("deployment")
        return [Ref("Deployment", str(dep), "deployment")] if isinstance(dep, str) and dep else []

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        try:
            self._definition(ctx, name, spec)
        except PlinthError as e:
            return [((e.param or "").removeprefix("spec.") or "", e.message)]
        return []

    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        return self._definition(ctx, name, spec)

    def live_names(self, ctx: ProjectContext) -> list[str]:
        return [r.name for r in ctx.services.alerts.list()]

    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        try:
            d = dict(ctx.services.alerts.get(name).definition())
        except PlinthError:
            return None
        d.pop("name", None)
        return d

    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None:
        ctx.services.alerts.create({**spec.model_dump(), "name": name})

    def update(self, ctx: ProjectContext, name: str, spec: BaseModel, live: dict[str, Any]) -> None:
        ctx.services.alerts.update(name, {**spec.model_dump(), "name": name})

    def delete(self, ctx: ProjectContext, name: str) -> None:
        ctx.services.alerts.delete(name)

    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        return self.read(ctx, name) or {}, {}


# -- Deployment -------------------------------------------------------------------------------
class TargetSpec(_Spec):
    model: str
    weight: int = Field(default=100, ge=1, le=1_000_000)
    knowledge_base: str | None = None
    guardrail_policy: str | None = None
    system_prompt: str | None = None
    defaults: dict[str, Any] = Field(default_factory=dict)
    grounding: Literal["strict", "off"] | None = None  # grounded answering with the knowledge base (ADR 0115)


class DeploymentSpec(_Spec):
    description: str = ""
    targets: list[TargetSpec] = Field(min_length=1)
    rules: list[dict[str, Any]] | None = None
    gate: list[dict[str, Any]] = Field(default_factory=list)
    window_s: int | None = None
    auto_rollback: bool = True


class DeploymentHandler(KindHandler):
    """A deployment: a changed target list becomes a new stable revision (``replace``); rules,
    gate, window, auto-rollback and description are configured in place."""

    kind = "Deployment"
    spec_model = DeploymentSpec
    order = 30

    def references(self, spec: BaseModel) -> list[Ref]:
        assert isinstance(spec, DeploymentSpec)
        out = []
        for i, t in enumerate(spec.targets):
            if t.knowledge_base:
                out.append(Ref("KnowledgeBase", t.knowledge_base.split("@")[0], f"targets.{i}.knowledge_base"))
            if t.guardrail_policy:
                out.append(Ref("GuardrailPolicy", t.guardrail_policy.split("@")[0], f"targets.{i}.guardrail_policy"))
        return out

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        assert isinstance(spec, DeploymentSpec)
        out = []
        imported = ctx.defined.get("ModelImport", set()) | ctx.defined.get("Adapter", set())
        for i, t in enumerate(spec.targets):
            if t.model in imported or t.model.split(":")[0] in imported:
                continue  # a model or adapter this folder imports (applied before deployments)
            if ctx.services.registry.resolve(t.model) is None:
                try:
                    ctx.services.catalog.check_model_id(t.model)
                except PlinthError as e:
                    out.append((f"targets.{i}.model", e.message))
        try:
            parse_rules(spec.rules or [])
        except PlinthError as e:
            out.append((e.param or "rules", e.message))
        try:
            parse_gate(spec.gate, ctx.services.deployments.gate_kinds)
        except PlinthError as e:
            out.append((e.param or "gate", e.message))
        return out

    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        assert isinstance(spec, DeploymentSpec)
        dep = ctx.services.deployments
        targets = []
        for t in spec.targets:
            d: dict[str, Any] = {"model": t.model, "weight": t.weight}
            for key in ("knowledge_base", "guardrail_policy", "system_prompt", "grounding"):
                if getattr(t, key):
                    d[key] = getattr(t, key)
            if t.defaults:
                d["defaults"] = dict(t.defaults)
            targets.append(d)
        rules = [r.to_dict() for r in parse_rules(spec.rules)] if spec.rules is not None else None
        return {
            "description": spec.description,
            "targets": targets,
            "rules": rules if rules is not None else [r.to_dict() for r in _default_rules()],
            "gate": [g.to_dict() for g in parse_gate(spec.gate, dep.gate_kinds)],
            "window_s": spec.window_s if spec.window_s is not None else dep.default_window_s,
            "auto_rollback": spec.auto_rollback,
        }

    def live_names(self, ctx: ProjectContext) -> list[str]:
        return [d.name for d in ctx.services.deployments.list()]

    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        dep = ctx.services.store.find_deployment(name)
        if dep is None:
            return None
        rev = ctx.services.deployments.revision(name, dep.stable_revision)
        targets = []
        for t in rev.targets:
            d = t.to_dict()
            d.pop("pinned", None)
            d.pop("version", None)
            targets.append(d)
        return {
            "description": dep.description,
            "targets": targets,
            "rules": [r.to_dict() for r in dep.rules],
            "gate": [g.to_dict() for g in dep.gate],
            "window_s": dep.window_s,
            "auto_rollback": dep.auto_rollback,
        }

    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None:
        assert isinstance(spec, DeploymentSpec)
        ctx.services.deployments.create(
            name,
            [t.model_dump(exclude_none=True) for t in spec.targets],
            actor=ctx.actor,
            description=spec.description,
            rules=spec.rules,
            gate=spec.gate,
            window_s=spec.window_s,
            auto_rollback=spec.auto_rollback,
            note="plinth apply",
        )

    def update(self, ctx: ProjectContext, name: str, spec: BaseModel, live: dict[str, Any]) -> None:
        assert isinstance(spec, DeploymentSpec)
        want = self.desired(ctx, name, spec)
        ctx.services.deployments.configure(
            name,
            actor=ctx.actor,
            rules=want["rules"],
            gate=want["gate"],
            window_s=want["window_s"],
            auto_rollback=want["auto_rollback"],
            description=want["description"],
        )
        if want["targets"] != live.get("targets"):
            ctx.services.deployments.replace(name, want["targets"], actor=ctx.actor, note="plinth apply")

    def delete(self, ctx: ProjectContext, name: str) -> None:
        ctx.services.deployments.delete(name, actor=ctx.actor)

    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        live = self.read(ctx, name) or {}
        return live, {}


def _default_rules() -> tuple[Any, ...]:
    from plinth.domain.deployments import DEFAULT_RULES

    return DEFAULT_RULES


for _handler in (KnowledgeBaseHandler(), DatasetHandler(), GuardrailPolicyHandler(), AlertRuleHandler(), DeploymentHandler()):
    register_kind(_handler)
