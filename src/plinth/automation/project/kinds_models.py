"""Project-file kinds for the model catalog (ADR 0100, issue 15): ModelImport and Adapter.

- **ModelImport**: a catalog model, either a local GGUF file or safetensors folder
  (``path``, relative to the project folder) or a remote OpenAI-compatible engine
  (``remote``). Plan compares a local model by the content digest the catalog records (the
  file's sha256, or a folder's tree-manifest digest), its runtime and licence; a remote one by
  its endpoint fields. A catalog model is immutable: a changed model is removed and imported
  again, which apply refuses (409) while a deployment targets it or it has adapters. Export
  does not copy model weights: a local model is pinned by ``digest`` (like a knowledge base's
  documents); apply of a pinned model that is not live says its file is missing.
- **Adapter**: a LoRA adapter (a llama.cpp LoRA GGUF or a PEFT folder, ``file``) named by the
  model id it is served as, ``metadata.name: BASE:ADAPTER``. Compared by digest; a changed file
  is removed and imported again (refused while a deployment targets it). Exported pinned by
  digest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from plinth.automation.project.kinds import KindHandler, ProjectContext, register_kind
from plinth.catalog.service import DEFAULT_RUNTIME, check_model_name
from plinth.domain import ModelFormat
from plinth.errors import ErrorCode, PlinthError
from plinth.formats import inspect_model
from plinth.store.artifacts import ArtifactStore, check_digest, tree_manifest_bytes

_CHUNK = 1 << 20


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


def content_digest(path: Path) -> str:
    """The digest the artifact store gives ``path`` (a file's sha256, a folder's manifest
    digest), computed without storing anything."""

    def file_digest(p: Path) -> tuple[str, int]:
        h = hashlib.sha256()
        size = 0
        with p.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
        return "sha256:" + h.hexdigest(), size

    if path.is_dir():
        entries: dict[str, dict[str, Any]] = {}
        for rel, source in ArtifactStore._scan_tree(path, False):
            digest, size = file_digest(source)
            entries[rel] = {"digest": digest, "size": size}
        return "sha256:" + hashlib.sha256(tree_manifest_bytes(entries)).hexdigest()
    return file_digest(path)[0]


def _targets_using(ctx: ProjectContext, model_id: str) -> list[str]:
    """Deployments whose stable or canary targets serve ``model_id`` (or, for a base model, one
    of its adapters)."""
    out = []
    for dep in ctx.services.deployments.list():
        revisions = {dep.stable_revision, getattr(dep, "canary_revision", None)} - {None}
        for rev_no in revisions:
            rev = ctx.services.deployments.revision(dep.name, rev_no)
            models = {str(t.model).split("@")[0] for t in rev.targets}
            if model_id in models or (":" not in model_id and any(m.split(":")[0] == model_id for m in models)):
                out.append(dep.name)
                break
    return out


def _refuse_if_used(ctx: ProjectContext, kind: str, model_id: str, adapters: list[str] | None = None) -> None:
    used = _targets_using(ctx, model_id)
    if used or adapters:
        why = []
        if used:
            why.append(f"deployment(s) {', '.join(sorted(used))} serve it")
        if adapters:
            why.append(f"it has adapter(s) {', '.join(sorted(adapters))}")
        raise PlinthError(
            ErrorCode.CONFLICT,
            f"{kind} {model_id!r} changed, and a catalog entry is immutable: replacing it means removing it, but {' and '.join(why)}; "
            "import the new content under another name and point the deployments at it",
            param="spec",
        )


# -- ModelImport ------------------------------------------------------------------------------
class RemoteModelSpec(_Spec):
    base_url: str = Field(description="the OpenAI-compatible endpoint (checked against the outbound rules)")
    upstream_model: str | None = Field(default=None, description="the engine's model name (default: the resource's name)")
    api_key_secret: str | None = Field(default=None, description="an operator-defined secret sent as the API key")
    context_length: int | None = Field(default=None, ge=1)


class ModelImportSpec(_Spec):
    path: str | None = Field(default=None, description="a GGUF file or safetensors folder, relative to the project folder")
    digest: str | None = Field(default=None, description="the content digest the model is pinned to (what export writes)")
    runtime: str | None = Field(default=None, description="the runtime serving it (default: llamacpp for GGUF, torch for safetensors)")
    license: str | None = None
    remote: RemoteModelSpec | None = Field(default=None, description="a remote OpenAI-compatible engine instead of a local file")


class ModelImportHandler(KindHandler):
    kind = "ModelImport"
    spec_model = ModelImportSpec
    order = 5  # before adapters, datasets (whose base models) and deployments
    description = "a catalog model: a local GGUF/safetensors file or a remote OpenAI-compatible engine"

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        assert isinstance(spec, ModelImportSpec)
        out: list[tuple[str, str]] = []
        try:
            check_model_name(name)
        except PlinthError as e:
            out.append(("", e.message))
        local = spec.path is not None or spec.digest is not None
        if local == (spec.remote is not None):
            return [*out, ("", "a ModelImport needs either 'path' (or a pinned 'digest') or 'remote'")]
        if spec.remote is not None:
            if spec.runtime not in (None, "openai") or spec.license is not None:
                out.append(("runtime", "a remote model takes no 'runtime' (it is 'openai') nor 'license'"))
            return out
        if spec.digest is not None:
            try:
                check_digest(spec.digest)
            except PlinthError as e:
                out.append(("digest", e.message))
                return out
            if spec.path is None and spec.runtime is None:
                out.append(("runtime", "a model pinned by digest alone needs its 'runtime'"))
        if spec.path is not None:
            p = ctx.path(spec.path, param="spec.path") if ctx.base_dir is not None else None
            if p is None or not p.exists():
                out.append(("path", f"model file {spec.path!r} does not exist (relative to the project folder)"))
                return out
            try:
                info = inspect_model(p)
                ctx.services.catalog._check_runtime(info.format, spec.runtime)
            except PlinthError as e:
                out.append(("runtime" if e.param == "runtime" else "path", e.message))
                return out
            if spec.digest is not None and content_digest(p) != spec.digest:
                out.append(("digest", f"{spec.path!r} does not have the pinned digest {spec.digest}"))
        return out

    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        assert isinstance(spec, ModelImportSpec)
        if spec.remote is not None:
            r = spec.remote
            d: dict[str, Any] = {"format": "remote", "base_url": r.base_url.rstrip("/"), "upstream_model": r.upstream_model or name}
            if r.api_key_secret:
                d["api_key_secret"] = r.api_key_secret
            d["context_length"] = r.context_length
            return d
        if spec.path is not None:
            p = ctx.path(spec.path, param="spec.path")
            info = inspect_model(p)
            return {
                "format": info.format.value,
                "digest": content_digest(p),
                "runtime": spec.runtime or DEFAULT_RUNTIME[info.format],
                "license": spec.license or info.license,
            }
        live = self.read(ctx, name) or {}
        return {"format": live.get("format"), "digest": spec.digest, "runtime": spec.runtime, "license": spec.license}

    def live_names(self, ctx: ProjectContext) -> list[str]:
        return [m.name for m in ctx.services.catalog.list() if not m.builtin]

    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        m = ctx.services.store.find_model(name)
        if m is None or m.builtin:
            return None
        if m.format == ModelFormat.REMOTE:
            p = m.parameters or {}
            d: dict[str, Any] = {"format": "remote", "base_url": p.get("base_url"), "upstream_model": p.get("upstream_model")}
            if p.get("api_key_secret"):
                d["api_key_secret"] = p["api_key_secret"]
            d["context_length"] = m.context_length
            return d
        return {"format": m.format.value, "digest": m.digest, "runtime": m.runtime, "license": m.license}

    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None:
        assert isinstance(spec, ModelImportSpec)
        cat = ctx.services.catalog
        if spec.remote is not None:
            r = spec.remote
            cat.add_remote(
                name,
                base_url=r.base_url,
                upstream_model=r.upstream_model,
                api_key_secret=r.api_key_secret,
                context_length=r.context_length,
            )
            return
        if spec.path is None:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"model {name!r} is pinned to {spec.digest} but has no 'path': export does not copy model weights; "
                "add the file and name it in spec.path",
                param="spec.path",
            )
        cat.add(ctx.path(spec.path, param="spec.path"), name=name, runtime=spec.runtime, license=spec.license)

    def update(self, ctx: ProjectContext, name: str, spec: BaseModel, live: dict[str, Any]) -> None:
        adapters = [a.name for a in ctx.services.catalog.list_adapters(name)]
        _refuse_if_used(ctx, self.kind, name, adapters)
        ctx.services.catalog.remove(name)
        self.create(ctx, name, spec)

    def delete(self, ctx: ProjectContext, name: str) -> None:
        _refuse_if_used(ctx, self.kind, name)
        ctx.services.catalog.remove(name)

    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        live = self.read(ctx, name) or {}
        if live.get("format") == "remote":
            remote = {k: live[k] for k in ("base_url", "upstream_model", "api_key_secret", "context_length") if live.get(k) is not None}
            return {"remote": remote}, {}
        spec = {"digest": live["digest"], "runtime": live["runtime"]}
        if live.get("license"):
            spec["license"] = live["license"]
        return spec, {}


# -- Adapter ----------------------------------------------------------------------------------
class AdapterSpec(_Spec):
    file: str | None = Field(default=None, description="a llama.cpp LoRA GGUF or a PEFT folder, relative to the project folder")
    digest: str | None = Field(default=None, description="the content digest the adapter is pinned to (what export writes)")


def _split_id(name: str) -> tuple[str, str]:
    base, _, adapter = name.partition(":")
    return base, adapter


class AdapterHandler(KindHandler):
    """A LoRA adapter, named by the model id it is served as: ``metadata.name: BASE:ADAPTER``
    (adapter names are unique per base model, so this is its identity)."""

    kind = "Adapter"
    spec_model = AdapterSpec
    order = 6
    description = "a LoRA adapter file attached to a base model (name: BASE:ADAPTER)"

    def check(self, ctx: ProjectContext, name: str, spec: BaseModel) -> list[tuple[str, str]]:
        assert isinstance(spec, AdapterSpec)
        out: list[tuple[str, str]] = []
        base, adapter = _split_id(name)
        if not base or not adapter:
            return [("", f"an Adapter is named by the model id it serves as, BASE:ADAPTER (got {name!r})")]
        try:
            check_model_name(adapter)
        except PlinthError as e:
            out.append(("", e.message))
        if base not in ctx.defined.get("ModelImport", set()) and ctx.services.store.find_model(base) is None:
            out.append(("", f"base model {base!r} is neither a ModelImport in the folder nor in the catalog"))
        if spec.file is None and spec.digest is None:
            out.append(("", "an Adapter needs 'file' (or a pinned 'digest')"))
        if spec.digest is not None:
            try:
                check_digest(spec.digest)
            except PlinthError as e:
                out.append(("digest", e.message))
        if spec.file is not None:
            p = ctx.path(spec.file, param="spec.file") if ctx.base_dir is not None else None
            if p is None or not p.exists():
                out.append(("file", f"adapter file {spec.file!r} does not exist (relative to the project folder)"))
            elif spec.digest is not None and not out and content_digest(p) != spec.digest:
                out.append(("digest", f"{spec.file!r} does not have the pinned digest {spec.digest}"))
        return out

    def desired(self, ctx: ProjectContext, name: str, spec: BaseModel) -> dict[str, Any]:
        assert isinstance(spec, AdapterSpec)
        digest = content_digest(ctx.path(spec.file, param="spec.file")) if spec.file is not None else spec.digest
        return {"digest": digest}

    def live_names(self, ctx: ProjectContext) -> list[str]:
        return [a.model_id for a in ctx.services.catalog.list_adapters()]

    def read(self, ctx: ProjectContext, name: str) -> dict[str, Any] | None:
        base, adapter = _split_id(name)
        a = ctx.services.store.find_adapter(base, adapter) if base and adapter else None
        return None if a is None else {"digest": a.digest}

    def create(self, ctx: ProjectContext, name: str, spec: BaseModel) -> None:
        assert isinstance(spec, AdapterSpec)
        if spec.file is None:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"adapter {name!r} is pinned to {spec.digest} but has no 'file': export does not copy adapter weights; "
                "add the file and name it in spec.file",
                param="spec.file",
            )
        base, adapter = _split_id(name)
        ctx.services.catalog.add_adapter(base, ctx.path(spec.file, param="spec.file"), name=adapter)

    def update(self, ctx: ProjectContext, name: str, spec: BaseModel, live: dict[str, Any]) -> None:
        _refuse_if_used(ctx, self.kind, name)
        ctx.services.catalog.remove_adapter(*_split_id(name))
        self.create(ctx, name, spec)

    def delete(self, ctx: ProjectContext, name: str) -> None:
        _refuse_if_used(ctx, self.kind, name)
        ctx.services.catalog.remove_adapter(*_split_id(name))

    def export(self, ctx: ProjectContext, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        return self.read(ctx, name) or {}, {}


for _handler in (ModelImportHandler(), AdapterHandler()):
    register_kind(_handler)
