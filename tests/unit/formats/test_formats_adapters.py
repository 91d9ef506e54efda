"""LoRA adapters as files: inspection, validation against a base, PEFT -> llama.cpp conversion.

What the conversion tests prove, and what they do not:

- ``test_tiny_gguf_matches_hf`` / ``test_converted_lora_matches_peft_logits`` are the
  numerical proof. A tiny random llama (GQA: 4 heads, 2 KV heads, strong q/k weights so
  attention is far from uniform) runs in transformers; its F32 GGUF runs in llama.cpp. The
  base logits agree to ~1e-6, which pins our q/k row permutation to llama.cpp's RoPE layout
  (without the permutation they differ by ~1). Then a real PEFT LoRA (made by ``peft`` on
  all seven projections, ``init_lora_weights=False``, with rank_pattern/alpha_pattern, and
  again with rsLoRA) is converted by ``peft_to_gguf_lora`` and llama.cpp's logits with it
  match PEFT's to ~1e-5 while the adapter moves them by ~1-3: names, A/B orientation,
  permutation of lora_B (q with head_count, k with head_count_kv), alpha and the folded
  per-module scales are all right, for this architecture family.
- ``test_converted_lora_matches_merged_weights_without_peft`` repeats the proof when the
  peft package is absent (peft is not a declared dependency: the two peft-made cases skip
  then): hand-written PEFT files, reference = HF model with ``W += alpha/r * B @ A`` merged.
- ``test_conversion_without_permutation_is_wrong`` is the control: the same adapter
  converted without the lora_B permutation misses PEFT's logits by far more than the tolerance.
- On the embedded SmolLM2 (Q4_1, 9 heads / 3 KV heads) there is no HF reference here (its HF
  weights are not shipped; loading the GGUF into transformers takes ~15 s), so the tests
  show only that the converted file has exactly the expected tensors (permuted lora_B, same
  lora_A), that llama.cpp accepts it and that it changes the logits.
- Not covered: llama-family variants with a separate ``head_dim`` (key_length) or partial
  rotary, and quantised LoRA tensors (we write F32/F16).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plinth.domain.models import AdapterFormat
from plinth.errors import ErrorCode, PlinthError
from plinth.formats.gguf import inspect_gguf
from plinth.formats.lora.convert import peft_to_gguf_lora, permute_rope_rows
from plinth.formats.lora.fit import check_adapter_fits, check_gguf_lora_against_base
from plinth.formats.lora.inspect import inspect_adapter
from tests.support.adapters import (
    hf_llama_to_gguf,
    peft_key,
    random_peft_llama_tensors,
    write_peft_dir,
    write_random_gguf_lora,
    write_safetensors,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SMOL = dict(n_layers=30, hidden=576, n_head=9, n_head_kv=3, ffn=1536)
ALL_PROJ = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TOKENS = [5, 77, 200, 13, 300, 42, 9, 250, 120, 33, 64, 1]


def expect_error(call: Callable[[], Any], code: ErrorCode, *fragments: str) -> PlinthError:
    with pytest.raises(PlinthError) as info:
        call()
    assert info.value.code == code, info.value.message
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    return info.value


def write_gguf(path: Path, arch: str, kv: list[tuple[str, str, Any]], tensors: dict[str, np.ndarray]) -> Path:
    """A GGUF with exactly the given metadata (``(writer method, key, value)``) and tensors."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    for method, key, value in kv:
        getattr(w, method)(key, value)
    for name, array in tensors.items():
        w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def lora_pair(n_in: int, n_out: int, r: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((r, n_in)).astype(np.float32), rng.standard_normal((n_out, r)).astype(np.float32)


ADAPTER_KV = [("add_string", "general.type", "adapter"), ("add_string", "adapter.type", "lora"), ("add_float32", "adapter.lora.alpha", 8.0)]


# --------------------------------------------------------------------------- llama.cpp helpers


def _llama(path: Path, **kw: Any) -> Any:
    """One thread: on the shared 2-core machine two llama.cpp threads collapse (0.07 s -> 10 s
    for one prompt) as soon as another process is busy. F32 KV cache for exact comparisons."""
    import llama_cpp

    from tests.support.llama import no_extra_buffers

    with no_extra_buffers():
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=256,
            logits_all=True,
            verbose=False,
            n_threads=1,
            n_threads_batch=1,
            type_k=0,
            type_v=0,
            **kw,
        )


