"""Continuous batching and multi-LoRA in the torch engine, on the real embedded model.

The embedded GGUF is dequantised for the torch runtime (bf16 on CPUs that compute it
natively, else fp32), and the same scenarios the llama.cpp engine passes run here
(tests/support/batching_contract.py). Requests on different adapters share each decode
step in this engine, so the mixed-adapter scenario checks ``mixed_adapter_steps``.

The engine promises batch invariance on every CPU (docs/adr/0051): decode batches run only at
sizes its load-time calibration found to give a row identical logits. So the scenarios that
compare a batched answer with the same request alone run on every CPU, in the dtype this CPU
picks (``rt``) and in float32 (``rt32``, which covers the fp32 kernels on bf16 CPUs too).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from plinth.domain import ModelFormat, ModelRecord
from plinth.errors import PlinthError
from plinth.formats import inspect_model, locate_embedded_gguf
from plinth.runtimes.base import AdapterRef, RuntimeOptions
from plinth.runtimes.torch_hf import TorchRuntime
from tests.support import batching_contract as contract
from tests.support.adapters import LLAMA_ATTN, LLAMA_MLP, random_peft_llama_tensors, write_peft_dir


@pytest.fixture(scope="module")
def rt(torch_cache_dir: Path, smol_dir: Path):  # type: ignore[no-untyped-def]
    _CACHE["dir"] = torch_cache_dir  # smol_dir made the dequantised copy there
    runtime = _make()
    yield runtime
    runtime.unload()


_CACHE: dict[str, Path] = {}


def _make(**opts) -> TorchRuntime:  # type: ignore[no-untyped-def]
    gguf = locate_embedded_gguf()
    info = inspect_model(gguf)
    record = ModelRecord(
        name="smollm2",
        format=ModelFormat.GGUF,
        runtime="torch",
        digest=None,
        size_bytes=info.size_bytes,
        context_length=info.context_length,
        chat_template=info.chat_template,
        parameters=dict(info.parameters),
    )
    base = dict(threads=2, context_length=1024, max_batch_size=8, prefill_chunk_tokens=64, cache_dir=_CACHE["dir"])
    runtime = TorchRuntime(record, gguf, RuntimeOptions(**{**base, **opts}))
    runtime.load()
    assert runtime.batching
    return runtime


def _peft(dest: Path, key: str, *, r: int, modules: tuple[str, ...], seed: int) -> AdapterRef:
    tensors = random_peft_llama_tensors(
        n_layers=30, hidden=576, n_head=9, n_head_kv=3, ffn=1536, r=r, modules=modules, seed=seed, scale=0.3
    )
    path = write_peft_dir(dest / key, tensors, r=r, alpha=8.0, target_modules=list(modules))
    return AdapterRef(key=key, path=path, size_bytes=sum(f.stat().st_size for f in path.iterdir()))


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> list[AdapterRef]:
    """Three adapters of different ranks and target modules (attention only; attention and MLP)."""
    d = tmp_path_factory.mktemp("peft")
    return [
        _peft(d, "peft0", r=4, modules=LLAMA_ATTN, seed=0),
        _peft(d, "peft1", r=6, modules=LLAMA_ATTN + LLAMA_MLP, seed=1),
        _peft(d, "peft2", r=8, modules=("q_proj", "v_proj"), seed=2),
    ]


@pytest.fixture(scope="module")
def same_size(tmp_path_factory: pytest.TempPathFactory) -> list[AdapterRef]:
    d = tmp_path_factory.mktemp("peft-lru")
    return [_peft(d, f"lru{i}", r=4, modules=LLAMA_ATTN, seed=10 + i) for i in range(3)]


@pytest.fixture(scope="module")
def rt32(smol_dir: Path):  # type: ignore[no-untyped-def]
    """The engine computing in float32, loaded from the dequantised directory as a
    safetensors model (on a bf16 CPU the weights are the bf16 copy's values, upcast)."""
    info = inspect_model(smol_dir)
    record = ModelRecord(
        name="smollm2-fp32",
        format=ModelFormat.SAFETENSORS,
        runtime="torch",
        digest=None,
        size_bytes=info.size_bytes,
        context_length=info.context_length,
        chat_template=info.chat_template,
        parameters=dict(info.parameters),
    )
    opts = RuntimeOptions(threads=2, context_length=1024, max_batch_size=8, prefill_chunk_tokens=64, torch_dtype="float32")
    runtime = TorchRuntime(record, smol_dir, opts)
    runtime.load()
    assert runtime.batching and runtime.dtype == torch.float32
    yield runtime
    runtime.unload()


def test_the_engine_measured_its_decode_plan(rt) -> None:  # type: ignore[no-untyped-def]
    info = rt.health().info
    assert info["batch_invariant"] is True
    assert info["decode_sizes"], "the plan has at least one size"
    assert max(info["decode_sizes"]) <= 8  # max_batch_size 8 needs no larger batch


def test_batched_greedy_answers_equal_answers_served_alone(rt) -> None:
    contract.batched_greedy_answers_equal_answers_served_alone(rt)


def test_seeded_sampling_inside_a_batch_is_reproducible(rt) -> None:
    contract.seeded_sampling_inside_a_batch_is_reproducible(rt)


def test_batched_answers_equal_lone_answers_in_float32(rt32) -> None:  # type: ignore[no-untyped-def]
    contract.batched_greedy_answers_equal_answers_served_alone(rt32)
    contract.seeded_sampling_inside_a_batch_is_reproducible(rt32)


def test_max_tokens_per_request_inside_a_batch(rt) -> None:
    contract.max_tokens_per_request_inside_a_batch(rt)


def test_cancelling_one_request_leaves_the_others_intact(rt) -> None:
    contract.cancelling_one_request_leaves_the_others_intact(rt)


def test_long_prompt_does_not_stall_running_streams(rt) -> None:
    contract.long_prompt_does_not_stall_running_streams(rt, chunk=64)


def test_each_request_gets_its_own_adapter_in_a_mixed_batch(rt, adapters) -> None:
    # requests on different adapters share each decode step in this engine
    contract.each_request_gets_its_own_adapter_in_a_mixed_batch(rt, adapters, mixed_stat="mixed_adapter_steps")


def test_adapters_load_on_first_use_and_are_evicted_lru(rt, same_size) -> None:
    contract.adapters_load_on_first_use_and_are_evicted_lru(_make, same_size)


def test_a_broken_adapter_fails_only_its_request(rt, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "adapter_config.json").write_text('{"r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}')
    (bad / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    contract.a_broken_adapter_fails_only_its_request(rt, AdapterRef(key="bad", path=bad, size_bytes=20))


def test_an_adapter_made_for_another_model_is_refused(rt, tmp_path: Path) -> None:
    tensors = random_peft_llama_tensors(n_layers=2, hidden=64, n_head=4, n_head_kv=4, ffn=128, r=4, seed=9)
    path = write_peft_dir(tmp_path / "other", tensors, r=4, alpha=8.0, target_modules=list(LLAMA_ATTN))
    with pytest.raises(PlinthError, match="do not fit this base model"):
        contract._gen(rt, contract.QUESTIONS[0], AdapterRef(key="other", path=path, size_bytes=1))
    assert contract._gen(rt, contract.QUESTIONS[0])[0]


def test_the_engine_matches_transformers_peft_on_an_adapter(rt, adapters, smol_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """The engine applies an adapter as PEFT does: transformers + PEFT, fed the engine's own
    greedy answer (teacher forcing, same weights and dtype), would pick every one of its
    tokens too, except where PEFT itself sees a near tie. Two bf16 implementations round
    differently, so comparing free-running texts would fail on the first near tie; this
    checks each token instead, and the adapter must change the answer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = adapters[1]
    question = contract.QUESTIONS[1]
    prompt = rt.prepare_chat([{"role": "user", "content": question}])
    ours, _ = contract._gen(rt, question, adapter, max_tokens=12)
    base, _ = contract._gen(rt, question, max_tokens=12)
    assert ours != base, "the adapter should change the answer"
    ours_ids = rt._tok(ours, add_special_tokens=False)["input_ids"]
    assert ours_ids
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(smol_dir), dtype=rt.dtype), str(adapter.path))
    with torch.inference_mode():
        logits = model(torch.tensor([prompt.token_ids + ours_ids])).logits[0].float()
    n = len(prompt.token_ids)
    # the logits that chose each of our tokens (re-tokenising the text gives the same ids here)
    chooser = logits[n - 1 : n - 1 + len(ours_ids)]
    picked = chooser.gather(1, torch.tensor(ours_ids).unsqueeze(1)).squeeze(1)
    best = chooser.max(dim=1).values
    margin = 0.25 if rt.dtype == torch.bfloat16 else 1e-3  # logit units: bf16 rounding vs fp32 rounding
    assert bool((best - picked <= margin).all()), f"tokens PEFT would not pick: {(best - picked).tolist()}"
