"""Evaluate a served model id on a dataset version: loss, perplexity and generation metrics.

* **loss / perplexity**: the model is teacher-forced on each row's conversation and the
  cross-entropy of the assistant tokens is averaged per token — with transformers (plus
  PEFT for an adapter) for Hugging Face weights, with llama.cpp's logits for a GGUF model,
  so an exported file is measured as it is served;
* **generation**: the model answers each row's prompt (the conversation without its last
  assistant message) through the real serving runtime, greedily, and the answer is compared
  with the reference: exact match (after normalising case, punctuation, articles and
  whitespace), token F1 and ROUGE-L (longest common subsequence F-measure).

The report keeps a few predictions for people to read. When the model id is a registry
version (``acme-faq@2``, or the catalog id a version is served as), the report is stored on
that version and its model card is updated.
"""

from __future__ import annotations

import asyncio
import math
import re
import string
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from plinth.domain.tracking import EvalReport
from plinth.errors import ErrorCode, PlinthError

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalise(text: str) -> str:
    text = text.lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(pred: str, ref: str) -> float:
    return float(normalise(pred) == normalise(ref))


def token_f1(pred: str, ref: str) -> float:
    p, r = normalise(pred).split(), normalise(ref).split()
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def rouge_l(pred: str, ref: str) -> float:
    p, r = normalise(pred).split(), normalise(ref).split()
    if not p or not r:
        return float(p == r)
    prev = [0] * (len(r) + 1)
    for a in p:
        cur = [0] * (len(r) + 1)
        for j, b in enumerate(r, 1):
            cur[j] = prev[j - 1] + 1 if a == b else max(prev[j], cur[j - 1])
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def generation_scores(preds: list[str], refs: list[str]) -> dict[str, float]:
    n = max(1, len(preds))
    return {
        "exact_match": sum(exact_match(p, r) for p, r in zip(preds, refs, strict=True)) / n,
        "token_f1": sum(token_f1(p, r) for p, r in zip(preds, refs, strict=True)) / n,
        "rouge_l": sum(rouge_l(p, r) for p, r in zip(preds, refs, strict=True)) / n,
    }


# -- loss -------------------------------------------------------------------------------------
def teacher_forced_loss(services: Any, served_id: str, conversations: list[list[dict[str, Any]]], max_len: int) -> dict[str, float]:
    """Mean cross-entropy per assistant token, and perplexity."""
    base_name, _, adapter = served_id.partition(":")
    record = services.catalog.get(base_name)
    if record.format.value == "gguf" and not adapter:
        return _gguf_loss(services, record, conversations, max_len)
    return _torch_loss(services, record, adapter or None, conversations, max_len)


def _torch_loss(
    services: Any, record: Any, adapter: str | None, conversations: list[list[dict[str, Any]]], max_len: int
) -> dict[str, float]:
    import torch

    from plinth.tuning.data import collate, encode_all
    from plinth.tuning.executor import base_dir_for
    from plinth.tuning.recipes.common import labelled_loss, load_base, pad_id_of

    base_dir = base_dir_for(services, record.name)
    model, tokenizer = load_base(base_dir, "cpu")
    if adapter is not None:
        from peft import PeftModel

        ref = services.catalog.resolve_adapter(record.name, adapter, "peft-lora")
        model = PeftModel.from_pretrained(model, str(ref.path))
        causal: Any = model.base_model.model
    else:
        causal = model
    examples, _ = encode_all(tokenizer, conversations, max_len)
    total, n = 0.0, 0
    causal.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for i in range(0, len(examples), 8):
            batch = collate(examples[i : i + 8], pad_id_of(tokenizer))
            out = causal.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            s, k = labelled_loss(causal, out.last_hidden_state, batch["labels"])
            total += float(s)
            n += k
    loss = total / max(1, n)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "loss_tokens": n}


def _gguf_loss(services: Any, record: Any, conversations: list[list[dict[str, Any]]], max_len: int) -> dict[str, float]:
    """The same loss from llama.cpp's own logits of the GGUF file, as it is served."""
    import numpy as np
    from transformers import AutoTokenizer

    from plinth.tuning.data import encode_all

    path = services.catalog.model_path(record)
    # the GGUF's own tokenizer and chat template
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    examples, _ = encode_all(tokenizer, conversations, max_len)
    from plinth.runtimes.llamacpp_tools import gguf_logits

    settings = services.settings
    all_logits = gguf_logits(
        path,
        (ex.input_ids for ex in examples),
        n_ctx=max_len + 8,
        threads=settings.threads,
        extra_buffers=settings.llamacpp_extra_buffers,
    )
    total, n = 0.0, 0
    for ex, logits in zip(examples, all_logits, strict=True):
        for t in range(len(ex.input_ids) - 1):
            target = ex.labels[t + 1]
            if target == -100:
                continue
            row = logits[t]
            m = row.max()
            total += float(m + math.log(np.exp(row - m).sum()) - row[target])
            n += 1
    loss = total / max(1, n)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "loss_tokens": n}


