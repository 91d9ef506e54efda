"""The model registry on the real catalog and serving path: registering an adapter makes it
servable at once under NAME, NAME@N and NAME@ALIAS; lineage and the model card; removal;
evaluation metrics (exact match, token F1, ROUGE-L) against hand-computed values."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.config import load_settings
from plinth.errors import ErrorCode, PlinthError
from plinth.services import Services, build_services
from plinth.serving.protocol import ChatCompletionRequest
from plinth.tuning.evaluation import exact_match, generation_scores, rouge_l, token_f1
from tests.support.adapters import LLAMA_ATTN, random_peft_llama_tensors, write_peft_dir

BASE = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    home = tmp_path_factory.mktemp("registry-home")
    s = build_services(load_settings(home=home, threads=1, context_length=1024, max_batch_size=4))
    s.catalog.ensure_embedded()
    yield s
    s.close()


def _peft(dest: Path, seed: int) -> Path:
    tensors = random_peft_llama_tensors(
        n_layers=30, hidden=576, n_head=9, n_head_kv=3, ffn=1536, r=4, modules=LLAMA_ATTN, seed=seed, scale=0.3
    )
    return write_peft_dir(dest, tensors, r=4, alpha=8.0, target_modules=list(LLAMA_ATTN))


def _answer(s: Services, model: str) -> tuple[str, str]:
    async def go() -> tuple[str, str]:
        req = ChatCompletionRequest(model=model, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8, temperature=0.0)
        job = await s.completions.start_chat(req)
        try:
            body = await job.collect()
        finally:
            job.close()
        return body["choices"][0]["message"]["content"], job.ctx.served_model if job.ctx else ""

    return asyncio.run(go())


def test_a_registered_adapter_is_served_at_once_under_every_name(services: Services, tmp_path: Path) -> None:
    reg = services.registry
    assert reg is not None and services.tracking is not None
    run = services.tracking.start_run("acme-lora", "lora", params={"rank": 4}, base_model=BASE, dataset="acme-faq@1")
    v1 = reg.register_adapter(
        "acme",
        base_model=BASE,
        adapter_dir=_peft(tmp_path / "a1", 1),
        run_id=run.id,
        dataset="acme-faq@1",
        recipe={"method": "lora", "rank": 4},
        metrics={"best_val_loss": 1.25},
    )
    v2 = reg.register_adapter("acme", base_model=BASE, adapter_dir=_peft(tmp_path / "a2", 2))
    assert (v1.version, v2.version) == (1, 2)
    assert v1.served_as == f"{BASE}:acme-v1" and services.catalog.get_adapter(BASE, "acme-v1").digest == v1.artifact_digest
    # lineage and card
    assert v1.base_digest == services.catalog.get(BASE).digest and v1.run_id == run.id and v1.dataset == "acme-faq@1"
    for needle in (BASE, "acme-faq@1", run.id, v1.artifact_digest, "best_val_loss", 'model="acme@1"'):
        assert needle in v1.model_card
    # served ids: a version, the latest, an alias
    base_text, _ = _answer(services, BASE)
    t1, served1 = _answer(services, "acme@1")
    _t2, served_latest = _answer(services, "acme")
    assert served1 == f"{BASE}:acme-v1" and served_latest == f"{BASE}:acme-v2"
    assert t1 == _answer(services, f"{BASE}:acme-v1")[0] and t1 != base_text
    reg.set_alias("acme", "production", 1)
    services.models.forget_ids()
    assert _answer(services, "acme")[1] == f"{BASE}:acme-v1"  # the production alias wins over latest
    assert _answer(services, "acme@production")[0] == t1
    ids = {r["id"]: r["parent"] for r in reg.served_ids()}
    assert ids == {"acme": f"{BASE}:acme-v1", "acme@production": f"{BASE}:acme-v1"}
    for bad, code in (("acme@9", ErrorCode.MODEL_NOT_FOUND), ("acme@nope", ErrorCode.MODEL_NOT_FOUND)):
        with pytest.raises(PlinthError) as e:
            _answer(services, bad)
        assert e.value.code == code
    # removal takes what serves it with it
    reg.delete_version("acme", 2)
    assert services.catalog.store.find_adapter(BASE, "acme-v2") is None
    reg.delete_model("acme")
    assert services.catalog.store.find_adapter(BASE, "acme-v1") is None


def test_register_refuses_bad_names_and_failed_imports_leave_nothing(services: Services, tmp_path: Path) -> None:
    reg = services.registry
    assert reg is not None
    with pytest.raises(PlinthError) as e:
        reg.ensure_model(BASE)  # a catalog model's name
    assert e.value.code == ErrorCode.CONFLICT
    with pytest.raises(PlinthError):
        reg.ensure_model("bad name")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "adapter_config.json").write_text("{}")
    with pytest.raises(PlinthError):
        reg.register_adapter("broken", base_model=BASE, adapter_dir=bad)
    assert reg.versions("broken") == []  # no half-registered version
    with pytest.raises(PlinthError) as e:
        reg.set_alias("broken", "Bad Alias", 1)
    assert e.value.code == ErrorCode.INVALID_REQUEST


def test_generation_metrics() -> None:
    assert exact_match("The deductible is $2,000.", "the deductible is $2,000") == 1.0
    assert exact_match("It is $2,000", "It is $3,000") == 0.0
    # pred: "deductible is 2000 dollars" / ref: "the deductible is 2000" -> ref tokens [deductible, is, 2000]
    assert token_f1("deductible is 2000 dollars", "the deductible is 2000") == pytest.approx(2 * 0.75 * 1.0 / 1.75)
    # LCS of [a,b,c,d] and [a,c,d,e] is [a,c,d]: P = R = 3/4
    assert rouge_l("x b c d", "x c d e") == pytest.approx(0.75)
    assert rouge_l("", "") == 1.0 and token_f1("", "x") == 0.0
    s = generation_scores(["yes", "no"], ["yes", "yes"])
    assert s == {"exact_match": 0.5, "token_f1": 0.5, "rouge_l": 0.5}
