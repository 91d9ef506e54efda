"""LoRA: low-rank adapters on chosen linear layers of a frozen base (PEFT), trained on the
assistant tokens of chat data with the model's chat template.

setup: load the base in float32, freeze it, wrap it with PEFT LoRA (rank, alpha, dropout,
target modules from the spec). Where the run computes in bf16 (``precision`` bf16, or auto
on a CPU/GPU that computes bf16), the frozen linear weights of the decoder are stored in
bf16 once, and the output head gets a bf16 copy: autocast would otherwise cast ~130M frozen
float32 weights to bf16 on every forward, to the same values. The LoRA matrices, norms and
embeddings stay float32 (ADR 0122). train: :func:`plinth.tuning.loop.train`. save: the PEFT
adapter directory (adapter_config.json + adapter_model.safetensors), which the serving
engines load as it is (torch) or convert (llama.cpp). cleanup: nothing beyond the process.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from plinth.tuning.recipes.common import labelled_loss, load_base, pad_id_of

ARTIFACT = "adapter"


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


class LoraTrainable:
    def __init__(self, base_dir: Path, spec: Any, device: str) -> None:
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

    def _store_frozen_in(self, dtype: torch.dtype) -> None:
        """The decoder's frozen linear weights in ``dtype`` (what autocast computes with
        anyway), and a ``dtype`` copy of the output head (tied to the float32 embeddings)."""
        for module in self.causal_lm.model.modules():
            if isinstance(module, torch.nn.Linear) and not module.weight.requires_grad:
                module.weight.data = module.weight.data.to(dtype)
                if module.bias is not None:
                    module.bias.data = module.bias.data.to(dtype)
        self.head_weight = self.causal_lm.lm_head.weight.detach().to(dtype)

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
