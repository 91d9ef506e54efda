"""Export a fine-tuned model: merged safetensors, GGUF (F16, Q8_0, Q4_K_M) or a runtime LoRA
GGUF — and evaluate every export as it will be served.

* ``safetensors``: the LoRA merged into the base weights (PEFT ``merge_and_unload``), saved
  as a Hugging Face directory with the tokenizer; served by the torch runtime.
* ``gguf``: the merged weights written into a GGUF that carries the base GGUF's own metadata
  (tokenizer, chat template, hyperparameters), with llama.cpp's q/k row permutation, as F16,
  then quantised by llama.cpp itself (``llama_model_quantize``) to Q8_0 or Q4_K_M; served
  by the llama.cpp runtime. Q4_1 is refused: the embedded base already sits on the Q4_1
  grid, and re-quantising a merged fine-tune to it erases the fine-tune (ENVIRONMENT-NOTES).
* ``gguf-lora``: the adapter as a llama.cpp LoRA GGUF (made at registration), served on the
  base GGUF at run time.

Each export is added to the catalog and evaluated on a dataset version through the runtime
that serves it; the report is stored on the source registry version.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plinth.errors import ErrorCode, PlinthError

log = logging.getLogger("plinth.tuning.export")


class ExportSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=300, description="registry NAME@VERSION (or a served base:adapter id)")
    format: Literal["safetensors", "gguf", "gguf-lora"] = "gguf"
    quant: Literal["f16", "q8_0", "q4_k_m"] = "q8_0"
    name: str | None = Field(None, max_length=128, description="catalog name of the export")
    evaluate_on: str | None = Field(None, max_length=200, description="dataset NAME@VERSION to evaluate on (default: the training dataset)")
    eval_max_samples: int = Field(50, ge=1, le=10_000)
    eval_max_tokens: int = Field(96, ge=1, le=4096)


def parse(raw: dict[str, Any]) -> ExportSpec:
    if isinstance(raw.get("quant"), str) and raw["quant"].lower() == "q4_1":
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            "invalid export spec: quant: q4_1 is refused: re-quantising a merged fine-tune to the Q4_1 grid of the base "
            "erases the fine-tune; use q8_0, q4_k_m or f16, or export gguf-lora",
            param="spec.quant",
        )
    try:
        return ExportSpec.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid export spec: {loc}: {err['msg']}", param=f"spec.{loc}") from None


# -- HF weights -> GGUF --------------------------------------------------------------------
def _hf_name(gguf_name: str) -> str | None:
    from plinth.formats.lora.common import HF_TO_GGUF_MODULES

    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
    if gguf_name in fixed:
        return fixed[gguf_name]
    parts = gguf_name.split(".")
    if len(parts) != 4 or parts[0] != "blk" or parts[3] != "weight":
        return None
    layer, module = parts[1], parts[2]
    if module == "attn_norm":
        return f"model.layers.{layer}.input_layernorm.weight"
    if module == "ffn_norm":
        return f"model.layers.{layer}.post_attention_layernorm.weight"
    for hf, gg in HF_TO_GGUF_MODULES.items():
        if gg == module:
            group = "self_attn" if hf.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else "mlp"
            return f"model.layers.{layer}.{group}.{hf}.weight"
    return None


def hf_to_gguf(hf_dir: Path, base_gguf: Path, dest: Path) -> Path:
    """Write the weights of a llama-family HF directory as an F16 GGUF with the metadata of
    ``base_gguf`` (the model it was fine-tuned from)."""
    import gguf
    from safetensors import safe_open

    from plinth.formats.lora.convert import permute_rope_rows

    reader = gguf.GGUFReader(str(base_gguf))
    arch = str(reader.fields["general.architecture"].contents())
    if arch != "llama":
        raise PlinthError(ErrorCode.UNSUPPORTED, f"GGUF export is supported for llama-architecture models; the base is {arch!r}")
    n_head = int(reader.fields["llama.attention.head_count"].contents())
    n_head_kv = int(reader.fields.get("llama.attention.head_count_kv", reader.fields["llama.attention.head_count"]).contents())
    weights: dict[str, np.ndarray] = {}
    for f in sorted(hf_dir.glob("*.safetensors")):
        with safe_open(str(f), framework="np") as fh:
            for k in fh.keys():  # noqa: SIM118 - safetensors' safe_open handle has keys() but is not iterable
                weights[k] = fh.get_tensor(k)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        for field in reader.fields.values():
            if field.name.startswith("GGUF.") or field.name in ("general.architecture", "general.file_type"):
                continue
            vtype = field.types[0]
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        names = [t.name for t in reader.tensors]
        if (
            "output.weight" not in names
            and "lm_head.weight" in weights
            and (
                "model.embed_tokens.weight" not in weights
                or not np.array_equal(weights["lm_head.weight"], weights["model.embed_tokens.weight"])
            )
        ):
            names.append("output.weight")  # an untied head
        for name in names:
            hf = _hf_name(name)
            if hf is None or hf not in weights:
                raise PlinthError(ErrorCode.UNSUPPORTED, f"GGUF export: no weights in {hf_dir.name} for the base tensor {name!r}")
            arr = np.asarray(weights[hf], dtype=np.float32)
            if name.endswith("attn_q.weight"):
                arr = permute_rope_rows(arr, n_head)
            elif name.endswith("attn_k.weight"):
                arr = permute_rope_rows(arr, n_head_kv)
            writer.add_tensor(name, arr if arr.ndim == 1 else arr.astype(np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def quantize(src: Path, dest: Path, quant: str, threads: int = 2) -> Path:
    """llama.cpp's own quantiser (the same code as its llama-quantize tool)."""
    if quant == "f16":
        shutil.copyfile(src, dest)
        return dest
    from plinth.runtimes.llamacpp_tools import quantize_gguf

    tmp = dest.with_name(dest.name + ".partial")
    quantize_gguf(src, tmp, quant, threads=threads)
    os.replace(tmp, dest)
    return dest


