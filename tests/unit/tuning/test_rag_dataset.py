"""The retrieval-augmented dataset builder: the serving path's prompt, distractors, refusal
targets, supported answers only, determinism for a seed, the split kept, lineage to the
knowledge base version; the TuneSpec option (shape, and the knowledge base pinned at submit)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plinth.errors import ErrorCode, PlinthError
from plinth.tuning.rag_dataset import REFUSAL, answers_it, build_examples, format_system

REPO = Path(__file__).resolve().parents[3]
ACME = REPO / "examples" / "acme-health"


def p(doc: str, text: str, cid: int) -> dict[str, Any]:
    return {"document": doc, "heading": "H", "text": text, "chunk_id": cid}


PAIRS = [
    ("What is the Bronze deductible?", "The Bronze deductible is $6,500 per member.", "train"),
    ("What is the Gold deductible?", "The Gold deductible is $500 per member.", "train"),
    ("How long to appeal?", "Appeal within 180 days of the denial.", "validation"),
    ("Which form for claims?", "Use form ACM-CL1 to file a claim.", "train"),
    ("What is the Silver premium?", "The Silver premium is $412 a month.", "train"),
]
RETRIEVED = {
    PAIRS[0][0]: [
        p("bronze-plan.md", "The Bronze plan's deductible is $6,500 per member.", 1),
        p("plans-overview.md", "Deductibles: $6,500, $3,000, $500", 2),
    ],
    PAIRS[1][0]: [p("gold-plan.md", "The Gold plan's deductible is $500 per member.", 3)],
    PAIRS[2][0]: [p("claims-and-appeals.md", "File an internal appeal within 180 days of the denial.", 4)],
    PAIRS[3][0]: [p("claims-and-appeals.md", "To file a claim, use form ACM-CL1.", 5)],
    PAIRS[4][0]: [p("travel-coverage.md", "Travel vaccines are covered on Silver and Gold.", 6)],  # does not support the answer
}


def build(seed: int = 0, share: float = 0.2, distractors: int = 2) -> tuple[list[dict[str, Any]], Any]:
    return build_examples(PAIRS, RETRIEVED, "acme-policies", unanswerable_share=share, distractors=distractors, seed=seed)


def test_rows_carry_the_serving_prompt_distractors_and_a_citation() -> None:
    rows, stats = build(share=0.0)
    assert stats.dropped_unsupported == 1 and stats.answerable == 4 and stats.unanswerable == 0
    for row in rows:
        system, user, target = row["messages"]
        assert system["role"] == "system" and user["role"] == "user" and target["role"] == "assistant"
        assert system["content"].startswith("Answer the user's question using only the numbered passages below")
        n = int(re.search(r"\[(\d+)\]$", target["content"]).group(1))  # type: ignore[union-attr]
        block = system["content"].split(f"[{n}] ", 1)[1].split("\n\n[", 1)[0]
        assert block.startswith(row["metadata"]["document"])  # the cited number is the supporting passage
        assert answers_it(target["content"], block)
        assert system["content"].count("\n\n[") >= 1 + 2  # its own passages plus two distractors
        assert row["split"] == PAIRS[row["metadata"]["pair"]][2]  # the pair's side of the split is kept


def test_unanswerable_rows_withhold_the_answer_and_target_the_refusal() -> None:
    rows, stats = build(share=0.4)
    assert stats.unanswerable == 2
    refusals = [r for r in rows if r["metadata"]["kind"] == "unanswerable"]
    assert len(refusals) == 2
    for r in refusals:
        answer = PAIRS[r["metadata"]["pair"]][1]
        assert r["messages"][-1]["content"] == REFUSAL
        passages = r["messages"][0]["content"].split("\n\n")[1:]
        assert passages and not any(answers_it(answer, t) for t in passages)


def test_deterministic_for_a_seed_and_different_for_another() -> None:
    assert build(seed=3)[0] == build(seed=3)[0]
    assert build(seed=3)[0] != build(seed=4)[0]


def test_format_is_the_retrieval_stages() -> None:
    from plinth.rag.stage import PASSAGE, TEMPLATE

    text = format_system("kb", [p("a.md", " x ", 1)])
    assert text == TEMPLATE.format(kb="kb", passages=PASSAGE.format(n=1, document="a.md", heading="H", text="x"))


def test_the_tune_spec_option() -> None:
    from plinth.tuning.spec import parse_spec

    spec = parse_spec({"base_model": "m", "dataset": "d", "rag_dataset": {"knowledge_base": "acme-policies"}})
    assert spec.rag_dataset is not None and spec.rag_dataset.unanswerable_share == 0.2 and spec.rag_dataset.distractors == 2
    with pytest.raises(PlinthError) as e:
        parse_spec(
            {"base_model": "m", "dataset": "d", "rag_dataset": {"knowledge_base": "kb", "unanswerable_share": 0.9, "distractors": -1}}
        )
    problems = e.value.details["problems"]
    assert any(x.startswith("rag_dataset.unanswerable_share") for x in problems) and any(
        x.startswith("rag_dataset.distractors") for x in problems
    )


# -- on the real knowledge base, embedder, dataset store -----------------------------------------
@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from plinth.cli.common import ensure_embedded
    from plinth.config import load_settings
    from plinth.services import build_services

    svc = build_services(load_settings(home=tmp_path_factory.mktemp("rag-dataset-home")))
    ensure_embedded(svc)
    assert svc.knowledge is not None
    svc.knowledge.create("acme-policies")
    svc.knowledge.add_paths("acme-policies", [ACME / "policies"])
    yield svc
    svc.close()


def test_built_from_the_acme_faq_with_lineage_to_the_kb_version(services: Any) -> None:
    from plinth.tuning.rag_dataset import build_rag_dataset

    faq, _ = services.datasets.add(ACME / "faq.jsonl", "acme-faq")
    version, stats = build_rag_dataset(services, faq.ref, "acme-policies", seed=0)
    assert version.ref == "acme-faq-rag@1" and version.source_name == "rag: acme-policies@1 + acme-faq@1"
    note = json.loads(version.note)
    assert note["knowledge_base"] == "acme-policies@1" and note["source"] == "acme-faq@1" and note["answerable"] == stats.answerable
    assert stats.pairs == faq.rows and stats.answerable + stats.unanswerable + stats.dropped_unsupported == faq.rows
    assert stats.unanswerable == round(0.2 * faq.rows)
    assert stats.dropped_unsupported < 0.1 * faq.rows  # retrieval supports nearly every FAQ answer
    rows = services.datasets.load_rows(version, "all")
    by_pair = {r["metadata"]["pair"]: r for r in rows}
    source = services.datasets.load_rows(faq, "all")
    assert all(r["split"] == source[i]["split"] for i, r in by_pair.items())  # no leakage across the split
    again, _ = build_rag_dataset(services, faq.ref, "acme-policies@1", seed=0)
    assert again.ref == version.ref  # the same rows: no new version


def test_the_tune_job_validation_pins_the_knowledge_base(services: Any) -> None:
    from plinth.config import EMBEDDED_MODEL_NAME
    from plinth.tuning.executor import validate

    services.datasets.add(ACME / "faq.jsonl", "acme-faq")
    spec = {"base_model": EMBEDDED_MODEL_NAME, "dataset": "acme-faq", "rag_dataset": {"knowledge_base": "acme-policies"}}
    out = validate(spec, services)
    assert out["rag_dataset"]["knowledge_base"] == "acme-policies@1"
    assert out["max_seq_len"] == 1000  # 3 passages + 2 distractors: the default 512 would cut most answers off
    with pytest.raises(PlinthError) as short:
        validate({**spec, "max_seq_len": 512}, services)
    assert short.value.param == "spec.max_seq_len" and "distractors" in short.value.message
    with pytest.raises(PlinthError) as e:
        validate({**spec, "rag_dataset": {"knowledge_base": "no-such-kb"}}, services)
    assert e.value.code is ErrorCode.INVALID_REQUEST and e.value.param == "spec.rag_dataset.knowledge_base"


def test_the_tune_job_trains_on_the_built_version(services: Any) -> None:
    """What ``run`` does before training when the spec has ``rag_dataset`` (the training itself
    is the recipes' tests): the built version, its progress and log lines."""
    from types import SimpleNamespace

    from plinth.config import EMBEDDED_MODEL_NAME
    from plinth.tuning.executor import _rag_version, validate
    from plinth.tuning.spec import parse_spec

    faq, _ = services.datasets.add(ACME / "faq.jsonl", "acme-faq")
    raw = {"base_model": EMBEDDED_MODEL_NAME, "dataset": "acme-faq", "seed": 1}
    raw["rag_dataset"] = {"knowledge_base": "acme-policies", "name": "faq-rag-job", "distractors": 1, "unanswerable_share": 0.1}
    spec = parse_spec(validate(raw, services))
    logs: list[str] = []
    progress: list[tuple[float, float, str]] = []
    ctx = SimpleNamespace(services=services, log=logs.append, progress=lambda d, t, m: progress.append((d, t, m)))
    built = _rag_version(ctx, spec, faq)
    assert built.ref == "faq-rag-job@1" and built.source_name == "rag: acme-policies@1 + acme-faq@1"
    assert json.loads(built.note)["distractors"] == 1 and json.loads(built.note)["seed"] == 1
    assert progress[-1][0] == progress[-1][1] and "faq-rag-job@1" in logs[0]


def test_built_rows_train_the_answer_and_its_citation_only(tmp_path: Path) -> None:
    """Two LoRA steps on a tiny random llama (seconds): the rows encode with the chat
    template, only the target (answer + citation, or the refusal) is labelled, and training runs."""
    import torch

    from plinth.tuning import data as tdata
    from plinth.tuning.loop import Hooks, LoopConfig, train
    from plinth.tuning.recipes import recipe
    from plinth.tuning.spec import parse_spec
    from tests.support.tiny_hf import make_tiny_llama

    rows, _ = build(share=0.4)
    model_dir = make_tiny_llama(tmp_path / "tiny")
    spec = parse_spec({"base_model": "m", "dataset": "d", "batch_size": 2, "lora": {"rank": 4, "alpha": 8, "dropout": 0.0}})
    t = recipe("lora").setup(model_dir, spec, "cpu")
    examples, dropped = tdata.encode_all(t.tokenizer, [r["messages"] for r in rows], 1024)
    assert dropped == 0 and len(examples) == len(rows)
    for ex, row in zip(examples, rows, strict=True):
        labelled = t.tokenizer.decode([i for i in ex.labels if i != tdata.IGNORE])
        assert row["messages"][-1]["content"] in labelled and "numbered passages" not in labelled
    cfg = LoopConfig(
        total_steps=2,
        batch_size=2,
        grad_accum=1,
        learning_rate=1e-3,
        weight_decay=0.0,
        warmup_steps=0,
        lr_scheduler="constant",
        max_grad_norm=1.0,
        eval_every=1000,
        checkpoint_every=1000,
        early_stopping_patience=None,
        seed=0,
        batching="length_grouped",
        autocast_dtype=None,
        device="cpu",
    )
    result = train(t, examples, [], cfg, Hooks())
    assert result.state.step == 2 and torch.isfinite(torch.tensor(result.state.last_train_loss))