def _load_adapter(llm: Any, path: Path) -> Any:
    import llama_cpp

    handle = llama_cpp.llama_adapter_lora_init(llm.model, str(path).encode())
    return handle if handle else None  # a failed load is a NULL pointer, not None


def _logits(llm: Any, tokens: list[int], adapter: Any = None, scale: float = 1.0) -> np.ndarray:
    import llama_cpp

    if adapter is None:
        assert llama_cpp.llama_set_adapters_lora(llm.ctx, None, 0, None) == 0
    else:
        handles = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
        assert llama_cpp.llama_set_adapters_lora(llm.ctx, handles, 1, (ctypes.c_float * 1)(scale)) == 0
    llm.reset()
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)], dtype=np.float32)


@pytest.fixture(scope="module")
def smol_llm(embedded_gguf: Path) -> Any:
    llm = _llama(embedded_gguf)
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def smol_tokens(smol_llm: Any) -> list[int]:
    return smol_llm.tokenize(b"<|im_start|>user\nWhat is the capital of France?<|im_end|>\n", add_bos=False, special=True)


@pytest.fixture(scope="module")
def random_lora(tmp_path_factory: pytest.TempPathFactory, embedded_gguf: Path) -> Path:
    return write_random_gguf_lora(tmp_path_factory.mktemp("lora") / "random.gguf", base_gguf=embedded_gguf)


# --------------------------------------------------------------------------- permutation


