"""The ``tune`` job kind: fine-tune a catalog model on a dataset version, track it as a run,
register the result.

``validate(spec, settings)`` runs where the job is submitted and refuses bad input before a
job exists (unknown base model or dataset, impossible hyperparameters). ``run(ctx)`` runs in
the job's own process:

1. resolve the base model's weights (a GGUF is dequantised once to float32 safetensors) and
   the dataset version; encode the train and validation splits with the model's chat template;
2. start (or, after preemption, resume) the run: params, dataset version, base model;
3. set up the recipe and train with :func:`plinth.tuning.loop.train`, logging every step's
   metrics to the run and the job's progress, checkpointing into ``ctx.checkpoint_dir``;
   a preemption saves a checkpoint and hands the job back to the queue;
4. save the artifact (the best validation checkpoint when there is one), record it on the
   run with a loss-curve plot, and register it as the next version of the registered model
   (served at once) with its lineage.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from plinth.errors import ErrorCode, PlinthError

log = logging.getLogger("plinth.tuning")


def validate(spec: dict[str, Any], services: Any) -> dict[str, Any]:
    from plinth.tuning.recipes import DEFAULT_LR
    from plinth.tuning.spec import check_against, parse_spec

    raw = dict(spec)
    method = raw.get("method", "lora")
    if raw.get("learning_rate") is None and method in DEFAULT_LR:
        raw["learning_rate"] = DEFAULT_LR[method]
    parsed = parse_spec(raw)
    store = services.store
    model = store.find_model(parsed.base_model)
    if model is None:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid tuning spec: base_model: model {parsed.base_model!r} does not exist in the catalog",
            param="spec.base_model",
        )
    from plinth.tuning.datasets import parse_ref

    ref = parse_ref(parsed.dataset, param="spec.dataset")
    try:
        version = store.get_dataset_version(ref.name, ref.version)
    except PlinthError:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST, f"invalid tuning spec: dataset: dataset {parsed.dataset!r} does not exist", param="spec.dataset"
        ) from None
    params = model.parameters or {}
    hidden = params.get("embedding_length") or params.get("hidden_size")
    check_against(
        parsed, model=model, dataset_version=version, hidden_size=int(hidden) if hidden else None, context_length=model.context_length
    )
    out = parsed.model_dump()
    out["dataset"] = version.ref  # pin the version the job trains on
    if parsed.rag_dataset is not None:
        out["rag_dataset"]["knowledge_base"] = _pin_kb(services, parsed.rag_dataset.knowledge_base)
        out["max_seq_len"] = _rag_seq_len(parsed, "max_seq_len" in raw, model.context_length)
    if not out.get("name"):
        out["name"] = ref.name
    from plinth.tracking.registry import check_registry_name

    check_registry_name(out["name"])
    if store.find_model(out["name"]) is not None:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid tuning spec: name: {out['name']!r} is a catalog model; the registered model needs another name",
            param="spec.name",
        )
    return out


def _pin_kb(services: Any, ref: str) -> str:
    if getattr(services, "knowledge", None) is None:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "invalid tuning spec: rag_dataset: knowledge bases are not available here")
    try:
        kb, number = services.knowledge.resolve(ref)
    except PlinthError as e:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid tuning spec: rag_dataset.knowledge_base: {e.message}",
            param="spec.rag_dataset.knowledge_base",
        ) from None
    return f"{kb.name}@{number}"


#: tokens a retrieved passage adds to a prompt, about (Acme policies, SmolLM2's tokenizer: 5 passages, p95 804 tokens)
RAG_TOKENS_PER_PASSAGE = 200


def _rag_seq_len(spec: Any, given: bool, context_length: int | None) -> int:
    """The window a retrieval-augmented example needs: examples are cut on the right, so a
    window shorter than the passages would cut off the answer and drop the example."""
    need = RAG_TOKENS_PER_PASSAGE * (spec.rag_dataset.passages + spec.rag_dataset.distractors)
    if context_length:
        need = min(need, context_length)
    if not given:
        return max(spec.max_seq_len, need)
    if spec.max_seq_len < need:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"invalid tuning spec: max_seq_len: {spec.max_seq_len} tokens cannot hold {spec.rag_dataset.passages} retrieved "
            f"passages and {spec.rag_dataset.distractors} distractors (about {need} tokens); raise it or leave it out",
            param="spec.max_seq_len",
        )
    return int(spec.max_seq_len)


def _rag_version(ctx: Any, spec: Any, version: Any) -> Any:
    """The retrieval-augmented version built from ``version`` (the same one again after a preemption)."""
    from plinth.tuning.rag_dataset import REFUSAL, build_rag_dataset

    rag = spec.rag_dataset
    built, stats = build_rag_dataset(
        ctx.services,
        version.ref,
        rag.knowledge_base,
        name=rag.name,
        unanswerable_share=rag.unanswerable_share,
        distractors=rag.distractors,
        passages=rag.passages,
        seed=spec.seed,
        refusal=rag.refusal or REFUSAL,
        progress=lambda d, t: ctx.progress(d, t, "retrieving passages for the training questions"),
    )
    ctx.log(
        f"retrieval-augmented dataset {built.ref} from {version.ref} and {rag.knowledge_base}: {stats.answerable} answerable, "
        f"{stats.unanswerable} unanswerable, {stats.dropped_unsupported} pairs dropped (no retrieved passage supports the answer)"
    )
    return built


def base_dir_for(services: Any, model_name: str) -> Path:
    """A Hugging Face directory of the base model's weights for training."""
    from plinth.runtimes.torch_gguf import dequantised_dir

    record = services.catalog.get(model_name)
    path = services.catalog.model_path(record)
    if path is None:
        raise PlinthError(ErrorCode.UNSUPPORTED, f"model {model_name!r} has no local weights to train")
    if record.format.value == "gguf":
        return dequantised_dir(path, services.settings.home / "cache" / "torch", digest=record.digest, dtype_name="float32")
    return path


