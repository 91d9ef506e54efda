"""PEFT LoRA adapters on the torch runtime's generic path (transformers' own modules, one
request at a time), checked against transformers + PEFT directly. The batching engine's
adapters are checked in test_torch_batching.py and test_torch_llama.py."""

from __future__ import annotations

import threading
from pathlib import Path

import peft
import pytest
import torch

from plinth.domain import ModelFormat, ModelRecord
from plinth.formats import inspect_model
from plinth.runtimes.base import AdapterRef, RuntimeOptions, SamplingParams
from plinth.runtimes.torch_hf import TorchRuntime
from tests.support.tiny_hf import make_tiny_llama


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    return make_tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def _adapter(base: Path, dest: Path, seed: int) -> AdapterRef:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base))
    cfg = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, cfg).save_pretrained(str(dest))
    size = sum(f.stat().st_size for f in dest.iterdir())
    return AdapterRef(key=f"sha256:{seed:064x}", path=dest, size_bytes=size)


def _runtime(base: Path, **opts) -> TorchRuntime:  # type: ignore[no-untyped-def]
    info = inspect_model(base)
    rec = ModelRecord(
        name="tiny",
        format=ModelFormat.SAFETENSORS,
        runtime="torch",
        digest=None,
        size_bytes=info.size_bytes,
        chat_template=info.chat_template,
        parameters=dict(info.parameters),
    )
    rt = TorchRuntime(rec, base, RuntimeOptions(threads=1, context_length=256, torch_batching=False, **opts))
    rt.load()
    assert not rt.batching
    return rt


def _greedy(rt: TorchRuntime, adapter: AdapterRef | None) -> list[int]:
    prompt = rt.prepare_text("the cat sat on the")
    text = "".join(d.text for d in rt.generate(prompt, SamplingParams(max_tokens=8, temperature=0.0), threading.Event(), adapter))
    return rt._tok(text, add_special_tokens=False)["input_ids"], text  # type: ignore[return-value]


def _reference(base: Path, adapter: AdapterRef | None, dtype) -> str:  # type: ignore[no-untyped-def]
    """Greedy text from transformers' own generate on the same weights (+ PEFT adapter)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype)
    if adapter is not None:
        model = peft.PeftModel.from_pretrained(model, str(adapter.path))
    ids = tok("the cat sat on the", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=tok.eos_token_id)
    return tok.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_adapter_answers_match_peft_and_base_stays_clean(tiny, tmp_path) -> None:
    a1 = _adapter(tiny, tmp_path / "a1", seed=1)
    a2 = _adapter(tiny, tmp_path / "a2", seed=2)
    rt = _runtime(tiny)
    base_before = _greedy(rt, None)[1]
    out1, out2 = _greedy(rt, a1)[1], _greedy(rt, a2)[1]
    assert base_before == _reference(tiny, None, rt.dtype)
    assert out1 == _reference(tiny, a1, rt.dtype)
    assert out2 == _reference(tiny, a2, rt.dtype)
    assert len({base_before, out1, out2}) == 3
    assert _greedy(rt, None)[1] == base_before  # adapters disabled again for base requests
    assert sorted(rt.loaded_adapters()) == sorted(rt._adapter_name(a) for a in (a1, a2))


def test_adapters_are_evicted_lru(tiny, tmp_path) -> None:
    refs = [_adapter(tiny, tmp_path / f"e{i}", seed=10 + i) for i in range(3)]
    rt = _runtime(tiny, adapter_cache_bytes=int(refs[0].size_bytes * 2.5))
    first = _greedy(rt, refs[0])[1]
    _greedy(rt, refs[1])
    _greedy(rt, refs[0])  # most recent
    _greedy(rt, refs[2])  # refs[1] goes
    assert sorted(rt.loaded_adapters()) == sorted(rt._adapter_name(r) for r in (refs[0], refs[2]))
    assert rt.stats()["adapter_evictions"] == 1
    assert _greedy(rt, refs[0])[1] == first
