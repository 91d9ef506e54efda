"""LoRA test fixtures built offline: hand-made PEFT directories and a tiny llama GGUF.

- :func:`write_safetensors` writes a ``.safetensors`` file with numpy only.
- :func:`write_peft_dir` writes ``adapter_config.json`` + ``adapter_model.safetensors`` the
  way PEFT's ``save_pretrained`` does (tensor keys ``base_model.model.model.layers.{i}.
  self_attn.q_proj.lora_A.weight``, adapter name stripped).
- :func:`random_peft_llama_tensors` makes random LoRA tensors for a llama of given shapes.
- :func:`hf_llama_to_gguf` turns a small in-memory ``LlamaForCausalLM`` into an F32 llama
  GGUF that llama.cpp loads, with a synthetic byte-level vocabulary of the model's size
  (tests feed token ids, so the vocabulary's content does not matter). Like llama.cpp's
  convert_hf_to_gguf.py it permutes q_proj/k_proj rows (``permute_rope_rows``); a test that
  compares its logits with the HF model's checks that permutation against llama.cpp's RoPE.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plinth.errors import ErrorCode, PlinthError
from plinth.formats.lora.convert import write_lora_gguf

_ST_NAMES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64"}

LLAMA_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
LLAMA_MLP = ("gate_proj", "up_proj", "down_proj")


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _ST_NAMES[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for blob in blobs:
            fh.write(blob)
    return path


def write_peft_dir(
    dest: Path,
    tensors: dict[str, np.ndarray],
    *,
    r: int,
    alpha: float,
    target_modules: Sequence[str] | str,
    **config: Any,
) -> Path:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "r": r,
        "lora_alpha": alpha,
        "target_modules": list(target_modules) if not isinstance(target_modules, str) else target_modules,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "rank_pattern": {},
        "alpha_pattern": {},
        "inference_mode": True,
    }
    cfg.update(config)
    (dest / "adapter_config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    write_safetensors(dest / "adapter_model.safetensors", tensors)
    return dest


def peft_key(layer: int, proj: str, side: str) -> str:
    block = "self_attn" if proj in LLAMA_ATTN else "mlp"
    return f"base_model.model.model.layers.{layer}.{block}.{proj}.lora_{side}.weight"


def random_peft_llama_tensors(
    *,
    n_layers: int,
    hidden: int,
    n_head: int,
    n_head_kv: int,
    ffn: int,
    r: int,
    modules: Sequence[str] = LLAMA_ATTN,
    seed: int = 0,
    scale: float = 0.1,
) -> dict[str, np.ndarray]:
    """Random PEFT LoRA tensors: lora_A ``[r, in]``, lora_B ``[out, r]`` (float32)."""
    head_dim = hidden // n_head
    io = {
        "q_proj": (hidden, n_head * head_dim),
        "k_proj": (hidden, n_head_kv * head_dim),
        "v_proj": (hidden, n_head_kv * head_dim),
        "o_proj": (n_head * head_dim, hidden),
        "gate_proj": (hidden, ffn),
        "up_proj": (hidden, ffn),
        "down_proj": (ffn, hidden),
    }
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for layer in range(n_layers):
        for proj in modules:
            n_in, n_out = io[proj]
            out[peft_key(layer, proj, "A")] = (rng.standard_normal((r, n_in)) / np.sqrt(n_in)).astype(np.float32)
            out[peft_key(layer, proj, "B")] = (rng.standard_normal((n_out, r)) * scale).astype(np.float32)
    return out


def _byte_vocab(n_vocab: int) -> tuple[list[str], list[int]]:
    """GPT-2's byte-to-unicode alphabet, then control tokens up to ``n_vocab``."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    tokens = [chr(c) for c in cs]
    types = [1] * len(tokens)  # NORMAL
    if n_vocab < len(tokens) + 1:
        raise ValueError("the tiny model needs a vocabulary of at least 257 tokens")
    while len(tokens) < n_vocab:
        tokens.append(f"<|special_{len(tokens)}|>")
        types.append(3)  # CONTROL
    return tokens, types