# -- generation -------------------------------------------------------------------------------
async def _answers(
    services: Any, model_id: str, prompts: list[list[dict[str, Any]]], max_tokens: int, progress: Callable[[int, int], None]
) -> list[str]:
    from plinth.serving.protocol import ChatCompletionRequest

    out: list[str] = [""] * len(prompts)
    done = 0
    sem = asyncio.Semaphore(max(1, min(8, services.settings.max_batch_size)))

    async def one(i: int, messages: list[dict[str, Any]]) -> None:
        nonlocal done
        async with sem:
            req = ChatCompletionRequest(model=model_id, messages=messages, max_tokens=max_tokens, temperature=0.0, seed=0)
            job = await services.completions.start_chat(req)
            try:
                body = await job.collect()
            finally:
                job.close()
            out[i] = body["choices"][0]["message"]["content"]
            done += 1
            progress(done, len(prompts))

    await asyncio.gather(*(one(i, m) for i, m in enumerate(prompts)))
    return out


def evaluate(
    services: Any,
    model_id: str,
    dataset: str,
    *,
    split: str = "validation",
    max_samples: int | None = 200,
    max_tokens: int = 128,
    max_len: int = 1024,
    run_id: str | None = None,
    attach_to: tuple[str, int] | None = None,
    progress: Callable[[int, int, str], None] = lambda done, total, msg: None,
) -> EvalReport:
    """Evaluate ``model_id``; the report goes on the registry version it is (or is served as),
    or on ``attach_to`` (name, version) — an export of that version."""
    version = services.datasets.get(dataset)
    conversations = [c for c in services.datasets.load_messages(version, split) if c and c[-1]["role"] == "assistant"]
    if not conversations:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST, f"dataset {version.ref} has no {split} rows ending with an assistant answer", param="split"
        )
    if max_samples:
        conversations = conversations[:max_samples]
    served = services.models.served_id(model_id)
    services.catalog.check_model_id(served)
    progress(0, len(conversations), "teacher-forced loss")
    metrics: dict[str, Any] = dict(teacher_forced_loss(services, served, conversations, max_len))
    prompts = [c[:-1] for c in conversations]
    refs = [c[-1]["content"] for c in conversations]
    preds = asyncio.run(_answers(services, model_id, prompts, max_tokens, lambda d, t: progress(d, t, "generating answers")))
    metrics.update(generation_scores(preds, refs))
    metrics["samples"] = len(conversations)
    mv = None
    if attach_to is not None:
        mv = services.registry.version(*attach_to)
    elif services.registry is not None:
        mv = services.registry.resolve_version(model_id)
        if mv is None:
            found = services.registry.store.find_versions_by_served_id(served)
            mv = found[-1] if found else None
    samples = [
        {"prompt": p[-1]["content"] if p else "", "reference": r, "prediction": a, "rouge_l": round(rouge_l(a, r), 4)}
        for p, r, a in list(zip(prompts, refs, preds, strict=True))[:10]
    ]
    report = EvalReport(
        id=uuid.uuid4().hex,
        model=model_id,
        dataset=version.ref,
        split=split,
        metrics=metrics,
        registry_name=mv.name if mv else None,
        registry_version=mv.version if mv else None,
        run_id=run_id,
        samples=samples,
    )
    if services.registry is not None:
        return services.registry.attach_report(report)
    return services.store.add_eval_report(report)


def compare(services: Any, refs: list[str]) -> dict[str, Any]:
    """The latest report of each model id (or registry version) side by side."""
    rows = []
    keys: set[str] = set()
    for ref in refs:
        mv = services.registry.resolve_version(ref) if services.registry else None
        reports = services.registry.reports(mv.name, mv.version) if mv is not None else services.store.list_eval_reports(model=ref)
        latest = reports[0] if reports else None
        if latest:
            keys |= {k for k, v in latest.metrics.items() if isinstance(v, int | float)}
        rows.append({"model": ref, "version": mv.ref if mv else None, "report": latest.public_dict() if latest else None})
    return {"models": rows, "metrics": sorted(keys)}
