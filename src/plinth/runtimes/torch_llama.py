"""A llama-family decoder for batched serving in PyTorch.

transformers' modules are written for training and for one batch at a time; a serving
engine wants something else: fused projections (one matmul for q/k/v, one for gate/up), a
KV cache of fixed rows that sequences enter and leave, steps that mix the one-token decode
of every running sequence with chunks of new prompts, logits only where a token is sampled,
and LoRA applied per token so that requests on different adapters share one batch.

This module is that forward pass, for the architectures that share the llama layout:
``LlamaForCausalLM`` (SmolLM, TinyLlama, Llama 2/3), ``MistralForCausalLM`` and
``Qwen2ForCausalLM`` (bias on q/k/v). Anything else is served by the generic transformers
path of :mod:`plinth.runtimes.torch_hf`. The tests compare its logits with transformers' own
forward on real models (``tests/unit/runtimes/test_torch_llama.py``).

Weights are read from safetensors only (never pickle). Everything here is plain torch and
runs on CPU or CUDA.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from plinth.errors import ErrorCode, PlinthError

SUPPORTED_ARCHITECTURES = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"}
_STATIC_ROPE_TYPES = {"default", "linear", "llama3", "yarn"}


@dataclass(frozen=True)
class LlamaSpec:
    architecture: str
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    eps: float
    tie_embeddings: bool
    attention_bias: bool
    max_positions: int
    rope: dict[str, Any]

    @property
    def q_size(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.n_kv_heads * self.head_dim


def read_config(model_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"cannot read {model_dir / 'config.json'}: {e}") from None


def spec_from_config(cfg: dict[str, Any]) -> LlamaSpec | None:
    """The spec of a supported model, or None when this module cannot serve it (the generic
    path will)."""
    archs = cfg.get("architectures") or []
    if len(archs) != 1 or archs[0] not in SUPPORTED_ARCHITECTURES:
        return None
    if cfg.get("hidden_act", "silu") != "silu" or cfg.get("mlp_bias"):
        return None
    rope = dict(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {})
    rope.setdefault("rope_theta", cfg.get("rope_theta", 10000.0))
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type not in _STATIC_ROPE_TYPES:
        return None
    rope["rope_type"] = rope_type
    window = cfg.get("sliding_window")
    if window and cfg.get("use_sliding_window", archs[0] == "MistralForCausalLM"):
        return None  # sliding-window attention is not implemented here
    n_heads = int(cfg["num_attention_heads"])
    hidden = int(cfg["hidden_size"])
    attention_bias = bool(cfg.get("attention_bias", archs[0] == "Qwen2ForCausalLM"))
    return LlamaSpec(
        architecture=archs[0],
        n_layers=int(cfg["num_hidden_layers"]),
        hidden=hidden,
        n_heads=n_heads,
        n_kv_heads=int(cfg.get("num_key_value_heads") or n_heads),
        head_dim=int(cfg.get("head_dim") or hidden // n_heads),
        intermediate=int(cfg["intermediate_size"]),
        vocab=int(cfg["vocab_size"]),
        eps=float(cfg.get("rms_norm_eps", 1e-6)),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        attention_bias=attention_bias,
        max_positions=int(cfg.get("max_position_embeddings") or 4096),
        rope=rope,
    )


@dataclass
class LayerWeights:
    ln1: torch.Tensor
    qkv: torch.Tensor  # [q + 2 kv, hidden]
    qkv_bias: torch.Tensor | None
    o: torch.Tensor
    ln2: torch.Tensor
    gate_up: torch.Tensor  # [2 * intermediate, hidden]
    down: torch.Tensor


@dataclass
class LlamaWeights:
    spec: LlamaSpec
    embed: torch.Tensor
    lm_head: torch.Tensor
    norm: torch.Tensor
    layers: list[LayerWeights]
    cos: torch.Tensor = field(repr=False, default=None)  # type: ignore[assignment]  # [positions, head_dim]
    sin: torch.Tensor = field(repr=False, default=None)  # type: ignore[assignment]

    @property
    def dtype(self) -> torch.dtype:
        return self.embed.dtype

    @property
    def device(self) -> torch.device:
        return self.embed.device

    def nbytes(self) -> int:
        seen: set[int] = set()
        total = 0
        for t in [self.embed, self.lm_head, self.norm] + [
            x for lw in self.layers for x in (lw.ln1, lw.qkv, lw.qkv_bias, lw.o, lw.ln2, lw.gate_up, lw.down) if x is not None
        ]:
            if t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
        return total


def _safetensors_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError) as e:
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"cannot read {index}: {e}") from None
        return [model_dir / n for n in names]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"{model_dir} has no .safetensors weights")
    return files


def load_weights(model_dir: Path, spec: LlamaSpec, dtype: torch.dtype, device: str, max_positions: int) -> LlamaWeights:
    """Read the safetensors weights into fused tensors of ``dtype`` on ``device``."""
    from safetensors import safe_open

    raw: dict[str, torch.Tensor] = {}
    try:
        for f in _safetensors_files(model_dir):
            with safe_open(str(f), framework="pt", device="cpu") as fh:
                for key in fh.keys():  # noqa: SIM118  (safe_open handles are not iterable)
                    raw[key] = fh.get_tensor(key)
    except PlinthError:
        raise
    except Exception as e:  # SafetensorError, OSError: a damaged file
        raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"cannot read the weights of {model_dir}: {e}") from None

    def take(name: str) -> torch.Tensor:
        t = raw.pop(name, None)
        if t is None:
            raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"{model_dir} has no tensor {name!r}")
        return t

    def put(*tensors: torch.Tensor) -> torch.Tensor:
        t = tensors[0] if len(tensors) == 1 else torch.cat(tensors, 0)
        return t.to(device=device, dtype=dtype).contiguous()

    layers = []
    for i in range(spec.n_layers):
        p = f"model.layers.{i}."
        qkv_bias = None
        if spec.attention_bias:
            qkv_bias = put(take(p + "self_attn.q_proj.bias"), take(p + "self_attn.k_proj.bias"), take(p + "self_attn.v_proj.bias"))
        layers.append(
            LayerWeights(
                ln1=put(take(p + "input_layernorm.weight")),
                qkv=put(take(p + "self_attn.q_proj.weight"), take(p + "self_attn.k_proj.weight"), take(p + "self_attn.v_proj.weight")),
                qkv_bias=qkv_bias,
                o=put(take(p + "self_attn.o_proj.weight")),
                ln2=put(take(p + "post_attention_layernorm.weight")),
                gate_up=put(take(p + "mlp.gate_proj.weight"), take(p + "mlp.up_proj.weight")),
                down=put(take(p + "mlp.down_proj.weight")),
            )
        )
    embed = put(take("model.embed_tokens.weight"))
    lm_head = put(take("lm_head.weight")) if "lm_head.weight" in raw and not spec.tie_embeddings else embed
    w = LlamaWeights(spec=spec, embed=embed, lm_head=lm_head, norm=put(take("model.norm.weight")), layers=layers)
    w.cos, w.sin = rope_tables(spec, max_positions, dtype, device)
    return w


def rope_tables(spec: LlamaSpec, positions: int, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every position, [positions, head_dim], computed in float32 and cast
    to the model's dtype as transformers does."""
    inv_freq, scaling = _inv_freq(spec)
    t = torch.arange(positions, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return (emb.cos() * scaling).to(device=device, dtype=dtype), (emb.sin() * scaling).to(device=device, dtype=dtype)


def _inv_freq(spec: LlamaSpec) -> tuple[torch.Tensor, float]:
    rope = spec.rope
    base = float(rope["rope_theta"])
    dim = spec.head_dim
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    kind = rope["rope_type"]
    if kind == "default":
        return inv, 1.0
    if kind == "linear":
        return inv / float(rope["factor"]), 1.0
    # llama3 and yarn: transformers' own implementation of the frequency formulas
    from transformers import PretrainedConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    cfg = PretrainedConfig(  # type: ignore[call-arg]  # keeps unknown keyword arguments as attributes; its stub lists none
        rope_parameters=dict(rope),
        hidden_size=spec.hidden,
        num_attention_heads=spec.n_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_positions,
    )
    inv_freq, scaling = ROPE_INIT_FUNCTIONS[kind](cfg, "cpu")
    return inv_freq.float(), float(scaling)


# -- the KV cache ---------------------------------------------------------------------------
class SlotCache:
    """Keys and values of ``rows`` sequences, ``capacity`` positions each, per layer. A
    running sequence owns one row (rows come from a free list; a finished sequence's row is
    reused as it is, nothing is copied)."""

    def __init__(self, spec: LlamaSpec, rows: int, capacity: int, dtype: torch.dtype, device: str) -> None:
        shape = (rows, spec.n_kv_heads, capacity, spec.head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(spec.n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(spec.n_layers)]
        self.rows = rows
        self.capacity = capacity

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)


# -- LoRA -----------------------------------------------------------------------------------
#: the fused projections LoRA can apply to, and the PEFT module names that make each of them
FUSED_TARGETS: dict[str, tuple[str, ...]] = {
    "qkv": ("q_proj", "k_proj", "v_proj"),
    "o": ("o_proj",),
    "gate_up": ("gate_proj", "up_proj"),
    "down": ("down_proj",),
}
LORA_MODULES = {m for mods in FUSED_TARGETS.values() for m in mods}


@dataclass
class LoraBank:
    """Loaded adapters stacked per layer and fused projection, one slot per adapter.

    ``a[target][layer]`` is [slots, R, in] and ``b[target][layer]`` [slots, out, R]; slot 0 is
    all zeros (requests on the base model). For a fused projection made of several modules
    (q/k/v), A stacks the modules' A matrices along R and B is block-diagonal, so one pair
    of batched matmuls applies every module's delta. The adapter's scale is folded into B.
    """

    a: dict[str, list[torch.Tensor]]
    b: dict[str, list[torch.Tensor]]
    rank: int  # R of one module; a fused target has len(modules) * rank columns
    #: the fused projections each slot's adapter changes (a step skips the others)
    targets: dict[int, frozenset[str]] = field(default_factory=dict)

    def targets_of(self, slots: Any) -> frozenset[str]:
        out: set[str] = set()
        for s in slots:
            out |= self.targets.get(int(s), frozenset())
        return frozenset(out)

    @property
    def slots(self) -> int:
        return next(iter(self.a.values()))[0].shape[0]


def out_sizes(spec: LlamaSpec) -> dict[str, tuple[int, ...]]:
    return {
        "qkv": (spec.q_size, spec.kv_size, spec.kv_size),
        "o": (spec.hidden,),
        "gate_up": (spec.intermediate, spec.intermediate),
        "down": (spec.hidden,),
    }


def in_size(spec: LlamaSpec, target: str) -> int:
    return spec.intermediate if target == "down" else (spec.q_size if target == "o" else spec.hidden)


def new_bank(spec: LlamaSpec, slots: int, rank: int, dtype: torch.dtype, device: str) -> LoraBank:
    a: dict[str, list[torch.Tensor]] = {}
    b: dict[str, list[torch.Tensor]] = {}
    for target, mods in FUSED_TARGETS.items():
        r = rank * len(mods)
        out = sum(out_sizes(spec)[target])
        a[target] = [torch.zeros(slots, r, in_size(spec, target), dtype=dtype, device=device) for _ in range(spec.n_layers)]
        b[target] = [torch.zeros(slots, out, r, dtype=dtype, device=device) for _ in range(spec.n_layers)]
    return LoraBank(a=a, b=b, rank=rank)


def grow_bank(bank: LoraBank, spec: LlamaSpec, slots: int, rank: int) -> LoraBank:
    """A bank with at least ``slots`` slots and rank ``rank``, holding the same adapters."""
    slots = max(slots, bank.slots)
    rank = max(rank, bank.rank)
    if slots == bank.slots and rank == bank.rank:
        return bank
    any_t = bank.a["o"][0]
    new = new_bank(spec, slots, rank, any_t.dtype, str(any_t.device))
    new.targets = dict(bank.targets)
    for target, mods in FUSED_TARGETS.items():
        for layer in range(spec.n_layers):
            for m in range(len(mods)):
                # module m's columns move from [m*R_old, (m+1)*R_old) to [m*R_new, ...)
                src = slice(m * bank.rank, (m + 1) * bank.rank)
                dst = slice(m * rank, m * rank + bank.rank)
                new.a[target][layer][: bank.slots, dst] = bank.a[target][layer][:, src]
                new.b[target][layer][: bank.slots, :, dst] = bank.b[target][layer][:, :, src]
    return new


def write_adapter(
    bank: LoraBank, spec: LlamaSpec, slot: int, modules: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor, float]]
) -> None:
    """Put an adapter into ``slot``: ``modules[(layer, module_name)] = (A [r, in], B [out, r], scale)``."""
    outs = out_sizes(spec)
    for target in FUSED_TARGETS:
        for layer in range(spec.n_layers):
            bank.a[target][layer][slot].zero_()
            bank.b[target][layer][slot].zero_()
    bank.targets[slot] = frozenset(next(t for t, mods in FUSED_TARGETS.items() if name in mods) for _, name in modules)
    for (layer, name), (a, b, scale) in modules.items():
        target = next(t for t, mods in FUSED_TARGETS.items() if name in mods)
        m = FUSED_TARGETS[target].index(name)
        r = a.shape[0]
        row0 = sum(outs[target][:m])
        col = slice(m * bank.rank, m * bank.rank + r)
        bank.a[target][layer][slot, col] = a.to(bank.a[target][layer].dtype)
        bank.b[target][layer][slot, row0 : row0 + b.shape[0], col] = (b.float() * scale).to(bank.b[target][layer].dtype)


