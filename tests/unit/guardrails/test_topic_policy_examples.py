"""A topic rule carries its deployment's own on-topic examples inline (ADR 0127, round 3): the
option parses, bad values are a 400 that names the rule and the option, the shipped acme-health
policy holds its FAQ member questions except those that repeat an evaluation item, and those
examples move a borderline member question on topic with the real MiniLM. No mocks."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from plinth.errors import ErrorCode, PlinthError
from plinth.guardrails.base import Resources
from plinth.guardrails.policy import canonical, validate_policy
from plinth.guardrails.topic import TopicDetector, TopicOptions
from tests.unit.guardrails.helpers import ACME_POLICY, REPO, shared_set

FAQ = REPO / "examples" / "acme-health" / "faq.jsonl"
HELD_OUT = sorted((REPO / "bench" / "data").glob("guardrails-heldout*/topic.jsonl"))
#: the policy's hand-written examples come before the FAQ block (the last one of them)
LAST_HAND_WRITTEN = "我的保险包括体检吗？"


def topic_rule(doc: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in doc["rules"] if r["detector"] == "topic")


def acme_doc() -> dict[str, Any]:
    return yaml.safe_load(ACME_POLICY.read_text(encoding="utf-8"))


def faq_questions() -> list[str]:
    return [json.loads(line)["messages"][0]["content"] for line in FAQ.read_text(encoding="utf-8").splitlines() if line.strip()]


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def _jaccard(a: str, b: str) -> float:
    x, y = _words(a), _words(b)
    return len(x & y) / max(1, len(x | y))


def test_inline_examples_parse_and_are_stored_with_the_policy() -> None:
    doc = {
        "name": "clinic",
        "rules": [{"detector": "topic", "allowed": ["clinic appointments"], "examples": ["Can I move my appointment to Friday?"] * 2}],
    }
    spec = validate_policy(doc)
    body = canonical(spec)
    # the stored version carries the examples, so its digest changes with them
    assert topic_rule(body)["examples"] == ["Can I move my appointment to Friday?"] * 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("How do I book?", "valid list"),
        ([""], "non-empty string"),
        (["   "], "non-empty string"),
        (["x" * 2001], "at most 2000 characters"),
        ([{"text": "How do I book?"}], "valid string"),
        (["How do I book?"] * 5001, "at most 5000"),
    ],
)
def test_bad_examples_are_a_400_naming_the_rule(value: Any, message: str) -> None:
    doc = {"name": "clinic", "rules": [{"detector": "topic", "allowed": ["clinic appointments"], "examples": value}]}
    with pytest.raises(PlinthError) as e:
        validate_policy(doc)
    assert e.value.code is ErrorCode.INVALID_REQUEST
    assert e.value.http_status == 400
    assert "rules[0] (topic)" in e.value.message
    assert "examples" in e.value.message
    assert message in e.value.message


def test_acme_policy_carries_its_faq_questions_but_none_that_repeat_an_evaluation_item() -> None:
    examples = topic_rule(canonical(validate_policy(acme_doc())))["examples"]
    faq = set(faq_questions())
    from_faq = [e for e in examples if e in faq]
    assert len(from_faq) >= 250
    evaluation = [
        json.loads(line)["text"] for path in [shared_set("topic"), *HELD_OUT] for line in path.read_text().splitlines() if line.strip()
    ]
    assert len(HELD_OUT) >= 4
    close = [(e, t) for e in from_faq for t in evaluation if _jaccard(e, t) >= 0.5]
    assert close == []
    # and the FAQ questions that were left out are exactly those close to an evaluation item
    left_out = faq - set(from_faq)
    assert left_out
    assert all(any(_jaccard(q, t) >= 0.5 for t in evaluation) for q in left_out)


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from plinth.config import load_settings
    from plinth.embeddings import get_embedder

    return get_embedder(load_settings(home=tmp_path_factory.mktemp("emb-home")))


def test_the_policy_examples_move_a_borderline_member_question_on_topic(embedder: Any) -> None:
    raw = {k: v for k, v in topic_rule(acme_doc()).items() if isinstance(k, str)}
    options = {k: v for k, v in raw.items() if k not in ("detector", "id", "on", "action", "threshold", "safe_answer", "enabled")}
    examples = options["examples"]
    hand_written = examples[: examples.index(LAST_HAND_WRITTEN) + 1]
    assert len(examples) > len(hand_written) + 250
    question = "What is the out-of-pocket maximum for a family on Bronze?"  # in no FAQ, dev or held-out file
    assert question not in examples

    def score(opts: dict[str, Any]) -> float:
        det = TopicDetector("topic", TopicOptions(**opts), Resources(lambda: embedder))
        return det.off_topic_score(question)[0]

    without = score({**options, "examples": hand_written})
    with_faq = score(options)
    assert without >= 0.5, without  # the hand-written policy alone blocks it
    assert with_faq < 0.3, with_faq  # the member questions keep it on topic
    # and a request from elsewhere stays off topic with them
    det = TopicDetector("topic", TopicOptions(**options), Resources(lambda: embedder))
    assert det.off_topic_score("Write a Python function that merges two sorted lists.")[0] >= 0.5
