"""Full fine-tuning: every weight of the model trains (float32 master weights, bf16 autocast
where supported), on the assistant tokens of chat data. save: a Hugging Face directory
(config, safetensors weights, tokenizer with its chat template) that the torch runtime
serves as a model of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from plinth.tuning.recipes.common import labelled_loss, load_base, pad_id_of

ARTIFACT = "model"


class FullTrainable:
    def __init__(self, base_dir: Path, spec: Any, device: str) -> None:
        self.model, self.tokenizer = load_base(base_dir, device, seed=spec.seed)
        self.causal_lm = self.model
        self.pad_id = pad_id_of(self.tokenizer)

    def parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        # tied embeddings appear once: named_parameters() removes duplicates
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        out = self.model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return labelled_loss(self.model, out.last_hidden_state, batch["labels"])

    def trainable_count(self) -> int:
        return sum(p.numel() for _, p in self.parameters())


def setup(base_dir: Path, spec: Any, device: str) -> FullTrainable:
    return FullTrainable(base_dir, spec, device)


def save(t: FullTrainable, dest: Path, spec: Any, base_dir: Path) -> str:
    t.model.config.use_cache = True
    t.model.save_pretrained(str(dest), safe_serialization=True)
    t.tokenizer.save_pretrained(str(dest))
    for extra in ("generation_config.json", "README.md"):
        src = base_dir / extra
        if src.is_file() and not (dest / extra).exists():
            (dest / extra).write_bytes(src.read_bytes())
    return ARTIFACT
