"""The training loop every recipe shares: optimizer, schedule, accumulation, validation,
early stopping, checkpoints that resume exactly, and progress.

A recipe (``recipes/lora.py``, ``recipes/full.py``, ``recipes/prompt_tuning.py``) sets up a
:class:`Trainable` — which parameters train, how a batch's loss is computed, how the result
is saved — and hands it to :func:`train`. Checkpoints are safetensors (the trainable
tensors, the optimizer's moments, the random generator's state) plus a JSON file with the
loop's counters; never pickle. A run stopped at step N and resumed from its checkpoint
continues with the same data order, the same random numbers and the same optimizer state,
so it ends where an uninterrupted run would.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from plinth.tuning.data import Example, collate, iterate

log = logging.getLogger("plinth.tuning")

CKPT_TENSORS = "checkpoint.safetensors"
CKPT_STATE = "checkpoint.json"


class Trainable(Protocol):
    model: torch.nn.Module
    pad_id: int

    def parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """The trainable parameters, by a stable name."""

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """(sum of the token losses, number of labelled tokens) of a batch.

        A recipe may also define ``before_training(steps)``: the loop calls it once with the
        number of optimizer steps still to run, before the first one (LoRA decides there
        whether compiling its decoder layers pays off)."""


@dataclass
class LoopConfig:
    total_steps: int
    batch_size: int
    grad_accum: int
    learning_rate: float
    weight_decay: float
    warmup_steps: int
    lr_scheduler: str
    max_grad_norm: float
    eval_every: int
    checkpoint_every: int
    early_stopping_patience: int | None
    seed: int
    batching: str
    autocast_dtype: torch.dtype | None
    device: str


@dataclass
class LoopState:
    step: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of the current epoch already consumed
    best_val_loss: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    real_tokens: int = 0  # non-padding tokens processed
    padded_tokens: int = 0
    train_seconds: float = 0.0
    last_train_loss: float | None = None
    last_val_loss: float | None = None
    stopped_early: bool = False


@dataclass
class Hooks:
    """What the loop reports to and asks of its caller (the job)."""

    on_step: Callable[[int, dict[str, float]], None] = lambda step, m: None
    on_eval: Callable[[int, dict[str, float]], None] = lambda step, m: None
    should_stop: Callable[[], str | None] = lambda: None
    checkpoint_dir: Path | None = None


@dataclass
class LoopResult:
    state: LoopState
    stopped: str | None = None  # None (finished), "preempt", "cancel"
    best_tensors: dict[str, torch.Tensor] | None = field(default=None, repr=False)


def total_steps(n_examples: int, batch_size: int, grad_accum: int, epochs: float, max_steps: int | None) -> int:
    if max_steps:
        return max_steps
    per_epoch = math.ceil(n_examples / batch_size / grad_accum)
    return max(1, math.ceil(per_epoch * epochs))


def lr_factor(step: int, cfg: LoopConfig) -> float:
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_scheduler == "constant":
        return 1.0
    progress = (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if cfg.lr_scheduler == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def evaluate(trainable: Trainable, examples: list[Example], cfg: LoopConfig) -> dict[str, float]:
    """Token-weighted validation loss and perplexity."""
    if not examples:
        return {}
    total, n = 0.0, 0
    model = trainable.model
    was_training = model.training
    model.eval()
    with torch.no_grad():
        ordered = sorted(examples, key=lambda e: len(e.input_ids))
        for i in range(0, len(ordered), cfg.batch_size):
            batch = _to(collate(ordered[i : i + cfg.batch_size], trainable.pad_id), cfg.device)
            with _autocast(cfg):
                s, k = trainable.loss(batch)
            total += float(s)
            n += k
    if was_training:
        model.train()
    loss = total / max(1, n)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": float(n)}


def train(trainable: Trainable, train_ex: list[Example], val_ex: list[Example], cfg: LoopConfig, hooks: Hooks) -> LoopResult:
    named = trainable.parameters()
    params = [p for _, p in named]
    opt = _adamw(params, cfg)
    state = LoopState()
    torch.manual_seed(cfg.seed)
    if hooks.checkpoint_dir is not None and (hooks.checkpoint_dir / CKPT_STATE).is_file():
        state = load_checkpoint(hooks.checkpoint_dir, named, opt)
        log.info("resumed from the checkpoint at step %d", state.step)
    best: dict[str, torch.Tensor] | None = None
    if hooks.checkpoint_dir is not None and (hooks.checkpoint_dir / "best.safetensors").is_file():
        from safetensors.torch import load_file

        best = load_file(str(hooks.checkpoint_dir / "best.safetensors"))
    before_training = getattr(trainable, "before_training", None)
    if callable(before_training):
        before_training(cfg.total_steps - state.step)
    data = iterate(train_ex, cfg.batch_size, seed=cfg.seed, start_epoch=state.epoch, mode=cfg.batching)
    for _ in range(state.batch_in_epoch):  # skip what the checkpoint already consumed
        next(data)
    trainable.model.train()
    while state.step < cfg.total_steps:
        stop = hooks.should_stop()
        if stop is not None:
            if hooks.checkpoint_dir is not None:
                save_checkpoint(hooks.checkpoint_dir, named, opt, state)
            return LoopResult(state, stopped=stop, best_tensors=best)
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = cfg.learning_rate * lr_factor(state.step, cfg)
        opt.zero_grad(set_to_none=True)
        loss_sum, label_tokens, real, padded = 0.0, 0, 0, 0
        for _ in range(cfg.grad_accum):
            epoch, b, examples = next(data)
            if epoch != state.epoch:
                state.epoch, state.batch_in_epoch = epoch, 0
            state.batch_in_epoch = b + 1
            batch = _to(collate(examples, trainable.pad_id), cfg.device)
            with _autocast(cfg):
                s, k = trainable.loss(batch)
            (s / max(1, k) / cfg.grad_accum).backward()
            loss_sum += float(s.detach())
            label_tokens += k
            real += int(batch["attention_mask"].sum())
            padded += int(batch["attention_mask"].numel())
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        opt.step()
        dt = time.perf_counter() - t0
        state.step += 1
        state.real_tokens += real
        state.padded_tokens += padded
        state.train_seconds += dt
        state.last_train_loss = loss_sum / max(1, label_tokens)
        hooks.on_step(
            state.step,
            {
                "train/loss": state.last_train_loss,
                "train/lr": opt.param_groups[0]["lr"],
                "train/grad_norm": grad_norm if math.isfinite(grad_norm) else 0.0,
                "train/tokens_per_s": real / dt if dt else 0.0,
                "train/padding_fraction": 1 - real / padded if padded else 0.0,
                "train/epoch": state.epoch + state.batch_in_epoch / max(1, math.ceil(len(train_ex) / cfg.batch_size)),
            },
        )
        if not math.isfinite(state.last_train_loss):
            raise FloatingPointError(f"the training loss became {state.last_train_loss} at step {state.step}; lower the learning rate")
        last = state.step >= cfg.total_steps
        if val_ex and (state.step % cfg.eval_every == 0 or last):
            m = evaluate(trainable, val_ex, cfg)
            state.last_val_loss = m["loss"]
            hooks.on_eval(state.step, {"val/loss": m["loss"], "val/perplexity": m["perplexity"]})
            if state.best_val_loss is None or m["loss"] < state.best_val_loss - 1e-4:
                state.best_val_loss, state.best_step = m["loss"], state.step
                state.evals_without_improvement = 0
                best = {n: p.detach().to("cpu", copy=True).contiguous() for n, p in named}
                if hooks.checkpoint_dir is not None:
                    _save_tensors(hooks.checkpoint_dir / "best.safetensors", best)
            else:
                state.evals_without_improvement += 1
                if cfg.early_stopping_patience and state.evals_without_improvement >= cfg.early_stopping_patience:
                    state.stopped_early = True
                    log.info("early stopping at step %d (best validation loss at step %s)", state.step, state.best_step)
                    break
        if hooks.checkpoint_dir is not None and (state.step % cfg.checkpoint_every == 0) and not last:
            save_checkpoint(hooks.checkpoint_dir, named, opt, state)
    return LoopResult(state, best_tensors=best)


def _adamw(params: list[torch.nn.Parameter], cfg: LoopConfig) -> torch.optim.Optimizer:
    """AdamW with the fused kernel (one pass over all parameters and moments per step) where
    torch has it for these tensors, else the multi-tensor one; the two compute the same update."""
    if all(p.dtype in (torch.float32, torch.bfloat16, torch.float16) and p.device.type in ("cpu", "cuda") for p in params):
        try:
            return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True)
        except (RuntimeError, ValueError):
            pass
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, foreach=True)


def restore(named: list[tuple[str, torch.nn.Parameter]], tensors: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for n, p in named:
            p.copy_(tensors[n].to(p.device, p.dtype))


# -- checkpoints ------------------------------------------------------------------------------
def save_checkpoint(directory: Path, named: list[tuple[str, torch.nn.Parameter]], opt: torch.optim.Optimizer, state: LoopState) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for n, p in named:
        tensors[f"param/{n}"] = p.detach().cpu().contiguous()
        st = opt.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in st:
                tensors[f"opt/{n}/{key}"] = st[key].detach().cpu().contiguous()
        if "step" in st:
            tensors[f"opt/{n}/step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1).cpu()
    tensors["rng/torch"] = torch.get_rng_state()
    _save_tensors(directory / CKPT_TENSORS, tensors)
    tmp = directory / (CKPT_STATE + ".tmp")
    tmp.write_text(json.dumps(asdict(state)))
    os.replace(tmp, directory / CKPT_STATE)


def load_checkpoint(directory: Path, named: list[tuple[str, torch.nn.Parameter]], opt: torch.optim.Optimizer) -> LoopState:
    from safetensors.torch import load_file

    tensors = load_file(str(directory / CKPT_TENSORS))
    restore(named, {n: tensors[f"param/{n}"] for n, _ in named})
    for n, p in named:
        if f"opt/{n}/exp_avg" in tensors:
            opt.state[p] = {
                "step": tensors[f"opt/{n}/step"].reshape(()).clone(),
                "exp_avg": tensors[f"opt/{n}/exp_avg"].to(p.device),
                "exp_avg_sq": tensors[f"opt/{n}/exp_avg_sq"].to(p.device),
            }
    torch.set_rng_state(tensors["rng/torch"])
    return LoopState(**json.loads((directory / CKPT_STATE).read_text()))


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def _to(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()} if device != "cpu" else batch


def _autocast(cfg: LoopConfig) -> Any:
    if cfg.autocast_dtype is None:
        import contextlib

        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda" if cfg.device.startswith("cuda") else "cpu", dtype=cfg.autocast_dtype)
