"""LoRA adapters as files: recognise and validate them, check they fit a base, convert them.

Two forms are accepted:

- a llama.cpp LoRA GGUF (``general.type = adapter``, ``adapter.type = lora``), the form
  ``llama_adapter_lora_init`` loads -> :attr:`AdapterFormat.GGUF_LORA`;
- a PEFT directory (``adapter_config.json`` + ``adapter_model.safetensors``)
  -> :attr:`AdapterFormat.PEFT_LORA`. ``adapter_model.bin`` (pickle) is refused.

:func:`peft_to_gguf_lora` turns a PEFT LoRA of a llama-architecture model into a llama.cpp
LoRA GGUF with numpy and ``gguf.GGUFWriter`` only (no torch, no llama.cpp script).

What llama.cpp requires of a LoRA GGUF (``llama_adapter_lora_init``, src/llama-adapter.cpp),
and so what :func:`inspect_adapter` checks up front:

- ``general.type`` a string equal to ``adapter``; ``adapter.type`` a string equal to
  ``lora``; ``general.architecture`` a string equal to the base model's architecture.
  These are read with ``gguf_get_val_str``, which *aborts the process* (GGML_ASSERT) when
  the value is not a string -- a hostile file could kill a server -- so the types are checked.
- ``adapter.lora.alpha``, if present, must be a FLOAT32: it is read with ``gguf_get_val_f32``,
  which aborts on any other type. Missing alpha means "scale 1" (no alpha / rank factor).
- every tensor is named ``<base tensor>.lora_a`` / ``.lora_b`` (``*_norm.weight`` is ignored);
  both halves must be present; the base tensor must exist in the model.
- in ggml order (``ne``, the reverse of numpy's): for base ``W`` with ``ne = [in, out]``,
  ``lora_a`` has ``ne = [in, r]`` and ``lora_b`` ``ne = [r, out]`` -- numpy shapes
  ``[r, in]`` and ``[out, r]``, i.e. exactly PEFT's ``lora_A.weight`` / ``lora_B.weight``.
  ``token_embd`` is the exception (A and B flipped).
- the effective scale is ``user_scale * alpha / r`` with ``r = lora_b.ne[0]``, per tensor.

Nothing here imports torch or llama.cpp.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from plinth.domain.models import AdapterFormat, AdapterInfo
from plinth.errors import ErrorCode, PlinthError
from plinth.tempfiles import owned_temp
from plinth.userfiles import check_user_dir, mapped_os_errors, open_user_file, user_stat

__all__ = [
    "HF_TO_GGUF_MODULES",
    "LORA_GGUF_TENSOR_TYPES",
    "check_adapter_fits",
    "check_gguf_lora_against_base",
    "inspect_adapter",
    "peft_to_gguf_lora",
    "permute_rope_rows",
    "write_lora_gguf",
]

PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})
GGUF_MAGIC = b"GGUF"

# HF llama module (PEFT target) -> llama.cpp tensor name inside ``blk.N``.
HF_TO_GGUF_MODULES: dict[str, str] = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}

# The ggml types a LoRA tensor may have here: what convert_lora_to_gguf.py writes, and what
# the CPU backend multiplies with an F32 activation without tripping an assertion.
LORA_GGUF_TENSOR_TYPES = frozenset({"F32", "F16", "BF16", "Q8_0"})

# GGUF value type ids (the ones needed here).
_GGUF_UINT32, _GGUF_FLOAT32, _GGUF_STRING, _GGUF_ARRAY = 4, 6, 8, 9

_BLOCK_RE = re.compile(r"^blk\.(\d+)\.(.+)\.weight$")
# PEFT tensor keys, e.g. base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight
# (adapter name stripped by save_pretrained; tolerated when present: ...lora_A.default.weight).
_PEFT_LORA_RE = re.compile(
    r"^(?P<module>.+)\.(?:lora_(?P<side>A|B)(?:\.(?!weight$|bias$)[^.]+)?\.weight"
    r"|lora_embedding_(?P<eside>A|B)(?:\.[^.]+)?)$"
)
_PEFT_LLAMA_RE = re.compile(
    r"(?:^|\.)layers\.(?P<layer>\d+)\.(?:self_attn|mlp)\.(?P<proj>q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
)
_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")

_ST_DTYPES: dict[str, str] = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8"}
MAX_ST_HEADER_BYTES = 100 * 1024 * 1024


# --------------------------------------------------------------------------- errors


def _invalid(path: Path, what: str, **details: Any) -> PlinthError:
    return PlinthError(ErrorCode.INVALID_MODEL_FILE, f"{path}: {what}", details={"path": str(path), **details})


def _unsupported_format(path: Path, what: str, **details: Any) -> PlinthError:
    return PlinthError(ErrorCode.UNSUPPORTED_FORMAT, f"{path}: {what}", details={"path": str(path), **details})


def _pickle_refused(path: Path, what: str) -> PlinthError:
    from plinth.formats import _pickle_refused as refused

    return refused(
        path,
        what,
        "save the adapter with safetensors (PEFT: save_pretrained(..., safe_serialization=True), "
        "the default) or convert it to a llama.cpp LoRA GGUF",
    )


def _not_an_adapter(path: Path, why: str) -> PlinthError:
    return PlinthError(
        ErrorCode.INVALID_REQUEST,
        f"{path} is a model, not an adapter ({why}); register it as a model, or give a LoRA adapter "
        "(a llama.cpp LoRA GGUF or a PEFT directory with adapter_config.json)",
        details={"path": str(path), "reason": "not_an_adapter"},
    )


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------- inspect


def inspect_adapter(path: Path) -> AdapterInfo:
    """Recognise the LoRA adapter at ``path``, validate it and describe it.

    - a GGUF file with ``general.type = adapter`` and ``adapter.type = lora`` -> GGUF_LORA
    - a directory with ``adapter_config.json`` + ``adapter_model.safetensors`` -> PEFT_LORA
    - a GGUF model or a full Hugging Face model directory -> ``INVALID_REQUEST`` ("is a model,
      not an adapter"); pickle weights, other PEFT types, other files -> ``UNSUPPORTED_FORMAT``;
      anything damaged -> ``INVALID_MODEL_FILE``; a missing path -> ``NOT_FOUND``.

    ``parameters`` always holds ``tensor_count``, ``module_shapes`` (module -> distinct
    ``[in, out]`` pairs of the adapted weights), ``layers`` (the block indices adapted) and,
    when the rank differs between weights, ``ranks``; plus per format:
    GGUF: ``gguf_version``, ``tensor_types``, ``name``, ``task_name``, ``prompt_prefix``,
    ``alora_invocation_tokens`` (count); PEFT: ``peft_type``, ``base_model_name_or_path``,
    ``task_type``, ``target_modules_config`` (as written), ``use_rslora``, ``use_dora``,
    ``bias``, ``fan_in_fan_out``, ``rank_pattern``, ``alpha_pattern``, ``dtypes``,
    ``parameter_count``, ``extra_tensors`` (tensors that are not LoRA A/B pairs).
    ``target_modules`` lists the modules that really have LoRA tensors (``attn_q`` for GGUF,
    ``q_proj`` for PEFT).
    """
    path = Path(path)
    st = user_stat(path, what="adapter path")  # a NUL byte: 400; missing or unreadable: the same 404
    try:
        if stat.S_ISDIR(st.st_mode):
            check_user_dir(path, what="adapter path")
            with mapped_os_errors(str(path), "adapter path"):
                return _inspect_peft_dir(path)
        if not stat.S_ISREG(st.st_mode):
            raise _unsupported_format(path, "not a regular file or directory")
        return _inspect_file(path, st.st_size)
    except OSError as exc:
        raise _invalid(path, f"cannot be read ({exc.strerror or exc})") from None


def _inspect_file(path: Path, size: int) -> AdapterInfo:
    if size == 0:
        raise _invalid(path, "the file is empty (0 bytes)", file_size=0)
    with open_user_file(path, what="adapter path") as fh:  # the label inspect_adapter's stat used
        magic = fh.read(4)
    suffix = path.suffix.lower()
    if magic == GGUF_MAGIC:
        return _inspect_gguf_lora(path)
    if suffix == ".gguf":
        raise _invalid(path, f"not a valid GGUF file: it does not start with the GGUF magic (found {magic!r})")
    if suffix in PICKLE_SUFFIXES:
        raise _pickle_refused(path, f"a {suffix} file")
    if suffix == ".safetensors" or path.name == PEFT_CONFIG:
        raise _unsupported_format(
            path,
            "a PEFT adapter is a directory: give the directory holding adapter_config.json and "
            "adapter_model.safetensors, not one of its files",
        )
    raise _unsupported_format(path, "not a recognised adapter format; plinth accepts a llama.cpp LoRA GGUF or a PEFT LoRA directory")


# ----------------------------------------------------------------- GGUF


def _metadata_types(path: Path) -> dict[str, tuple[int, int | None]]:
    """Each metadata key's GGUF value type (and item type for arrays).

    :func:`plinth.formats.gguf.parse_header` decodes values and so loses the difference
    between, say, FLOAT32 and FLOAT64, which llama.cpp's adapter loader cares about (it
    aborts on the wrong one). Only called after ``parse_header`` accepted the file.
    """
    from plinth.formats.gguf import _Parser  # the same bounds-checked reader

    with open_user_file(path, what="adapter file") as fh:
        size = os.fstat(fh.fileno()).st_size
        p = _Parser(path, fh, size)
        p.pos = 8  # magic + version
        p.u64("the tensor count")
        kv_count = p.u64("the metadata count")
        types: dict[str, tuple[int, int | None]] = {}
        for i in range(kv_count):
            key = p.string(f"key of metadata entry {i}")
            vtype = p.u32(f"value type of metadata key {key!r}")
            item_type = None
            if vtype == _GGUF_ARRAY:
                saved = p.pos
                item_type = p.u32(f"item type of {key!r}")
                p.pos = saved
            p.value(vtype, f"value of metadata key {key!r}")
            types[key] = (vtype, item_type)
    return types


def _lora_base_name(name: str) -> tuple[str, str] | None:
    for side in ("a", "b"):
        suffix = f".lora_{side}"
        if name.endswith(suffix):
            return name[: -len(suffix)], side
    return None


def _module_of(base_name: str) -> tuple[int | None, str]:
    """``blk.3.attn_q.weight`` -> (3, ``attn_q``); ``token_embd.weight`` -> (None, ``token_embd``)."""
    m = _BLOCK_RE.match(base_name)
    if m:
        return int(m.group(1)), m.group(2)
    return None, base_name.removesuffix(".weight")


def _gguf_pairs(path: Path, tensors: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Group a LoRA GGUF's tensors into ``{base tensor name: {"a": info, "b": info}}``, validated."""
    pairs: dict[str, dict[str, Any]] = {}
    for t in tensors:
        split = _lora_base_name(t.name)
        if split is None:
            if t.name.endswith("_norm.weight"):
                continue  # llama.cpp skips these too
            raise _invalid(
                path,
                f"tensor {t.name!r} is not a LoRA tensor: llama.cpp accepts only names ending in '.lora_a' or '.lora_b' in an adapter",
                tensor=t.name,
            )
        base, side = split
        if t.type_name not in LORA_GGUF_TENSOR_TYPES:
            raise _unsupported_format(
                path,
                f"LoRA tensor {t.name!r} has type {t.type_name}; supported: {', '.join(sorted(LORA_GGUF_TENSOR_TYPES))}",
                tensor=t.name,
            )
        if len(t.shape) != 2:
            raise _invalid(path, f"LoRA tensor {t.name!r} has shape {list(t.shape)}; a LoRA half is 2-D", tensor=t.name)
        pairs.setdefault(base, {})[side] = t
    if not pairs:
        raise _invalid(path, "the adapter holds no LoRA tensors (*.lora_a / *.lora_b)")
    for base, halves in pairs.items():
        missing = [s for s in ("a", "b") if s not in halves]
        if missing:
            raise _invalid(path, f"LoRA tensor pair for {base!r} is missing its lora_{missing[0]} half", tensor=base)
        a, b = halves["a"].shape, halves["b"].shape  # ggml order
        ok = a[0] == b[0] if base.endswith("token_embd.weight") else a[1] == b[0]  # A and B are flipped for the embedding
        if not ok:
            raise _invalid(
                path,
                f"LoRA pair {base!r}: lora_a (ggml shape {list(a)}) and lora_b (ggml shape {list(b)}) do not share a rank",
                tensor=base,
            )
    return pairs


