"""Drift methods on real MiniLM embeddings of the Acme Health questions (ADR 0091): a window of
held-out in-distribution questions stays quiet, windows in another language, about another
domain or about benefits the plans do not have fire; windows below the minimum are refused;
the two-sample tests hold their level."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from plinth.config import Settings
from plinth.domain.drift import MIN_WINDOW, ReferenceSpec
from plinth.embeddings import get_embedder
from plinth.errors import PlinthError
from plinth.oversight import stats
from plinth.oversight.drift import FLOORS, characteristic_terms, compare, looks_english

REPO = Path(__file__).resolve().parents[3]
ACME = REPO / "examples" / "acme-health"


def _users(path: Path) -> list[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [next(m["content"] for m in r["messages"] if m["role"] == "user") for r in rows]


def drift_data() -> ModuleType:
    """bench/drift_data.py: the benchmark's synthetic windows (built from this repository only)."""
    spec = importlib.util.spec_from_file_location("drift_data", REPO / "bench" / "drift_data.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def emb() -> Any:
    return get_embedder(Settings(), "minilm")


@pytest.fixture(scope="module")
def ref(emb: Any) -> tuple[list[str], np.ndarray]:
    texts = _users(ACME / "faq.jsonl")
    return texts, emb.embed(texts)


@pytest.fixture(scope="module")
def windows(emb: Any) -> dict[str, tuple[list[str], np.ndarray]]:
    dd = drift_data()
    out = {
        "in_distribution": _users(ACME / "faq-eval.jsonl"),  # held-out FAQ questions, never trained on
        "language": dd.language("dev"),
        "domain": dd.domain("dev") + dd.domain("heldout"),
        "benefits": dd.benefits("dev")[::4],
    }
    return {k: (v, emb.embed(v)) for k, v in out.items()}


def _run(w: tuple[list[str], np.ndarray], ref: tuple[list[str], np.ndarray], **kw: Any) -> Any:
    return compare(w[0], w[1], ref[0], ref[1], **kw)


def test_an_in_distribution_window_stays_quiet(windows: dict[str, Any], ref: Any) -> None:
    c = _run(windows["in_distribution"], ref)
    assert not c.drifted, c.methods
    assert set(c.methods) == {"embedding", "length", "language", "oov"}
    for name, m in c.methods.items():
        assert not m["drifted"], name
        assert 0.0 <= m["p_value"] <= 1.0 and m["floor"] == FLOORS[name]
    assert c.score < 1.0  # no method at its floor
    assert c.methods["embedding"]["p_value"] > 0.05 / 4 or c.methods["embedding"]["effect"] < FLOORS["embedding"]


def test_another_language_fires_the_embedding_language_and_vocabulary(windows: dict[str, Any], ref: Any) -> None:
    c = _run(windows["language"], ref)
    assert c.drifted and c.score > 1.0
    for name in ("embedding", "language", "oov"):
        assert c.methods[name]["drifted"], (name, c.methods[name])
    assert c.methods["language"]["recent"] > 0.8  # the cheap detector sees most as not English
    terms = [t["term"] for t in c.results["changed"]["terms"]["recent"]]
    assert {"el", "de", "plan", "la", "le", "du"} & set(terms), terms
    examples = c.results["changed"]["examples"]["recent"]
    assert len(examples) == 5 and all(e in windows["language"][0] for e in examples)


@pytest.mark.parametrize("shift", ["domain", "benefits"])
def test_another_domain_and_missing_benefits_fire_the_embedding_test(windows: dict[str, Any], ref: Any, shift: str) -> None:
    c = _run(windows[shift], ref)
    assert c.drifted
    m = c.methods["embedding"]
    assert m["drifted"] and m["p_value"] < 0.05 / len(c.methods) and m["effect"] >= FLOORS["embedding"]
    assert not c.methods["language"]["drifted"]  # still English


def test_questions_the_knowledge_base_cannot_answer(emb: Any, windows: dict[str, Any], ref: Any) -> None:
    # retrieval by the real MiniLM over the FAQ's answers: a question is answerable when some
    # answer is close enough (the knowledge base's relevance floor)
    answers = [json.loads(x)["messages"][-1]["content"] for x in (ACME / "faq.jsonl").read_text().splitlines() if x.strip()]
    passages = emb.embed(answers)

    def unanswerable(texts: Sequence[str]) -> list[bool]:
        return [bool(s < 0.45) for s in (emb.embed(list(texts)) @ passages.T).max(1)]

    quiet = _run(windows["in_distribution"], ref, unanswerable=unanswerable)
    loud = _run(windows["domain"], ref, unanswerable=unanswerable)
    assert not quiet.methods["unanswerable"]["drifted"]
    u = loud.methods["unanswerable"]
    assert u["drifted"] and u["recent"] > u["reference"] + FLOORS["unanswerable"]
    assert "0.05/5" in loud.results["rule"]  # Bonferroni over five methods


def test_windows_and_references_below_the_minimum_are_refused(windows: dict[str, Any], ref: Any) -> None:
    texts, vecs = windows["in_distribution"]
    with pytest.raises(PlinthError) as e:
        compare(texts[: MIN_WINDOW - 1], vecs[: MIN_WINDOW - 1], ref[0], ref[1])
    assert e.value.param == "window" and str(MIN_WINDOW) in e.value.message
    with pytest.raises(PlinthError) as e:
        compare(texts, vecs, ref[0][:5], ref[1][:5])
    assert e.value.param == "reference"


def test_reference_specs_parse_or_are_refused_clearly() -> None:
    assert ReferenceSpec.parse(None) == ReferenceSpec("lineage", "")
    assert ReferenceSpec.parse("dataset:acme@2") == ReferenceSpec("dataset", "acme@2")
    assert ReferenceSpec.parse("window:14d/7d") == ReferenceSpec("window", "14d/7d")
    for bad in ("dataset:acme", "window:7d", "nonsense", "kb:", "other:x"):
        with pytest.raises(PlinthError) as e:
            ReferenceSpec.parse(bad)
        assert e.value.param == "reference"


def test_mmd_permutation_test_holds_its_level_and_has_power() -> None:
    rng = np.random.default_rng(7)
    ps = []
    for i in range(40):
        a, b = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
        ps.append(stats.mmd_permutation(a, b, bandwidth=stats.rbf_bandwidth(b), permutations=99, rng=np.random.default_rng(i))[1])
    assert np.mean(np.array(ps) < 0.05) <= 0.15  # about 5% under the null
    a, b = rng.normal(size=(40, 8)) + 0.8, rng.normal(size=(40, 8))
    mmd2, p, n, m = stats.mmd_permutation(a, b, bandwidth=stats.rbf_bandwidth(b), permutations=199)
    assert p <= 0.01 and mmd2 > 0 and (n, m) == (40, 40)
    big = rng.normal(size=(1500, 4))
    assert stats.mmd_permutation(big, big[:50], bandwidth=1.0, permutations=9, max_per_side=200)[2:] == (200, 50)


def test_text_helpers() -> None:
    assert looks_english("What is the deductible on Gold?")
    assert not looks_english("¿Cuál es el deducible del plan Gold?")
    assert not looks_english("Wie hoch ist die Selbstbeteiligung im Tarif?")
    assert looks_english("Gold deductible")  # too short to judge: counted English
    terms = characteristic_terms(["pet insurance for my dog"] * 20, ["what is my deductible"] * 20, top=3)
    assert {t["term"] for t in terms["recent"]} <= {"pet", "insurance", "for", "dog"} and terms["recent"]
    assert {t["term"] for t in terms["reference"]} <= {"what", "is", "deductible"} and terms["reference"]
