"""plinth's batched llama forward against transformers' own forward, on real models.

Logits must match transformers for a whole prompt, for a prompt fed in chunks, token by
token through the decode path, and with other sequences in the same step; LoRA applied per
token must match PEFT's merged-in-place adapter.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from plinth.runtimes import torch_llama as tl
from tests.support.tiny_hf import make_tiny_llama

PROMPT = [5, 17, 42, 99, 3, 250, 7, 7, 81, 120, 64, 11, 300, 2, 45, 46, 47, 48]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama-fwd") / "model")


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2 (grouped-query attention, bias on q/k/v, untied head), random weights."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    dest = tmp_path_factory.mktemp("tiny-qwen") / "model"
    cfg = Qwen2Config(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        use_sliding_window=False,
    )
    torch.manual_seed(1)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        for layer in model.model.layers:  # random biases, so the test sees them
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.5)
    model.save_pretrained(dest, safe_serialization=True)
    return dest


def _hf_logits(model_dir: Path, tokens: list[int], dtype: torch.dtype = torch.float32, adapter: Path | None = None) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    with torch.inference_mode():
        return model(torch.tensor([tokens])).logits[0].float()


def _ours(model_dir: Path, dtype: torch.dtype = torch.float32) -> tuple[tl.LlamaWeights, tl.SlotCache]:
    spec = tl.spec_from_config(tl.read_config(model_dir))
    assert spec is not None
    w = tl.load_weights(model_dir, spec, dtype, "cpu", max_positions=256)
    return w, tl.SlotCache(spec, rows=4, capacity=128, dtype=dtype, device="cpu")


def _prefill_step(tokens: list[int], row: int, pos0: int, all_logits: bool = True) -> tl.Step:
    n = len(tokens)
    return tl.Step(
        tokens=torch.tensor(tokens),
        positions=torch.arange(pos0, pos0 + n),
        n_decode=0,
        decode_rows=[],
        decode_lengths=[],
        segments=[(row, 0, n, pos0)],
        logits_at=torch.arange(n) if all_logits else torch.tensor([n - 1]),
    )


def _decode_step(tokens: list[int], positions: list[int], rows: list[int] | None = None) -> tl.Step:
    n = len(tokens)
    return tl.Step(
        tokens=torch.tensor(tokens),
        positions=torch.tensor(positions),
        n_decode=n,
        decode_rows=rows if rows is not None else list(range(n)),
        decode_lengths=[p + 1 for p in positions],
        segments=[],
        logits_at=torch.arange(n),
    )


@pytest.mark.parametrize("which", ["tiny", "tiny_qwen"])
def test_whole_prompt_chunks_and_decode_match_transformers(which: str, request: pytest.FixtureRequest) -> None:
    model_dir = request.getfixturevalue(which)
    ref = _hf_logits(model_dir, PROMPT)
    w, cache = _ours(model_dir)
    whole = tl.forward(w, cache, _prefill_step(PROMPT, row=0, pos0=0))
    torch.testing.assert_close(whole, ref, atol=1e-4, rtol=1e-4)

    # the same prompt in three chunks on another row
    got = []
    for a, b in ((0, 7), (7, 12), (12, len(PROMPT))):
        got.append(tl.forward(w, cache, _prefill_step(PROMPT[a:b], row=1, pos0=a)))
    torch.testing.assert_close(torch.cat(got), ref, atol=1e-4, rtol=1e-4)

    # the first 10 tokens as a prompt, the rest one at a time through the decode path
    tl.forward(w, cache, _prefill_step(PROMPT[:10], row=0, pos0=0))
    for i in range(10, len(PROMPT)):
        out = tl.forward(w, cache, _decode_step([PROMPT[i]], [i]))
        torch.testing.assert_close(out[0], ref[i], atol=1e-4, rtol=1e-4)


def test_a_mixed_step_gives_each_sequence_its_own_logits(tiny: Path) -> None:
    """Decode rows (not in row order) and a prompt chunk of another row in one forward."""
    other = [9, 8, 7, 6, 5, 4, 3]
    ref_a = _hf_logits(tiny, PROMPT)
    ref_b = _hf_logits(tiny, other)
    w, cache = _ours(tiny)
    tl.forward(w, cache, _prefill_step(PROMPT[:12], row=2, pos0=0))
    tl.forward(w, cache, _prefill_step(PROMPT[:5], row=0, pos0=0))
    tl.forward(w, cache, _prefill_step(other[:3], row=1, pos0=0))
    step = tl.Step(
        tokens=torch.tensor([PROMPT[12], PROMPT[5], *other[3:]]),
        positions=torch.tensor([12, 5, *list(range(3, len(other)))]),
        n_decode=2,
        decode_rows=[2, 0],
        decode_lengths=[13, 6],
        segments=[(1, 2, len(other) - 3, 3)],
        logits_at=torch.tensor([0, 1, 2 + len(other) - 4]),
    )
    out = tl.forward(w, cache, step)
    torch.testing.assert_close(out[0], ref_a[12], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out[1], ref_a[5], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out[2], ref_b[-1], atol=1e-4, rtol=1e-4)


def test_lora_per_token_matches_peft(tiny: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    adapters = []
    for seed, targets, r in (
        (1, ["q_proj", "v_proj"], 4),
        (2, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], 8),
    ):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(str(tiny))
        cfg = LoraConfig(r=r, lora_alpha=2 * r + 3, target_modules=targets, init_lora_weights=False)
        get_peft_model(model, cfg).save_pretrained(str(tmp_path / f"a{seed}"))
        adapters.append((tmp_path / f"a{seed}", cfg))
    w, cache = _ours(tiny)
    bank = tl.new_bank(w.spec, slots=3, rank=4, dtype=w.dtype, device="cpu")
    for slot, (path, cfg) in enumerate(adapters, start=1):
        bank = tl.grow_bank(bank, w.spec, 3, cfg.r)
        tensors = load_file(str(path / "adapter_model.safetensors"))
        mods = {}
        for key, a in tensors.items():
            if ".lora_A." not in key:
                continue
            layer = int(key.split(".layers.")[1].split(".")[0])
            name = key.split(".lora_A.")[0].rsplit(".", 1)[1]
            mods[(layer, name)] = (a, tensors[key.replace("lora_A", "lora_B")], cfg.lora_alpha / cfg.r)
        tl.write_adapter(bank, w.spec, slot, mods)
    refs = [_hf_logits(tiny, PROMPT)] + [_hf_logits(tiny, PROMPT, adapter=p) for p, _ in adapters]
    # the prompt's first 10 tokens on rows 0, 1, 2 with no adapter, adapter 1, adapter 2
    for row in range(3):
        step = _prefill_step(PROMPT[:10], row=row, pos0=0)
        step.segment_slots = [row]
        out = tl.forward(w, cache, step, bank)
        torch.testing.assert_close(out, refs[row][:10], atol=1e-4, rtol=1e-4)
    # then one decode step with the three rows on three different adapters
    step = _decode_step([PROMPT[10]] * 3, [10, 10, 10])
    step.decode_slots = torch.tensor([0, 1, 2])
    out = tl.forward(w, cache, step, bank)
    for row in range(3):
        torch.testing.assert_close(out[row], refs[row][10], atol=1e-4, rtol=1e-4)
    assert (refs[1][10] - refs[0][10]).abs().max() > 1e-2  # the adapters do change the logits


def test_unsupported_configs_fall_back() -> None:
    base = {
        "architectures": ["LlamaForCausalLM"],
        "num_attention_heads": 4,
        "hidden_size": 64,
        "num_hidden_layers": 1,
        "intermediate_size": 128,
        "vocab_size": 10,
    }
    assert tl.spec_from_config(base) is not None
    assert tl.spec_from_config({**base, "architectures": ["GPT2LMHeadModel"]}) is None
    assert tl.spec_from_config({**base, "hidden_act": "gelu"}) is None
    assert tl.spec_from_config({**base, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}) is None
    assert tl.spec_from_config({**base, "architectures": ["MistralForCausalLM"], "sliding_window": 4096}) is None


def test_embedded_model_in_bf16_tracks_transformers(smol_dir: Path) -> None:
    """The embedded SmolLM2 (dequantised from its GGUF) in bf16 is at least as close to the
    float32 forward as transformers' own bf16 forward is, over a real chat prompt."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smol_dir))
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}], tokenize=False, add_generation_prompt=True
    )
    tokens = tok(text, add_special_tokens=False)["input_ids"]
    exact = _hf_logits(smol_dir, tokens, dtype=torch.float32)
    hf_bf16 = _hf_logits(smol_dir, tokens, dtype=torch.bfloat16)
    w, cache = _ours(smol_dir, dtype=torch.bfloat16)
    ours = tl.forward(w, cache, _prefill_step(tokens, row=0, pos0=0))
    assert (ours - exact).abs().mean() <= 1.1 * (hf_bf16 - exact).abs().mean()
    assert (ours - exact).abs().max() <= 1.1 * (hf_bf16 - exact).abs().max()
    agree = (ours.argmax(-1) == exact.argmax(-1)).float().mean()
    assert agree >= (hf_bf16.argmax(-1) == exact.argmax(-1)).float().mean() - 0.03
