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


# -- round 4: the class-size-weighted vote, the vote/head weight and the per-process index cache --


class ToyEmbedder:
    """Fixed 2-d vectors per text (a model id of its own, so the shipped background, embedded
    by MiniLM, is not used and the cache does not mix it with another embedder)."""

    name = "toy"

    def __init__(self, table: dict[str, list[float]]) -> None:
        import uuid

        self.model_id = f"toy-{uuid.uuid4()}"
        self.table = table
        self.calls = 0

    def embed(self, texts: list[str]) -> Any:
        self.calls += 1
        rows = np.asarray([self.table[t] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_the_vote_divides_each_class_by_its_share_of_the_policy() -> None:
    """20 allowed texts and 2 denied ones, a message a little nearer the denied ones: the plain
    vote of its 7 neighbours (2 denied, 5 allowed) stays on topic; divided by each class's share
    of the policy's texts, the 2 denied neighbours count for their class and it goes off topic."""
    allowed = [f"allowed {i}" for i in range(20)]
    table = {t: [1.0, 0.0] for t in allowed} | {"denied a": [0.0, 1.0], "denied b": [0.0, 1.0], "between": [1.0, 1.05]}
    emb = ToyEmbedder(table)

    def score(class_weight: float) -> float:
        options = TopicOptions(
            allowed=allowed[:1],
            examples=allowed[1:],
            denied_examples=["denied a", "denied b"],
            background=False,
            gloss=False,
            class_weight=class_weight,
        )
        return TopicDetector("topic", options, Resources(lambda: emb)).off_topic_score("between")[0]

    q = np.asarray([1.0, 1.05]) / np.linalg.norm([1.0, 1.05])
    near_allowed, near_denied = np.exp(10 * q[0]), np.exp(10 * q[1])
    plain, weighted = score(0.0), score(1.0)
    assert plain == pytest.approx(2 * near_denied / (2 * near_denied + 5 * near_allowed), rel=1e-4)
    share_off = 2 / 22
    off, on = 2 * near_denied / share_off, 5 * near_allowed / (1 - share_off)
    assert weighted == pytest.approx(off / (off + on), rel=1e-4)
    assert weighted > 0.5 > plain
    assert emb.calls == 1 + 2  # one build for both detectors (the cache), one query each


def test_the_score_weighs_the_vote_beside_the_head(embedder: Any) -> None:
    text = "How do I register a trademark for my bakery?"
    det = detector(embedder, **INSURER)
    _vectors, _labels, head = det.index()
    assert head is not None
    q = det._query_vector(text)
    vote_only = detector(embedder, **INSURER, vote_weight=1.0).off_topic_score(text)[0]
    head_only = detector(embedder, **INSURER, vote_weight=0.0).off_topic_score(text)[0]
    assert head_only == pytest.approx(head.score(q), abs=1e-6)
    mixed = detector(embedder, **INSURER, vote_weight=0.25).off_topic_score(text)[0]
    assert mixed == pytest.approx(0.25 * vote_only + 0.75 * head_only, abs=1e-6)


def test_equal_policies_share_one_built_index_and_a_changed_example_builds_another(embedder: Any) -> None:
    from plinth.guardrails import topic

    first = detector(embedder, **COOKING)
    again = detector(embedder, **COOKING, k=9, vote_weight=0.5, min_words=2)  # per-message options: same index
    assert first.index() is again.index()
    changed = detector(embedder, **{**COOKING, "examples": [*COOKING["examples"][:-1], "How much salt goes in risotto?"]})
    assert changed.index() is not first.index()
    assert not np.array_equal(changed.index()[0], first.index()[0])
    assert detector(embedder, **COOKING, background_off_below=0.35).index() is not first.index()  # a build option
    key = topic.index_key(first.options, embedder)  # type: ignore[arg-type]
    assert key is not None and key == topic.index_key(again.options, embedder)  # type: ignore[arg-type]
    assert first.index()[0].flags.writeable is False  # shared: nobody may change it in place


def test_the_index_cache_is_bounded_and_builds_a_key_once_across_threads() -> None:
    import threading
    import time

    from plinth.guardrails import topic

    built: list[str] = []

    def build(name: str) -> Any:
        def run() -> Any:
            time.sleep(0.05)
            built.append(name)
            return (np.zeros((1, 2)), np.zeros(1), None)

        return run

    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(topic.cached_index("round4-same", build("same")))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert built == ["same"] and all(r is results[0] for r in results)
    for i in range(topic.INDEX_CACHE_SIZE + 2):
        topic.cached_index(f"round4-{i}", build(str(i)))
    assert len(topic._INDEXES) == topic.INDEX_CACHE_SIZE
    assert "round4-same" not in topic._INDEXES  # the least recently used went first
    topic.cached_index("round4-0", build("0 again"))
    assert "0 again" in built  # evicted, so built anew
    assert topic.cached_index(None, build("uncached")) is not topic.cached_index(None, build("uncached"))
