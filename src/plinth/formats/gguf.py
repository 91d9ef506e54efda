"""Inspect and validate a GGUF file without loading its weights.

GGUF layout (versions 2 and 3, little-endian)::

    magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
    kv_count x  (string key, u32 value_type, value)
    tensor_count x (string name, u32 n_dims, n_dims x u64 dim, u32 ggml_type, u64 offset)
    padding to ``general.alignment`` (default 32)
    tensor data; each tensor at data_start + offset

We parse this header ourselves with :mod:`struct` over a window of the file instead of
``gguf.GGUFReader``: the reader builds a numpy array for every token and merge (2.7 s for the
98 MB embedded model), and on a truncated or hostile file it fails with ``IndexError``,
``KeyError`` or loops for a very long time on a forged array length. Here every read is
bounds-checked, every count is checked against the bytes left, and every failure becomes a
:class:`PlinthError` ``INVALID_MODEL_FILE`` naming the file and what is wrong. Only the
``gguf`` package's tables (value types, quantisation block sizes, file-type names) are used.
"""

from __future__ import annotations

import itertools
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from plinth.domain.models import ModelFormat, ModelInfo
from plinth.errors import ErrorCode, PlinthError
from plinth.userfiles import open_user_file

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_STRING_BYTES = 64 * 1024 * 1024  # no key, value or tensor name is anywhere near this

# GGUF value types -> (struct format, size). 8 = string and 9 = array are handled apart.
_STRING, _ARRAY = 8, 9
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),  # uint8
    1: ("<b", 1),  # int8
    2: ("<H", 2),  # uint16
    3: ("<h", 2),  # int16
    4: ("<I", 4),  # uint32
    5: ("<i", 4),  # int32
    6: ("<f", 4),  # float32
    7: ("<?", 1),  # bool
    10: ("<Q", 8),  # uint64
    11: ("<q", 8),  # int64
    12: ("<d", 8),  # float64
}
_TYPE_NAMES = {
    0: "uint8",
    1: "int8",
    2: "uint16",
    3: "int16",
    4: "uint32",
    5: "int32",
    6: "float32",
    7: "bool",
    8: "string",
    9: "array",
    10: "uint64",
    11: "int64",
    12: "float64",
}
# Arrays up to this length are decoded into Python lists; longer ones (token lists, merges,
# scores) are only walked and kept as a lazy view, which is what keeps inspection fast.
_DECODE_ARRAY_MAX = 64


def _invalid(path: Path, what: str, **details: Any) -> PlinthError:
    return PlinthError(
        ErrorCode.INVALID_MODEL_FILE,
        f"{path} is not a valid GGUF file: {what}",
        details={"path": str(path), **details},
    )


@dataclass(frozen=True)
class GGUFArray:
    """An array value kept in place: its item type, length and where its items start."""

    item_type: int
    count: int
    offset: int  # of the first item
    string_offsets: tuple[int, ...] | None = None  # for string arrays: where each item starts


@dataclass(frozen=True)
class GGUFTensorInfo:
    name: str
    ggml_type: int
    type_name: str
    shape: tuple[int, ...]
    n_elements: int
    n_bytes: int
    data_offset: int  # absolute, in the file


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    metadata: dict[str, Any]  # scalars and strings decoded; short arrays as lists; long ones GGUFArray
    tensors: list[GGUFTensorInfo]
    alignment: int
    data_start: int
    file_size: int


