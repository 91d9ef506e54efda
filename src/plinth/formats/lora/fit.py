"""Does a LoRA adapter belong to a base model: :func:`check_adapter_fits` (from the numbers
a base's ModelInfo holds) and :func:`check_gguf_lora_against_base` (llama.cpp's own load
checks, from GGUF headers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plinth.domain.models import AdapterFormat, AdapterInfo
from plinth.errors import ErrorCode, PlinthError
from plinth.formats.lora.common import HF_TO_GGUF_MODULES, _is_int
from plinth.formats.lora.inspect import _gguf_pairs, inspect_adapter

__all__ = ["check_adapter_fits", "check_gguf_lora_against_base"]


# Canonical (llama.cpp) module name for both naming schemes.
_CANONICAL = {**HF_TO_GGUF_MODULES, **{v: v for v in HF_TO_GGUF_MODULES.values()}}
_LLAMA_FAMILY = {"llama", "mistral", "LlamaForCausalLM", "MistralForCausalLM"}


def _base_dims(base_parameters: dict[str, Any]) -> dict[str, int]:
    def pick(*keys: str) -> int | None:
        for key in keys:
            value = base_parameters.get(key)
            if _is_int(value) and value > 0:
                return value
        return None

    dims = {
        "n_embd": pick("embedding_length", "hidden_size"),
        "n_layer": pick("block_count", "num_hidden_layers"),
        "n_head": pick("head_count", "num_attention_heads"),
        "n_head_kv": pick("head_count_kv", "num_key_value_heads", "head_count", "num_attention_heads"),
        "n_ff": pick("feed_forward_length", "intermediate_size"),
        "head_dim": pick("head_dim", "key_length"),
    }
    return {k: v for k, v in dims.items() if v is not None}


def check_adapter_fits(
    info: AdapterInfo,
    base_parameters: dict[str, Any],
    *,
    base_architecture: str | None = None,
    base_name: str | None = None,
) -> None:
    """Refuse (``INVALID_REQUEST``) an adapter whose weights cannot belong to the base model.

    ``base_parameters`` is a base ModelInfo's ``parameters``: the GGUF keys
    (``embedding_length``, ``block_count``, ``head_count``, ``head_count_kv``,
    ``feed_forward_length``) or the Hugging Face ones (``hidden_size``, ``num_hidden_layers``,
    ...). Checks what those numbers determine: the architecture (GGUF adapters name theirs),
    the layer indices, and for the attention and MLP projections the model-width side of
    every weight, the FFN width and -- for llama-family bases or when ``head_dim`` is known --
    the head-dependent sizes. Modules it has no rule for are not checked. For a GGUF adapter
    of a GGUF base, :func:`check_gguf_lora_against_base` checks every tensor exactly.
    """
    label = f"base model {base_name!r}" if base_name else "the base model"

    def refuse(what: str, **details: Any) -> PlinthError:
        return PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"the adapter does not fit {label}: {what}; it was probably made for another model",
            details={"reason": "adapter_mismatch", **details},
        )

    if info.format is AdapterFormat.GGUF_LORA and info.architecture and base_architecture and info.architecture != base_architecture:
        raise refuse(
            f"the adapter is for architecture {info.architecture!r}, the base is {base_architecture!r}",
            adapter_architecture=info.architecture,
            base_architecture=base_architecture,
        )
    dims = _base_dims(base_parameters)
    layers = info.parameters.get("layers") or []
    if "n_layer" in dims and layers and max(layers) >= dims["n_layer"]:
        raise refuse(
            f"it adapts layer {max(layers)} but the base has {dims['n_layer']} layers (0..{dims['n_layer'] - 1})",
            layer=max(layers),
            block_count=dims["n_layer"],
        )
    n_embd, n_ff = dims.get("n_embd"), dims.get("n_ff")
    head_dim = dims.get("head_dim")
    llama_like = (
        (base_architecture in _LLAMA_FAMILY) or (info.architecture in _LLAMA_FAMILY) or (base_parameters.get("model_type") in _LLAMA_FAMILY)
    )
    if head_dim is None and llama_like and n_embd and dims.get("n_head") and n_embd % dims["n_head"] == 0:
        head_dim = n_embd // dims["n_head"]
    q_width = head_dim * dims["n_head"] if head_dim and "n_head" in dims else None
    kv_width = head_dim * dims["n_head_kv"] if head_dim and "n_head_kv" in dims else None
    expected: dict[str, tuple[int | None, int | None]] = {
        "attn_q": (n_embd, q_width),
        "attn_k": (n_embd, kv_width),
        "attn_v": (n_embd, kv_width),
        "attn_output": (q_width, n_embd),
        "ffn_gate": (n_embd, n_ff),
        "ffn_up": (n_embd, n_ff),
        "ffn_down": (n_ff, n_embd),
    }
    shapes = info.parameters.get("module_shapes") or {}
    for module, pairs in shapes.items():
        canonical = _CANONICAL.get(module)
        if canonical is None:
            continue
        want_in, want_out = expected[canonical]
        for n_in, n_out in pairs:
            if (want_in is not None and n_in != want_in) or (want_out is not None and n_out != want_out):
                want = f"[in {want_in if want_in is not None else '?'}, out {want_out if want_out is not None else '?'}]"
                raise refuse(
                    f"{module} has [in {n_in}, out {n_out}] but the base's {canonical} weights are {want}",
                    module=module,
                    adapter_shape=[n_in, n_out],
                    base_shape=[want_in, want_out],
                )


def _check_against_header(pairs: dict[str, tuple[tuple[int, ...], tuple[int, ...]]], base_header: Any, base_path: Path, what: str) -> None:
    """Exactly llama.cpp's checks: each base tensor exists and the ggml shapes line up."""
    base_tensors = {t.name: t.shape for t in base_header.tensors}
    for name, (a, b) in sorted(pairs.items()):
        shape = base_tensors.get(name)
        if shape is None:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"{what} adapts tensor {name!r}, which the base model {base_path.name} does not have; "
                "it was probably made for another model",
                details={"reason": "adapter_mismatch", "tensor": name},
            )
        if name.endswith("token_embd.weight"):
            ok = len(shape) == 2 and shape[0] == b[1] and shape[1] == a[1]
        else:
            ok = len(shape) == 2 and shape[0] == a[0] and shape[1] == b[1]
        if not ok:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"{what}: tensor {name!r} is {list(shape)} (ggml order) in the base model {base_path.name} but the "
                f"adapter's lora_a/lora_b are {list(a)}/{list(b)}; it was probably made for another model",
                details={"reason": "adapter_mismatch", "tensor": name, "base_shape": list(shape)},
            )


def check_gguf_lora_against_base(adapter: Path, base_gguf: Path) -> None:
    """Check a LoRA GGUF against a GGUF base exactly as ``llama_adapter_lora_init`` will:
    same architecture, every adapted tensor present with matching shapes (``INVALID_REQUEST``
    otherwise). Reads headers only."""
    from plinth.formats.gguf import parse_header

    adapter, base_gguf = Path(adapter), Path(base_gguf)
    info = inspect_adapter(adapter)
    if info.format is not AdapterFormat.GGUF_LORA:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{adapter} is not a LoRA GGUF", details={"path": str(adapter)})
    base = parse_header(base_gguf)
    base_arch = base.metadata.get("general.architecture")
    if info.architecture != base_arch:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"the adapter {adapter.name} is for architecture {info.architecture!r} but the base model {base_gguf.name} is {base_arch!r}",
            details={"reason": "adapter_mismatch", "adapter_architecture": info.architecture},
        )
    pairs = _gguf_pairs(adapter, parse_header(adapter).tensors)
    _check_against_header({name: (h["a"].shape, h["b"].shape) for name, h in pairs.items()}, base, base_gguf, f"adapter {adapter.name}")
