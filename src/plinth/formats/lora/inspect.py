"""Recognise a LoRA adapter, validate it and describe it: :func:`inspect_adapter`.

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

Nothing here imports numpy, torch or llama.cpp.
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
from typing import Any

from plinth.domain.models import AdapterFormat, AdapterInfo
from plinth.formats.lora.common import (
    PEFT_CONFIG,
    PEFT_WEIGHTS,
    _invalid,
    _is_int,
    _is_number,
    _not_an_adapter,
    _pickle_refused,
    _unsupported_format,
)
from plinth.userfiles import check_user_dir, mapped_os_errors, open_user_file, user_stat

__all__ = ["LORA_GGUF_TENSOR_TYPES", "inspect_adapter"]

PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})
GGUF_MAGIC = b"GGUF"

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
_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")


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