def _pair_geometry(base: str, a_shape: Sequence[int], b_shape: Sequence[int]) -> tuple[int, int, int]:
    """(in, out, rank) of a GGUF LoRA pair, shapes in ggml order."""
    if base.endswith("token_embd.weight"):
        return a_shape[1], b_shape[1], b_shape[0]
    return a_shape[0], b_shape[1], b_shape[0]


def _summarise(pairs: dict[str, tuple[int | None, str, int, int, int]]) -> tuple[list[str], dict[str, Any], list[int]]:
    """From ``{key: (layer, module, in, out, rank)}``: target modules, module shapes, ranks."""
    modules: set[str] = set()
    shapes: dict[str, list[list[int]]] = {}
    layers: set[int] = set()
    ranks: set[int] = set()
    for layer, module, n_in, n_out, rank in pairs.values():
        modules.add(module)
        if layer is not None:
            layers.add(layer)
        ranks.add(rank)
        entry = shapes.setdefault(module, [])
        if [n_in, n_out] not in entry:
            entry.append([n_in, n_out])
    return sorted(modules), {"module_shapes": {k: shapes[k] for k in sorted(shapes)}, "layers": sorted(layers)}, sorted(ranks)


def _inspect_gguf_lora(path: Path) -> AdapterInfo:
    from plinth.formats.gguf import GGUFArray, parse_header

    header = parse_header(path)
    md = header.metadata
    gtype = md.get("general.type")
    has_lora_tensors = any(_lora_base_name(t.name) for t in header.tensors)
    if gtype is None:
        if has_lora_tensors:
            raise _invalid(
                path,
                "it holds LoRA tensors but no general.type; llama.cpp loads an adapter only with "
                "general.type = 'adapter' (re-convert it with a current convert_lora_to_gguf.py)",
            )
        raise _not_an_adapter(path, "a GGUF file without general.type = 'adapter'")
    if not isinstance(gtype, str):
        raise _invalid(path, f"general.type must be a string, not {type(gtype).__name__}")
    if gtype == "model":
        raise _not_an_adapter(path, "its general.type is 'model'")
    if gtype != "adapter":
        raise _unsupported_format(path, f"general.type is {gtype!r}; only adapters (general.type = 'adapter') are accepted here")
    atype = md.get("adapter.type")
    if not isinstance(atype, str):
        raise _invalid(path, "adapter.type is missing or not a string (llama.cpp needs adapter.type = 'lora')")
    if atype != "lora":
        raise _unsupported_format(path, f"adapter.type is {atype!r}; only LoRA adapters (adapter.type = 'lora') are supported")
    arch = md.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise _invalid(path, "general.architecture is missing or not a string (llama.cpp matches it against the base model)")

    types = _metadata_types(path)
    alpha: float | None = None
    if "adapter.lora.alpha" in md:
        if types.get("adapter.lora.alpha", (None,))[0] != _GGUF_FLOAT32:
            raise _invalid(
                path,
                "adapter.lora.alpha must be stored as FLOAT32 (llama.cpp aborts on any other type)",
                value_type=types.get("adapter.lora.alpha", (None,))[0],
            )
        alpha = float(md["adapter.lora.alpha"])
        if not math.isfinite(alpha):
            raise _invalid(path, f"adapter.lora.alpha is {alpha}, not a finite number")
    params: dict[str, Any] = {"gguf_version": header.version}
    alora = md.get("adapter.alora.invocation_tokens")
    if alora is not None:
        if types["adapter.alora.invocation_tokens"] != (_GGUF_ARRAY, _GGUF_UINT32):
            raise _invalid(path, "adapter.alora.invocation_tokens must be an array of UINT32")
        params["alora_invocation_tokens"] = alora.count if isinstance(alora, GGUFArray) else len(alora)
    for key, label in (("general.name", "name"), ("adapter.lora.task_name", "task_name"), ("adapter.lora.prompt_prefix", "prompt_prefix")):
        if key in md and types[key][0] != _GGUF_STRING:
            raise _invalid(path, f"{key} must be a string")  # read with gguf_get_val_str too
        if isinstance(md.get(key), str) and md[key]:
            params[label] = md[key]

    pairs = _gguf_pairs(path, header.tensors)
    geometry: dict[str, tuple[int | None, str, int, int, int]] = {}
    for base, halves in pairs.items():
        layer, module = _module_of(base)
        n_in, n_out, rank = _pair_geometry(base, halves["a"].shape, halves["b"].shape)
        geometry[base] = (layer, module, n_in, n_out, rank)
    targets, summary, ranks = _summarise(geometry)
    tensor_types: dict[str, int] = {}
    for t in header.tensors:
        tensor_types[t.type_name] = tensor_types.get(t.type_name, 0) + 1
    params.update(tensor_count=len(header.tensors), tensor_types=tensor_types, **summary)
    if len(ranks) > 1:
        params["ranks"] = ranks
    return AdapterInfo(
        format=AdapterFormat.GGUF_LORA,
        architecture=arch,
        rank=max(ranks),
        alpha=alpha,
        target_modules=targets,
        size_bytes=header.file_size,
        parameters=params,
    )


