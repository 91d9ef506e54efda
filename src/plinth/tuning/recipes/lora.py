"""LoRA: low-rank adapters on chosen linear layers of a frozen base (PEFT), trained on the
assistant tokens of chat data with the model's chat template.

setup: load the base in float32, freeze it, wrap it with PEFT LoRA (rank, alpha, dropout,
target modules from the spec). train: :func:`plinth.tuning.loop.train`. save: the PEFT
adapter directory (adapter_config.json + adapter_model.safetensors), which the serving
engines load as it is (torch) or convert (llama.cpp). cleanup: nothing beyond the process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from plinth.tuning.recipes.common import labelled_loss, load_base, pad_id_of

ARTIFACT = "adapter"


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

    def parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        out = self.causal_lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return labelled_loss(self.causal_lm, out.last_hidden_state, batch["labels"])

    def trainable_count(self) -> int:
        return sum(p.numel() for _, p in self.parameters())


def setup(base_dir: Path, spec: Any, device: str) -> LoraTrainable:
    return LoraTrainable(base_dir, spec, device)


def save(t: LoraTrainable, dest: Path, spec: Any, base_dir: Path) -> str:
    t.model.save_pretrained(str(dest), safe_serialization=True)
    return ARTIFACT
