"""LoRA: low-rank adapters on chosen linear layers of a frozen base (PEFT), trained on the
assistant tokens of chat data with the model's chat template.

setup: load the base in float32, freeze it, wrap it with PEFT LoRA (rank, alpha, dropout,
target modules from the spec). Where the run computes in bf16 (``precision`` bf16, or auto
on a CPU/GPU that computes bf16), the frozen linear weights of the decoder are stored in
bf16 once, and the output head gets a bf16 copy: autocast would otherwise cast ~130M frozen
float32 weights to bf16 on every forward, to the same values. The LoRA matrices, norms and
embeddings stay float32. ``LoraTrainable(bf16_residual=True, fused_norm=True)`` stores the
frozen embeddings and norm weights in bf16 too (a bf16 residual stream, no linear casting its
input) and runs torch's fused ``rms_norm``: off by default, because the quiet-machine benchmark
did not show it faster (ADR 0124, round 2). With ``compile`` (on, or auto for a run of at least
:data:`COMPILE_AUTO_MIN_STEPS` steps on a CPU with a C compiler; off by default) the decoder
layer's forward is compiled once by torch.compile, with dynamic shapes, and every layer runs
that code, meant to fuse the per-op overhead of norms, rotary, activations and casts that
dominates a small model's step; no steady-state gain is measured yet (ADR 0128).
train: :func:`plinth.tuning.loop.train`. save: the PEFT adapter directory
(adapter_config.json + adapter_model.safetensors), which the serving engines load as it is
(torch) or convert (llama.cpp). cleanup: nothing beyond the process.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from plinth.tuning.recipes.common import labelled_loss, load_base, pad_id_of

ARTIFACT = "adapter"
COMPILE_AUTO_MIN_STEPS = 1000  # below this the compile (about a minute on 2 cores, cold) cannot be repaid

log = logging.getLogger("plinth.tuning")


def should_compile(setting: str, device: str, steps: int) -> bool:
    """Whether to compile the decoder layers: ``on`` always, ``off`` never, ``auto`` on a CPU
    with a C compiler (inductor builds C++ there) when ``steps`` optimizer steps remain."""
    if setting == "on":
        return True
    if setting == "off" or not device.startswith("cpu") or steps < COMPILE_AUTO_MIN_STEPS:
        return False
    return any(shutil.which(cc) for cc in ("g++", "c++", "clang++"))


def compute_dtype(spec: Any, device: str) -> torch.dtype | None:
    """bf16 when the spec asks for it or leaves it to the hardware and the hardware computes
    it; None (float32) otherwise. The same rule as the job's autocast."""
    precision = getattr(spec, "precision", "auto")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    from plinth.runtimes.torch_llama import pick_dtype

    return torch.bfloat16 if pick_dtype("cuda" if device.startswith("cuda") else "cpu") == torch.bfloat16 else None