# ----------------------------------------------------------------- PEFT


def _read_st_header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file already validated by ``inspect_safetensors_file``,
    and where its data section starts."""
    with open_user_file(path, what="adapter file") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n).decode("utf-8"))
    header.pop("__metadata__", None)
    return header, 8 + n


def _peft_pairs(path: Path, header: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``{module path: {"A": entry, "B": entry, "embedding": bool}}`` and the names of other tensors."""
    pairs: dict[str, dict[str, Any]] = {}
    extra: list[str] = []
    for name, entry in header.items():
        m = _PEFT_LORA_RE.match(name)
        if not m:
            extra.append(name)
            continue
        side = m.group("side") or m.group("eside")
        slot = pairs.setdefault(m.group("module"), {"embedding": m.group("eside") is not None})
        if side in slot:
            raise _invalid(path, f"LoRA weight {m.group('module')!r} has two lora_{side} tensors", tensor=name)
        slot[side] = (name, entry)
    for module, slot in pairs.items():
        for side in ("A", "B"):
            if side not in slot:
                raise _invalid(path, f"LoRA weight {module!r} has no lora_{side} tensor", tensor=module)
        (_, a), (_, b) = slot["A"], slot["B"]
        if len(a["shape"]) != 2 or len(b["shape"]) != 2:
            raise _invalid(path, f"LoRA weight {module!r}: lora_A {a['shape']} / lora_B {b['shape']} must be 2-D")
        # Linear: A [r, in], B [out, r]. Embedding (lora_embedding_A/B): A [r, vocab], B [dim, r].
        if a["shape"][0] != b["shape"][1]:
            raise _invalid(
                path,
                f"LoRA weight {module!r}: lora_A shape {a['shape']} and lora_B shape {b['shape']} do not share a rank",
                tensor=module,
            )
    return pairs, extra


