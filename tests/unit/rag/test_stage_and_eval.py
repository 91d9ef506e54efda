"""The retrieval stage and retrieval evaluation on the Acme Health corpus (real embedder)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from plinth.domain.serving import Attachments
from plinth.errors import ErrorCode, PlinthError
from plinth.rag.evaluation import evaluate, load_questions, parse_questions
from plinth.rag.stage import KnowledgeStage
from plinth.serving.pipeline import ChatContext, StageAnswer
from tests.unit.rag.conftest import ACME, make_knowledge


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("acme")
    k = make_knowledge(home, f"sqlite:///{home / 'plinth.db'}", "embedded")
    k.create("acme-policies")
    report = k.add_paths("acme-policies", [ACME / "policies"])
    assert report.version == 1 and all(f.outcome == "added" for f in report.files), report.as_dict()
    yield k
    k.store.close()


def test_recall_on_the_acme_question_set(acme: Any) -> None:
    report = evaluate(acme, "acme-policies", load_questions(ACME / "questions.jsonl"))
    assert report["questions"] >= 50
    assert report["recall"]["@5"] >= 0.9, report["misses"]
    assert report["mrr"] >= 0.8
    assert report["recall"]["@1"] <= report["recall"]["@3"] <= report["recall"]["@5"] <= report["recall"]["@10"]


def test_question_files_are_validated() -> None:
    ok = parse_questions([json.dumps({"question": "q", "document": "a.md", "contains": "x"})])
    assert ok[0].expected == [{"document": "a.md", "contains": "x"}]
    with pytest.raises(PlinthError) as e:
        parse_questions(["{not json", json.dumps({"question": ""}), json.dumps({"question": "q", "expected": []})])
    assert e.value.code == ErrorCode.INVALID_REQUEST
    assert "line 1" in e.value.message and "line 2" in e.value.message and "line 3" in e.value.message


def _ctx(question: str, kb: str = "acme-policies", messages: list[dict[str, Any]] | None = None) -> ChatContext:
    return ChatContext(
        kind="chat",
        model_id="m",
        served_model="m",
        attachments=Attachments(knowledge_base=kb),
        messages=messages or [{"role": "user", "content": question}],
    )


def test_stage_puts_passages_into_the_prompt_with_citations(acme: Any) -> None:
    stage = KnowledgeStage(acme)
    ctx = _ctx("What is the deductible on the Gold plan?")
    assert asyncio.run(stage.before(ctx)) is None
    system = ctx.messages[0]
    assert system["role"] == "system" and "[1] gold-plan.md" in system["content"] and "$500" in system["content"]
    cites = ctx.extras["citations"]
    assert cites and cites[0]["index"] == 1 and cites[0]["document"] == "gold-plan.md"
    assert {"document", "heading", "start", "end", "score", "chunk_id", "knowledge_base", "version"} <= set(cites[0])
    doc = acme.document("acme-policies", "gold-plan.md")
    assert doc.text[cites[0]["start"] : cites[0]["end"]] == ctx.passages[0]["text"]
    assert ctx.passages[0]["knowledge_base"] == "acme-policies" and ctx.passages[0]["version"] == 1
    saved = acme.citations("chatcmpl-" + ctx.request_id)
    assert saved.citations == cites and saved.query == "What is the deductible on the Gold plan?"


def test_stage_appends_to_an_existing_system_message(acme: Any) -> None:
    stage = KnowledgeStage(acme)
    ctx = _ctx("", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is IVF covered?"}])
    asyncio.run(stage.before(ctx))
    assert len(ctx.messages) == 2 and ctx.messages[0]["content"].startswith("Be brief.") and "[1]" in ctx.messages[0]["content"]


def test_stage_says_it_does_not_know(acme: Any) -> None:
    stage = KnowledgeStage(acme)
    ctx = _ctx("Who won the football world cup in 1998?")
    answer = asyncio.run(stage.before(ctx))
    assert isinstance(answer, StageAnswer) and "don't know" in answer.text
    assert ctx.extras["citations"] == [] and ctx.passages == []


def test_stage_checks_attachments(acme: Any) -> None:
    stage = KnowledgeStage(acme)
    stage.check_attachments(Attachments(knowledge_base="acme-policies@1"))
    for bad, code in (("nope", ErrorCode.NOT_FOUND), ("acme-policies@7", ErrorCode.NOT_FOUND), ("Bad Name", ErrorCode.INVALID_REQUEST)):
        with pytest.raises(PlinthError) as e:
            stage.check_attachments(Attachments(knowledge_base=bad))
        assert e.value.code == code


def test_stage_leaves_requests_without_a_knowledge_base_alone(acme: Any) -> None:
    ctx = _ctx("anything", kb="")
    ctx.attachments = Attachments()
    assert asyncio.run(KnowledgeStage(acme).before(ctx)) is None
    assert ctx.messages == [{"role": "user", "content": "anything"}] and "citations" not in ctx.extras


def test_faq_files_are_consistent_chat_pairs() -> None:
    train = [json.loads(x) for x in (ACME / "faq.jsonl").read_text().splitlines()]
    held = [json.loads(x) for x in (ACME / "faq-eval.jsonl").read_text().splitlines()]
    assert len(train) >= 280 and len(held) == 60
    for row in train + held:
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["user", "assistant"] and all(m["content"].strip() for m in row["messages"])
    train_q = {r["messages"][0]["content"] for r in train}
    assert not train_q & {r["messages"][0]["content"] for r in held}  # held-out questions are new
    answers = {r["messages"][1]["content"] for r in train}
    assert all(r["messages"][1]["content"] in answers for r in held)  # same facts, new wording


def test_corpus_is_current(tmp_path: Path) -> None:
    """The committed corpus is what build_corpus.py writes from facts.py."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "acme"
    shutil.copytree(ACME, copy, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, str(copy / "build_corpus.py")], check=True, capture_output=True, timeout=60)
    for f in ["questions.jsonl", "faq.jsonl", "faq-eval.jsonl", *(f"policies/{p.name}" for p in (ACME / "policies").iterdir())]:
        assert (copy / f).read_bytes() == (ACME / f).read_bytes(), f
