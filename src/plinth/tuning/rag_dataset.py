"""Retrieval-augmented training data: a knowledge base plus question/answer pairs -> chat
examples whose prompt carries retrieved passages, so an adapter learns to copy from its context.

For each pair of the question/answer dataset (its last user message and the assistant's
answer), the question is searched in the knowledge base as the serving path searches it, and
the example's system message is the retrieval stage's own (:data:`plinth.rag.stage.TEMPLATE`
with numbered :data:`~plinth.rag.stage.PASSAGE` blocks), so training and serving prompts look
the same:

* **answerable** examples: the retrieved passages plus ``distractors`` passages retrieved for
  other questions, shuffled; the target is the pair's answer followed by the citation of the
  passage that supports it (``[2]``). The supporting passage is the one holding every figure
  of the answer (amounts, percentages, counts) and most of its words; a pair whose answer no
  retrieved passage supports is dropped (counted in ``dropped_unsupported``) rather than
  taught as an answer the context does not give.
* **unanswerable** examples (``unanswerable_share`` of the pairs, chosen by the seed): the
  question with passages retrieved for other questions, none holding the answer's figures;
  the target is :data:`REFUSAL`.

Each row keeps its pair's train/validation side, so the derived version has no leakage the
source did not have. The rows are added as a version of dataset ``name`` whose
``source_name`` names the knowledge base version and the source dataset version (its
lineage) and whose ``note`` records the builder's options. Everything is deterministic for a
seed: building again adds no version.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plinth.errors import ErrorCode, PlinthError

REFUSAL = "I don't know: the passages do not say. Please contact member services."
_WORD = re.compile(r"[a-z0-9$%][a-z0-9$%,.\-]*[a-z0-9%]|[a-z0-9$%]")
_STOP = frozenset(
    "a an the of to in on for and or is are be by with your you it its at as this that from per each can if not no do does "
    "i my me we our what how when which who will".split()
)


@dataclass
class BuildStats:
    pairs: int = 0
    answerable: int = 0
    unanswerable: int = 0
    dropped_unsupported: int = 0
    dropped_no_question: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def support(answer: str, passage: str) -> tuple[float, float]:
    """(share of the answer's figures in the passage, share of its content words in it)."""
    from plinth.tuning.assistant_eval import contains, figures

    figs = figures(answer)
    fig_share = sum(contains(passage, f) for f in figs) / len(figs) if figs else 1.0
    words = _words(answer)
    word_share = len(words & _words(passage)) / len(words) if words else 0.0
    return fig_share, word_share


def format_system(kb_name: str, passages: list[dict[str, Any]]) -> str:
    """The retrieval stage's system message for these passages, numbered from 1."""
    from plinth.rag.stage import PASSAGE, TEMPLATE

    block = "\n\n".join(
        PASSAGE.format(n=n, document=p["document"], heading=p.get("heading") or "(top)", text=str(p["text"]).strip())
        for n, p in enumerate(passages, start=1)
    )
    return TEMPLATE.format(kb=kb_name, passages=block)


def build_examples(
    pairs: list[tuple[str, str, str]],
    retrieved: dict[str, list[dict[str, Any]]],
    kb_name: str,
    *,
    unanswerable_share: float,
    distractors: int,
    seed: int,
    refusal: str = REFUSAL,
    min_word_share: float = 0.3,
) -> tuple[list[dict[str, Any]], BuildStats]:
    """The rows, from (question, answer, split) pairs and each question's retrieved passages
    (dicts with ``document``, ``heading``, ``text``, ``chunk_id``). Pure: no I/O."""
    rng = random.Random(seed)
    stats = BuildStats(pairs=len(pairs))
    questions = [q for q, _, _ in pairs]
    n_unanswerable = round(len(pairs) * unanswerable_share)
    unanswerable = set(rng.sample(range(len(pairs)), n_unanswerable)) if n_unanswerable else set()
    rows: list[dict[str, Any]] = []

    def others(i: int, answer: str, n: int, exclude: set[Any]) -> list[dict[str, Any]]:
        """``n`` passages retrieved for other questions, none holding the answer's figures."""
        picked: list[dict[str, Any]] = []
        for _ in range(50 * max(1, n)):
            if len(picked) >= n:
                break
            j = rng.randrange(len(questions))
            if questions[j] == questions[i] or not retrieved.get(questions[j]):
                continue
            p = rng.choice(retrieved[questions[j]])
            key = p.get("chunk_id", p["text"])
            if key in exclude or answers_it(answer, p["text"]):
                continue
            exclude.add(key)
            picked.append(p)
        return picked

    for i, (question, answer, split) in enumerate(pairs):
        if not question.strip():
            stats.dropped_no_question += 1
            continue
        found = retrieved.get(question) or []
        meta: dict[str, Any]
        if i in unanswerable:
            context = others(i, answer, max(1, len(found)) + distractors, set())
            target, meta = refusal, {"kind": "unanswerable"}
            stats.unanswerable += 1
        else:
            scored = [(support(answer, p["text"]), k) for k, p in enumerate(found)]
            good = [(s, k) for s, k in scored if s[0] == 1.0 and s[1] >= min_word_share]
            if not good:
                stats.dropped_unsupported += 1
                continue
            gold = found[max(good)[1]]
            context = list(found) + others(i, answer, distractors, {p.get("chunk_id", p["text"]) for p in found})
            rng.shuffle(context)
            n = next(k for k, p in enumerate(context, start=1) if p is gold)
            target, meta = f"{answer.rstrip()} [{n}]", {"kind": "answerable", "document": gold["document"]}
            stats.answerable += 1
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": format_system(kb_name, context)},
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": target},
                ],
                "split": split,
                "metadata": {**meta, "pair": i},
            }
        )
    return rows, stats