def run(ctx: Any) -> dict[str, Any]:
    import torch

    from plinth.domain.tracking import ArtifactKind, RunStatus
    from plinth.jobs import Cancelled, Preempted
    from plinth.runtimes.torch_llama import pick_dtype
    from plinth.tuning import data as tdata
    from plinth.tuning.loop import Hooks, LoopConfig, restore, total_steps, train
    from plinth.tuning.recipes import recipe
    from plinth.tuning.spec import parse_spec

    spec = parse_spec(ctx.spec)
    services = ctx.services
    tracking, registry = services.tracking, services.registry
    threads = max(1, int(ctx.resources.cpu or 1))
    torch.set_num_threads(threads)
    device = "cuda" if (spec.device in ("auto", "cuda") and torch.cuda.is_available() and ctx.gpu_ids) else "cpu"
    if spec.device == "cuda" and device != "cuda":
        raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, "the spec asks for CUDA but this job got no GPU")
    autocast = None
    if spec.precision == "bf16" or (spec.precision == "auto" and pick_dtype(device) == torch.bfloat16):
        autocast = torch.bfloat16

    ctx.log(f"preparing {spec.method} on {spec.base_model} with {spec.dataset} ({threads} threads, {device})")
    base_dir = base_dir_for(services, spec.base_model)
    version = services.datasets.get(spec.dataset)
    if spec.rag_dataset is not None:
        version = _rag_version(ctx, spec, version)
    mod = recipe(spec.method)
    trainable = mod.setup(base_dir, spec, device)
    train_ex, dropped = tdata.encode_all(trainable.tokenizer, services.datasets.load_messages(version, "train"), spec.max_seq_len)
    val_ex, _ = tdata.encode_all(trainable.tokenizer, services.datasets.load_messages(version, "validation"), spec.max_seq_len)
    if not train_ex:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"dataset {version.ref} has no row with assistant tokens within max_seq_len")
    steps = total_steps(len(train_ex), spec.batch_size, spec.grad_accum, spec.epochs, spec.max_steps)
    base = services.catalog.get(spec.base_model)
    run_ = tracking.resume_or_start(
        ctx.job_id,
        f"{spec.name or version.dataset}-{spec.method}",
        spec.method,
        params={
            **spec.model_dump(),
            "total_steps": steps,
            "trainable_parameters": trainable.trainable_count(),
            "train_examples": len(train_ex),
            "validation_examples": len(val_ex),
            "dropped_examples": dropped,
            "precision": "bf16-autocast" if autocast else "fp32",
            "device": device,
            "threads": threads,
        },
        base_model=spec.base_model,
        dataset=version.ref,
        tags={"job": ctx.job_id},
    )
    ctx.log(
        f"run {run_.id}: {len(train_ex)} training and {len(val_ex)} validation examples, {steps} steps, "
        f"{trainable.trainable_count():,} trainable parameters"
    )
    started = time.monotonic()

    def on_step(step: int, m: dict[str, float]) -> None:
        tracking.log_metrics(run_.id, step, **m)
        ctx.progress(
            step,
            steps,
            f"loss {m['train/loss']:.4f}",
            loss=round(m["train/loss"], 5),
            lr=m["train/lr"],
            tokens_per_s=round(m["train/tokens_per_s"], 1),
        )

    def on_eval(step: int, m: dict[str, float]) -> None:
        tracking.log_metrics(run_.id, step, **m)
        ctx.log(f"step {step}: validation loss {m['val/loss']:.4f} (perplexity {m['val/perplexity']:.2f})")

    cfg = LoopConfig(
        total_steps=steps,
        batch_size=spec.batch_size,
        grad_accum=spec.grad_accum,
        learning_rate=spec.learning_rate,
        weight_decay=spec.weight_decay,
        warmup_steps=min(spec.warmup_steps, max(0, steps - 1)),
        lr_scheduler=spec.lr_scheduler,
        max_grad_norm=spec.max_grad_norm,
        eval_every=spec.eval_every,
        checkpoint_every=spec.checkpoint_every,
        early_stopping_patience=spec.early_stopping_patience,
        seed=spec.seed,
        batching=spec.batching,
        autocast_dtype=autocast,
        device=device,
    )
    try:
        with tracking.system_metrics(run_.id):
            result = train(trainable, train_ex, val_ex, cfg, Hooks(on_step, on_eval, ctx.should_stop, ctx.checkpoint_dir / "train"))
    except BaseException as e:
        status = RunStatus.CANCELLED if isinstance(e, Cancelled) else RunStatus.FAILED
        tracking.end_run(run_.id, status, error=None if isinstance(e, Cancelled) else f"{type(e).__name__}: {e}")
        raise
    if result.stopped == "preempt":
        tracking.end_run(run_.id, RunStatus.PREEMPTED)
        raise Preempted()
    if result.stopped == "cancel":
        tracking.end_run(run_.id, RunStatus.CANCELLED)
        raise Cancelled()

    st = result.state
    if result.best_tensors is not None:
        restore(trainable.parameters(), result.best_tensors)
    out_dir = ctx.checkpoint_dir / "final"
    shutil.rmtree(out_dir, ignore_errors=True)
    kind = mod.save(trainable, out_dir, spec, base_dir)
    summary = {
        "steps": st.step,
        "final_train_loss": st.last_train_loss,
        "final_val_loss": st.last_val_loss,
        "best_val_loss": st.best_val_loss,
        "best_step": st.best_step,
        "stopped_early": st.stopped_early,
        "real_tokens": st.real_tokens,
        "padding_fraction": 1 - st.real_tokens / st.padded_tokens if st.padded_tokens else 0.0,
        "tokens_per_s": st.real_tokens / st.train_seconds if st.train_seconds else 0.0,
        "train_seconds": st.train_seconds,
        "wall_seconds": time.monotonic() - started,
    }
    artifact = tracking.log_artifact(
        run_.id, kind, ArtifactKind.ADAPTER if kind == "adapter" else ArtifactKind.MODEL, out_dir, meta={"method": spec.method}
    )
    tracking.log_text_artifact(run_.id, "loss.svg", ArtifactKind.PLOT, tracking.loss_curve_svg(run_.id))
    registered: dict[str, Any] = {}
    if spec.register and spec.method != "prompt_tuning":
        metrics = {k: v for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        recipe_cfg = {
            **spec.model_dump(exclude={"lora", "prompt_tuning", "register", "name", "base_model", "dataset"}),
            "method": spec.method,
            **({f"lora_{k}": v for k, v in spec.lora.model_dump().items()} if spec.method == "lora" else {}),
        }
        if kind == "adapter":
            mv = registry.register_adapter(
                spec.name,
                base_model=spec.base_model,
                adapter_dir=out_dir,
                run_id=run_.id,
                dataset=version.ref,
                recipe=recipe_cfg,
                metrics=metrics,
            )
        else:
            mv = registry.register_model(
                spec.name,
                base_model=spec.base_model,
                model_dir=out_dir,
                run_id=run_.id,
                dataset=version.ref,
                recipe=recipe_cfg,
                metrics=metrics,
                runtime="torch",
            )
        registered = {"registered": mv.ref, "served_as": mv.served_as}
        ctx.log(f"registered {mv.ref}, served as {mv.served_as}")
    tracking.end_run(run_.id, RunStatus.FINISHED, summary={**summary, **registered, "artifact_digest": artifact.digest})
    ctx.progress(
        steps, steps, f"done: loss {st.last_train_loss:.4f}" + (f", validation {st.best_val_loss:.4f}" if st.best_val_loss else "")
    )
    return {"run_id": run_.id, "base_model": base.name, "dataset": version.ref, **summary, **registered, "artifact_digest": artifact.digest}
