"""The topic detector's background of everyday requests (ADR 0127): shipped for the embedder in
use, sided with each policy by similarity, a class-balanced head trained on it, and the
generated texts kept away from the evaluation sets. Real MiniLM embedder, no mocks."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from plinth.guardrails.base import DetectContext, Resources
from plinth.guardrails.classifier import data_digest, train_head
from plinth.guardrails.topic import TopicDetector, TopicOptions, packaged_background
from tests.unit.guardrails.helpers import REPO, shared_set

GENERATED = REPO / "examples" / "guardrails" / "training" / "generated-topic.jsonl"

#: a cooking site's policy, as rich as a shipped one (a handful of texts would leave most cooking
#: requests below ``background_off_below``: ADR 0127 says so)
COOKING = {
    "allowed": [
        "cooking, recipes, baking and kitchen techniques",
        "ingredients, seasoning, sauces and meal planning",
        "pasta, bread, pastry and dough",
        "kitchen equipment, knives and pans",
    ],
    "examples": [
        "How long do I roast a chicken?",
        "What can I cook with lentils?",
        "How do I make a pie crust flaky?",
        "How do I make gnocchi from scratch?",
        "Why does my bread dough not rise?",
        "Which pan is best for searing steak?",
        "Give me a recipe for tomato soup.",
        "How much salt goes in pasta water?",
    ],
    "denied": ["health insurance, claims and medical bills"],
    "denied_examples": ["Is my knee surgery covered by my plan?"],
}
INSURER = {
    "allowed": ["health insurance coverage, claims, bills, providers and pharmacy", "medical care and where to get it"],
    "examples": ["Is my knee surgery covered?", "How do I appeal a denied claim?", "Which pharmacies are in network?"],
}


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from plinth.config import load_settings
    from plinth.embeddings import get_embedder

    return get_embedder(load_settings(home=tmp_path_factory.mktemp("emb-home")))


def detector(embedder: Any, **options: Any) -> TopicDetector:
    return TopicDetector("topic", TopicOptions(**options), Resources(lambda: embedder))


def off(det: TopicDetector, text: str) -> float:
    return det.detect(text, DetectContext())[0].score


def test_the_background_is_shipped_for_the_embedder_in_use_and_is_the_generated_data(embedder: Any) -> None:
    protos = packaged_background()
    assert protos is not None and protos.embedder == embedder.model_id
    rows = [json.loads(line) for line in GENERATED.read_text(encoding="utf-8").splitlines() if line]
    assert {r["label"] for r in rows} == {"background"}
    assert len({r["domain"] for r in rows}) >= 40  # many domains and languages, not a handful
    assert protos.meta["data"] == data_digest([(r["text"], 0) for r in rows])
    assert len(protos.vectors) == len(rows)


def test_the_policy_sides_the_background(embedder: Any) -> None:
    """The same background text is on topic for a cooking site and off topic for an insurer."""
    cooking, insurer = detector(embedder, **COOKING), detector(embedder, **INSURER)
    for det, off_label in ((cooking, 0.0), (insurer, 1.0)):
        vectors, labels, head = det.index()
        assert head is not None
        sided = det.background(vectors, labels, embedder.model_id)
        assert sided is not None
        matrix, sided_labels = sided
        pasta = embedder.embed(["How do I make fresh pasta by hand?"])[0]
        nearest = int(np.argmax(matrix @ pasta))
        assert float(matrix[nearest] @ pasta) > 0.8  # the generator wrote that request
        assert sided_labels[nearest] == off_label, det.options
    assert off(cooking, "What's a good way to make fresh pasta by hand?") < 0.5
    assert off(insurer, "What's a good way to make fresh pasta by hand?") >= 0.5


def test_the_background_can_be_switched_off(embedder: Any) -> None:
    det = detector(embedder, **INSURER, background=False)
    assert det.index()[2] is None
    assert det.background(det.index()[0], det.index()[1], embedder.model_id) is None


@pytest.mark.parametrize(
    "text",
    [
        "Can you recommend a good tent for camping in the rain?",
        "How do I register a trademark for my bakery?",
        "What's the best way to learn the violin as an adult?",
        "Wie wechsle ich die Zündkerzen an meinem Motorrad?",
    ],
)
def test_a_subject_the_policy_never_names_falls_off_topic(embedder: Any, text: str) -> None:
    """The insurer policy here names no denied subject at all: distance decides."""
    assert off(detector(embedder, **INSURER), text) >= 0.5


@pytest.mark.parametrize(
    "text",
    ["Does my plan cover a CPAP machine for sleep apnea?", "Who do I call about a bill from the anesthesiologist?"],
)
def test_insurer_questions_stay_on_topic_with_the_background(embedder: Any, text: str) -> None:
    assert off(detector(embedder, **INSURER), text) < 0.5


def test_a_balanced_head_does_not_drown_the_small_class() -> None:
    rng = np.random.default_rng(0)
    small = rng.normal([1.0, 0.0], 0.3, size=(5, 2))
    large = rng.normal([-1.0, 0.0], 0.3, size=(500, 2))
    x, y = np.concatenate([small, large]), [0] * 5 + [1] * 500
    balanced = train_head(x, y, embedder="toy", balanced=True, epochs=300)
    assert balanced.score(np.array([0.4, 0.0])) < 0.5  # nearer the small class's side
    plain = train_head(x, y, embedder="toy", epochs=300)
    assert plain.score(np.array([0.4, 0.0])) > balanced.score(np.array([0.4, 0.0]))


def test_generated_background_texts_are_not_close_to_evaluation_texts() -> None:
    """Word overlap below 0.6 with every dev and held-out text (the generator drops the rest)."""
    import re

    def words(t: str) -> set[str]:
        return set(re.findall(r"\w\w+", t.lower()))

    folders = [shared_set("topic").parent, *(REPO / "bench" / "data").glob("guardrails-heldout*")]
    evaluation = [
        words(json.loads(line)["text"])
        for f in folders
        for p in f.glob("*.jsonl")
        for line in p.read_text(encoding="utf-8").splitlines()
        if line
    ]
    for line in GENERATED.read_text(encoding="utf-8").splitlines():
        a = words(json.loads(line)["text"])
        assert all(len(a & b) / len(a | b) < 0.6 for b in evaluation if a | b), line