def answers_it(answer: str, text: str) -> bool:
    """Whether a passage holds the answer: all its figures (when it has any), else most of its words."""
    from plinth.tuning.assistant_eval import figures

    fig_share, word_share = support(answer, text)
    return fig_share == 1.0 if figures(answer) else word_share >= 0.6


def build_rag_dataset(
    services: Any,
    dataset: str,
    knowledge_base: str,
    *,
    name: str | None = None,
    unanswerable_share: float = 0.2,
    distractors: int = 2,
    passages: int = 3,
    seed: int = 0,
    refusal: str = REFUSAL,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Any, BuildStats]:
    """Build the rows from ``dataset`` (a question/answer dataset version) and
    ``knowledge_base`` (pinned to its version), and add them as a version of ``name``
    (default ``<dataset>-rag``); returns the version and the counts."""
    from plinth.tempfiles import owned_temp

    source = services.datasets.get(dataset)
    kb, kb_version = services.knowledge.resolve(knowledge_base)
    kb_ref = f"{kb.name}@{kb_version}"
    pairs: list[tuple[str, str, str]] = []
    for row in services.datasets.load_rows(source, "all"):
        messages = row.get("messages") or [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}]
        question = next((m["content"] for m in reversed(messages[:-1]) if m["role"] == "user"), "")
        pairs.append((question, messages[-1]["content"], row.get("split", "train")))
    if not pairs:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"dataset {source.ref} has no rows", param="dataset")
    retrieved: dict[str, list[dict[str, Any]]] = {}
    unique = sorted({q for q, _, _ in pairs if q.strip()})
    for done, q in enumerate(unique, start=1):
        result = services.knowledge.search(kb_ref, q, k=passages)
        retrieved[q] = [p.as_dict() for p in (result.relevant or result.passages)]
        if progress is not None:
            progress(done, len(unique))
    rows, stats = build_examples(
        pairs, retrieved, kb.name, unanswerable_share=unanswerable_share, distractors=distractors, seed=seed, refusal=refusal
    )
    if not any(r["split"] == "train" for r in rows):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"no training example could be built from {source.ref} and {kb_ref}: "
            f"{stats.dropped_unsupported} answers are not supported by any retrieved passage",
            param="rag_dataset",
        )
    options = {
        "knowledge_base": kb_ref,
        "source": source.ref,
        "unanswerable_share": unanswerable_share,
        "distractors": distractors,
        "passages": passages,
        "seed": seed,
        **stats.as_dict(),
    }
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode("utf-8")
    with owned_temp(services.settings.artifacts_dir / "tmp", prefix="rag-dataset-", suffix=".jsonl") as tmp:
        tmp.file.write(data)
        tmp.file.flush()
        version, _ = services.datasets.add(
            tmp.path,
            name or f"{source.dataset}-rag",
            source_format="jsonl",
            validation_fraction=0.0,
            seed=seed,
            source_name=f"rag: {kb_ref} + {source.ref}",
            note=json.dumps(options, sort_keys=True),
            description=f"retrieval-augmented examples built from {source.dataset} and knowledge base {kb.name}",
        )
    return version, stats
