"""Topic and groundedness, on the real embedded MiniLM embedder."""

from __future__ import annotations

from typing import Any

import pytest

from plinth.domain.guardrails import Direction
from plinth.guardrails.base import DetectContext, Resources
from plinth.guardrails.evaluation import evaluate, read_jsonl
from plinth.guardrails.groundedness import GroundednessDetector, GroundednessOptions, content_terms
from tests.unit.guardrails.helpers import ACME_POLICY, build_guard, shared_set


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from plinth.config import load_settings
    from plinth.embeddings import get_embedder

    return get_embedder(load_settings(home=tmp_path_factory.mktemp("emb-home")))


@pytest.fixture(scope="module")
def acme(embedder: Any) -> Any:
    return build_guard(ACME_POLICY.read_text(), embedder_factory=lambda: embedder)


def test_topic_meets_the_target_on_the_development_set(acme: Any) -> None:
    """Accuracy >= 0.90."""
    report = evaluate(acme, read_jsonl(shared_set("topic")))
    assert report.overall.as_dict()["accuracy"] >= 0.90, (report.false_positives, report.false_negatives)


@pytest.mark.parametrize(
    "text, off",
    [
        ("Is my colonoscopy covered if they remove a polyp?", False),
        ("My chest hurts and my arm is numb, what do I do?", False),  # emergencies are never refused
        ("thanks!", False),  # too short to judge
        ("Write a haiku about the ocean for my English class.", True),
        ("Which stocks should I buy this year?", True),
    ],
)
def test_topic_examples(acme: Any, text: str, off: bool) -> None:
    result = acme.check(text, Direction.INPUT, only=lambda r: r.detector.kind == "topic")
    assert result.blocked is off


PASSAGES = [
    {"text": "The Silver plan covers up to 20 physical therapy visits per calendar year. A copay of $30 applies to each visit."},
    {"text": "Prior authorization is required for MRI and CT scans. Requests are decided within 3 business days."},
]


def test_groundedness_flags_only_unsupported_sentences(embedder: Any) -> None:
    d = GroundednessDetector("groundedness", GroundednessOptions(), Resources(lambda: embedder))
    answer = (
        "The Silver plan covers up to 20 physical therapy visits each calendar year. "
        "Each visit has a $30 copay. "
        "Acupuncture is covered without limits and costs nothing."
    )
    findings = d.detect(answer, DetectContext(direction=Direction.OUTPUT, passages=PASSAGES))
    flagged = [answer[f.start : f.end] for f in findings if f.score >= 0.6]  # type: ignore[misc]
    assert flagged == ["Acupuncture is covered without limits and costs nothing."]


def test_groundedness_checks_numbers(embedder: Any) -> None:
    d = GroundednessDetector("groundedness", GroundednessOptions(), Resources(lambda: embedder))
    good = d.detect("Requests are decided within 3 business days.", DetectContext(passages=PASSAGES))[0]
    bad = d.detect("Requests are decided within 30 business days.", DetectContext(passages=PASSAGES))[0]
    assert bad.score > good.score


def test_groundedness_without_passages_finds_nothing() -> None:
    d = GroundednessDetector("groundedness", GroundednessOptions(semantic=False), Resources())
    assert d.detect("Anything at all is covered.", DetectContext()) == []
    assert content_terms("The copay is $30.00 per visit") == ({"copay", "visit"}, {"30.00"})