def hf_llama_to_gguf(model: Any, dest: Path, *, permute: bool = True) -> Path:
    """Write an F32 llama GGUF of a small torch ``LlamaForCausalLM`` (untied embeddings)."""
    import gguf

    from plinth.formats.lora.convert import permute_rope_rows

    cfg = model.config
    n_head = cfg.num_attention_heads
    n_head_kv = cfg.num_key_value_heads or n_head
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    rope = getattr(cfg, "rope_parameters", None) or {}
    theta = float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))
    if rope.get("rope_type", "default") != "default":
        raise ValueError("only plain RoPE is supported here")
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}

    w = gguf.GGUFWriter(str(dest), "llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name("tiny-llama-test")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    w.add_rope_freq_base(theta)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens, types = _byte_vocab(cfg.vocab_size)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["Ġ Ġ"])
    w.add_bos_token_id(cfg.vocab_size - 2)
    w.add_eos_token_id(cfg.vocab_size - 1)

    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    names = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    for i in range(cfg.num_hidden_layers):
        for hf, ll in names.items():
            t = sd[f"model.layers.{i}.{hf}.weight"]
            if permute and hf == "self_attn.q_proj":
                t = permute_rope_rows(t, n_head)
            elif permute and hf == "self_attn.k_proj":
                t = permute_rope_rows(t, n_head_kv)
            w.add_tensor(f"blk.{i}.{ll}.weight", np.ascontiguousarray(t, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(dest)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def write_random_gguf_lora(
    dest: Path,
    *,
    base_gguf: Path,
    rank: int = 8,
    alpha: float = 16.0,
    targets: Sequence[str] = ("attn_q", "attn_v"),
    seed: int = 0,
    scale: float = 0.1,
    layers: Iterable[int] | None = None,
    dtype: str = "f32",
) -> Path:
    """A random but valid llama.cpp LoRA for ``base_gguf`` (any architecture): shapes read
    from the base's own tensors, so it always loads. For tests and benchmarks (moved here
    from ``plinth.formats.lora``: nothing in plinth itself makes random adapters).

    ``lora_a ~ N(0, 1/in)``, ``lora_b ~ N(0, scale^2)``; llama.cpp applies
    ``(alpha / rank) * B @ A``. With the defaults on the embedded SmolLM2-135M (q and v of all
    30 layers, scale 0.1) greedy answers to short chat prompts differ from the base's for most
    prompts and seeds while staying text-like ("The capital of France is Paris." became
    "Paris is the capital of the European nation-state ..."); 0.05 barely changes anything,
    0.2 gives off-topic text.
    """
    from plinth.formats.gguf import parse_header

    base_gguf = Path(base_gguf)
    if not _is_int(rank) or rank <= 0:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"rank must be a positive integer, not {rank!r}", param="rank")
    if dtype not in ("f32", "f16"):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"dtype must be 'f32' or 'f16', not {dtype!r}", param="dtype")
    header = parse_header(base_gguf)
    arch = header.metadata.get("general.architecture")
    if not isinstance(arch, str) or header.metadata.get("general.type") == "adapter":
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{base_gguf} is not a GGUF base model", details={"path": str(base_gguf)})
    block_count = header.metadata.get(f"{arch}.block_count")
    shapes = {t.name: t.shape for t in header.tensors}
    layer_list = list(layers) if layers is not None else list(range(block_count if _is_int(block_count) else 0))
    rng = np.random.default_rng(seed)
    out_dtype = np.float32 if dtype == "f32" else np.float16
    tensors: list[tuple[str, np.ndarray]] = []
    for layer in layer_list:
        for target in targets:
            name = f"blk.{layer}.{target}.weight"
            shape = shapes.get(name)
            if shape is None or len(shape) != 2:
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST,
                    f"{base_gguf.name} has no 2-D tensor {name!r} to adapt",
                    details={"tensor": name},
                )
            n_in, n_out = shape  # ggml order
            lora_a = rng.standard_normal((rank, n_in), dtype=np.float32) / np.float32(math.sqrt(n_in))
            lora_b = rng.standard_normal((n_out, rank), dtype=np.float32) * np.float32(scale)
            tensors.append((f"{name}.lora_a", lora_a.astype(out_dtype)))
            tensors.append((f"{name}.lora_b", lora_b.astype(out_dtype)))
    if not tensors:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "no layers to adapt", param="layers")
    return write_lora_gguf(dest, arch, alpha, tensors, name=f"random LoRA (seed {seed}) for {base_gguf.name}")
