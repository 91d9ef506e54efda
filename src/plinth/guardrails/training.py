"""Train the shipped toxicity and injection classifiers from plinth's own examples.

    python -m plinth.guardrails.training            # writes src/plinth/guardrails/data/*.json
    python -m plinth.guardrails.training --check    # exit 1 if the shipped weights differ

The training data is ``examples/guardrails/training/{toxicity,injection}.jsonl`` in the
repository (written for plinth; the shared evaluation sets are never trained on). Training
is deterministic and takes a few seconds on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from plinth.guardrails.classifier import LinearModel, read_training, train

REPO = Path(__file__).resolve().parents[3]
DATA_DIR = REPO / "examples" / "guardrails" / "training"
OUT_DIR = Path(__file__).resolve().parent / "data"

#: task -> (positive label, training settings, other tasks' files used as negatives)
TASKS = {
    "toxicity": ("toxic", {"l2": 5e-4, "epochs": 400, "lr": 0.3, "positive_weight": 2.5}, ("injection",)),
    "injection": ("injection", {"l2": 2e-3, "epochs": 400, "lr": 0.3, "rule_l2_scale": 0.1, "positive_weight": 2.0}, ("toxicity",)),
}


def rules_for(task: str) -> Callable[[str, str], Iterable[str]]:
    if task == "toxicity":
        from plinth.guardrails.toxicity import rule_features
    else:
        from plinth.guardrails.injection import rule_features
    return rule_features


def build(task: str, data_dir: Path = DATA_DIR) -> LinearModel:
    positive, settings, negatives = TASKS[task]
    examples = read_training(data_dir / f"{task}.jsonl", positive)
    for other in negatives:
        # ordinary member messages (and abuse) of the other task: none is an injection
        examples += read_training(data_dir / f"{other}.jsonl", "", all_benign=True)
    model = train(examples, rules_for(task), **settings)  # type: ignore[arg-type]
    model.meta["task"] = task
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the shipped weights instead of writing")
    ap.add_argument("tasks", nargs="*", default=list(TASKS))
    args = ap.parse_args(argv)
    status = 0
    for task in args.tasks:
        model = build(task)
        path = OUT_DIR / f"{task}.json"
        text = json.dumps(model.to_json(), ensure_ascii=False, indent=0, sort_keys=False) + "\n"
        if args.check:
            shipped = json.loads(path.read_text(encoding="utf-8"))
            same = shipped["meta"].get("data") == model.meta["data"] and shipped["weights"] == model.to_json()["weights"]
            print(f"{task}: {'up to date' if same else 'DIFFERS from a fresh training run'}")
            status |= 0 if same else 1
        else:
            path.write_text(text, encoding="utf-8")
            print(f"{task}: {len(model.weights)} weights, train accuracy {model.meta['train_accuracy']}, wrote {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