# -- one step -------------------------------------------------------------------------------
@dataclass
class Step:
    """What one forward pass computes.

    The first ``n_decode`` tokens are the decode batch: one token for each cache row in
    ``decode_rows``, at ``positions[i]``, attending to that row's first ``decode_lengths[i]``
    positions. A decode row with length 0 is padding: it goes through every matmul like the
    others (so the batch has the size the engine chose, see :func:`plinth.runtimes.torch_engine.
    choose_plan`) but writes nothing to the cache and gets a zero attention output; its row
    index is ignored. The rest are prompt chunks: ``segments`` of (row, offset into the
    tokens, length, first position), in token order. ``logits_at`` lists the tokens whose
    next-token logits are wanted. With adapters, ``decode_slots`` gives each decode row's
    adapter slot and ``segment_slots`` each segment's (0: none); both are None when no token
    has one.

    Attention runs row by row over each row's own positions, never over a padded batch: a
    row's result then does not depend on what else is in the step (batch invariance; see
    docs/adr/0050).
    """

    tokens: torch.Tensor  # [N] int64
    positions: torch.Tensor  # [N] int64
    n_decode: int
    decode_rows: list[int]
    decode_lengths: list[int]
    segments: list[tuple[int, int, int, int]]
    logits_at: torch.Tensor  # [M] int64
    decode_slots: torch.Tensor | None = None  # [n_decode] int64
    segment_slots: list[int] | None = None
    lora_targets: frozenset[str] | None = None  # the fused projections to apply LoRA to (None: all)


