"""Statistics of a dataset version: rows, messages, characters, duplicates, and token counts
with a base model's own tokenizer and chat template.

For a GGUF model the tokenizer is llama.cpp's, loaded vocabulary-only (about 0.1 s for the
embedded model, no weights); for a safetensors directory its ``tokenizer.json`` through the
``tokenizers`` package. A chat row is counted as the model would see it in training: the
conversation rendered with the model's chat template; ``assistant_tokens`` counts what the
loss is computed on (the assistant contents with weight 1).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

from plinth.domain.datasets import DatasetFormat
from plinth.domain.models import ModelFormat, ModelRecord
from plinth.errors import ErrorCode, PlinthError


class TokenCounter(Protocol):
    model: str
    digest: str | None
    context_length: int | None

    def count(self, text: str, *, special: bool = False) -> int: ...

    def render(self, messages: list[dict[str, Any]]) -> str: ...


class _Base:
    def __init__(self, record: ModelRecord) -> None:
        from plinth.runtimes.text import ChatTemplate

        self.model = record.name
        self.digest = record.digest
        self.context_length = record.context_length
        self._template = ChatTemplate(record.chat_template)

    def render(self, messages: list[dict[str, Any]]) -> str:
        clean = [{"role": m["role"], "content": m["content"]} for m in messages]
        return self._template.render(clean, add_generation_prompt=False)


class LlamaVocabCounter(_Base):
    """llama.cpp's tokenizer of a GGUF, loaded vocabulary-only through the low-level API
    (no context is created, so nothing is allocated for inference)."""

    def __init__(self, record: ModelRecord, path: Path) -> None:
        super().__init__(record)
        from plinth.runtimes.llamacpp_tools import LlamaVocab

        self._vocab = LlamaVocab(path, name=record.name)

    def count(self, text: str, *, special: bool = False) -> int:
        return self._vocab.count(text, special=special)


class HfTokenizerCounter(_Base):
    def __init__(self, record: ModelRecord, path: Path) -> None:
        super().__init__(record)
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise PlinthError(
                ErrorCode.RUNTIME_UNAVAILABLE, "counting tokens of a safetensors model needs the tokenizers package"
            ) from None
        file = path / "tokenizer.json"
        if not file.is_file():
            raise PlinthError(ErrorCode.UNSUPPORTED, f"model {record.name!r} has no tokenizer.json")
        self._tok = Tokenizer.from_file(str(file))

    def count(self, text: str, *, special: bool = False) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)


def token_counter(record: ModelRecord, path: Path | None) -> TokenCounter:
    if path is None or record.format is ModelFormat.REMOTE:
        raise PlinthError(ErrorCode.UNSUPPORTED, f"model {record.name!r} is remote: its tokenizer is not available here")
    if record.format is ModelFormat.GGUF:
        return LlamaVocabCounter(record, path)
    return HfTokenizerCounter(record, path)


def _summary(values: list[int]) -> dict[str, Any]:
    if not values:
        return {"total": 0, "min": 0, "mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    ordered = sorted(values)
    return {
        "total": sum(ordered),
        "min": ordered[0],
        "mean": round(statistics.fmean(ordered), 2),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "max": ordered[-1],
    }


def row_key(row: dict[str, Any]) -> str:
    """The canonical JSON of a row's content (without its split): rows are compared by it."""
    content = {k: v for k, v in row.items() if k != "split"}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compute_stats(
    rows: list[dict[str, Any]],
    fmt: DatasetFormat,
    validation: set[int],
    counter: TokenCounter | None,
    *,
    counter_error: str | None = None,
    ignored_fields: Counter[str] | None = None,
) -> dict[str, Any]:
    chars = []
    messages = []
    for row in rows:
        if fmt is DatasetFormat.CHAT:
            chars.append(sum(len(m["content"]) for m in row["messages"]))
            messages.append(len(row["messages"]))
        else:
            chars.append(len(row["prompt"]) + len(row["completion"]))
    keys = Counter(row_key(r) for r in rows)
    stats: dict[str, Any] = {
        "chars": _summary(chars),
        "duplicates": sum(n - 1 for n in keys.values() if n > 1),
    }
    if messages:
        stats["messages"] = _summary(messages)
    if ignored_fields:
        stats["ignored_fields"] = dict(ignored_fields)
    if counter is None:
        stats["tokens"] = None
        stats["tokenizer"] = {"error": counter_error or "no tokenizer"}
        return stats
    totals: list[int] = []
    trained: list[int] = []
    for row in rows:
        if fmt is DatasetFormat.CHAT:
            totals.append(counter.count(counter.render(row["messages"]), special=True))
            trained.append(sum(counter.count(m["content"]) for m in row["messages"] if m["role"] == "assistant" and m.get("weight", 1)))
        else:
            p, c = counter.count(row["prompt"]), counter.count(row["completion"])
            totals.append(p + c)
            trained.append(c)
    ctx = counter.context_length
    stats["tokenizer"] = {"model": counter.model, "digest": counter.digest, "context_length": ctx}
    stats["tokens"] = _summary(totals)
    stats["trained_tokens"] = _summary(trained)
    stats["train_tokens"] = sum(t for i, t in enumerate(totals) if i not in validation)
    stats["validation_tokens"] = sum(t for i, t in enumerate(totals) if i in validation)
    stats["rows_over_context"] = sum(1 for t in totals if ctx and t > ctx)
    return stats
