"""The model registry: registered models, versions with lineage, aliases, model cards.

Registering a version makes it servable at once: an adapter version becomes the catalog
adapter ``{base}:{name}-v{N}`` (for a GGUF base it is also converted for llama.cpp), a full
model version the catalog model ``{name}-v{N}``. Clients may then call any of

* ``acme-faq@3`` — that version,
* ``acme-faq@production`` — the version an alias points at,
* ``acme-faq`` — the ``production`` alias when it is set, else the latest version,

as the ``model`` of a ``/v1`` request (:meth:`RegistryService.resolve`). Each version keeps
its lineage: base model and digest, dataset version, run, recipe configuration, metrics,
artifact digest and the evaluation reports made of it; its model card is generated from
those.
"""

from __future__ import annotations

import builtins
import logging
from pathlib import Path
from typing import Any

from plinth.domain.numbers import VERSION_MAX, whole_number
from plinth.domain.tracking import ALIAS_RE, REGISTRY_NAME_RE, EvalReport, ModelVersion, RegisteredModel
from plinth.errors import ErrorCode, PlinthError
from plinth.store import MetadataStore

log = logging.getLogger("plinth.registry")

DEFAULT_ALIAS = "production"


def check_registry_name(name: str) -> str:
    if not REGISTRY_NAME_RE.match(name or ""):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid registered model name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            param="name",
        )
    return name


def check_alias(alias: str) -> str:
    if not ALIAS_RE.match(alias or "") or alias.isdigit():
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid alias {alias!r}: use lowercase letters, digits, '_' or '-', starting with a letter",
            param="alias",
        )
    return alias


