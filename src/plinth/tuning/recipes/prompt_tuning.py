"""Prompt tuning: a few learned "virtual token" embeddings put before every prompt; the model
itself stays frozen. setup: the embeddings start from the embeddings of a text describing
the task (or random). save: a PEFT prompt-tuning directory (adapter_config.json with
peft_type PROMPT_TUNING + adapter_model.safetensors holding ``prompt_embeddings``), which
PEFT loads as it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from plinth.tuning.data import IGNORE
from plinth.tuning.recipes.common import labelled_loss, load_base, pad_id_of

ARTIFACT = "adapter"


class PromptTrainable:
    def __init__(self, base_dir: Path, spec: Any, device: str) -> None:
        self.model, self.tokenizer = load_base(base_dir, device, seed=spec.seed)
        for p in self.model.parameters():
            p.requires_grad_(False)
        n = spec.prompt_tuning.num_virtual_tokens
        emb = self.model.get_input_embeddings().weight
        init = torch.randn(n, emb.shape[1]) * emb.detach().std()
        text = spec.prompt_tuning.init_text
        if text:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            ids = (ids * (n // max(1, len(ids)) + 1))[:n]
            init = emb.detach()[torch.tensor(ids)].clone()
        self.prompt = torch.nn.Parameter(init.to(emb.device, torch.float32))
        self.n_virtual = n
        self.init_text = text
        self.pad_id = pad_id_of(self.tokenizer)

    def parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        return [("prompt_embeddings", self.prompt)]

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        b = ids.shape[0]
        embeds = self.model.get_input_embeddings()(ids)
        prompt = self.prompt.to(embeds.dtype).unsqueeze(0).expand(b, -1, -1)
        inputs = torch.cat([prompt, embeds], dim=1)
        full_mask = torch.cat([torch.ones(b, self.n_virtual, dtype=mask.dtype, device=mask.device), mask], dim=1)
        full_labels = torch.cat([torch.full((b, self.n_virtual), IGNORE, dtype=labels.dtype, device=labels.device), labels], dim=1)
        out = self.model.model(inputs_embeds=inputs, attention_mask=full_mask)
        return labelled_loss(self.model, out.last_hidden_state, full_labels)

    def trainable_count(self) -> int:
        return self.prompt.numel()


def setup(base_dir: Path, spec: Any, device: str) -> PromptTrainable:
    return PromptTrainable(base_dir, spec, device)


def save(t: PromptTrainable, dest: Path, spec: Any, base_dir: Path) -> str:
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    save_file({"prompt_embeddings": t.prompt.detach().cpu().contiguous()}, str(dest / "adapter_model.safetensors"))
    cfg = {
        "peft_type": "PROMPT_TUNING",
        "task_type": "CAUSAL_LM",
        "num_virtual_tokens": t.n_virtual,
        "token_dim": int(t.prompt.shape[1]),
        "num_transformer_submodules": 1,
        "num_attention_heads": int(t.model.config.num_attention_heads),
        "num_layers": int(t.model.config.num_hidden_layers),
        # how the tokens were initialised no longer matters once trained (PEFT would want the
        # tokenizer's path for TEXT)
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": None,
        "tokenizer_name_or_path": None,
        "base_model_name_or_path": None,
        "inference_mode": True,
    }
    (dest / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
    return ARTIFACT
