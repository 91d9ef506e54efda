"""The grounding suites written for issue 18 (``examples/acme-health/write_grounding_suites.py``):
their answer keys match the policy documents, the files are current, and the held-out suite asks
nothing another question file asks."""

from __future__ import annotations

import json
import runpy
from collections import Counter
from pathlib import Path

import pytest

from plinth.rag.parsing import parse_pdf
from plinth.tuning.assistant_eval import Answer, cases_from_rows, contains, judge

ACME = Path(__file__).resolve().parents[3] / "examples" / "acme-health"
DEV2 = ACME / "grounding-dev-2.jsonl"
HELDOUT2 = ACME / "heldout" / "assistant-eval-2.jsonl"
HELDOUT3 = ACME / "heldout" / "assistant-eval-3.jsonl"
DEV3 = ACME / "grounding-dev-3.jsonl"
DEV4 = ACME / "grounding-dev-4.jsonl"
HELDOUT4 = ACME / "heldout" / "assistant-eval-4.jsonl"
HELDOUT5 = ACME / "heldout" / "assistant-eval-5.jsonl"  # written by hand (ADR 0130), not by the writer script


def _documents() -> dict[str, str]:
    docs = {p.name: p.read_text(encoding="utf-8") for p in (ACME / "policies").iterdir() if p.suffix in (".md", ".html")}
    for pdf in (ACME / "policies").glob("*.pdf"):
        docs[pdf.name] = parse_pdf(pdf.read_bytes(), pdf.name).text
    return docs


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize(
    "path",
    [DEV2, DEV3, DEV4, HELDOUT2, HELDOUT3, HELDOUT4, HELDOUT5],
    ids=["dev-2", "dev-3", "dev-4", "held-out-2", "held-out-3", "held-out-4", "held-out-5"],
)
def test_answer_keys_pass_their_references_and_match_the_documents(path: Path) -> None:
    docs = _documents()
    cases = cases_from_rows(_rows(path), path.name)
    for c in cases:
        assert all(d in docs for d in c.documents), (c.id, c.documents)
        citations = [{"index": i, "document": d, "text": docs[d]} for i, d in enumerate(c.documents, start=1)]
        v = judge(c, Answer(c.reference, citations=citations), None)
        assert v.get("correct", v.get("refusal_correct", v.get("declined"))), (c.id, v)
        for group in c.expect:  # every expected phrase is written in a document whose citation counts
            assert any(contains(docs[d], a) for d in c.documents for a in group), (c.id, group)


@pytest.mark.parametrize("path", [HELDOUT2, HELDOUT3, HELDOUT4, HELDOUT5], ids=["held-out-2", "held-out-3", "held-out-4", "held-out-5"])
def test_the_held_out_suite_is_25_10_10_and_asks_nothing_asked_elsewhere(path: Path) -> None:
    held = cases_from_rows(_rows(path), path.name)
    assert Counter(c.kind for c in held) == {"answerable": 25, "unanswerable": 10, "off_topic": 10}
    elsewhere = {c.question.lower() for d in (DEV2, DEV3, DEV4) for c in cases_from_rows(_rows(d), d.name)}
    for name in ("questions.jsonl", "grounding-dev.jsonl", "heldout-questions.jsonl"):
        elsewhere |= {str(r["question"]).lower() for r in _rows(ACME / name)}
    for other in (ACME / "assistant-eval.jsonl", ACME / "heldout" / "assistant-eval.jsonl", HELDOUT2, HELDOUT3, HELDOUT4, HELDOUT5):
        if other != path:
            elsewhere |= {c.question.lower() for c in cases_from_rows(_rows(other), other.name)}
    assert not [c.question for c in held if c.question.lower() in elsewhere]


def test_the_suite_files_are_current(tmp_path: Path) -> None:
    m = runpy.run_path(str(ACME / "write_grounding_suites.py"))
    m["write"](tmp_path / "dev.jsonl", m["development"]())
    m["write"](tmp_path / "ho.jsonl", m["heldout"]())
    m["write"](tmp_path / "ho3.jsonl", m["heldout3"]())
    m["write"](tmp_path / "dev3.jsonl", m["development3"]())
    m["write"](tmp_path / "dev4.jsonl", m["development4"]())
    m["write"](tmp_path / "ho4.jsonl", m["heldout4"]())
    assert (tmp_path / "dev.jsonl").read_text() == DEV2.read_text()
    assert (tmp_path / "ho.jsonl").read_text() == HELDOUT2.read_text()
    assert (tmp_path / "ho3.jsonl").read_text() == HELDOUT3.read_text()
    assert (tmp_path / "dev3.jsonl").read_text() == DEV3.read_text()
    assert (tmp_path / "dev4.jsonl").read_text() == DEV4.read_text()
    assert (tmp_path / "ho4.jsonl").read_text() == HELDOUT4.read_text()