class RegistryService:
    def __init__(self, store: MetadataStore, catalog: Any) -> None:
        self.store = store
        self.catalog = catalog

    # -- registered models -----------------------------------------------------------------
    def ensure_model(self, name: str, description: str = "") -> RegisteredModel:
        check_registry_name(name)
        found = self.store.find_registered_model(name)
        if found is not None:
            return found
        if self.catalog.store.find_model(name) is not None:
            raise PlinthError(
                ErrorCode.CONFLICT,
                f"{name!r} is already a catalog model; a registered model needs a name of its own",
                param="name",
            )
        try:
            return self.store.create_registered_model(name, description)
        except PlinthError as e:
            if e.code == ErrorCode.ALREADY_EXISTS:  # created concurrently
                return self.store.get_registered_model(name)
            raise

    def list(self) -> builtins.list[RegisteredModel]:
        return self.store.list_registered_models()

    def get(self, name: str) -> RegisteredModel:
        return self.store.get_registered_model(name)

    def versions(self, name: str) -> builtins.list[ModelVersion]:
        self.store.get_registered_model(name)
        return self.store.list_model_versions(name)

    def version(self, name: str, version: int) -> ModelVersion:
        return self.store.get_model_version(name, version)

    # -- versions --------------------------------------------------------------------------
    def register_adapter(self, name: str, *, base_model: str, adapter_dir: Path, **lineage: Any) -> ModelVersion:
        """Register a PEFT adapter directory as the next version of ``name``; it is served
        at once as ``{base}:{name}-v{N}``. ``lineage``: run_id, dataset, recipe, metrics,
        description."""
        return self._register(
            name,
            "adapter",
            base_model,
            f"{{base}}:{name}-v{{version}}",
            lambda base, served: self.catalog.add_adapter(base.name, adapter_dir, name=served.partition(":")[2]).digest,
            **lineage,
        )

    def register_model(self, name: str, *, base_model: str, model_dir: Path, runtime: str | None = None, **lineage: Any) -> ModelVersion:
        """Register a full model directory (or GGUF file) as the next version of ``name``,
        served as the catalog model ``{name}-v{N}``."""
        return self._register(
            name,
            "model",
            base_model,
            f"{name}-v{{version}}",
            lambda base, served: self.catalog.add(model_dir, name=served, runtime=runtime, license=base.license).digest or "",
            **lineage,
        )

    def _register(
        self,
        name: str,
        kind: str,
        base_model: str,
        served_template: str,
        store_artifact: Any,
        *,
        run_id: str | None = None,
        dataset: str | None = None,
        recipe: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        description: str = "",
    ) -> ModelVersion:
        self.ensure_model(name)
        base = self.catalog.get(base_model)
        mv = self.store.add_model_version(
            ModelVersion(
                name=name,
                version=0,
                kind=kind,
                base_model=base.name,
                base_digest=base.digest,
                served_as=served_template.replace("{base}", base.name),
                artifact_digest="pending",
                run_id=run_id,
                dataset=dataset,
                recipe=recipe or {},
                metrics=metrics or {},
                description=description,
            )
        )
        try:
            digest = store_artifact(base, mv.served_as)
        except BaseException:
            self.store.delete_model_version(name, mv.version)  # nothing half-registered stays
            raise
        return self._finish(mv, digest)

    def _finish(self, mv: ModelVersion, digest: str) -> ModelVersion:
        # the artifact digest is known only once the catalog has stored the files
        self.store.set_model_version_digest(mv.name, mv.version, digest)
        stored = self.store.get_model_version(mv.name, mv.version)
        self.store.update_model_version_card(mv.name, mv.version, self.model_card(stored))
        return self.store.get_model_version(mv.name, mv.version)

    def delete_version(self, name: str, version: int) -> ModelVersion:
        mv = self.store.delete_model_version(name, version)
        self._forget_served(mv)
        return mv

    def delete_model(self, name: str) -> builtins.list[ModelVersion]:
        versions = self.store.delete_registered_model(name)
        for mv in versions:
            self._forget_served(mv)
        return versions

    def _forget_served(self, mv: ModelVersion) -> None:
        try:
            if mv.kind == "adapter":
                base, _, adapter = mv.served_as.partition(":")
                self.catalog.remove_adapter(base, adapter)
            else:
                self.catalog.remove(mv.served_as)
        except PlinthError as e:
            if e.code not in (ErrorCode.NOT_FOUND, ErrorCode.MODEL_NOT_FOUND):
                raise
            log.info("served id %s of %s was already gone", mv.served_as, mv.ref)

    # -- aliases ---------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version: int) -> RegisteredModel:
        self.store.set_alias(name, check_alias(alias), version)
        return self.store.get_registered_model(name)

    def delete_alias(self, name: str, alias: str) -> RegisteredModel:
        self.store.delete_alias(name, alias)
        return self.store.get_registered_model(name)

    # -- serving ---------------------------------------------------------------------------
    def resolve_version(self, model_id: str) -> ModelVersion | None:
        """The version a registry model id names (``name``, ``name@N``, ``name@alias``), or
        None when ``model_id`` is not a registry id."""
        name, sep, which = model_id.partition("@")
        if ":" in model_id or not REGISTRY_NAME_RE.match(name):
            return None
        rm = self.store.find_registered_model(name)
        if rm is None:
            if sep:
                raise PlinthError(ErrorCode.MODEL_NOT_FOUND, f"model {model_id!r} does not exist", param="model")
            return None
        if not sep:
            number = rm.aliases.get(DEFAULT_ALIAS, rm.latest_version)
        elif which.isascii() and which.isdigit():  # NAME@N
            found = whole_number(which, minimum=1, maximum=VERSION_MAX)
            if found is None:  # 0, or past what the store can hold: no such version
                raise PlinthError(ErrorCode.MODEL_NOT_FOUND, f"model {model_id!r} does not exist", param="model")
            number = found
        elif which in rm.aliases:
            number = rm.aliases[which]
        else:
            raise PlinthError(
                ErrorCode.MODEL_NOT_FOUND,
                f"model {model_id!r} does not exist: {name!r} has no alias {which!r} (aliases: {', '.join(sorted(rm.aliases)) or 'none'})",
                param="model",
            )
        if number == 0:
            raise PlinthError(ErrorCode.MODEL_NOT_FOUND, f"registered model {name!r} has no versions yet", param="model")
        try:
            return self.store.get_model_version(name, number)
        except PlinthError:
            raise PlinthError(ErrorCode.MODEL_NOT_FOUND, f"model {model_id!r} does not exist", param="model") from None

    def resolve(self, model_id: str) -> str | None:
        """The catalog id serving a registry model id, or None when it is not one."""
        mv = self.resolve_version(model_id)
        return None if mv is None else mv.served_as

    def served_ids(self) -> builtins.list[dict[str, Any]]:
        """Registry ids for /v1/models: each name and each ``name@alias``."""
        out = []
        for rm in self.list():
            if rm.latest_version == 0:
                continue
            target = self.store.get_model_version(rm.name, rm.aliases.get(DEFAULT_ALIAS, rm.latest_version))
            out.append({"id": rm.name, "parent": target.served_as, "created": rm.created_at})
            for alias, number in sorted(rm.aliases.items()):
                try:
                    mv = self.store.get_model_version(rm.name, number)
                except PlinthError:
                    continue
                out.append({"id": f"{rm.name}@{alias}", "parent": mv.served_as, "created": mv.created_at})
        return out

    # -- evaluation reports ----------------------------------------------------------------
    def attach_report(self, report: EvalReport) -> EvalReport:
        stored = self.store.add_eval_report(report)
        if report.registry_name and report.registry_version:
            mv = self.store.get_model_version(report.registry_name, report.registry_version)
            self.store.update_model_version_card(mv.name, mv.version, self.model_card(mv))
        return stored

    def reports(self, name: str, version: int | None = None) -> builtins.list[EvalReport]:
        return self.store.list_eval_reports(registry_name=name, registry_version=version)

    # -- model cards -----------------------------------------------------------------------
    def model_card(self, mv: ModelVersion) -> str:
        reports = self.store.list_eval_reports(registry_name=mv.name, registry_version=mv.version)
        recipe = mv.recipe or {}
        lines = [
            f"# {mv.name} — version {mv.version}",
            "",
            mv.description or f"A {recipe.get('method', mv.kind)} fine-tune of `{mv.base_model}` registered in plinth.",
            "",
            "## How to use",
            "",
            "```python",
            "from openai import OpenAI",
            'client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="x")',
            f'client.chat.completions.create(model="{mv.ref}", messages=[{{"role": "user", "content": "..."}}])',
            "```",
            "",
            f"Also served as `{mv.served_as}`.",
            "",
            "## Lineage",
            "",
            "| | |",
            "|---|---|",
            f"| base model | `{mv.base_model}` |",
            f"| base digest | `{mv.base_digest or '-'}` |",
            f"| dataset | `{mv.dataset or '-'}` |",
            f"| run | `{mv.run_id or '-'}` |",
            f"| artifact | {mv.kind}, `{mv.artifact_digest}` |",
            f"| registered | {mv.created_at.isoformat() if mv.created_at else '-'} |",
            "",
        ]
        if recipe:
            lines += ["## Training recipe", "", "| setting | value |", "|---|---|"]
            lines += [f"| {k} | `{v}` |" for k, v in sorted(recipe.items()) if not isinstance(v, dict | list)]
            lines.append("")
        if mv.metrics:
            lines += ["## Training metrics", "", "| metric | value |", "|---|---|"]
            lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(mv.metrics.items()) if isinstance(v, int | float)]
            lines.append("")
        if reports:
            lines += ["## Evaluations", "", "| model evaluated | dataset | split | metrics | report |", "|---|---|---|---|---|"]
            for r in reports:
                shown = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(r.metrics.items()) if isinstance(v, int | float))
                lines.append(f"| `{r.model}` | `{r.dataset}` | {r.split} | {shown} | `{r.id}` |")
            lines.append("")
        lines += [
            "## Limitations",
            "",
            (
                "A small model fine-tuned on a small dataset answers best on questions like its training data; "
                "attach a knowledge base and guardrails before serving it to members."
            ),
        ]
        return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
