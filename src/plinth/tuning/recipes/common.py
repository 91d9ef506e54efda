"""What the recipes share: loading the base model for training, and the loss on labelled
tokens only (the output head runs only where there is a label, which saves most of the
49k-wide softmax on a chat dataset)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from plinth.tuning.data import IGNORE


def load_base(base_dir: Path, device: str, seed: int | None = None) -> tuple[Any, Any]:
    """The base model in float32 (master weights; bf16 comes from autocast) and its tokenizer.
    With ``seed``, the random generator is seeded first, so whatever a recipe initialises
    next (LoRA matrices, virtual tokens) is the same on every run with that seed.

    Both are typed ``Any``: a transformers causal LM's parts (``.model``, ``.lm_head``,
    ``.config``) depend on its architecture, which ``torch.nn.Module`` does not describe."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if seed is not None:
        torch.manual_seed(seed)

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32, local_files_only=True, use_safetensors=True)
    model.to(device)
    model.config.use_cache = False
    return model, tokenizer


def pad_id_of(tokenizer: object) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    return int(pad or 0)


def labelled_loss(
    causal_lm: Any, hidden: torch.Tensor, labels: torch.Tensor, head_weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, int]:
    """Sum of cross-entropy over the labelled next tokens; ``hidden`` is the decoder's last
    hidden state [B, T, H] aligned with ``labels`` [B, T] (position t predicts t+1).
    ``head_weight``: a frozen copy of the output head's weight to use instead of the
    module's (LoRA keeps a bf16 one so autocast does not cast the head on every step)."""
    targets = labels[:, 1:]
    keep = targets != IGNORE
    n = int(keep.sum())
    if n == 0:
        return hidden.sum() * 0.0, 0
    h = hidden[:, :-1][keep]
    head = causal_lm.lm_head if head_weight is None else (lambda x: F.linear(x.to(head_weight.dtype), head_weight))
    logits = head(h).float()
    return F.cross_entropy(logits, targets[keep], reduction="sum"), n
