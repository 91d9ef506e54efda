"""PEFT -> llama.cpp LoRA GGUF.

:func:`peft_to_gguf_lora` turns a PEFT LoRA of a llama-architecture model into a llama.cpp
LoRA GGUF with numpy and ``gguf.GGUFWriter`` only (no torch, no llama.cpp script).

The only LoRA module that imports numpy (and, in :func:`write_lora_gguf`, the ``gguf``
writer): it is imported where an adapter is imported or a model exported, never at start-up.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from plinth.domain.models import AdapterFormat
from plinth.errors import ErrorCode, PlinthError
from plinth.formats.lora.common import HF_TO_GGUF_MODULES, PEFT_WEIGHTS, _invalid, _is_int, _unsupported_format
from plinth.formats.lora.fit import _check_against_header
from plinth.formats.lora.inspect import _peft_pairs, _read_st_header, inspect_adapter
from plinth.tempfiles import owned_temp
from plinth.userfiles import open_user_file

__all__ = ["peft_to_gguf_lora", "permute_rope_rows", "write_lora_gguf"]

_PEFT_LLAMA_RE = re.compile(
    r"(?:^|\.)layers\.(?P<layer>\d+)\.(?:self_attn|mlp)\.(?P<proj>q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
)

_ST_DTYPES: dict[str, str] = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8"}


def permute_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """The row permutation llama.cpp's HF->GGUF converter applies to q_proj/k_proj weights.

    ``LlamaModel.permute`` in convert_hf_to_gguf.py: HF rotates the halves of each head
    (``rotate_half``), llama.cpp rotates adjacent pairs, so each head's rows are interleaved.
    Acts on the first axis only, so ``permute(B) @ A == permute(B @ A)`` for a LoRA pair.
    """
    rows = w.shape[0]
    if n_head <= 0 or rows % (2 * n_head):
        raise ValueError(f"{rows} rows cannot be split into {n_head} heads of even size")
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _load_st_tensor(path: Path, entry: dict[str, Any], data_start: int, name: str) -> np.ndarray:
    dtype = entry["dtype"]
    if dtype not in _ST_DTYPES:
        raise _unsupported_format(path, f"tensor {name!r} has dtype {dtype}; LoRA conversion reads F32, F16, BF16 and F64")
    begin, end = entry["data_offsets"]
    with open_user_file(path, what="adapter file") as fh:
        fh.seek(data_start + begin)
        raw = fh.read(end - begin)
    if len(raw) != end - begin:
        raise _invalid(path, "the file shrank while being read")
    arr = np.frombuffer(raw, dtype=_ST_DTYPES[dtype])
    if dtype == "BF16":
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    arr = arr.astype(np.float32).reshape(entry["shape"])
    if not np.isfinite(arr).all():
        raise _invalid(path, f"tensor {name!r} holds NaN or infinite values", tensor=name)
    return arr


def _pattern_value(patterns: dict[str, Any] | None, module: str) -> Any:
    """PEFT's ``get_pattern_key``: the first pattern key matching the module path's tail."""
    for key, value in (patterns or {}).items():
        try:
            if re.match(rf"(.*\.)?({key})$", module):
                return value
        except re.error:
            continue
    return None


def _base_llama_header(base_gguf: Path) -> tuple[Any, int, int]:
    from plinth.formats.gguf import parse_header

    header = parse_header(base_gguf)
    md = header.metadata
    arch = md.get("general.architecture")
    if md.get("general.type") == "adapter":
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"{base_gguf} is an adapter, not a base model", details={"path": str(base_gguf)})
    if arch != "llama":
        raise PlinthError(
            ErrorCode.UNSUPPORTED,
            f"converting a PEFT LoRA to GGUF is supported for llama-architecture bases only; {base_gguf.name} is {arch!r}",
            details={"path": str(base_gguf), "architecture": arch},
        )
    n_head = md.get("llama.attention.head_count")
    n_head_kv = md.get("llama.attention.head_count_kv", n_head)
    if not (_is_int(n_head) and n_head > 0 and _is_int(n_head_kv) and n_head_kv > 0):
        raise PlinthError(
            ErrorCode.UNSUPPORTED,
            f"{base_gguf.name}: llama.attention.head_count / head_count_kv must be single positive integers "
            f"(found {n_head!r} / {n_head_kv!r})",
            details={"path": str(base_gguf)},
        )
    return header, n_head, n_head_kv


def write_lora_gguf(
    dest: Path,
    arch: str,
    alpha: float,
    tensors: list[tuple[str, np.ndarray]],
    *,
    name: str | None = None,
    extra_strings: dict[str, str] | None = None,
) -> Path:
    """Write a llama.cpp LoRA GGUF atomically (a temporary file renamed into place)."""
    import gguf

    dest = Path(dest)
    # Locked while written (plinth.tempfiles): a partial file of a killed writer is swept.
    with owned_temp(dest.parent, prefix=f".{dest.name}.", suffix=".partial") as owned:
        tmp = str(owned.path)
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_type(gguf.GGUFType.ADAPTER)  # general.type = "adapter"
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")  # adapter.type = "lora"
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))  # must be FLOAT32
        if name:
            writer.add_name(name)
        for key, value in (extra_strings or {}).items():
            writer.add_string(key, value)
        for tensor_name, array in tensors:
            writer.add_tensor(tensor_name, np.ascontiguousarray(array))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, dest)
    return dest


def peft_to_gguf_lora(peft_dir: Path, dest: Path, *, base_gguf: Path, dtype: str = "f32") -> Path:
    """Convert a PEFT LoRA of a llama-architecture model into a llama.cpp LoRA GGUF at ``dest``.

    Module names map ``...layers.{i}.self_attn.{q,k,v,o}_proj`` / ``...mlp.{gate,up,down}_proj``
    to ``blk.{i}.attn_q`` ... ``ffn_down`` (``.weight.lora_a`` / ``.weight.lora_b``). lora_B of
    q_proj and k_proj gets the rotary row permutation the base's q/k weights got when the base
    was converted (:func:`permute_rope_rows`, ``head_count`` for q, ``head_count_kv`` for k);
    lora_A is unchanged. ``adapter.lora.alpha`` is ``lora_alpha``; per-module scales that
    llama.cpp cannot express with one alpha (``rank_pattern``/``alpha_pattern``, rsLoRA) are
    folded into lora_B, so ``alpha / r`` in llama.cpp times B gives PEFT's ``scaling * B``.
    Every tensor is checked against the base GGUF (``INVALID_REQUEST`` on mismatch) before
    anything is written; the file appears atomically. ``dtype``: ``"f32"`` or ``"f16"``.

    Refused: non-llama bases (``UNSUPPORTED``), DoRA, ``fan_in_fan_out``, LoRA on modules other
    than the seven projections, embedding LoRA, bias or ``modules_to_save`` tensors
    (``UNSUPPORTED``).
    """
    peft_dir, dest, base_gguf = Path(peft_dir), Path(dest), Path(base_gguf)
    if dtype not in ("f32", "f16"):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"dtype must be 'f32' or 'f16', not {dtype!r}", param="dtype")
    info = inspect_adapter(peft_dir)
    if info.format is not AdapterFormat.PEFT_LORA:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"{peft_dir} is a {info.format.value} adapter, not a PEFT directory; nothing to convert",
            details={"path": str(peft_dir)},
        )
    base_header, n_head, n_head_kv = _base_llama_header(base_gguf)
    params = info.parameters

    def unsupported(what: str, **details: Any) -> PlinthError:
        return PlinthError(
            ErrorCode.UNSUPPORTED,
            f"{peft_dir}: cannot convert to a llama.cpp LoRA: {what}",
            details={"path": str(peft_dir), **details},
        )

    if params.get("use_dora"):
        raise unsupported("DoRA adapters (use_dora) have no llama.cpp form")
    if params.get("fan_in_fan_out"):
        raise unsupported("fan_in_fan_out adapters (Conv1D weights) are not llama weights")

    weights_path = peft_dir.resolve() / PEFT_WEIGHTS
    header, data_start = _read_st_header(weights_path)
    pairs, extra = _peft_pairs(weights_path, header)
    if extra:
        raise unsupported(
            f"it holds tensors that are not LoRA A/B pairs ({', '.join(sorted(extra)[:4])}"
            f"{', ...' if len(extra) > 4 else ''}): bias, DoRA or modules_to_save weights cannot be converted",
            tensors=sorted(extra)[:20],
        )
    mapped: dict[str, tuple[int, str, dict[str, Any]]] = {}
    unmapped: list[str] = []
    for module, slot in pairs.items():
        m = _PEFT_LLAMA_RE.search(module)
        if slot["embedding"] or m is None:
            unmapped.append(module)
            continue
        mapped[module] = (int(m.group("layer")), m.group("proj"), slot)
    if unmapped:
        raise unsupported(
            f"LoRA on {', '.join(sorted(unmapped)[:4])}{', ...' if len(unmapped) > 4 else ''}; only "
            f"{', '.join(HF_TO_GGUF_MODULES)} inside the decoder layers can be converted",
            modules=sorted(unmapped)[:20],
        )

    lora_alpha = float(params["lora_alpha"])
    use_rslora = bool(params.get("use_rslora"))
    alpha_pattern = params.get("alpha_pattern")

    # Check every shape against the base before reading any data.
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for layer, proj, slot in mapped.values():
        a_shape, b_shape = slot["A"][1]["shape"], slot["B"][1]["shape"]
        name = f"blk.{layer}.{HF_TO_GGUF_MODULES[proj]}.weight"
        if name in shapes:
            raise _invalid(weights_path, f"two LoRA weights map to {name!r}", tensor=name)
        shapes[name] = ((a_shape[1], a_shape[0]), (b_shape[1], b_shape[0]))  # ggml order
    _check_against_header(shapes, base_header, base_gguf, f"the PEFT adapter {peft_dir.name}")

    out_dtype = np.float32 if dtype == "f32" else np.float16
    tensors: list[tuple[str, np.ndarray]] = []
    for module, (layer, proj, slot) in sorted(mapped.items(), key=lambda kv: (kv[1][0], kv[1][1])):
        (a_name, a_entry), (b_name, b_entry) = slot["A"], slot["B"]
        lora_a = _load_st_tensor(weights_path, a_entry, data_start, a_name)  # [r, in]
        lora_b = _load_st_tensor(weights_path, b_entry, data_start, b_name)  # [out, r]
        rank = lora_a.shape[0]
        module_alpha = _pattern_value(alpha_pattern, module)
        module_alpha = float(module_alpha) if module_alpha is not None else lora_alpha
        peft_scale = module_alpha / math.sqrt(rank) if use_rslora else module_alpha / rank
        llama_scale = lora_alpha / rank if lora_alpha != 0 else 1.0  # llama.cpp: alpha ? alpha / r : 1
        factor = peft_scale / llama_scale
        if factor != 1.0:
            lora_b = lora_b * np.float32(factor)
        if proj == "q_proj":
            lora_b = _permute_or_refuse(lora_b, n_head, module, "head_count", unsupported)
        elif proj == "k_proj":
            lora_b = _permute_or_refuse(lora_b, n_head_kv, module, "head_count_kv", unsupported)
        base = f"blk.{layer}.{HF_TO_GGUF_MODULES[proj]}.weight"
        tensors.append((f"{base}.lora_a", lora_a.astype(out_dtype)))
        tensors.append((f"{base}.lora_b", lora_b.astype(out_dtype)))

    return write_lora_gguf(dest, "llama", lora_alpha, tensors, name=f"{peft_dir.name} (converted from PEFT by plinth)")


def _permute_or_refuse(b: np.ndarray, n_head: int, module: str, key: str, unsupported: Any) -> np.ndarray:
    try:
        return permute_rope_rows(b, n_head)
    except ValueError:
        raise unsupported(f"{module}: lora_B has {b.shape[0]} rows, not divisible into {key} = {n_head} rotary heads") from None
