"""GGUF inspection: the real embedded model, files written by the reference writer, and
damaged or hostile files, which must all end in a PlinthError naming the problem."""

from __future__ import annotations

import random
import shutil
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from plinth.domain.models import ModelFormat
from plinth.errors import ErrorCode, PlinthError
from plinth.formats import inspect_model
from plinth.formats.gguf import file_type_name, inspect_gguf, parse_header

# --------------------------------------------------------------------------- helpers


def write_small_gguf(path: Path, *, vocab: int = 102) -> Path:
    """A small but complete GGUF file written by the gguf package's own writer."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(256)
    writer.add_block_count(1)
    writer.add_embedding_length(32)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_license("mit")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["<s>", "</s>"] + [f"t{i}" for i in range(vocab - 2)])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_chat_template("{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}")
    writer.add_tensor("token_embd.weight", np.arange(vocab * 32, dtype=np.float32).reshape(vocab, 32))
    writer.add_tensor("output_norm.weight", np.ones(32, dtype=np.float32))
    # A quantised tensor given as raw blocks: 2 rows of 64 Q4_1 values = 2 x 2 blocks of 20 bytes.
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((2, 40), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q4_1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv_str(key: str, value: str | bytes) -> bytes:
    return _s(key) + struct.pack("<I", 8) + _s(value)


def kv_u32(key: str, value: int) -> bytes:
    return _s(key) + struct.pack("<II", 4, value)


def tensor_info(name: str, shape: tuple[int, ...], ggml_type: int = 0, offset: int = 0) -> bytes:
    return _s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape) + struct.pack("<IQ", ggml_type, offset)


def raw_gguf(
    kvs: list[bytes],
    tensors: list[bytes] = (),
    data: bytes = b"",
    *,
    version: int = 3,
    kv_count: int | None = None,
    tensor_count: int | None = None,
) -> bytes:
    head = b"GGUF" + struct.pack(
        "<IQQ", version, len(tensors) if tensor_count is None else tensor_count, len(kvs) if kv_count is None else kv_count
    )
    body = head + b"".join(kvs) + b"".join(tensors)
    body += b"\0" * (-len(body) % 32)
    return body + data


def expect_error(path: Path, code: ErrorCode, *fragments: str) -> PlinthError:
    with pytest.raises(PlinthError) as info:
        inspect_model(path)
    err = info.value
    assert err.code == code, err.message
    for fragment in fragments:
        assert fragment in err.message, err.message
    return err


@pytest.fixture
def small_gguf(tmp_path: Path) -> Path:
    return write_small_gguf(tmp_path / "small.gguf")


# --------------------------------------------------------------------------- valid files


def test_embedded_gguf_is_described(embedded_gguf: Path) -> None:
    info = inspect_gguf(embedded_gguf)
    assert info.format is ModelFormat.GGUF
    assert info.architecture == "llama"
    assert info.context_length == 8192
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert info.license == "apache-2.0"
    assert info.size_bytes == embedded_gguf.stat().st_size
    p = info.parameters
    assert p["quantization"] == "Q4_1" and p["file_type"] == 3
    assert 130_000_000 < p["parameter_count"] < 140_000_000
    assert p["vocab_size"] == 49152
    assert (p["bos_token_id"], p["bos_token"]) == (1, "<|im_start|>")
    assert (p["eos_token_id"], p["eos_token"]) == (2, "<|im_end|>")
    assert p["embedding_length"] == 576 and p["block_count"] == 30
    assert p["tensor_count"] == 272 and p["tensor_types"]["Q4_1"] > 200
    assert p["name"]


def test_inspect_model_dispatches_gguf_by_magic_not_name(embedded_gguf: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "weights.data"
    renamed.symlink_to(embedded_gguf)
    info = inspect_model(renamed)
    assert info.format is ModelFormat.GGUF and info.architecture == "llama"


def test_parser_agrees_with_reference_reader(small_gguf: Path) -> None:
    """Our parser and gguf.GGUFReader agree on every tensor's place and size and on metadata.

    (Checked on a small file: GGUFReader takes seconds on the embedded model.)
    """
    reader = gguf.GGUFReader(str(small_gguf))
    header = parse_header(small_gguf)
    ours = {t.name: (t.data_offset, t.n_bytes, t.n_elements, t.type_name) for t in header.tensors}
    theirs = {t.name: (t.data_offset, t.n_bytes, t.n_elements, t.tensor_type.name) for t in reader.tensors}
    assert ours == theirs and ours["blk.0.attn_q.weight"][3] == "Q4_1"
    assert header.data_start == reader.data_offset
    for key in ("general.name", "llama.context_length", "tokenizer.chat_template", "general.file_type"):
        assert header.metadata[key] == reader.fields[key].contents()


@pytest.mark.parametrize("vocab", [10, 102])  # decoded eagerly, and kept lazily
def test_file_from_reference_writer_is_described(tmp_path: Path, vocab: int) -> None:
    path = write_small_gguf(tmp_path / "small.gguf", vocab=vocab)
    info = inspect_model(path)
    assert info.architecture == "llama" and info.context_length == 256 and info.license == "mit"
    assert "<|im_start|>" in info.chat_template
    p = info.parameters
    assert p["parameter_count"] == vocab * 32 + 32 + 128
    assert p["tensor_types"] == {"F32": 2, "Q4_1": 1}
    assert p["quantization"] == "F32"
    assert p["vocab_size"] == vocab
    assert (p["bos_token"], p["eos_token"]) == ("<s>", "</s>")


def test_file_type_names() -> None:
    assert file_type_name(3) == "Q4_1"
    assert file_type_name(0) == "F32"
    assert file_type_name(15) == "Q4_K_M"
    assert file_type_name(9999) == "unknown(9999)"


# --------------------------------------------------------------------------- damaged files


@pytest.mark.parametrize("keep", [4, 20, 100, 1_000_000, 10 * 1024 * 1024])
def test_truncated_embedded_gguf_is_invalid(embedded_gguf: Path, tmp_path: Path, keep: int) -> None:
    path = tmp_path / "cut.gguf"
    with open(embedded_gguf, "rb") as src:
        path.write_bytes(src.read(keep))
    err = expect_error(path, ErrorCode.INVALID_MODEL_FILE, str(path), "truncated", f"the file has {keep} bytes")
    if keep == 10 * 1024 * 1024:  # header intact: the first tensor past the end is named
        assert "tensor '" in err.message and "data ends at byte" in err.message


def test_embedded_gguf_missing_its_last_byte_is_invalid(embedded_gguf: Path, tmp_path: Path) -> None:
    path = tmp_path / "short.gguf"
    shutil.copyfile(embedded_gguf, path)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - 1)
    expect_error(path, ErrorCode.INVALID_MODEL_FILE, "truncated: tensor 'output_norm.weight'", f"ends at byte {size}")


def test_every_truncation_of_a_small_gguf_is_invalid(small_gguf: Path, tmp_path: Path) -> None:
    data = small_gguf.read_bytes()
    header_end = parse_header(small_gguf).data_start
    lengths = [*range(1, header_end + 40), *range(header_end + 40, len(data), 97)]
    cut = tmp_path / "cut.gguf"
    for n in lengths:
        cut.write_bytes(data[:n])
        with pytest.raises(PlinthError) as info:
            inspect_model(cut)
        assert info.value.code == ErrorCode.INVALID_MODEL_FILE, (n, info.value.message)


def test_random_header_corruption_never_escapes_as_a_raw_exception(small_gguf: Path, tmp_path: Path) -> None:
    data = small_gguf.read_bytes()
    header_end = parse_header(small_gguf).data_start
    rng = random.Random(1234)
    bad = tmp_path / "bad.gguf"
    outcomes = {"ok": 0, "error": 0}
    for _ in range(300):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(4, header_end)] = rng.randrange(256)
        bad.write_bytes(bytes(mutated))
        try:
            inspect_model(bad)
            outcomes["ok"] += 1
        except PlinthError as err:
            assert err.code in (ErrorCode.INVALID_MODEL_FILE, ErrorCode.UNSUPPORTED_FORMAT), err.message
            outcomes["error"] += 1
    assert outcomes["error"] > 50  # the corruption really hit something


def test_magic_followed_by_garbage_is_invalid(tmp_path: Path) -> None:
    rng = random.Random(7)
    path = tmp_path / "garbage.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<I", 3) + bytes(rng.randrange(256) for _ in range(4096)))
    expect_error(path, ErrorCode.INVALID_MODEL_FILE, str(path))


def test_random_bytes_named_gguf_are_invalid(tmp_path: Path) -> None:
    path = tmp_path / "random.gguf"
    path.write_bytes(random.Random(3).randbytes(1000))
    expect_error(path, ErrorCode.INVALID_MODEL_FILE, "does not start with the GGUF magic")


def test_empty_file_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    expect_error(path, ErrorCode.INVALID_MODEL_FILE, str(path), "empty")
    with pytest.raises(PlinthError) as info:
        inspect_gguf(path)
    assert info.value.code == ErrorCode.INVALID_MODEL_FILE and "empty" in info.value.message


ARCH = kv_str("general.architecture", "llama")


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        pytest.param(raw_gguf([ARCH], version=7), ["unknown GGUF version 7"], id="unknown-version"),
        pytest.param(raw_gguf([ARCH], kv_count=2**60), ["claims 1152921504606846976 metadata entries"], id="kv-count"),
        pytest.param(raw_gguf([ARCH], tensor_count=2**40), ["claims 1099511627776 tensors"], id="tensor-count"),
        pytest.param(raw_gguf([ARCH, _s("x") + struct.pack("<I", 99)]), ["unknown value type 99"], id="value-type"),
        pytest.param(raw_gguf([ARCH, _s("big") + struct.pack("<IIQ", 9, 0, 2**62)]), ["truncated", "'big'"], id="array-length"),
        pytest.param(raw_gguf([ARCH, _s("toks") + struct.pack("<IIQ", 9, 8, 2**40)]), ["truncated", "'toks'"], id="string-array"),
        pytest.param(raw_gguf([ARCH, _s("s") + struct.pack("<IQ", 8, 2**50)]), ["claims a length of"], id="string-length"),
        pytest.param(raw_gguf([ARCH, kv_str("general.name", b"\xff\xfe")]), ["not valid UTF-8"], id="utf8"),
        pytest.param(raw_gguf([ARCH, ARCH]), ["'general.architecture' appears twice"], id="duplicate-key"),
        pytest.param(raw_gguf([ARCH, kv_u32("general.alignment", 3)]), ["power of two"], id="alignment"),
        pytest.param(raw_gguf([kv_u32("llama.context_length", 8)]), ["general.architecture is missing"], id="no-arch"),
        pytest.param(raw_gguf([ARCH]), ["holds no tensors"], id="vocab-only"),
        pytest.param(raw_gguf([ARCH], [tensor_info("w", (1, 1, 1, 1, 1))]), ["'w' has 5 dimensions"], id="dims"),
        pytest.param(raw_gguf([ARCH], [tensor_info("w", (4,), ggml_type=200)], b"\0" * 16), ["unknown ggml type 200"], id="ggml-type"),
        pytest.param(
            raw_gguf([ARCH], [tensor_info("w", (4,), offset=64)], b"\0" * 16),
            ["truncated: tensor 'w' data ends at byte"],
            id="offset-past-end",
        ),
        pytest.param(
            raw_gguf([ARCH], [tensor_info("w", (4,), offset=8)], b"\0" * 64), ["'w' data offset 8 is not aligned to 32"], id="misaligned"
        ),
        pytest.param(
            raw_gguf([ARCH], [tensor_info("a", (16,)), tensor_info("b", (16,))], b"\0" * 64), ["tensors 'a' and 'b' overlap"], id="overlap"
        ),
        pytest.param(
            raw_gguf([ARCH], [tensor_info("q", (33,), ggml_type=3)], b"\0" * 64), ["not a multiple of its block size 32"], id="block-size"
        ),
        pytest.param(
            raw_gguf([ARCH], [tensor_info("w", (4,)), tensor_info("w", (4,), offset=32)], b"\0" * 64),
            ["tensor 'w' appears twice"],
            id="duplicate-tensor",
        ),
    ],
)
def test_malformed_headers_are_invalid(tmp_path: Path, content: bytes, fragments: list[str]) -> None:
    path = tmp_path / "crafted.gguf"
    path.write_bytes(content)
    expect_error(path, ErrorCode.INVALID_MODEL_FILE, str(path), *fragments)


def test_crafted_minimal_file_is_valid(tmp_path: Path) -> None:
    """The helper used above does produce a valid file when nothing is wrong."""
    path = tmp_path / "ok.gguf"
    path.write_bytes(raw_gguf([ARCH], [tensor_info("a", (4,)), tensor_info("b", (8,), offset=32)], b"\0" * 64))
    info = inspect_model(path)
    assert info.parameters["parameter_count"] == 12 and info.architecture == "llama"


@pytest.mark.parametrize(("version", "fragment"), [(1, "version 1"), (3 << 24, "big-endian")])
def test_old_and_big_endian_gguf_are_unsupported(tmp_path: Path, version: int, fragment: str) -> None:
    path = tmp_path / "other.gguf"
    path.write_bytes(raw_gguf([ARCH], version=version))
    expect_error(path, ErrorCode.UNSUPPORTED_FORMAT, fragment)
