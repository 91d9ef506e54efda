"""The closed retraining loop's pipeline actions (issue 15, ADR 0106).

``dataset_from_requests``
    A new version of a dataset from a deployment's production questions: the flagged (or all)
    logged prompts of a window, as the request log keeps them (redacted text; entries without
    text are skipped), each labelled with the answer the deployment's knowledge base supports
    (the best-matching sentence or table row of the top retrieved passages: an extractive
    answer, not the model's; a question whose best passage is under the knowledge base's
    relevance floor is skipped). A question whose logged answer was rated negative is skipped;
    one rated positive keeps its logged (redacted) answer. The rows are merged with the base
    dataset (``base: acme-faq@1``) and added through the datasets service. Outputs the
    ``dataset`` (``name@version``), the counts and the deployment's ``production`` model (what
    the candidate is gated against).
``gate_vs_production``
    Fails unless the candidate's metric is at most ``max_drop`` below the production model's
    (``higher_is_better: false`` for losses: at most ``max_drop`` above).
``ingest_knowledge_base``
    Re-ingest ``paths`` (files or folders) into a knowledge base: a new version when anything changed.

They reach the platform only through the services object the runner hands them (requests,
knowledge, datasets, deployments), so this module imports no other area.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plinth.automation.pipelines import Action, ActionCall, register_action
from plinth.errors import ErrorCode, PlinthError
from plinth.oversight.drift import STOPWORDS, words

#: weight of the shared content words against the cosine when picking the answer's piece
LEXICAL_WEIGHT = 0.1
#: the most rows one call adds (the base dataset's rows are not counted)
MAX_ADDED = 5000
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_HEADING_RE = re.compile(r"^\s*#+\s")


def _service(services: Any, name: str) -> Any:
    s = getattr(services, name, None)
    if s is None:
        raise PlinthError(ErrorCode.UNSUPPORTED, f"the {name} service is not available on this server")
    return s


def _text_param(spec: dict[str, Any], key: str, default: str | None = None) -> str:
    value = spec.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"spec.{key} must be a non-empty string", param=f"spec.{key}")
    return value


def _int_param(spec: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"spec.{key} must be an integer from {lo} to {hi}", param=f"spec.{key}")
    return value


# -- extractive answers ----------------------------------------------------------------------------
def _row_cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def candidates(passage: str) -> list[str]:
    """The answer-sized pieces of a passage: its sentences, and each table row as
    "header: cell" pairs (the header row and the separator row are not candidates)."""
    out: list[str] = []
    header: list[str] | None = None
    prose: list[str] = []

    def flush() -> None:
        text = " ".join(prose).strip()
        prose.clear()
        out.extend(s.strip() for s in _SENTENCE_RE.split(text) if len(s.strip().split()) >= 3)

    for line in passage.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            flush()
            cells = _row_cells(stripped)
            if all(set(c) <= set("-: ") for c in cells):
                continue  # the separator row
            if header is None:
                header = cells
                continue
            if len(cells) == len(header):
                out.append("; ".join(f"{h}: {c}" if h else c for h, c in zip(header, cells, strict=True) if c) + ".")
            else:
                out.append(", ".join(c for c in cells if c) + ".")
            continue
        header = None
        if not stripped or _HEADING_RE.match(stripped):
            flush()
            continue
        prose.append(stripped)
    flush()
    return out


@dataclass(frozen=True)
class Answer:
    text: str
    score: float  # the best passage's similarity
    document: str


def extractive_answer(knowledge: Any, kb: str, question: str, *, k: int = 3) -> Answer | None:
    """The sentence or table row of the top ``k`` relevant passages most like the question
    (cosine of the knowledge base's own embeddings, plus a small bonus for the question's content
    words it shares); None when no passage reaches the floor."""
    result = knowledge.search(kb, question, k=k)
    relevant = result.relevant
    if not relevant:
        return None
    pieces: list[tuple[str, str]] = []
    for p in relevant:
        pieces.extend((c, p.document) for c in candidates(p.text))
    if not pieces:
        return None
    emb = knowledge.embedder_for(knowledge.get(result.knowledge_base))
    vecs = np.asarray(emb.embed([question, *(c for c, _ in pieces)]), dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1)
    norms[norms == 0] = 1.0
    vecs = vecs / norms[:, None]
    # the question's content words a piece shares break near ties of the embedding (a long
    # question's preamble pulls the embedding towards generic pieces)
    asked = set(words(question)) - STOPWORDS

    def overlap(piece: str) -> float:
        content = set(words(piece)) - STOPWORDS
        return len(content & asked) / max(1, len(content)) ** 0.5

    sims = vecs[1:] @ vecs[0] + LEXICAL_WEIGHT * np.array([overlap(c) for c, _ in pieces], dtype=np.float32)
    best = int(np.argmax(sims))
    return Answer(pieces[best][0], max(p.similarity for p in relevant), pieces[best][1])


# -- dataset_from_requests --------------------------------------------------------------------------
def _deployment_kb_and_model(services: Any, deployment: str) -> tuple[str | None, str]:
    deployments = _service(services, "deployments")
    dep = deployments.get(deployment)
    rev = deployments.revision(deployment, dep.stable_revision)
    kb = next((t.knowledge_base for t in rev.targets if t.knowledge_base), None)
    model = rev.targets[0].model if rev.targets else ""
    return kb, model


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _dataset_from_requests(spec: dict[str, Any], services: Any, call: ActionCall) -> dict[str, Any]:
    deployment = _text_param(spec, "deployment")
    base = _text_param(spec, "base")
    select = spec.get("select", "flagged")
    if select not in ("flagged", "window"):
        raise PlinthError(
            ErrorCode.INVALID_REQUEST, "spec.select: flagged (anomalous prompts) or window (every prompt)", param="spec.select"
        )
    window = _text_param(spec, "window", "1d")
    limit = _int_param(spec, "limit", 1000, 1, MAX_ADDED)
    top_k = _int_param(spec, "passages", 3, 1, 20)
    requests = _service(services, "requests")
    knowledge = _service(services, "knowledge")
    datasets = _service(services, "datasets")
    kb_default, production = _deployment_kb_and_model(services, deployment)
    kb = spec.get("knowledge_base") or kb_default
    if not isinstance(kb, str) or not kb:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"deployment {deployment!r} has no knowledge base to label questions with: give spec.knowledge_base",
            param="spec.knowledge_base",
        )
    base_version = datasets.get(base)
    name = spec.get("dataset") or base_version.dataset
    if not isinstance(name, str):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "spec.dataset: the dataset to add a version to", param="spec.dataset")

    query = requests.query(deployment=deployment, since=window, until=call.now, flagged=True if select == "flagged" else None, outcome="ok")
    counts = {"logged": 0, "no_text": 0, "negative_feedback": 0, "duplicate": 0, "unsupported": 0, "from_feedback": 0, "from_kb": 0}
    # positively rated entries first, so a question asked twice keeps its rated answer
    entries = sorted(requests.store.iter_request_logs(query), key=lambda e: -(e.feedback or 0))
    seen = {_normal(m[0]["content"]) for m in datasets.load_messages(base_version, "all") if m and m[0].get("role") == "user"}
    added: list[dict[str, Any]] = []
    for e in entries:
        counts["logged"] += 1
        if len(added) >= limit:
            break
        question = (e.prompt_text or "").strip()
        if not question:
            counts["no_text"] += 1
            continue
        if e.feedback is not None and e.feedback < 0:
            counts["negative_feedback"] += 1
            continue
        key = _normal(question)
        if key in seen:
            counts["duplicate"] += 1
            continue
        if e.feedback is not None and e.feedback > 0 and (e.response_text or "").strip():
            answer, source = (e.response_text or "").strip(), "feedback"
        else:
            found = extractive_answer(knowledge, kb, question, k=top_k)
            if found is None:
                counts["unsupported"] += 1
                continue
            answer, source = found.text, "kb"
        seen.add(key)
        counts[f"from_{source}"] += 1
        added.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    if not added:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"no {'flagged ' if select == 'flagged' else ''}question of {deployment!r} in the last {window} has an answer "
            f"{kb!r} supports ({', '.join(f'{k} {v}' for k, v in counts.items())})",
            details={"counts": counts},
        )
    rows = [{"messages": m} for m in datasets.load_messages(base_version, "all")] + added
    blob = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode("utf-8")
    fraction = float(base_version.split.get("validation_fraction", 0.1)) if isinstance(base_version.split, dict) else 0.1
    version, _new = datasets.add_bytes(
        blob,
        name,
        filename=f"{name}-from-requests.jsonl",
        validation_fraction=fraction,
        note=f"pipeline run {call.run_id}: {base_version.ref} + {len(added)} {select} questions of {deployment} "
        f"({window}) labelled by {kb}",
    )
    return {
        "dataset": version.ref,
        "name": version.dataset,
        "version": version.version,
        "base": base_version.ref,
        "rows": version.rows,
        "added": len(added),
        "knowledge_base": kb,
        "deployment": deployment,
        "production": production,
        **counts,
    }


# -- gate_vs_production -----------------------------------------------------------------------------
def _number(spec: dict[str, Any], key: str) -> float:
    v = spec.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"spec.{key} must be a number (an evaluation's metric)", param=f"spec.{key}")
    return float(v)


def _gate_vs_production(spec: dict[str, Any], services: Any, call: ActionCall) -> dict[str, Any]:
    metric = _text_param(spec, "metric", "token_f1")
    candidate, production = _number(spec, "candidate"), _number(spec, "production")
    max_drop = _number({"max_drop": spec.get("max_drop", 0.0)}, "max_drop")
    higher = spec.get("higher_is_better", True)
    if not isinstance(higher, bool):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "spec.higher_is_better must be true or false", param="spec.higher_is_better")
    delta = candidate - production
    passed = delta >= -max_drop if higher else delta <= max_drop
    if not passed:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"the candidate's {metric} {candidate:.4g} is worse than production's {production:.4g} by more than {max_drop:g}",
            details={"metric": metric, "candidate": candidate, "production": production},
        )
    return {"passed": True, "metric": metric, "candidate": candidate, "production": production, "delta": delta}


# -- ingest_knowledge_base --------------------------------------------------------------------------
def _ingest(spec: dict[str, Any], services: Any, call: ActionCall) -> dict[str, Any]:
    name = _text_param(spec, "knowledge_base")
    paths = spec.get("paths")
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "spec.paths: files or folders to ingest", param="spec.paths")
    missing = [p for p in paths if not Path(p).expanduser().exists()]
    if missing:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"spec.paths: {', '.join(missing)} does not exist", param="spec.paths")
    report = _service(services, "knowledge").add_paths(name, [Path(p).expanduser() for p in paths])
    out = report.as_dict()
    return {"knowledge_base": name, "version": out["version"], "changed": out["changed"], "counts": out["counts"]}


register_action(
    Action(
        "dataset_from_requests",
        _dataset_from_requests,
        "a new version of spec.dataset: spec.base plus the flagged production questions of spec.deployment "
        "(redacted) labelled with what its knowledge base supports",
        cacheable=False,
    )
)
register_action(
    Action(
        "gate_vs_production",
        _gate_vs_production,
        "gate: fail unless spec.candidate is at most spec.max_drop worse than spec.production (spec.metric)",
    )
)
register_action(Action("ingest_knowledge_base", _ingest, "re-ingest spec.paths into spec.knowledge_base (a new version)", cacheable=False))