def _peft_module_leaf(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def _peft_layer(module: str) -> int | None:
    m = _LAYER_RE.search(module + ".")
    return int(m.group(1)) if m else None


def _inspect_peft_dir(path: Path) -> AdapterInfo:
    from plinth.formats.safetensors_dir import check_tree, inspect_safetensors_file

    root = path.resolve()
    config_path = root / PEFT_CONFIG
    weights_path = root / PEFT_WEIGHTS
    if not config_path.is_file():
        if (root / "config.json").is_file():
            raise _not_an_adapter(path, "a model directory with config.json and no adapter_config.json")
        pickles = sorted(p.name for p in root.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())
        if pickles:
            raise _pickle_refused(path, f"the directory's weights ({', '.join(pickles[:3])})")
        raise _unsupported_format(path, f"no {PEFT_CONFIG} here; a PEFT adapter directory holds {PEFT_CONFIG} and {PEFT_WEIGHTS}")
    size_bytes = check_tree(root)
    try:
        with open_user_file(config_path, what="adapter file") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > 50 * 1024 * 1024:
                raise _invalid(config_path, f"{PEFT_CONFIG} is too large ({size} bytes)")
            raw = fh.read()
        config = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _invalid(config_path, f"{PEFT_CONFIG} is not valid UTF-8") from None
    except ValueError as exc:
        raise _invalid(config_path, f"{PEFT_CONFIG} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise _invalid(config_path, f"{PEFT_CONFIG} must be a JSON object, not {type(config).__name__}")
    peft_type = config.get("peft_type")
    if not isinstance(peft_type, str):
        raise _invalid(config_path, 'peft_type is missing (PEFT writes e.g. "peft_type": "LORA")')
    if peft_type.upper() != "LORA":
        raise _unsupported_format(
            path, f"peft_type is {peft_type!r}; only LoRA adapters (peft_type LORA) are supported", peft_type=peft_type
        )
    r = config.get("r")
    if not _is_int(r) or r <= 0:
        raise _invalid(config_path, f"r must be a positive integer, not {r!r}")
    alpha = config.get("lora_alpha", 8)  # PEFT's default
    if not _is_number(alpha):
        raise _invalid(config_path, f"lora_alpha must be a number, not {alpha!r}")
    for key in ("rank_pattern", "alpha_pattern"):
        value = config.get(key)
        if value is not None and not (isinstance(value, dict) and all(isinstance(k, str) and _is_number(v) for k, v in value.items())):
            raise _invalid(config_path, f"{key} must map module patterns to numbers")

    if not weights_path.is_file():
        pickles = sorted(p.name for p in root.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())
        if pickles:
            raise _pickle_refused(path, f"the adapter's weights ({', '.join(pickles[:3])})")
        raise _invalid(path, f"{PEFT_WEIGHTS} is missing next to {PEFT_CONFIG}")
    st_info = inspect_safetensors_file(weights_path)
    header, _ = _read_st_header(weights_path)
    pairs, extra = _peft_pairs(weights_path, header)
    if not pairs:
        raise _invalid(weights_path, "holds no LoRA tensors (*.lora_A.weight / *.lora_B.weight)")

    geometry: dict[str, tuple[int | None, str, int, int, int]] = {}
    for module, slot in pairs.items():
        a_shape, b_shape = slot["A"][1]["shape"], slot["B"][1]["shape"]
        geometry[module] = (_peft_layer(module), _peft_module_leaf(module), a_shape[1], b_shape[0], a_shape[0])
    targets, summary, ranks = _summarise(geometry)

    params: dict[str, Any] = {"peft_type": "LORA", "r": r, "lora_alpha": alpha}
    for key in ("base_model_name_or_path", "task_type", "bias"):
        if isinstance(config.get(key), str) and config[key]:
            params[key] = config[key]
    target_config = config.get("target_modules")
    if isinstance(target_config, str) or (isinstance(target_config, list) and all(isinstance(t, str) for t in target_config)):
        params["target_modules_config"] = target_config
    for key in ("use_rslora", "use_dora", "fan_in_fan_out"):
        params[key] = bool(config.get(key, False))
    for key in ("rank_pattern", "alpha_pattern"):
        if config.get(key):
            params[key] = dict(config[key])
    params.update(
        tensor_count=st_info["tensor_count"],
        parameter_count=st_info["parameter_count"],
        dtypes=st_info["dtypes"],
        **summary,
    )
    if len(ranks) > 1:
        params["ranks"] = ranks
    if extra:
        params["extra_tensors"] = len(extra)
    return AdapterInfo(
        format=AdapterFormat.PEFT_LORA,
        architecture=None,  # adapter_config.json does not say; base_model_name_or_path is kept in parameters
        rank=r,
        alpha=float(alpha),
        target_modules=targets,
        size_bytes=size_bytes,
        parameters=params,
    )


# --------------------------------------------------------------------------- fit to a base

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


# --------------------------------------------------------------------------- conversion


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
