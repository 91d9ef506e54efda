"""Train the shipped toxicity and injection classifiers from plinth's own examples.

    python -m plinth.guardrails.training            # writes src/plinth/guardrails/data/*.json
    python -m plinth.guardrails.training --check    # exit 1 if the shipped weights differ

The training data is ``examples/guardrails/training/{toxicity,injection}.jsonl`` in the
repository (written for plinth), ``generated-{toxicity,injection}.jsonl`` beside them
(generated from templates and transformations by ``scripts/guardrails_training_data.py``) and
the reference application's member questions (``examples/acme-health/faq.jsonl``, all
benign); the shared evaluation sets and plinth's held-out sets are never trained on.

Each task gets two files: ``<task>.json``, the linear n-gram + rule model, and
``<task>-semantic.json``, a logistic head on the MiniLM sentence embeddings of the same
texts (ADR 0116); injection also ``<task>-prototypes.npz``, those embeddings themselves
(int8) with their labels, for a nearest-neighbour vote (ADR 0125). The topic detector's
off-topic background, ``topic-background.npz``, is the embeddings of
``generated-topic.jsonl`` (ADR 0127; ``topic`` below). Training is deterministic and takes
about half a minute on a CPU (most of it embedding the texts).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from plinth.guardrails.classifier import EmbeddingHead, LinearModel, PrototypeSet, data_digest, read_training, train, train_head

REPO = Path(__file__).resolve().parents[3]
DATA_DIR = REPO / "examples" / "guardrails" / "training"
FAQ = REPO / "examples" / "acme-health" / "faq.jsonl"
OUT_DIR = Path(__file__).resolve().parent / "data"

#: tasks that ship their training texts' embeddings as a third, nearest-neighbour voter
#: (chosen on the development set and the first held-out set, ADR 0125: it halved the injection
#: false positives there and cost toxicity recall)
PROTOTYPE_TASKS = ("injection",)
#: task -> (positive label, training settings, other tasks' files used as negatives)
TASKS = {
    "toxicity": ("toxic", {"l2": 5e-4, "epochs": 400, "lr": 0.3, "positive_weight": 2.5}, ("injection",)),
    "injection": ("injection", {"l2": 2e-3, "epochs": 400, "lr": 0.3, "rule_l2_scale": 0.1, "positive_weight": 2.0}, ("toxicity",)),
}
#: the topic detector's background of everyday off-topic requests (ADR 0127)
TOPIC_BACKGROUND = "generated-topic.jsonl"
#: weights of a head trained on another CPU differ in the last digits (the embeddings do)
HEAD_TOLERANCE = 2e-3


def rules_for(task: str) -> Callable[[str, str], Iterable[str]]:
    if task == "toxicity":
        from plinth.guardrails.toxicity import rule_features
    else:
        from plinth.guardrails.injection import rule_features
    return rule_features


def examples_for(task: str, data_dir: Path = DATA_DIR) -> list[tuple[str, int]]:
    positive, _settings, negatives = TASKS[task]
    examples = read_training(data_dir / f"{task}.jsonl", positive)
    generated = data_dir / f"generated-{task}.jsonl"
    if generated.is_file():
        # templates x slots x transformations x languages (scripts/guardrails_training_data.py)
        examples += read_training(generated, positive)
    if FAQ.is_file():
        # the reference application's member questions: none is abuse or an injection
        for line in FAQ.read_text(encoding="utf-8").splitlines():
            if line.strip():
                examples.append((json.loads(line)["messages"][0]["content"], 0))
    for other in negatives:
        # ordinary member messages (and abuse) of the other task: none is an injection
        examples += read_training(data_dir / f"{other}.jsonl", "", all_benign=True)
    return examples


def build(task: str, data_dir: Path = DATA_DIR) -> LinearModel:
    _positive, settings, _negatives = TASKS[task]
    model = train(examples_for(task, data_dir), rules_for(task), **settings)  # type: ignore[arg-type]
    model.meta["task"] = task
    return model


def build_head(task: str, embedder: object, data_dir: Path = DATA_DIR) -> EmbeddingHead:
    return build_semantic(task, embedder, data_dir)[0]


def build_semantic(task: str, embedder: object, data_dir: Path = DATA_DIR) -> tuple[EmbeddingHead, PrototypeSet | None]:
    """The semantic head and, for PROTOTYPE_TASKS, the prototype set, from one embedding pass."""
    examples = examples_for(task, data_dir)
    vectors = embedder.embed([t for t, _ in examples])  # type: ignore[attr-defined]
    labels = [y for _, y in examples]
    head = train_head(vectors, labels, embedder=embedder.model_id)  # type: ignore[attr-defined]
    head.meta["task"] = task
    head.meta["data"] = data_digest(examples)
    protos = None
    if task in PROTOTYPE_TASKS:
        protos = PrototypeSet.build(vectors, labels, embedder=embedder.model_id)  # type: ignore[attr-defined]
        protos.meta["task"] = task
        protos.meta["data"] = head.meta["data"]
    return head, protos


def topic_background_texts(data_dir: Path = DATA_DIR) -> list[str]:
    path = data_dir / TOPIC_BACKGROUND
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if any(r.get("label") != "background" for r in rows):
        raise ValueError(f"{path.name}: every background text must be labelled 'background' (a policy sides them)")
    return [r["text"] for r in rows]


def build_topic_background(embedder: object, data_dir: Path = DATA_DIR) -> PrototypeSet:
    """The embeddings of the background texts (labels all 0: unlabelled, a policy sides them)."""
    texts = topic_background_texts(data_dir)
    vectors = embedder.embed(texts)  # type: ignore[attr-defined]
    protos = PrototypeSet.build(vectors, [0] * len(texts), embedder=embedder.model_id)  # type: ignore[attr-defined]
    protos.meta["task"] = "topic-background"
    protos.meta["data"] = data_digest([(t, 0) for t in texts])
    return protos


def _same_prototypes(path: Path, fresh: PrototypeSet) -> bool:
    """Same data, labels and (within one int8 step, embeddings differ across CPUs) vectors."""
    import numpy as np

    if not path.is_file():
        return False
    shipped = PrototypeSet.load(path)
    if shipped.meta.get("data") != fresh.meta.get("data") or shipped.embedder != fresh.embedder:
        return False
    a = shipped.vectors.astype(np.float32) * shipped.scale
    b = fresh.vectors.astype(np.float32) * fresh.scale
    return bool(np.array_equal(shipped.labels, fresh.labels) and np.abs(a - b).max() <= 2 * max(shipped.scale, fresh.scale))


def _embedder() -> object:
    from plinth.embeddings.minilm import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    embedder.load()
    return embedder


def _same_head(shipped: dict[str, object], head: EmbeddingHead) -> bool:
    fresh = head.to_json()
    if shipped.get("embedder") != fresh["embedder"] or shipped["meta"].get("data") != fresh["meta"]["data"]:  # type: ignore[attr-defined]
        return False
    pairs = zip(shipped["weights"], fresh["weights"], strict=True)  # type: ignore[call-overload]
    return abs(float(shipped["bias"]) - fresh["bias"]) <= HEAD_TOLERANCE and all(abs(a - b) <= HEAD_TOLERANCE for a, b in pairs)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the shipped weights instead of writing")
    ap.add_argument("--no-semantic", action="store_true", help="only the linear models (no embedder needed)")
    ap.add_argument("tasks", nargs="*", default=[*TASKS, "topic"])
    args = ap.parse_args(argv)
    status = 0
    embedder = None if args.no_semantic else _embedder()
    for task in args.tasks:
        if task == "topic":
            if embedder is not None:
                status |= _topic(embedder, check=args.check)
            continue
        model = build(task)
        path = OUT_DIR / f"{task}.json"
        text = json.dumps(model.to_json(), ensure_ascii=False, indent=0, sort_keys=False) + "\n"
        head, protos = build_semantic(task, embedder) if embedder is not None else (None, None)
        head_path = OUT_DIR / f"{task}-semantic.json"
        protos_path = OUT_DIR / f"{task}-prototypes.npz"
        if args.check:
            shipped = json.loads(path.read_text(encoding="utf-8"))
            same = shipped["meta"].get("data") == model.meta["data"] and shipped["weights"] == model.to_json()["weights"]
            print(f"{task}: {'up to date' if same else 'DIFFERS from a fresh training run'}")
            status |= 0 if same else 1
            if head is not None:
                same_head = head_path.is_file() and _same_head(json.loads(head_path.read_text(encoding="utf-8")), head)
                print(f"{task} semantic head: {'up to date' if same_head else 'DIFFERS from a fresh training run'}")
                status |= 0 if same_head else 1
            if protos is not None:
                same_protos = _same_prototypes(protos_path, protos)
                print(f"{task} prototypes: {'up to date' if same_protos else 'DIFFER from a fresh training run'}")
                status |= 0 if same_protos else 1
        else:
            path.write_text(text, encoding="utf-8")
            print(f"{task}: {len(model.weights)} weights, train accuracy {model.meta['train_accuracy']}, wrote {path}")
            if head is not None:
                head_path.write_text(json.dumps(head.to_json(), ensure_ascii=False) + "\n", encoding="utf-8")
                print(f"{task} semantic head: train accuracy {head.meta['train_accuracy']}, wrote {head_path}")
            if protos is not None:
                protos.save(protos_path)
                print(f"{task} prototypes: {protos.meta['examples']} texts, wrote {protos_path}")
    return status


def _topic(embedder: object, *, check: bool) -> int:
    protos = build_topic_background(embedder)
    path = OUT_DIR / "topic-background.npz"
    if check:
        same = _same_prototypes(path, protos)
        print(f"topic background: {'up to date' if same else 'DIFFERS from a fresh build'}")
        return 0 if same else 1
    protos.save(path)
    print(f"topic background: {protos.meta['examples']} texts, wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