def forward(w: LlamaWeights, cache: SlotCache, step: Step, bank: LoraBank | None = None) -> torch.Tensor:
    """Run one step; return float32 logits [len(logits_at), vocab]."""
    spec = w.spec
    n_dec = step.n_decode
    x = F.embedding(step.tokens, w.embed)
    cos = w.cos[step.positions].unsqueeze(1)
    sin = w.sin[step.positions].unsqueeze(1)
    lora = bank is not None and (step.decode_slots is not None or step.segment_slots is not None)
    targets = step.lora_targets if step.lora_targets is not None else frozenset(FUSED_TARGETS)
    lq, lo, lgu, ld = (lora and t in targets for t in ("qkv", "o", "gate_up", "down"))
    if n_dec:
        real = [i for i, length in enumerate(step.decode_lengths) if length > 0]
        # the decode tokens whose keys and values go to the cache (all but padding rows)
        real_idx = None if len(real) == n_dec else torch.tensor(real, device=x.device, dtype=torch.long)
        dec_rows = torch.tensor([step.decode_rows[i] for i in real], device=x.device, dtype=torch.long)
        dec_pos = step.positions[:n_dec] if real_idx is None else step.positions[real_idx]
        no_attention = x.new_zeros(1, spec.q_size)
    half = spec.head_dim // 2
    for li, lw in enumerate(w.layers):
        h = F.rms_norm(x, (spec.hidden,), lw.ln1, spec.eps)
        qkv = F.linear(h, lw.qkv, lw.qkv_bias)
        if lq:
            qkv = qkv + _lora(h, bank, "qkv", li, step)  # type: ignore[arg-type]
        q, k, v = qkv.split((spec.q_size, spec.kv_size, spec.kv_size), dim=-1)
        q = q.view(-1, spec.n_heads, spec.head_dim)
        k = k.view(-1, spec.n_kv_heads, spec.head_dim)
        v = v.view(-1, spec.n_kv_heads, spec.head_dim)
        q = q * cos + torch.cat((-q[..., half:], q[..., :half]), dim=-1) * sin
        k = k * cos + torch.cat((-k[..., half:], k[..., :half]), dim=-1) * sin
        kc, vc = cache.k[li], cache.v[li]
        outs = []
        if n_dec:
            if real:
                kc[dec_rows, :, dec_pos] = k[:n_dec] if real_idx is None else k[real_idx]
                vc[dec_rows, :, dec_pos] = v[:n_dec] if real_idx is None else v[real_idx]
            qd = q[:n_dec].unsqueeze(2)  # [B, H, 1, D]
            for i, (row, length) in enumerate(zip(step.decode_rows, step.decode_lengths, strict=True)):
                if length == 0:  # padding
                    outs.append(no_attention)
                    continue
                a = F.scaled_dot_product_attention(
                    qd[i : i + 1], kc[row : row + 1, :, :length], vc[row : row + 1, :, :length], enable_gqa=True
                )
                outs.append(a.view(1, spec.q_size))
        for row, off, length, pos0 in step.segments:
            end = pos0 + length
            kc[row, :, pos0:end] = k[off : off + length].transpose(0, 1)
            vc[row, :, pos0:end] = v[off : off + length].transpose(0, 1)
            qs = q[off : off + length].transpose(0, 1).unsqueeze(0)  # [1, H, T, D]
            if pos0 == 0:
                a = F.scaled_dot_product_attention(
                    qs, kc[row : row + 1, :, :end], vc[row : row + 1, :, :end], is_causal=True, enable_gqa=True
                )
            else:
                allowed = torch.arange(end, device=x.device).unsqueeze(0) <= (pos0 + torch.arange(length, device=x.device)).unsqueeze(1)
                a = F.scaled_dot_product_attention(
                    qs, kc[row : row + 1, :, :end], vc[row : row + 1, :, :end], attn_mask=allowed.view(1, 1, length, end), enable_gqa=True
                )
            outs.append(a[0].transpose(0, 1).reshape(length, spec.q_size))
        attn = outs[0] if len(outs) == 1 else torch.cat(outs, 0)
        o = F.linear(attn, lw.o)
        if lo:
            o = o + _lora(attn, bank, "o", li, step)  # type: ignore[arg-type]
        x = x + o
        h = F.rms_norm(x, (spec.hidden,), lw.ln2, spec.eps)
        gu = F.linear(h, lw.gate_up)
        if lgu:
            gu = gu + _lora(h, bank, "gate_up", li, step)  # type: ignore[arg-type]
        g, u = gu.split((spec.intermediate, spec.intermediate), dim=-1)
        m = F.silu(g) * u
        d = F.linear(m, lw.down)
        if ld:
            d = d + _lora(m, bank, "down", li, step)  # type: ignore[arg-type]
        x = x + d
    x = F.rms_norm(x[step.logits_at], (spec.hidden,), w.norm, spec.eps)
    return F.linear(x, w.lm_head).float()


