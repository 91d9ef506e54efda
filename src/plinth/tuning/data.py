"""Chat rows to training examples: the model's chat template, loss on assistant tokens only,
and batches that waste little compute on padding.

:func:`encode_chat` renders a conversation with the model's own chat template and marks
which tokens are the assistant's: for every assistant message the template is rendered up
to the message (with the generation prompt) and through it; the characters in between —
the message and the template's end-of-turn marker — are what the model learns to produce,
and the tokens whose characters fall inside are labelled. Everything else (system prompt,
user turns, template markup) is context with label -100. An assistant message with
``"weight": 0`` is context too.

:func:`batches` orders examples: ``length_grouped`` shuffles, then sorts each window of
``batch_size * 32`` examples by length and cuts it into batches, so a batch is padded to
its longest example with little waste (the batches themselves are shuffled again).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from plinth.errors import ErrorCode, PlinthError

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss

    @property
    def n_labels(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


def _render(tokenizer: Any, messages: list[dict[str, Any]], generation_prompt: bool) -> str:
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    try:
        return tokenizer.apply_chat_template(clean, tokenize=False, add_generation_prompt=generation_prompt)
    except Exception as e:  # the model's template refused these messages
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"the model's chat template failed on a training row: {e}") from None


def encode_chat(tokenizer: Any, messages: list[dict[str, Any]], max_len: int) -> Example | None:
    """One conversation as an example, truncated to ``max_len`` tokens; None when nothing is
    left to learn from (no trainable assistant token within the window)."""
    full = _render(tokenizer, messages, generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant" or m.get("weight", 1) == 0:
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True) if i else ""
        through = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not (full.startswith(through) and through.startswith(before)):
            raise PlinthError(
                ErrorCode.UNSUPPORTED,
                "the model's chat template does not render conversations incrementally, so assistant tokens cannot "
                "be told apart; use a model with a ChatML-like template",
            )
        spans.append((len(before), len(through)))
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets = enc["offset_mapping"]
    labels = [IGNORE] * len(ids)
    j = 0
    for t, (a, b) in enumerate(offsets):
        while j < len(spans) and spans[j][1] <= a:
            j += 1
        if j < len(spans) and a >= spans[j][0] and b <= spans[j][1] and b > a:
            labels[t] = ids[t]
    ids, labels = ids[:max_len], labels[:max_len]
    ex = Example(ids, labels)
    return ex if ex.n_labels else None


def encode_all(tokenizer: Any, conversations: list[list[dict[str, Any]]], max_len: int) -> tuple[list[Example], int]:
    """Examples of every conversation and how many were dropped (nothing to learn in the window)."""
    out, dropped = [], 0
    for conv in conversations:
        ex = encode_chat(tokenizer, conv, max_len)
        if ex is None:
            dropped += 1
        else:
            out.append(ex)
    return out, dropped


def batches(examples: list[Example], batch_size: int, *, seed: int, epoch: int, mode: str = "length_grouped") -> list[list[int]]:
    """Indices of one epoch's batches (the last may be smaller)."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(examples)))
    rng.shuffle(order)
    if mode == "length_grouped":
        window = batch_size * 32
        grouped: list[int] = []
        for i in range(0, len(order), window):
            grouped.extend(sorted(order[i : i + window], key=lambda k: len(examples[k].input_ids)))
        order = grouped
    out = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if mode == "length_grouped":
        rng.shuffle(out)
    return out


def collate(examples: list[Example], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors: input_ids, attention_mask, labels (IGNORE on padding)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(e.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def iterate(
    examples: list[Example], batch_size: int, *, seed: int, start_epoch: int = 0, mode: str = "length_grouped"
) -> Iterator[tuple[int, int, list[Example]]]:
    """(epoch, index of the batch in its epoch, examples) forever, epoch after epoch."""
    epoch = start_epoch
    while True:
        for b, idx in enumerate(batches(examples, batch_size, seed=seed, epoch=epoch, mode=mode)):
            yield epoch, b, [examples[i] for i in idx]
        epoch += 1