def merged_dir(services: Any, base_model: str, adapter: str | None, dest: Path) -> Path:
    """The base with the adapter merged in, as a Hugging Face directory (float32)."""
    import torch

    from plinth.tuning.executor import base_dir_for
    from plinth.tuning.recipes.common import load_base

    base_dir = base_dir_for(services, base_model)
    model, tokenizer = load_base(base_dir, "cpu")
    if adapter:
        from peft import PeftModel

        ref = services.catalog.resolve_adapter(base_model, adapter, "peft-lora")
        with torch.no_grad():
            model = PeftModel.from_pretrained(model, str(ref.path)).merge_and_unload()
    model.config.use_cache = True
    model.save_pretrained(str(dest), safe_serialization=True)
    tokenizer.save_pretrained(str(dest))
    gen = base_dir / "generation_config.json"
    if gen.is_file():
        shutil.copyfile(gen, dest / "generation_config.json")
    return dest


# -- the job kind ----------------------------------------------------------------------------
def validate(spec: dict[str, Any], services: Any) -> dict[str, Any]:
    parsed = parse(spec)
    _resolve(services, parsed)
    if parsed.evaluate_on:
        services.datasets.get(parsed.evaluate_on)
    return parsed.model_dump()


def _resolve(services: Any, spec: ExportSpec) -> tuple[Any, str, str | None]:
    """(registry version or None, base model, adapter name or None)."""
    mv = services.registry.resolve_version(spec.model)
    served = mv.served_as if mv else spec.model
    base, _, adapter = served.partition(":")
    record = services.catalog.get(base)
    if mv is not None and mv.kind == "model":
        raise PlinthError(
            ErrorCode.UNSUPPORTED, f"{spec.model} is a full model; export adapters, or serve the model as it is", param="spec.model"
        )
    if not adapter:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{spec.model} is not a fine-tuned adapter: nothing to export", param="spec.model")
    services.catalog.get_adapter(base, adapter)
    if spec.format != "safetensors" and record.format.value != "gguf":
        raise PlinthError(
            ErrorCode.UNSUPPORTED, f"GGUF export needs a GGUF base model; {base!r} is {record.format.value}", param="spec.format"
        )
    return mv, base, adapter


def run(ctx: Any) -> dict[str, Any]:
    from plinth.domain.tracking import ArtifactKind, RunStatus
    from plinth.tuning.evaluation import evaluate

    spec = parse(ctx.spec)
    services = ctx.services
    mv, base, adapter = _resolve(services, spec)
    label = spec.format if spec.format != "gguf" else spec.quant
    name = spec.name or f"{(mv.name + '-v' + str(mv.version)) if mv else adapter}-{label}".replace("_", "-")
    run_ = services.tracking.resume_or_start(
        ctx.job_id,
        f"export {spec.model} as {label}",
        "export",
        params=spec.model_dump(),
        base_model=base,
        dataset=mv.dataset if mv else None,
    )
    work = ctx.checkpoint_dir / "export"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        ctx.progress(0, 3, f"exporting {spec.model} as {label}")
        if spec.format == "gguf-lora":
            record = services.catalog.get_adapter(base, adapter)
            ref = services.catalog.adapter_ref(record, "gguf-lora")
            out = work / f"{name}.gguf"
            shutil.copyfile(ref.path, out)
            served_id = f"{base}:{name}"
            services.catalog.add_adapter(base, out, name=name)
            kind = ArtifactKind.GGUF
        else:
            merged = merged_dir(services, base, adapter, work / "merged")
            ctx.progress(1, 3, "merged")
            if spec.format == "safetensors":
                out = merged
                kind = ArtifactKind.MODEL
                services.catalog.add(out, name=name, runtime="torch")
            else:
                base_gguf = services.catalog.model_path(services.catalog.get(base))
                f16 = hf_to_gguf(merged, base_gguf, work / f"{name}.f16.gguf")
                out = quantize(f16, work / f"{name}.gguf", spec.quant, threads=max(1, int(ctx.resources.cpu or 1)))
                kind = ArtifactKind.GGUF
                services.catalog.add(out, name=name, runtime="llamacpp")
            served_id = name
        artifact = services.tracking.log_artifact(run_.id, out.name, kind, out, meta={"format": spec.format, "quant": spec.quant})
        ctx.progress(2, 3, f"evaluating {served_id}")
        dataset = spec.evaluate_on or (mv.dataset if mv else None)
        metrics: dict[str, Any] = {}
        report_id = None
        if dataset:
            report = evaluate(
                services,
                served_id,
                dataset,
                max_samples=spec.eval_max_samples,
                max_tokens=spec.eval_max_tokens,
                run_id=run_.id,
                attach_to=(mv.name, mv.version) if mv else None,
                progress=lambda d, t, m: ctx.progress(2 + d / max(1, t), 3, m),
            )
            metrics = {k: v for k, v in report.metrics.items() if isinstance(v, int | float)}
            report_id = report.id
    except BaseException as e:
        services.tracking.end_run(run_.id, RunStatus.FAILED, error=f"{type(e).__name__}: {e}")
        raise
    summary = {**metrics, "served_as": served_id, "report": report_id, "size_bytes": artifact.size_bytes}
    services.tracking.end_run(run_.id, RunStatus.FINISHED, summary=summary)
    ctx.progress(3, 3, f"exported {served_id}")
    return {"run_id": run_.id, "served_as": served_id, "artifact_digest": artifact.digest, **summary}