class _Parser:
    """Bounds-checked little-endian reads through a sliding window over the file.

    The file is read in chunks rather than mapped: a mapped file that shrinks while it is
    read (an upload still being written) kills the process with SIGBUS, and a skipped
    array's bytes need not be read at all. Errors name the file and the byte.
    """

    CHUNK = 1 << 20

    def __init__(self, path: Path, fh: BinaryIO, size: int) -> None:
        self.path = path
        self.fh = fh
        self.size = size
        self.pos = 0
        self.buf = b""
        self.base = 0  # file offset of buf[0]

    def need(self, n: int, what: str) -> None:
        """Make bytes [pos, pos + n) available in the window, or fail naming ``what``."""
        if n < 0 or self.pos + n > self.size:
            raise _invalid(
                self.path,
                f"truncated: {what} needs {n} bytes at byte {self.pos} but the file has {self.size} bytes",
                offset=self.pos,
                file_size=self.size,
            )
        if self.pos >= self.base and self.pos + n <= self.base + len(self.buf):
            return
        self.fh.seek(self.pos)
        self.buf = self.fh.read(max(n, self.CHUNK))
        self.base = self.pos
        if len(self.buf) < n:
            raise _invalid(self.path, f"truncated: the file shrank while {what} was being read")

    def skip(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            self.need(n, what)  # raises the truncation error
        self.pos += n

    def scalar(self, vtype: int, what: str) -> Any:
        fmt, n = _SCALARS[vtype]
        self.need(n, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos - self.base)
        self.pos += n
        return value

    def u32(self, what: str) -> int:
        return self.scalar(4, what)

    def u64(self, what: str) -> int:
        return self.scalar(10, what)

    def skip_string(self, what: str) -> int:
        """Skip a string; return where its bytes start."""
        length = self.u64(f"length of {what}")
        if length > MAX_STRING_BYTES:
            raise _invalid(self.path, f"{what} claims a length of {length} bytes (at byte {self.pos - 8})")
        start = self.pos
        self.skip(length, what)
        return start

    def string(self, what: str) -> str:
        length = self.u64(f"length of {what}")
        if length > MAX_STRING_BYTES:
            raise _invalid(self.path, f"{what} claims a length of {length} bytes (at byte {self.pos - 8})")
        self.need(length, what)
        start = self.pos
        raw = self.buf[start - self.base : start - self.base + length]
        self.pos += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid(self.path, f"{what} at byte {start} is not valid UTF-8") from None

    def value(self, vtype: int, what: str, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.scalar(vtype, what)
        if vtype == _STRING:
            return self.string(what)
        if vtype == _ARRAY:
            if depth > 2:
                raise _invalid(self.path, f"{what} nests arrays too deeply")
            item_type = self.u32(f"item type of {what}")
            count = self.u64(f"length of {what}")
            start = self.pos
            if item_type in _SCALARS:
                size = _SCALARS[item_type][1]
                if count <= _DECODE_ARRAY_MAX:
                    self.need(count * size, f"{count} items of {what}")
                    return [self.scalar(item_type, what) for _ in range(count)]
                self.skip(count * size, f"{count} items of {what}")
                return GGUFArray(item_type, count, start)
            if item_type == _STRING:
                # Each string is at least its 8-byte length: refuse forged counts before looping.
                if self.pos + count * 8 > self.size:
                    self.need(count * 8, f"{count} strings of {what}")
                if count <= _DECODE_ARRAY_MAX:
                    return [self.string(f"item {i} of {what}") for i in range(count)]
                offsets = [self.skip_string(f"item {i} of {what}") for i in range(count)]
                return GGUFArray(item_type, count, start, tuple(offsets))
            if item_type == _ARRAY:
                if self.pos + count * 12 > self.size:
                    self.need(count * 12, f"{count} nested arrays of {what}")
                return [self.value(_ARRAY, f"item {i} of {what}", depth + 1) for i in range(count)]
            raise _invalid(self.path, f"{what} has unknown array item type {item_type}")
        raise _invalid(self.path, f"{what} has unknown value type {vtype} (at byte {self.pos - 4})")


def _type_name(ggml_type: int) -> str:
    try:
        return GGMLQuantizationType(ggml_type).name
    except ValueError:
        return str(ggml_type)


def parse_header(path: Path) -> GGUFHeader:
    """Parse and validate a GGUF file's header and tensor table; check all tensor data is present."""
    path = Path(path)
    try:
        with open_user_file(path, what="model file") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise _invalid(path, "the file is empty (0 bytes)", file_size=0)
            return _parse(path, fh, size)
    except OSError as exc:
        raise _invalid(path, f"cannot be read ({exc.strerror or exc})") from None


def _parse(path: Path, fh: BinaryIO, size: int) -> GGUFHeader:
    p = _Parser(path, fh, size)
    p.need(4, "the GGUF magic")
    magic = p.buf[0:4]
    if magic != GGUF_MAGIC:
        raise _invalid(path, f"it does not start with the GGUF magic (found {magic!r})")
    p.pos = 4
    version = p.u32("the version")
    if version & 0xFFFF == 0 and version != 0:
        raise PlinthError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"{path} is a big-endian GGUF file; only little-endian GGUF files are supported",
            details={"path": str(path)},
        )
    if version == 1:
        raise PlinthError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"{path} is a GGUF version 1 file; only versions 2 and 3 are supported (re-convert it)",
            details={"path": str(path), "version": 1},
        )
    if version not in SUPPORTED_VERSIONS:
        raise _invalid(path, f"unknown GGUF version {version} (expected 2 or 3)", version=version)
    tensor_count = p.u64("the tensor count")
    kv_count = p.u64("the metadata count")
    # A key/value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor entry at
    # least 8 + 4 + 4 + 8. Forged counts fail here instead of looping.
    for count, what, min_size in ((kv_count, "metadata entries", 13), (tensor_count, "tensors", 24)):
        if p.pos + count * min_size > size:
            raise _invalid(
                path,
                f"truncated or corrupt: the header claims {count} {what} (at least {p.pos + count * min_size} "
                f"bytes) but the file has {size} bytes",
                file_size=size,
            )

    metadata: dict[str, Any] = {}
    for i in range(kv_count):
        key = p.string(f"key of metadata entry {i}")
        vtype = p.u32(f"value type of metadata key {key!r}")
        if key in metadata:
            raise _invalid(path, f"metadata key {key!r} appears twice")
        metadata[key] = p.value(vtype, f"value of metadata key {key!r}")

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
        raise _invalid(path, f"general.alignment must be a power of two, not {alignment!r}")

    raw_tensors: list[tuple[str, int, tuple[int, ...], int]] = []
    names: set[str] = set()
    for i in range(tensor_count):
        name = p.string(f"name of tensor {i}")
        if name in names:
            raise _invalid(path, f"tensor {name!r} appears twice")
        names.add(name)
        n_dims = p.u32(f"dimension count of tensor {name!r}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise _invalid(path, f"tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
        shape = tuple(p.u64(f"dimension {d} of tensor {name!r}") for d in range(n_dims))
        ggml_type = p.u32(f"type of tensor {name!r}")
        offset = p.u64(f"data offset of tensor {name!r}")
        raw_tensors.append((name, ggml_type, shape, offset))

    data_start = p.pos + (-p.pos % alignment)
    tensors: list[GGUFTensorInfo] = []
    for name, ggml_type, shape, offset in raw_tensors:
        try:
            block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
        except (ValueError, KeyError):
            raise _invalid(path, f"tensor {name!r} has unknown ggml type {ggml_type}") from None
        type_name = _type_name(ggml_type)
        n_elements = 1
        for dim in shape:
            n_elements *= dim
        if shape[0] % block_size:
            raise _invalid(
                path,
                f"tensor {name!r} of type {type_name} has a first dimension {shape[0]} "
                f"that is not a multiple of its block size {block_size}",
            )
        if offset % alignment:
            raise _invalid(path, f"tensor {name!r} data offset {offset} is not aligned to {alignment}")
        n_bytes = n_elements // block_size * type_size
        begin = data_start + offset
        end = begin + n_bytes
        if end > size:
            raise _invalid(
                path,
                f"truncated: tensor {name!r} data ends at byte {end} but the file has {size} bytes",
                tensor=name,
                needed_bytes=end,
                file_size=size,
            )
        tensors.append(GGUFTensorInfo(name, ggml_type, type_name, shape, n_elements, n_bytes, begin))

    # Tensors must not overlap (llama.cpp lays them out back to back, each aligned).
    by_offset = sorted(tensors, key=lambda t: t.data_offset)
    for prev, cur in itertools.pairwise(by_offset):
        if cur.data_offset < prev.data_offset + prev.n_bytes:
            raise _invalid(path, f"tensors {prev.name!r} and {cur.name!r} overlap")

    return GGUFHeader(version, metadata, tensors, alignment, data_start, size)


def read_string_item(path: Path, array: GGUFArray, index: int) -> str | None:
    """Item ``index`` of a lazily kept string array (already bounds-checked by :func:`parse_header`)."""
    if array.string_offsets is None or not 0 <= index < array.count:
        return None
    start = array.string_offsets[index]
    with open_user_file(path, what="model file") as fh:
        fh.seek(start - 8)
        (length,) = struct.unpack("<Q", fh.read(8))
        return fh.read(length).decode("utf-8", errors="replace")


def file_type_name(file_type: int) -> str:
    """``general.file_type`` as llama.cpp names it: 3 -> ``Q4_1``, 0 -> ``F32``."""
    try:
        name = LlamaFileType(file_type).name
    except ValueError:
        return f"unknown({file_type})"
    for prefix in ("MOSTLY_", "ALL_"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def inspect_gguf(path: Path) -> ModelInfo:
    """Validate a GGUF file and describe it. Raises ``PlinthError`` for anything malformed.

    ``parameters`` holds: ``gguf_version``, ``quantization`` (from ``general.file_type``,
    e.g. ``Q4_1``; else the commonest tensor type), ``file_type`` (the raw number),
    ``tensor_types`` (type name -> tensor count), ``name``, ``parameter_count``,
    ``tensor_count``, ``vocab_size``, ``bos_token_id``, ``eos_token_id``, ``bos_token``,
    ``eos_token``, ``tokenizer_model``, ``embedding_length``, ``block_count``,
    ``head_count``, ``head_count_kv``, ``feed_forward_length`` -- each only when known.
    """
    path = Path(path)
    header = parse_header(path)
    md = header.metadata
    arch = _str_or_none(md.get("general.architecture"))
    if arch is None:
        raise _invalid(path, "general.architecture is missing (every GGUF model names its architecture)")
    if not header.tensors:
        raise _invalid(path, "it holds no tensors (a vocabulary-only GGUF is not a model)")

    def arch_int(key: str) -> int | None:
        return _int_or_none(md.get(f"{arch}.{key}"))

    params: dict[str, Any] = {"gguf_version": header.version}
    tensor_types: dict[str, int] = {}
    for t in header.tensors:
        tensor_types[t.type_name] = tensor_types.get(t.type_name, 0) + 1
    file_type = _int_or_none(md.get("general.file_type"))
    if file_type is not None:
        params["file_type"] = file_type
        params["quantization"] = file_type_name(file_type)
    elif tensor_types:
        params["quantization"] = max(tensor_types.items(), key=lambda kv: kv[1])[0]
    params["tensor_types"] = tensor_types
    if name := _str_or_none(md.get("general.name")):
        params["name"] = name
    params["parameter_count"] = sum(t.n_elements for t in header.tensors)
    params["tensor_count"] = len(header.tensors)

    tokens = md.get("tokenizer.ggml.tokens")
    bos_id = _int_or_none(md.get("tokenizer.ggml.bos_token_id"))
    eos_id = _int_or_none(md.get("tokenizer.ggml.eos_token_id"))
    if isinstance(tokens, (GGUFArray, list)):
        params["vocab_size"] = tokens.count if isinstance(tokens, GGUFArray) else len(tokens)
    elif (vocab := arch_int("vocab_size")) is not None:
        params["vocab_size"] = vocab
    if tm := _str_or_none(md.get("tokenizer.ggml.model")):
        params["tokenizer_model"] = tm
    for label, token_id in (("bos", bos_id), ("eos", eos_id)):
        if token_id is None:
            continue
        params[f"{label}_token_id"] = token_id
        token = _token_string(path, tokens, token_id)
        if token is not None:
            params[f"{label}_token"] = token

    for key, param in (
        ("embedding_length", "embedding_length"),
        ("block_count", "block_count"),
        ("attention.head_count", "head_count"),
        ("attention.head_count_kv", "head_count_kv"),
        ("feed_forward_length", "feed_forward_length"),
    ):
        value = arch_int(key)
        if value is not None:
            params[param] = value

    template = md.get("tokenizer.chat_template")
    return ModelInfo(
        format=ModelFormat.GGUF,
        architecture=arch,
        context_length=arch_int("context_length"),
        chat_template=template if isinstance(template, str) and template else None,
        license=_str_or_none(md.get("general.license")),
        size_bytes=header.file_size,
        parameters=params,
    )


def _token_string(path: Path, tokens: Any, index: int) -> str | None:
    if isinstance(tokens, list):
        return tokens[index] if 0 <= index < len(tokens) and isinstance(tokens[index], str) else None
    if not isinstance(tokens, GGUFArray):
        return None
    return read_string_item(path, tokens, index)
