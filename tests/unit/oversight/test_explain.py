"""Per-answer explanations below the server: ``TorchRuntime.score`` (teacher-forced log-probs)
on a tiny real Llama, the same on the batching engine and on transformers' modules; the
question spans; the prompt rebuilt as the retrieval stage builds it; the ablation bookkeeping.
The end-to-end ranking on the embedded model is tests/integration/test_explain_api.py."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.errors import ErrorCode, PlinthError
from plinth.oversight.explain import _spans, attribute, build_messages
from plinth.rag.stage import PASSAGE, TEMPLATE
from plinth.runtimes import RuntimeOptions
from plinth.runtimes.torch_hf import TorchRuntime
from tests.support.tiny_hf import make_tiny_llama
from tests.unit.runtimes.test_torch_runtime import record_for

PASSAGES = [
    {"index": 1, "document": "bronze.md", "heading": "Premium", "text": "The Bronze premium is $289 a month.", "chunk_id": 2},
    {"index": 2, "document": "gold.md", "heading": "", "text": "Gold has no deductible.", "chunk_id": 7},
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-explain") / "tiny-llama")


@pytest.fixture(scope="module")
def runtimes(tiny_dir: Path) -> Iterator[dict[str, TorchRuntime]]:
    out = {}
    for path in ("batching", "generic"):
        rt = TorchRuntime(record_for(tiny_dir), tiny_dir, RuntimeOptions(threads=1, context_length=256, torch_batching=path == "batching"))
        rt.load()
        out[path] = rt
    yield out
    for rt in out.values():
        rt.unload()


def test_score_is_the_same_on_both_paths_and_a_proper_log_probability(runtimes: dict[str, TorchRuntime]) -> None:
    batching, generic = runtimes["batching"], runtimes["generic"]
    ctx = batching.prepare_chat([{"role": "user", "content": "What is the premium?"}]).token_ids
    assert ctx is not None
    answer = "It is $289."
    ids = list(batching._tok(answer, add_special_tokens=False)["input_ids"])
    a = batching.score([(list(ctx), answer), (list(ctx), ids)])
    b = generic.score([(list(ctx), answer)])
    assert a[0] == a[1] and len(a[0]) == len(ids)  # text and ids give the same scores
    assert all(x <= 0 for x in a[0])
    assert all(math.isclose(x, y, abs_tol=2e-2) for x, y in zip(a[0], b[0], strict=True))
    # another context changes the scores (the model attends to it)
    other = batching.prepare_chat([{"role": "user", "content": "Tell me a story about dragons and castles."}]).token_ids
    assert other is not None
    assert batching.score([(list(other), answer)])[0] != a[0]
    # a pair after the first reuses the keys and values of the tokens it shares with it: the same scores as alone
    ablated = batching.prepare_chat([{"role": "user", "content": "What is the monthly premium?"}]).token_ids
    assert ablated is not None and ablated[:5] == ctx[:5]
    together = batching.score([(list(ctx), answer), (list(ablated), answer), (list(ctx), answer)])
    alone = batching.score([(list(ablated), answer)])[0]
    assert all(math.isclose(x, y, abs_tol=1e-3) for x, y in zip(together[1], alone, strict=True))
    assert all(math.isclose(x, y, abs_tol=1e-3) for x, y in zip(together[2], a[0], strict=True))
    assert all(math.isclose(x, y, abs_tol=2e-2) for x, y in zip(alone, generic.score([(list(ablated), answer)])[0], strict=True))
    with pytest.raises(PlinthError) as e:
        batching.score([([], answer)])
    assert e.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(PlinthError) as e:
        batching.score([(list(ctx) * 40, answer)])
    assert e.value.code is ErrorCode.CONTEXT_LENGTH_EXCEEDED


def test_question_spans_group_words_in_order() -> None:
    q = "What is the Bronze plan's monthly premium?"
    assert [q[a:b] for a, b in _spans(q, 16)] == q.split()
    grouped = [q[a:b] for a, b in _spans(q, 3)]
    assert grouped == ["What is the", "Bronze plan's monthly", "premium?"]
    assert _spans(q, 0) == [] and _spans("   ", 4) == []


def test_the_prompt_is_rebuilt_as_the_retrieval_stage_builds_it() -> None:
    msgs = build_messages("Be brief.", "acme", PASSAGES, "What is the premium?")
    block = "\n\n".join(
        PASSAGE.format(n=p["index"], document=p["document"], heading=p["heading"] or "(top)", text=p["text"]) for p in PASSAGES
    )
    assert msgs == [
        {"role": "system", "content": "Be brief.\n\n" + TEMPLATE.format(kb="acme", passages=block)},
        {"role": "user", "content": "What is the premium?"},
    ]
    # a passage left out keeps the others' numbers; no knowledge base, no system prompt: the question alone
    assert "[2] gold.md" in build_messages(None, "acme", PASSAGES[1:], "q")[0]["content"]
    assert build_messages(None, None, [], "q") == [{"role": "user", "content": "q"}]


def test_attribution_scores_every_ablation(runtimes: dict[str, TorchRuntime]) -> None:
    q = "What is the premium?"
    out = attribute(runtimes["batching"], None, "acme", PASSAGES, q, "It is $289.", _spans(q, 16))
    assert out["forward_passes"] == 1 + 1 + len(PASSAGES) + 4
    assert sorted(p["index"] for p in out["passages"]) == [1, 2]
    drops = [p["drop"] for p in out["passages"]]
    assert drops == sorted(drops, reverse=True)
    assert [t["text"] for t in out["prompt_tokens"]] == q.split() and len(out["top_prompt_tokens"]) == 4
    assert out["mean_token_logprob"] == pytest.approx(out["log_likelihood"] / out["answer_tokens"], abs=1e-3)
    assert set(out["without_passages"]) == {"log_likelihood", "drop"}
