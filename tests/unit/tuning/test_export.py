"""GGUF export on the embedded model: the base's weights written back with its own metadata
and quantised by llama.cpp give llama.cpp's logits of the original file; a LoRA merged and
exported gives the logits of the same LoRA applied at run time; Q4_1 is refused."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from plinth.errors import PlinthError
from plinth.formats import locate_embedded_gguf
from plinth.formats.lora.convert import peft_to_gguf_lora
from plinth.tuning.export import hf_to_gguf, parse, quantize
from tests.support.adapters import LLAMA_ATTN, random_peft_llama_tensors, write_peft_dir
from tests.support.llama import no_extra_buffers

PROMPT = "<|im_start|>user\nWhat is the deductible of the Silver plan?<|im_end|>\n<|im_start|>assistant\nThe"


def _logits(path: Path, lora: Path | None = None) -> np.ndarray:
    import llama_cpp

    with no_extra_buffers():
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False, n_threads=1, n_threads_batch=1)
    try:
        handle = None
        if lora is not None:
            handle = llama_cpp.llama_adapter_lora_init(llm.model, str(lora).encode())
            arr = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(handle)
            assert llama_cpp.llama_set_adapters_lora(llm.ctx, arr, 1, (ctypes.c_float * 1)(1.0)) == 0
        toks = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
        llm.eval(toks)
        out = np.array(llm.scores[: len(toks)], dtype=np.float32)
        if handle is not None:
            llama_cpp.llama_set_adapters_lora(llm.ctx, None, 0, None)
            llama_cpp.llama_adapter_lora_free(handle)
        return out
    finally:
        llm.close()


@pytest.fixture(scope="module")
def base32(smol32_dir: Path) -> Path:
    return smol32_dir


def _close(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    agree = float((a.argmax(-1) == b.argmax(-1)).mean())
    corr = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    return agree, corr


def test_the_base_exported_to_q8_0_gives_the_originals_logits(base32: Path, tmp_path: Path) -> None:
    original = locate_embedded_gguf()
    f16 = hf_to_gguf(base32, original, tmp_path / "base.f16.gguf")
    q8 = quantize(f16, tmp_path / "base.q8_0.gguf", "q8_0")
    assert q8.stat().st_size < f16.stat().st_size * 0.6
    agree, corr = _close(_logits(q8), _logits(original))
    assert agree >= 0.9 and corr > 0.995, (agree, corr)


def test_a_merged_lora_exports_like_the_runtime_lora(base32: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tensors = random_peft_llama_tensors(
        n_layers=30, hidden=576, n_head=9, n_head_kv=3, ffn=1536, r=4, modules=LLAMA_ATTN, seed=5, scale=0.3
    )
    peft_dir = write_peft_dir(tmp_path / "peft", tensors, r=4, alpha=8.0, target_modules=list(LLAMA_ATTN))
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base32)), str(peft_dir)).merge_and_unload()
    merged.save_pretrained(str(tmp_path / "merged"), safe_serialization=True)
    original = locate_embedded_gguf()
    q8 = quantize(hf_to_gguf(tmp_path / "merged", original, tmp_path / "m.f16.gguf"), tmp_path / "m.q8_0.gguf", "q8_0")
    runtime_lora = peft_to_gguf_lora(peft_dir, tmp_path / "lora.gguf", base_gguf=original)
    exported, at_runtime, base = _logits(q8), _logits(original, runtime_lora), _logits(original)
    agree, corr = _close(exported, at_runtime)
    assert agree >= 0.85 and corr > 0.99, (agree, corr)
    assert _close(exported, base)[1] < corr  # the fine-tune is kept, not erased


def test_q4_1_is_refused_with_the_reason() -> None:
    with pytest.raises(PlinthError) as e:
        parse({"model": "acme@1", "format": "gguf", "quant": "q4_1"})
    assert "erases the fine-tune" in e.value.message