def _fused_rms_norm(module: torch.nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """A Llama RMSNorm's forward as torch's one ``rms_norm`` op instead of six element-wise ones."""
    weight: torch.Tensor = module.weight  # type: ignore[assignment]
    eps = float(module.variance_epsilon)  # type: ignore[arg-type]
    return torch.nn.functional.rms_norm(hidden_states, (hidden_states.shape[-1],), weight, eps)


class LoraTrainable:
    def __init__(self, base_dir: Path, spec: Any, device: str, *, bf16_residual: bool = False, fused_norm: bool = False) -> None:
        from peft import LoraConfig, get_peft_model

        base, self.tokenizer = load_base(base_dir, device, seed=spec.seed)
        cfg = LoraConfig(
            r=spec.lora.rank,
            lora_alpha=spec.lora.alpha,
            lora_dropout=spec.lora.dropout,
            target_modules=list(spec.lora.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
        self.model = get_peft_model(base, cfg)
        self.causal_lm: Any = self.model.base_model.model  # the LlamaForCausalLM with LoRA layers in it
        self.pad_id = pad_id_of(self.tokenizer)
        self.device = device
        self.compute_dtype = compute_dtype(spec, device)
        self.head_weight: torch.Tensor | None = None
        if self.compute_dtype is not None:
            self._store_frozen_in(self.compute_dtype)
            if bf16_residual:
                self._residual_in(self.compute_dtype)
        if fused_norm:
            self._fuse_norms()
        self.compile_setting: str = getattr(spec, "compile", "off")
        self.compiled = False

    def before_training(self, steps: int) -> None:
        """Called by the loop before its first step with the steps left to run."""
        if not self.compiled and should_compile(self.compile_setting, self.device, steps):
            log.info("compiling the decoder layers (compile=%s, %d steps)", self.compile_setting, steps)
            self.compile_layers()

    def compile_layers(self) -> None:
        """Compile every decoder layer's forward in place (``Module.compile``: the parameter
        names, the state dict and the saved adapter stay as they are). The layers share one
        code object, so the first call compiles and the others reuse it; dynamic shapes keep
        new batch widths from compiling again. A few variants still compile once each: the
        first layer's input needs no gradient and the others' do, a batch without padding
        has no mask, a batch of one row, and validation without gradients; the recompile
        limit is raised so that none of them falls back to eager."""
        import torch._dynamo.config as dynamo_config

        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 32)
        for layer in self.causal_lm.model.layers:
            layer.compile(dynamic=True)
        self.compiled = True

    def _store_frozen_in(self, dtype: torch.dtype) -> None:
        """The decoder's frozen linear weights in ``dtype`` (what autocast computes with
        anyway), and a ``dtype`` copy of the output head (tied to the float32 embeddings)."""
        for module in self.causal_lm.model.modules():
            if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad:
                module.weight.data = module.weight.data.to(dtype)
                if module.bias is not None:
                    module.bias.data = module.bias.data.to(dtype)
        self.head_weight = self.causal_lm.lm_head.weight.detach().to(dtype)

    def _residual_in(self, dtype: torch.dtype) -> None:
        """The residual stream in ``dtype``: the (frozen) embeddings and norm weights are stored
        in it, so the embedding output, every residual add and every norm output are ``dtype``
        and no linear layer casts its input; PEFT's cast of the LoRA input to float32 is
        turned off too (autocast casts it back to ``dtype`` for the matmul anyway). The LoRA
        matrices stay float32 master weights."""
        for module in self.causal_lm.model.modules():
            if type(module).__name__.endswith("RMSNorm") and not module.weight.requires_grad:
                module.weight.data = module.weight.data.to(dtype)
            if hasattr(module, "lora_A"):
                module.cast_input_dtype_enabled = False
        embed = self.causal_lm.model.embed_tokens
        if not embed.weight.requires_grad:
            embed.weight.data = embed.weight.data.to(dtype)
            self.head_weight = self.causal_lm.lm_head.weight.detach().to(dtype)

    def _fuse_norms(self) -> None:
        """Every RMSNorm of the model runs torch's fused ``rms_norm``."""
        import types

        for module in self.causal_lm.modules():
            if type(module).__name__.endswith("RMSNorm") and hasattr(module, "variance_epsilon"):
                module.forward = types.MethodType(_fused_rms_norm, module)

    def parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        with self._autocast():
            out = self.causal_lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            return labelled_loss(self.causal_lm, out.last_hidden_state, batch["labels"], head_weight=self.head_weight)

    def _autocast(self) -> Any:
        # bf16-stored weights need autocast even when the caller runs without it
        if self.compute_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda" if self.device.startswith("cuda") else "cpu", dtype=self.compute_dtype)

    def trainable_count(self) -> int:
        return sum(p.numel() for _, p in self.parameters())


def setup(base_dir: Path, spec: Any, device: str) -> LoraTrainable:
    return LoraTrainable(base_dir, spec, device)


def save(t: LoraTrainable, dest: Path, spec: Any, base_dir: Path) -> str:
    t.model.save_pretrained(str(dest), safe_serialization=True)
    return ARTIFACT
