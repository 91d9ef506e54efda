"""Inspect and validate a Hugging Face model directory (``config.json`` + ``*.safetensors``).

Nothing here loads a tensor or imports torch: a safetensors file is an 8-byte little-endian
header length, a JSON header describing every tensor (``dtype``, ``shape``,
``data_offsets`` relative to the data section) and the data section. We read only the header
and check it against the file size with the same rules the ``safetensors`` loader applies
(tensors tile the data section exactly, each tensor's byte length matches its shape and
dtype), so a file that passes here will not fail to load for a structural reason.

A directory is refused when a symlink inside it points outside it (a model directory must
be self-contained: it is hashed and copied into the artifact store as a unit) and when a
sharded index names a file outside the directory.
"""

from __future__ import annotations

import json
import os
import re
import stat
import struct
from pathlib import Path
from typing import Any, TypeGuard

from plinth.domain.models import ModelFormat, ModelInfo
from plinth.errors import ErrorCode, PlinthError
from plinth.userfiles import check_user_dir, mapped_os_errors, open_user_file, user_stat

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit
MAX_JSON_FILE_BYTES = 50 * 1024 * 1024  # config.json, tokenizer_config.json, index files
MAX_README_BYTES = 1024 * 1024

# Element width in bits per safetensors dtype (F4 and F6 pack several elements per byte).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
}

CONTEXT_LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "max_sequence_length", "seq_length")


def _invalid(path: Path, what: str, **details: Any) -> PlinthError:
    return PlinthError(ErrorCode.INVALID_MODEL_FILE, f"{path}: {what}", details={"path": str(path), **details})


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------- single file