def test_permute_rope_rows_interleaves_each_heads_halves() -> None:
    """HF pairs dimension i with i + d/2 inside a head; llama.cpp pairs 2i with 2i+1."""
    n_head, head_dim = 3, 8
    rows = np.arange(n_head * head_dim)
    out = permute_rope_rows(rows[:, None], n_head)[:, 0]
    expected = []
    for h in range(n_head):
        for i in range(head_dim // 2):
            expected += [h * head_dim + i, h * head_dim + head_dim // 2 + i]
    assert out.tolist() == expected
    with pytest.raises(ValueError):
        permute_rope_rows(np.zeros((10, 2)), 3)


def test_permute_commutes_with_the_lora_product() -> None:
    rng = np.random.default_rng(1)
    b, a = rng.standard_normal((192, 8)), rng.standard_normal((8, 576))
    np.testing.assert_array_equal(permute_rope_rows(b, 3) @ a, permute_rope_rows(b @ a, 3))


# --------------------------------------------------------------------------- GGUF LoRA


def test_inspect_random_gguf_lora(random_lora: Path) -> None:
    info = inspect_adapter(random_lora)
    assert info.format is AdapterFormat.GGUF_LORA
    assert (info.architecture, info.rank, info.alpha) == ("llama", 8, 16.0)
    assert info.target_modules == ["attn_q", "attn_v"]
    assert info.parameters["module_shapes"] == {"attn_q": [[576, 576]], "attn_v": [[576, 192]]}
    assert info.parameters["layers"] == list(range(30))
    assert info.parameters["tensor_types"] == {"F32": 120}
    assert info.size_bytes == random_lora.stat().st_size


def test_random_gguf_lora_loads_in_llama_cpp_and_changes_logits(
    smol_llm: Any, smol_tokens: list[int], random_lora: Path, embedded_gguf: Path
) -> None:
    check_gguf_lora_against_base(random_lora, embedded_gguf)
    base = _logits(smol_llm, smol_tokens)
    adapter = _load_adapter(smol_llm, random_lora)
    assert adapter is not None
    try:
        with_lora = _logits(smol_llm, smol_tokens, adapter)
        zero = _logits(smol_llm, smol_tokens, adapter, scale=0.0)
    finally:
        _logits(smol_llm, smol_tokens)  # detach before freeing
        import llama_cpp

        llama_cpp.llama_adapter_lora_free(adapter)
    assert np.abs(with_lora - base).max() > 1.0
    np.testing.assert_allclose(zero, base, atol=1e-3)  # scale 0 is the base again
    assert (with_lora.argmax(-1) != base.argmax(-1)).any()


def test_full_model_gguf_is_not_an_adapter(embedded_gguf: Path) -> None:
    expect_error(lambda: inspect_adapter(embedded_gguf), ErrorCode.INVALID_REQUEST, "is a model, not an adapter")


def test_malformed_gguf_loras(tmp_path: Path, random_lora: Path) -> None:
    raw = random_lora.read_bytes()
    (tmp_path / "cut.gguf").write_bytes(raw[: len(raw) // 2])
    expect_error(lambda: inspect_adapter(tmp_path / "cut.gguf"), ErrorCode.INVALID_MODEL_FILE, "truncated")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    expect_error(lambda: inspect_adapter(tmp_path / "junk.gguf"), ErrorCode.INVALID_MODEL_FILE, "GGUF magic")
    (tmp_path / "empty.gguf").write_bytes(b"")
    expect_error(lambda: inspect_adapter(tmp_path / "empty.gguf"), ErrorCode.INVALID_MODEL_FILE, "empty")
    expect_error(lambda: inspect_adapter(tmp_path / "missing.gguf"), ErrorCode.NOT_FOUND)

    a, b = lora_pair(576, 576)
    pair = {"blk.0.attn_q.weight.lora_a": a, "blk.0.attn_q.weight.lora_b": b}

    def variant(name: str, kv: list[tuple[str, str, Any]], tensors: dict[str, np.ndarray] = pair) -> Path:
        return write_gguf(tmp_path / f"{name}.gguf", "llama", kv, tensors)

    # Each of these would abort a llama.cpp process (GGML_ASSERT in gguf_get_val_*).
    alpha64 = variant("alpha64", [*ADAPTER_KV[:2], ("add_float64", "adapter.lora.alpha", 8.0)])
    expect_error(lambda: inspect_adapter(alpha64), ErrorCode.INVALID_MODEL_FILE, "FLOAT32")
    gtype_int = variant("gtype_int", [("add_uint32", "general.type", 1), *ADAPTER_KV[1:]])
    expect_error(lambda: inspect_adapter(gtype_int), ErrorCode.INVALID_MODEL_FILE, "general.type must be a string")
    atype_int = variant("atype_int", [ADAPTER_KV[0], ("add_uint32", "adapter.type", 1), ADAPTER_KV[2]])
    expect_error(lambda: inspect_adapter(atype_int), ErrorCode.INVALID_MODEL_FILE, "adapter.type")
    # ... and these llama.cpp refuses with an error.
    no_type = variant("no_type", ADAPTER_KV[1:])
    expect_error(lambda: inspect_adapter(no_type), ErrorCode.INVALID_MODEL_FILE, "no general.type")
    cvec = variant("cvec", [ADAPTER_KV[0], ("add_string", "adapter.type", "control_vector")])
    expect_error(lambda: inspect_adapter(cvec), ErrorCode.UNSUPPORTED_FORMAT, "control_vector")
    half = variant("half", ADAPTER_KV, {"blk.0.attn_q.weight.lora_a": a})
    expect_error(lambda: inspect_adapter(half), ErrorCode.INVALID_MODEL_FILE, "missing its lora_b")
    odd = variant("odd", ADAPTER_KV, {**pair, "blk.0.attn_q.weight": b})
    expect_error(lambda: inspect_adapter(odd), ErrorCode.INVALID_MODEL_FILE, "not a LoRA tensor")
    rank = variant("rank", ADAPTER_KV, {"blk.0.attn_q.weight.lora_a": a, "blk.0.attn_q.weight.lora_b": b[:, :3]})
    expect_error(lambda: inspect_adapter(rank), ErrorCode.INVALID_MODEL_FILE, "do not share a rank")
    ints = variant("ints", ADAPTER_KV, {k: v.astype(np.int32) for k, v in pair.items()})
    expect_error(lambda: inspect_adapter(ints), ErrorCode.UNSUPPORTED_FORMAT, "I32")
    # Missing alpha is legal (llama.cpp then uses scale 1): inspected as alpha None.
    assert inspect_adapter(variant("noalpha", ADAPTER_KV[:2])).alpha is None


def test_gguf_lora_for_another_model_is_refused(tmp_path: Path, embedded_gguf: Path, smol_llm: Any) -> None:
    # An adapter for a 64-wide model with 2 layers, checked against SmolLM2 (576 wide, 30 layers).
    a, b = lora_pair(64, 64)
    other = write_gguf(tmp_path / "other.gguf", "llama", ADAPTER_KV, {"blk.0.attn_q.weight.lora_a": a, "blk.0.attn_q.weight.lora_b": b})
    info = inspect_adapter(other)
    smol = inspect_gguf(embedded_gguf)
    expect_error(
        lambda: check_adapter_fits(info, smol.parameters, base_architecture=smol.architecture, base_name="smollm2"),
        ErrorCode.INVALID_REQUEST,
        "does not fit base model 'smollm2'",
        "attn_q has [in 64, out 64]",
        "another model",
    )
    expect_error(lambda: check_gguf_lora_against_base(other, embedded_gguf), ErrorCode.INVALID_REQUEST, "blk.0.attn_q")
    assert _load_adapter(smol_llm, other) is None  # llama.cpp agrees

    # Layers beyond the base, another architecture.
    deep = write_gguf(
        tmp_path / "deep.gguf",
        "llama",
        ADAPTER_KV,
        {"blk.31.attn_q.weight.lora_a": lora_pair(576, 576)[0], "blk.31.attn_q.weight.lora_b": lora_pair(576, 576)[1]},
    )
    expect_error(lambda: check_adapter_fits(inspect_adapter(deep), smol.parameters), ErrorCode.INVALID_REQUEST, "layer 31", "30 layers")
    expect_error(lambda: check_gguf_lora_against_base(deep, embedded_gguf), ErrorCode.INVALID_REQUEST, "does not have")
    qwen = write_gguf(
        tmp_path / "qwen.gguf",
        "qwen2",
        ADAPTER_KV,
        {"blk.0.attn_q.weight.lora_a": lora_pair(576, 576)[0], "blk.0.attn_q.weight.lora_b": lora_pair(576, 576)[1]},
    )
    expect_error(
        lambda: check_adapter_fits(inspect_adapter(qwen), smol.parameters, base_architecture="llama"), ErrorCode.INVALID_REQUEST, "'qwen2'"
    )
    expect_error(lambda: check_gguf_lora_against_base(qwen, embedded_gguf), ErrorCode.INVALID_REQUEST, "'qwen2'")


def test_fitting_adapter_passes(random_lora: Path, embedded_gguf: Path) -> None:
    smol = inspect_gguf(embedded_gguf)
    check_adapter_fits(inspect_adapter(random_lora), smol.parameters, base_architecture="llama")


# --------------------------------------------------------------------------- PEFT directories


@pytest.fixture(scope="module")
def peft_tiny_dir(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> Path:
    """A PEFT LoRA saved by peft itself on the tiny HF model of tests/support/tiny_hf."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    dest = tmp_path_factory.mktemp("peft") / "tiny-lora"
    peft_model.save_pretrained(dest)
    return dest


def test_inspect_peft_dir_saved_by_peft(peft_tiny_dir: Path, tiny_llama_dir: Path) -> None:
    info = inspect_adapter(peft_tiny_dir)
    assert info.format is AdapterFormat.PEFT_LORA
    assert (info.architecture, info.rank, info.alpha) == (None, 4, 8.0)
    assert info.target_modules == ["q_proj", "v_proj"]
    p = info.parameters
    assert p["base_model_name_or_path"] == str(tiny_llama_dir)
    assert p["module_shapes"] == {"q_proj": [[64, 64]], "v_proj": [[64, 64]]}
    assert p["layers"] == [0, 1] and p["tensor_count"] == 8 and p["dtypes"] == ["F32"]
    assert sorted(p["target_modules_config"]) == ["q_proj", "v_proj"]
    assert info.size_bytes >= (peft_tiny_dir / "adapter_model.safetensors").stat().st_size
    # It fits its own base (HF parameter names) and not SmolLM2 (GGUF parameter names).
    from plinth.formats.safetensors_dir import inspect_safetensors_dir

    check_adapter_fits(info, inspect_safetensors_dir(tiny_llama_dir).parameters)
    expect_error(lambda: check_adapter_fits(info, {"embedding_length": 576, "block_count": 30}), ErrorCode.INVALID_REQUEST, "q_proj")


def test_full_hf_model_dir_is_not_an_adapter(tiny_llama_dir: Path) -> None:
    expect_error(lambda: inspect_adapter(tiny_llama_dir), ErrorCode.INVALID_REQUEST, "is a model, not an adapter")


def test_malformed_peft_dirs(tmp_path: Path) -> None:
    tensors = random_peft_llama_tensors(n_layers=1, hidden=64, n_head=4, n_head_kv=2, ffn=128, r=4, modules=["q_proj"])
    good = write_peft_dir(tmp_path / "good", tensors, r=4, alpha=8, target_modules=["q_proj"])
    assert inspect_adapter(good).rank == 4

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_text((good / "adapter_config.json").read_text())
    (pickled / "adapter_model.bin").write_bytes(b"\x80\x04garbage that must never be unpickled")
    expect_error(lambda: inspect_adapter(pickled), ErrorCode.UNSUPPORTED_FORMAT, "adapter_model.bin", "pickle")
    expect_error(lambda: inspect_adapter(pickled / "adapter_model.bin"), ErrorCode.UNSUPPORTED_FORMAT, "pickle")

    ia3 = write_peft_dir(tmp_path / "ia3", tensors, r=4, alpha=8, target_modules=["q_proj"], peft_type="IA3")
    expect_error(lambda: inspect_adapter(ia3), ErrorCode.UNSUPPORTED_FORMAT, "'IA3'")
    bad_r = write_peft_dir(tmp_path / "bad_r", tensors, r=0, alpha=8, target_modules=["q_proj"])
    expect_error(lambda: inspect_adapter(bad_r), ErrorCode.INVALID_MODEL_FILE, "r must be a positive integer")

    not_json = tmp_path / "not_json"
    not_json.mkdir()
    (not_json / "adapter_config.json").write_text("{ nope")
    write_safetensors(not_json / "adapter_model.safetensors", tensors)
    expect_error(lambda: inspect_adapter(not_json), ErrorCode.INVALID_MODEL_FILE, "not valid JSON")

    cut = write_peft_dir(tmp_path / "cut", tensors, r=4, alpha=8, target_modules=["q_proj"])
    weights = cut / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    expect_error(lambda: inspect_adapter(cut), ErrorCode.INVALID_MODEL_FILE, "adapter_model.safetensors")

    lonely = write_peft_dir(
        tmp_path / "lonely", {peft_key(0, "q_proj", "A"): tensors[peft_key(0, "q_proj", "A")]}, r=4, alpha=8, target_modules=["q_proj"]
    )
    expect_error(lambda: inspect_adapter(lonely), ErrorCode.INVALID_MODEL_FILE, "no lora_B")
    mismatched = write_peft_dir(
        tmp_path / "mismatched",
        {peft_key(0, "q_proj", "A"): np.zeros((4, 64), np.float32), peft_key(0, "q_proj", "B"): np.zeros((64, 3), np.float32)},
        r=4,
        alpha=8,
        target_modules=["q_proj"],
    )
    expect_error(lambda: inspect_adapter(mismatched), ErrorCode.INVALID_MODEL_FILE, "do not share a rank")

    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "adapter_config.json").write_text((good / "adapter_config.json").read_text())
    expect_error(lambda: inspect_adapter(no_weights), ErrorCode.INVALID_MODEL_FILE, "missing")
    expect_error(lambda: inspect_adapter(good / "adapter_model.safetensors"), ErrorCode.UNSUPPORTED_FORMAT, "directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_error(lambda: inspect_adapter(empty), ErrorCode.UNSUPPORTED_FORMAT, "adapter_config.json")


# --------------------------------------------------------------------------- conversion: SmolLM2 shapes


def test_convert_smol_shaped_peft(tmp_path: Path, embedded_gguf: Path, smol_llm: Any, smol_tokens: list[int]) -> None:
    import gguf

    tensors = random_peft_llama_tensors(**SMOL, r=8, modules=ALL_PROJ[:4], scale=0.05)
    peft_dir = write_peft_dir(tmp_path / "peft", tensors, r=8, alpha=16, target_modules=ALL_PROJ[:4])
    out = peft_to_gguf_lora(peft_dir, tmp_path / "out" / "lora.gguf", base_gguf=embedded_gguf)
    assert out == tmp_path / "out" / "lora.gguf" and not list(out.parent.glob("*.partial"))

    info = inspect_adapter(out)
    assert (info.format, info.architecture, info.rank, info.alpha) == (AdapterFormat.GGUF_LORA, "llama", 8, 16.0)
    assert info.target_modules == ["attn_k", "attn_output", "attn_q", "attn_v"]
    check_gguf_lora_against_base(out, embedded_gguf)

    reader = gguf.GGUFReader(out)
    fields = {f.name: f for f in reader.fields.values()}
    assert fields["general.type"].contents() == "adapter" and fields["adapter.type"].contents() == "lora"
    assert fields["general.architecture"].contents() == "llama"
    assert fields["adapter.lora.alpha"].types == [gguf.GGUFValueType.FLOAT32]
    got = {t.name: np.array(t.data) for t in reader.tensors}
    assert len(got) == 30 * 4 * 2
    for layer in (0, 29):
        for proj, name, heads in (
            ("q_proj", "attn_q", 9),
            ("k_proj", "attn_k", 3),
            ("v_proj", "attn_v", None),
            ("o_proj", "attn_output", None),
        ):
            a, b = tensors[peft_key(layer, proj, "A")], tensors[peft_key(layer, proj, "B")]
            np.testing.assert_array_equal(got[f"blk.{layer}.{name}.weight.lora_a"], a)
            want_b = permute_rope_rows(b, heads) if heads else b
            np.testing.assert_array_equal(got[f"blk.{layer}.{name}.weight.lora_b"], want_b)

    adapter = _load_adapter(smol_llm, out)
    assert adapter is not None
    try:
        base, with_lora = _logits(smol_llm, smol_tokens), _logits(smol_llm, smol_tokens, adapter)
    finally:
        import llama_cpp

        _logits(smol_llm, smol_tokens[:1])
        llama_cpp.llama_adapter_lora_free(adapter)
    assert np.abs(with_lora - base).max() > 0.5

    f16 = peft_to_gguf_lora(peft_dir, tmp_path / "lora16.gguf", base_gguf=embedded_gguf, dtype="f16")
    assert inspect_adapter(f16).parameters["tensor_types"] == {"F16": 240}


def test_conversion_refusals(tmp_path: Path, embedded_gguf: Path, random_lora: Path) -> None:
    small = random_peft_llama_tensors(n_layers=2, hidden=64, n_head=4, n_head_kv=2, ffn=128, r=4)
    small_dir = write_peft_dir(tmp_path / "small", small, r=4, alpha=8, target_modules=ALL_PROJ[:4])
    expect_error(
        lambda: peft_to_gguf_lora(small_dir, tmp_path / "x.gguf", base_gguf=embedded_gguf), ErrorCode.INVALID_REQUEST, "another model"
    )
    assert not (tmp_path / "x.gguf").exists()

    qwen_base = write_gguf(
        tmp_path / "qwen.gguf", "qwen2", [("add_string", "general.type", "model")], {"blk.0.attn_q.weight": np.zeros((64, 64), np.float32)}
    )
    expect_error(
        lambda: peft_to_gguf_lora(small_dir, tmp_path / "x.gguf", base_gguf=qwen_base), ErrorCode.UNSUPPORTED, "llama-architecture"
    )
    expect_error(
        lambda: peft_to_gguf_lora(random_lora, tmp_path / "x.gguf", base_gguf=embedded_gguf),
        ErrorCode.INVALID_REQUEST,
        "not a PEFT directory",
    )

    smol = random_peft_llama_tensors(**SMOL, r=2, modules=["q_proj"])
    dora = write_peft_dir(tmp_path / "dora", smol, r=2, alpha=4, target_modules=["q_proj"], use_dora=True)
    expect_error(lambda: peft_to_gguf_lora(dora, tmp_path / "x.gguf", base_gguf=embedded_gguf), ErrorCode.UNSUPPORTED, "DoRA")
    embed = dict(smol)
    embed["base_model.model.model.embed_tokens.lora_embedding_A"] = np.zeros((2, 49152), np.float32)
    embed["base_model.model.model.embed_tokens.lora_embedding_B"] = np.zeros((576, 2), np.float32)
    embed_dir = write_peft_dir(tmp_path / "embed", embed, r=2, alpha=4, target_modules=["q_proj", "embed_tokens"])
    assert inspect_adapter(embed_dir).target_modules == ["embed_tokens", "q_proj"]
    expect_error(lambda: peft_to_gguf_lora(embed_dir, tmp_path / "x.gguf", base_gguf=embedded_gguf), ErrorCode.UNSUPPORTED, "embed_tokens")
    saved = dict(smol)
    saved["base_model.model.lm_head.modules_to_save.default.weight"] = np.zeros((4, 4), np.float32)
    saved_dir = write_peft_dir(tmp_path / "saved", saved, r=2, alpha=4, target_modules=["q_proj"])
    assert inspect_adapter(saved_dir).parameters["extra_tensors"] == 1
    expect_error(
        lambda: peft_to_gguf_lora(saved_dir, tmp_path / "x.gguf", base_gguf=embedded_gguf), ErrorCode.UNSUPPORTED, "modules_to_save"
    )
    biased = dict(smol)
    biased[peft_key(0, "q_proj", "B").replace(".weight", ".bias")] = np.zeros((576,), np.float32)
    biased_dir = write_peft_dir(tmp_path / "biased", biased, r=2, alpha=4, target_modules=["q_proj"], lora_bias=True)
    assert inspect_adapter(biased_dir).rank == 2  # the torch runtime may still serve it
    expect_error(lambda: peft_to_gguf_lora(biased_dir, tmp_path / "x.gguf", base_gguf=embedded_gguf), ErrorCode.UNSUPPORTED, "lora_B.bias")


# --------------------------------------------------------------------------- conversion: numerical proof


@pytest.fixture(scope="module")
def tiny_hf_and_gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, np.ndarray]:
    """A random GQA llama in transformers, its F32 GGUF, and its reference logits for TOKENS."""
    import torch
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=320,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
            else:  # strong q/k so attention (and so RoPE) matters
                p.normal_(0, 0.15 if ("q_proj" in name or "k_proj" in name) else 0.08)
        reference = model(torch.tensor([TOKENS])).logits[0].numpy()
    path = hf_llama_to_gguf(model, tmp_path_factory.mktemp("tiny-gguf") / "tiny.gguf")
    return model, path, reference


def _hf_logits(model: Any) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([TOKENS])).logits[0].numpy()


def _lc_logits(base: Path, lora: Path | None = None) -> np.ndarray:
    llm = _llama(base, lora_path=str(lora) if lora else None)
    try:
        llm.eval(TOKENS)
        return np.array(llm.scores[: len(TOKENS)], dtype=np.float32)
    finally:
        llm.close()


def test_tiny_gguf_matches_hf(tiny_hf_and_gguf: tuple[Any, Path, np.ndarray]) -> None:
    _, path, reference = tiny_hf_and_gguf
    np.testing.assert_allclose(_lc_logits(path), reference, atol=1e-4)


@pytest.fixture(scope="module", params=["patterns", "rslora"])
def tiny_peft(
    request: pytest.FixtureRequest, tiny_hf_and_gguf: tuple[Any, Path, np.ndarray], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, np.ndarray]:
    """A PEFT LoRA made by peft on all seven projections, and the PEFT model's logits."""
    import peft
    import torch

    model, _, _ = tiny_hf_and_gguf
    extra = (
        {"rank_pattern": {"k_proj": 2}, "alpha_pattern": {"o_proj": 3}}
        if request.param == "patterns"
        else {"use_rslora": True, "lora_alpha": 3}
    )
    config = peft.LoraConfig(**{"r": 4, "lora_alpha": 8, "target_modules": ALL_PROJ, "init_lora_weights": False, **extra})
    torch.manual_seed(1)
    peft_model = peft.get_peft_model(model, config)
    try:
        logits = _hf_logits(peft_model)
        dest = tmp_path_factory.mktemp(f"peft-{request.param}") / "adapter"
        peft_model.save_pretrained(dest)
    finally:
        peft_model.unload()  # give the shared base model back untouched
    return dest, logits


def test_converted_lora_matches_peft_logits(
    tiny_hf_and_gguf: tuple[Any, Path, np.ndarray], tiny_peft: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    _, base_gguf, reference = tiny_hf_and_gguf
    peft_dir, peft_logits = tiny_peft
    assert np.abs(peft_logits - reference).max() > 0.5  # the adapter matters
    lora = peft_to_gguf_lora(peft_dir, tmp_path / "lora.gguf", base_gguf=base_gguf)
    np.testing.assert_allclose(_lc_logits(base_gguf, lora), peft_logits, atol=1e-4)


def test_conversion_without_permutation_is_wrong(
    tiny_hf_and_gguf: tuple[Any, Path, np.ndarray],
    tiny_peft: tuple[Path, np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import plinth.formats.lora.convert as convert

    _, base_gguf, _ = tiny_hf_and_gguf
    peft_dir, peft_logits = tiny_peft
    monkeypatch.setattr(convert, "permute_rope_rows", lambda w, n_head: w)
    lora = peft_to_gguf_lora(peft_dir, tmp_path / "unpermuted.gguf", base_gguf=base_gguf)
    assert np.abs(_lc_logits(base_gguf, lora) - peft_logits).max() > 0.1


def test_converted_lora_matches_merged_weights_without_peft(tiny_hf_and_gguf: tuple[Any, Path, np.ndarray], tmp_path: Path) -> None:
    """The same proof without the peft package: a hand-written PEFT directory, and as the
    reference the HF model with ``W += (alpha / r) * B @ A`` merged in (what PEFT computes)."""
    import copy

    import torch

    model, base_gguf, reference = tiny_hf_and_gguf
    r, alpha = 4, 6.0
    tensors = random_peft_llama_tensors(n_layers=2, hidden=64, n_head=4, n_head_kv=2, ffn=128, r=r, modules=ALL_PROJ, seed=3, scale=0.3)
    peft_dir = write_peft_dir(tmp_path / "peft", tensors, r=r, alpha=alpha, target_modules=ALL_PROJ)
    merged = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in merged.named_parameters():
            for proj in ALL_PROJ:
                if f".{proj}." in name:
                    layer = int(name.split(".layers.")[1].split(".")[0])
                    delta = tensors[peft_key(layer, proj, "B")] @ tensors[peft_key(layer, proj, "A")]
                    p.add_(torch.from_numpy(delta * (alpha / r)))
    expected = _hf_logits(merged)
    assert np.abs(expected - reference).max() > 0.5
    lora = peft_to_gguf_lora(peft_dir, tmp_path / "lora.gguf", base_gguf=base_gguf)
    np.testing.assert_allclose(_lc_logits(base_gguf, lora), expected, atol=1e-4)
