"""Per-request anomaly scores on real MiniLM embeddings (ADR 0092): held-out in-distribution
questions are rarely flagged, questions in another language or about another domain mostly
are, and a very long prompt is flagged by its length alone. The score scale meets the request
log's flag threshold (0.9 <=> p = 0.01)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from plinth.config import Settings
from plinth.embeddings import get_embedder
from plinth.oversight.anomalies import AnomalyScorer, decode_rate, rate_tail, score_of
from tests.unit.oversight.test_drift_methods import ACME, _users, drift_data

FLAG = Settings().request_log_flag_score


@pytest.fixture(scope="module")
def emb() -> Any:
    return get_embedder(Settings(), "minilm")


@pytest.fixture(scope="module")
def scorer(emb: Any) -> AnomalyScorer:
    texts = _users(ACME / "faq.jsonl")
    return AnomalyScorer.build(texts, emb.embed(texts), label="dataset:acme@1")


def _flagged(scorer: AnomalyScorer, emb: Any, texts: list[str]) -> float:
    scored = scorer.score(texts, list(emb.embed(texts)))
    return float(np.mean([s > FLAG for s, _d in scored]))


def test_the_score_scale_meets_the_flag_threshold() -> None:
    assert FLAG == 0.9
    assert score_of(0.01) == pytest.approx(0.9)
    assert score_of(0.1) == pytest.approx(0.45)
    assert score_of(1.0) == 0.0 and score_of(1e-9) == 1.0


def test_in_distribution_questions_are_rarely_flagged(scorer: AnomalyScorer, emb: Any) -> None:
    assert _flagged(scorer, emb, _users(ACME / "faq-eval.jsonl")) <= 0.1


def test_other_languages_and_domains_are_mostly_flagged(scorer: AnomalyScorer, emb: Any) -> None:
    dd = drift_data()
    assert _flagged(scorer, emb, dd.language("heldout")) >= 0.8
    assert _flagged(scorer, emb, dd.domain("heldout")) >= 0.8


def test_a_very_long_prompt_is_flagged_by_length_and_details_say_why(scorer: AnomalyScorer, emb: Any) -> None:
    long = "What is the deductible on Gold? " * 60
    (score, details), (plain, _) = scorer.score(
        [long, "What is the deductible on Gold?"], list(emb.embed([long, "What is the deductible on Gold?"]))
    )
    assert score > FLAG and plain < FLAG
    assert details["length_words"] == 360 and details["length_p"] < 0.01 and details["reference"] == "dataset:acme@1"
    assert {"knn_distance", "embedding_p", "p"} <= set(details)
    # a prompt without text or vector scores 0 and says so; one with a vector only is scored by it
    (none_score, none_details), (vec_only, vd) = scorer.score([None, None], [None, emb.embed(["Qual è la franchigia?"])[0]])
    assert none_score == 0.0 and "reason" in none_details
    assert "length_p" not in vd and vec_only > 0


def test_a_crawling_generation_is_flagged_by_its_token_rate(scorer: AnomalyScorer, emb: Any) -> None:
    texts = _users(ACME / "faq-eval.jsonl")[:40]
    rng = np.random.default_rng(3)
    rates: list[float | None] = [float(r) for r in 40 * np.exp(rng.normal(0, 0.1, len(texts)))]
    rates[7] = 0.5  # eighty times slower than its neighbours
    rates[8] = None  # not measurable: that component is left out
    scored = scorer.score(texts, list(emb.embed(texts)), rates)
    score, details = scored[7]
    assert score > FLAG and details["token_rate_p"] < 1e-6 and details["tokens_per_s"] == 0.5
    assert "token_rate_p" not in scored[8][1]
    assert sum(1 for s, _d in scored if s > FLAG) == 1
    # too few known rates, or rates that do not vary: no token-rate component
    assert rate_tail([10.0] * 29 + [0.1]) == {} and rate_tail([10.0] * 40) == {}
    assert decode_rate(21, 2.5, 0.5) == 10.0 and decode_rate(1, 2.0, 0.5) is None and decode_rate(5, 0.5, 0.5) is None