def _lora(x: torch.Tensor, bank: LoraBank, target: str, layer: int, step: Step) -> torch.Tensor:
    """The LoRA delta of every token. Decode rows, each possibly on another adapter, take
    batched matmuls over their gathered slots ((x_i @ A[s_i]^T) @ B[s_i]^T); a prompt
    chunk, all on one adapter, takes two plain matmuls."""
    a_all, b_all = bank.a[target][layer], bank.b[target][layer]
    parts = []
    if step.n_decode:
        xs = x[: step.n_decode]
        if step.decode_slots is None:
            parts.append(xs.new_zeros(step.n_decode, b_all.shape[1]))
        else:
            a = a_all.index_select(0, step.decode_slots)  # [N, R, in]
            b = b_all.index_select(0, step.decode_slots)  # [N, out, R]
            parts.append(torch.bmm(torch.bmm(xs.unsqueeze(1), a.transpose(1, 2)), b.transpose(1, 2)).squeeze(1))
    for (_row, off, length, _pos), slot in zip(step.segments, step.segment_slots or [0] * len(step.segments), strict=True):
        xs = x[off : off + length]
        if slot:
            parts.append((xs @ a_all[slot].T) @ b_all[slot].T)
        else:
            parts.append(xs.new_zeros(length, b_all.shape[1]))
    return parts[0] if len(parts) == 1 else torch.cat(parts, 0)


def pick_dtype(device: str) -> torch.dtype:
    """bf16 where the hardware computes it natively (CUDA, AVX512-BF16/AMX CPUs), else fp32."""
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    try:
        if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return torch.bfloat16
    except (AttributeError, RuntimeError):
        pass
    return torch.float32


def kv_bytes_per_token(spec: LlamaSpec, dtype: torch.dtype) -> int:
    return 2 * spec.n_layers * spec.kv_size * torch.finfo(dtype).bits // 8