def inspect_safetensors_file(path: Path) -> dict[str, Any]:
    """Validate one ``.safetensors`` file's header against its size, without reading tensors.

    Returns ``tensor_count``, ``parameter_count``, ``dtypes`` (sorted), ``size_bytes``,
    ``tensor_names`` (in header order) and ``metadata`` (the ``__metadata__`` string map).
    Raises ``PlinthError`` ``INVALID_MODEL_FILE`` naming the file and the problem.
    """
    path = Path(path)
    try:
        with open_user_file(path, what="model file") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 8:
                raise _invalid(path, f"truncated: a safetensors file starts with an 8-byte header length, but it has {size} bytes")
            (header_len,) = struct.unpack("<Q", fh.read(8))
            if header_len > MAX_HEADER_BYTES:
                raise _invalid(path, f"header length {header_len} exceeds the {MAX_HEADER_BYTES}-byte limit")
            if 8 + header_len > size:
                raise _invalid(path, f"truncated: header length {header_len} runs past the end of the file ({size} bytes)")
            raw = fh.read(header_len)
    except OSError as exc:
        raise _invalid(path, f"cannot be read ({exc.strerror or exc})") from None
    if len(raw) != header_len:
        raise _invalid(path, "the file changed size while being read")

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError:
        raise _invalid(path, "header is not valid UTF-8") from None
    except ValueError as exc:  # json.JSONDecodeError and duplicate keys
        raise _invalid(path, f"header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _invalid(path, f"header must be a JSON object, not {type(header).__name__}")

    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise _invalid(path, "__metadata__ must be an object of strings")

    data_len = size - 8 - header_len
    spans: list[tuple[int, int, str]] = []
    parameter_count = 0
    dtypes: set[str] = set()
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise _invalid(path, f"tensor {name!r} entry must be an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in DTYPE_BITS:
            raise _invalid(path, f"tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise _invalid(path, f"tensor {name!r} has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
            raise _invalid(path, f"tensor {name!r} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if end < begin:
            raise _invalid(path, f"tensor {name!r} data_offsets {offsets} end before they begin")
        numel = 1
        for d in shape:
            numel *= d
        bits = numel * DTYPE_BITS[dtype]
        if bits % 8:
            raise _invalid(path, f"tensor {name!r}: {numel} elements of {dtype} do not fill whole bytes")
        if end - begin != bits // 8:
            raise _invalid(
                path,
                f"tensor {name!r} data_offsets {offsets} span {end - begin} bytes, but shape {shape} of {dtype} needs {bits // 8}",
                tensor=name,
            )
        if end > data_len:
            raise _invalid(
                path,
                f"truncated: tensor {name!r} data ends at byte {8 + header_len + end} but the file has {size} bytes",
                tensor=name,
            )
        spans.append((begin, end, name))
        parameter_count += numel
        dtypes.add(dtype)

    # Tensors must tile the data section exactly: no gaps, no overlaps, nothing left over.
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            what = "overlaps the previous tensor" if begin < position else f"leaves a gap of {begin - position} bytes"
            raise _invalid(path, f"tensor {name!r} data_offsets [{begin}, {end}] {what}", tensor=name)
        position = end
    if position != data_len:
        raise _invalid(
            path,
            f"data section is {data_len} bytes but the tensors cover {position} "
            f"(file size {size} != 8 + header {header_len} + data {position})",
        )

    return {
        "tensor_count": len(spans),
        "parameter_count": parameter_count,
        "dtypes": sorted(dtypes),
        "size_bytes": size,
        "tensor_names": list(header),
        "metadata": dict(metadata or {}),
    }


# --------------------------------------------------------------------------- directory


def _within(root: Path, target: Path) -> bool:
    return target == root or root in target.parents


def check_tree(root: Path) -> int:
    """Refuse escaping or dangling symlinks and special files; return the total size in bytes.

    ``root`` must already be resolved. Files reached twice (a link inside the directory to
    another file in it) are counted once.
    """
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=_raise_unreadable):
        here = Path(dirpath)
        for entry in [*dirnames, *filenames]:
            p = here / entry
            if p.is_symlink():
                try:
                    target = p.resolve(strict=True)
                except (OSError, RuntimeError):
                    raise _invalid(root, f"symlink {p.relative_to(root)} is broken or loops") from None
                if not _within(root, target):
                    raise _invalid(
                        root,
                        f"symlink {p.relative_to(root)} points outside the model directory; copy the files in (e.g. cp -rL) instead",
                        symlink=str(p),
                    )
        for entry in filenames:
            p = here / entry
            try:
                with mapped_os_errors(str(p), "model file"):
                    st = os.stat(p)
            except OSError as exc:
                raise _invalid(root, f"cannot read {p.relative_to(root)} ({exc.strerror or exc})") from None
            if stat.S_ISDIR(st.st_mode):
                continue  # a symlink to a directory inside the tree; its files are walked anyway
            if not stat.S_ISREG(st.st_mode):
                raise _invalid(root, f"{p.relative_to(root)} is not a regular file")
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _raise_unreadable(exc: OSError) -> None:
    """``os.walk``'s ``onerror``: a folder of the tree that cannot be listed fails the import
    (it is never skipped silently)."""
    with mapped_os_errors(str(exc.filename or "?"), "model folder"):
        raise exc


def _read_json_file(path: Path, what: str) -> Any:
    try:
        with open_user_file(path, what="model file") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_JSON_FILE_BYTES:
                raise _invalid(path, f"{what} is {size} bytes, more than the {MAX_JSON_FILE_BYTES}-byte limit")
            return json.loads(fh.read().decode("utf-8"))
    except UnicodeDecodeError:
        raise _invalid(path, f"{what} is not valid UTF-8") from None
    except ValueError as exc:
        raise _invalid(path, f"{what} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise _invalid(path, f"{what} cannot be read ({exc.strerror or exc})") from None


def _resolve_shard(root: Path, index_path: Path, name: Any) -> Path:
    if not isinstance(name, str) or not name:
        raise _invalid(index_path, f"weight_map names an invalid file {name!r}")
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or "\\" in name:
        raise _invalid(index_path, f"weight_map names {name!r}, which is outside the model directory", shard=name)
    target = (root / rel).resolve()
    if not _within(root, target):
        raise _invalid(index_path, f"weight_map names {name!r}, which is outside the model directory", shard=name)
    if not target.is_file():
        raise _invalid(index_path, f"weight_map names {name!r}, which does not exist", shard=name)
    return target


def find_index_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*.safetensors.index.json") if p.is_file())


def _chat_template(root: Path) -> str | None:
    jinja = root / "chat_template.jinja"
    if jinja.is_file():
        try:
            with open_user_file(jinja, what="model file") as fh:
                text = fh.read().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            raise _invalid(jinja, "chat template cannot be read as UTF-8 text") from None
        return text or None
    for name in ("tokenizer_config.json", "chat_template.json"):
        path = root / name
        if not path.is_file():
            continue
        data = _read_json_file(path, name)
        template = data.get("chat_template") if isinstance(data, dict) else None
        if isinstance(template, list):  # [{"name": "default", "template": "..."}, ...]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default") or next(iter(named.values()), None)
        if isinstance(template, str) and template:
            return template
    return None


_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|\Z)", re.DOTALL)


def readme_license(root: Path) -> str | None:
    """The ``license:`` of a model card's YAML front matter, if there is a readable one."""
    readme = root / "README.md"
    if not readme.is_file():
        return None
    try:
        with open_user_file(readme, what="model file") as fh:
            text = fh.read(MAX_README_BYTES).decode("utf-8", errors="replace")
    except (OSError, PlinthError):
        return None
    match = _FRONT_MATTER.match(text)
    if not match:
        return None
    import yaml  # a core dependency; imported here to keep module import light

    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None  # a broken model card does not make the weights invalid
    value = meta.get("license") if isinstance(meta, dict) else None
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value if v)
    return str(value) if value else None


def _token_content(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _context_length(config: dict[str, Any]) -> int | None:
    for source in (config, config.get("text_config")):
        if not isinstance(source, dict):
            continue
        for key in CONTEXT_LENGTH_KEYS:
            value = source.get(key)
            if _is_int(value) and value > 0:
                return value
    return None


def inspect_safetensors_dir(path: Path) -> ModelInfo:
    """Validate a Hugging Face model directory and describe it.

    ``parameters`` holds ``tensor_count``, ``parameter_count``, ``dtypes``, ``shard_count``
    and, when known, ``model_type``, ``architectures``, ``torch_dtype``, ``vocab_size``,
    ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads``,
    ``intermediate_size``, ``bos_token_id``, ``eos_token_id`` (int or list, from config.json),
    ``bos_token``, ``eos_token`` (from tokenizer_config.json) and ``quantization``
    (``quantization_config.quant_method``).
    """
    given = Path(path)
    if not stat.S_ISDIR(user_stat(given, what="model directory").st_mode):
        raise _invalid(given, "not a directory")
    check_user_dir(given, what="model directory")
    root = given.resolve()
    size_bytes = check_tree(root)

    config_path = root / "config.json"
    if not config_path.is_file():
        raise _invalid(given, "config.json is missing (a Hugging Face model directory needs one)")
    config = _read_json_file(config_path, "config.json")
    if not isinstance(config, dict):
        raise _invalid(config_path, f"config.json must be a JSON object, not {type(config).__name__}")
    architectures = config.get("architectures")
    model_type = config.get("model_type")
    architecture: str | None = None
    if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
        architecture = architectures[0]
    elif isinstance(model_type, str) and model_type:
        architecture = model_type
    else:
        raise _invalid(config_path, "config.json names neither 'architectures' nor 'model_type'")

    # Every weight file: the top-level *.safetensors plus whatever an index names.
    shards: dict[Path, dict[str, Any]] = {}
    index_maps: list[tuple[Path, dict[str, Path]]] = []
    for index_path in find_index_files(root):
        index = _read_json_file(index_path, index_path.name)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise _invalid(index_path, "index has no 'weight_map' object")
        resolved: dict[str, Path] = {}
        by_name: dict[str, Path] = {}
        for tensor, shard_name in weight_map.items():
            if shard_name not in by_name:
                by_name[shard_name] = _resolve_shard(root, index_path, shard_name)
            resolved[tensor] = by_name[shard_name]
        index_maps.append((index_path, resolved))
        for shard in by_name.values():
            shards.setdefault(shard, {})
    for shard in sorted(root.glob("*.safetensors")):
        shards.setdefault(shard.resolve(), {})
    if not shards:
        raise PlinthError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"{given} holds no *.safetensors weights",
            details={"path": str(given)},
        )
    for shard in sorted(shards):
        shards[shard] = inspect_safetensors_file(shard)

    for index_path, resolved in index_maps:
        names_by_shard = {shard: set(info["tensor_names"]) for shard, info in shards.items()}
        for tensor, shard in resolved.items():
            if tensor not in names_by_shard[shard]:
                raise _invalid(
                    index_path,
                    f"weight_map puts tensor {tensor!r} in {shard.relative_to(root)}, which does not hold it",
                    tensor=tensor,
                )

    params: dict[str, Any] = {
        "tensor_count": sum(s["tensor_count"] for s in shards.values()),
        "parameter_count": sum(s["parameter_count"] for s in shards.values()),
        "dtypes": sorted({d for s in shards.values() for d in s["dtypes"]}),
        "shard_count": len(shards),
    }
    if isinstance(model_type, str):
        params["model_type"] = model_type
    if isinstance(architectures, list):
        params["architectures"] = [a for a in architectures if isinstance(a, str)]
    dtype = config.get("dtype", config.get("torch_dtype"))
    if isinstance(dtype, str):
        params["torch_dtype"] = dtype
    for key in (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "intermediate_size",
        "bos_token_id",
    ):
        if _is_int(config.get(key)):
            params[key] = config[key]
    eos = config.get("eos_token_id")
    if _is_int(eos) or (isinstance(eos, list) and eos and all(_is_int(e) for e in eos)):
        params["eos_token_id"] = eos
    quant = config.get("quantization_config")
    if isinstance(quant, dict) and isinstance(quant.get("quant_method"), str):
        params["quantization"] = quant["quant_method"]
    tok_config_path = root / "tokenizer_config.json"
    if tok_config_path.is_file():
        tok_config = _read_json_file(tok_config_path, "tokenizer_config.json")
        if isinstance(tok_config, dict):
            for label in ("bos_token", "eos_token"):
                if (token := _token_content(tok_config.get(label))) is not None:
                    params[label] = token

    return ModelInfo(
        format=ModelFormat.SAFETENSORS,
        architecture=architecture,
        context_length=_context_length(config),
        chat_template=_chat_template(root),
        license=readme_license(root),
        size_bytes=size_bytes,
        parameters=params,
    )
