"""Safetensors files and Hugging Face directories: a real tiny model, files written by the
safetensors library, and damaged or hostile variants of both."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors
from safetensors.numpy import save_file

from plinth.domain.models import ModelFormat
from plinth.errors import ErrorCode, PlinthError
from plinth.formats import inspect_model
from plinth.formats.safetensors_dir import inspect_safetensors_dir, inspect_safetensors_file

# --------------------------------------------------------------------------- helpers


def read_header(path: Path) -> tuple[dict[str, Any], bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def write_with_header(path: Path, header: Any, data: bytes) -> Path:
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return path


def expect_invalid(call: Callable[[], Any], *fragments: str, code: ErrorCode = ErrorCode.INVALID_MODEL_FILE) -> str:
    with pytest.raises(PlinthError) as info:
        call()
    assert info.value.code == code, info.value.message
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    return info.value.message


def reference_rejects(path: Path) -> bool:
    try:
        with safetensors.safe_open(str(path), framework="numpy") as f:
            for key in f.keys():  # noqa: SIM118 - safetensors' safe_open handle has keys() but is not iterable
                f.get_tensor(key)
    except Exception:  # any failure of the reference loader counts
        return True
    return False


@pytest.fixture
def st_file(tmp_path: Path) -> Path:
    path = tmp_path / "w.safetensors"
    save_file(
        {
            "a": np.arange(6, dtype=np.float32).reshape(2, 3),
            "b": np.ones(5, dtype=np.int64),
            "c": np.zeros((3, 4), dtype=np.float16),
        },
        str(path),
        metadata={"format": "np"},
    )
    return path


# --------------------------------------------------------------------------- single files


def test_file_from_reference_writer_is_described(st_file: Path) -> None:
    info = inspect_safetensors_file(st_file)
    assert info["tensor_count"] == 3
    assert info["parameter_count"] == 6 + 5 + 12
    assert info["dtypes"] == ["F16", "F32", "I64"]
    assert info["metadata"] == {"format": "np"}
    assert sorted(info["tensor_names"]) == ["a", "b", "c"]
    assert info["size_bytes"] == st_file.stat().st_size


def _shift_end(header: dict[str, Any], data: bytes) -> tuple[Any, bytes]:
    header["a"]["data_offsets"][1] += 4
    return header, data


def _swap_to_overlap(header: dict[str, Any], data: bytes) -> tuple[Any, bytes]:
    b = header["b"]["data_offsets"]
    header["b"]["data_offsets"] = [b[0] + 8, b[1] + 8]
    return header, data


def _set(key: str, field: str, value: Any) -> Callable[[dict[str, Any], bytes], tuple[Any, bytes]]:
    def mutate(header: dict[str, Any], data: bytes) -> tuple[Any, bytes]:
        header[key][field] = value
        return header, data

    return mutate


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        pytest.param(_shift_end, ["tensor 'a' data_offsets", "span 28 bytes", "needs 24"], id="lying-offsets"),
        pytest.param(_swap_to_overlap, ["leaves a gap", "'b'"], id="gap"),
        pytest.param(_set("a", "shape", [2, 4]), ["tensor 'a'", "needs 32"], id="lying-shape"),
        pytest.param(_set("a", "dtype", "F128"), ["unknown dtype 'F128'"], id="dtype"),
        pytest.param(_set("a", "shape", [2, -3]), ["invalid shape"], id="negative-shape"),
        pytest.param(_set("a", "data_offsets", [0]), ["invalid data_offsets"], id="offsets-arity"),
        pytest.param(_set("a", "data_offsets", [24, 0]), ["end before they begin"], id="offsets-order"),
        pytest.param(lambda h, d: (h, d[:-10]), ["truncated: tensor", "data ends at byte"], id="truncated-data"),
        pytest.param(lambda h, d: (h, d + b"\0" * 16), ["data section is", "tensors cover"], id="trailing-bytes"),
        pytest.param(lambda h, d: ([h], d), ["must be a JSON object"], id="header-list"),
        pytest.param(lambda h, d: ({**h, "__metadata__": {"x": 1}}, d), ["__metadata__"], id="metadata-type"),
    ],
)
def test_damaged_files_are_invalid_as_the_reference_loader_agrees(
    st_file: Path, tmp_path: Path, mutate: Callable[..., tuple[Any, bytes]], fragments: list[str]
) -> None:
    header, data = read_header(st_file)
    new_header, new_data = mutate(header, data)
    bad = write_with_header(tmp_path / "bad.safetensors", new_header, new_data)
    expect_invalid(lambda: inspect_safetensors_file(bad), str(bad), *fragments)
    assert reference_rejects(bad)


def _raw(header: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        pytest.param(b"", ["truncated", "has 0 bytes"], id="empty"),
        pytest.param(b"\x10\x00\x00", ["truncated", "has 3 bytes"], id="short"),
        pytest.param(struct.pack("<Q", 10_000) + b"{}", ["runs past the end of the file"], id="header-past-end"),
        pytest.param(struct.pack("<Q", 2**40) + b"{}", ["exceeds"], id="header-huge"),
        pytest.param(struct.pack("<Q", 6) + b"{nope}", ["not valid JSON"], id="not-json"),
        pytest.param(struct.pack("<Q", 4) + b"\xff\xfe{}", ["not valid UTF-8"], id="not-utf8"),
        pytest.param(
            _raw(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}') + b"\0",
            ["duplicate key 'a'"],
            id="duplicate-key",
        ),
    ],
)
def test_corrupted_headers_are_invalid(tmp_path: Path, content: bytes, fragments: list[str]) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    expect_invalid(lambda: inspect_safetensors_file(bad), str(bad), *fragments)


def test_overwritten_header_bytes_are_invalid(st_file: Path) -> None:
    raw = bytearray(st_file.read_bytes())
    raw[8:20] = b"\x00garbage!!\x01"
    st_file.write_bytes(bytes(raw))
    expect_invalid(lambda: inspect_safetensors_file(st_file), "header is not valid JSON")


# --------------------------------------------------------------------------- directories


def test_tiny_hf_dir_is_described(tiny_llama_dir: Path) -> None:
    info = inspect_model(tiny_llama_dir)
    assert info.format is ModelFormat.SAFETENSORS
    assert info.architecture == "LlamaForCausalLM"
    assert info.context_length == 512
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert info.license == "apache-2.0"
    files = [p for p in tiny_llama_dir.rglob("*") if p.is_file()]
    assert info.size_bytes == sum(p.stat().st_size for p in files)
    p = info.parameters
    with safetensors.safe_open(str(tiny_llama_dir / "model.safetensors"), framework="numpy") as f:
        shapes = [f.get_slice(k).get_shape() for k in f.keys()]  # noqa: SIM118 - safetensors' safe_open handle has keys() but is not iterable
    assert p["tensor_count"] == len(shapes)
    assert p["parameter_count"] == sum(int(np.prod(s)) for s in shapes)
    assert p["dtypes"] == ["F32"] and p["shard_count"] == 1
    assert p["model_type"] == "llama" and p["vocab_size"] == 512
    assert (p["eos_token"], p["eos_token_id"]) == ("<|im_end|>", 2)
    assert p["num_hidden_layers"] == 2 and p["hidden_size"] == 64


def test_tiny_hf_model_loads_and_generates(tiny_llama_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    assert tokenizer.eos_token == "<|im_end|>"
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Hello world"}], add_generation_prompt=True, tokenize=False)
    assert prompt.startswith("<|im_start|>user\nHello world<|im_end|>") and prompt.endswith("assistant\n")
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False, min_new_tokens=5)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5


def test_chat_template_falls_back_to_tokenizer_config(tiny_llama_copy: Path) -> None:
    (tiny_llama_copy / "chat_template.jinja").unlink()
    info = inspect_model(tiny_llama_copy)
    assert info.chat_template and "<|im_start|>" in info.chat_template
    config = json.loads((tiny_llama_copy / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (tiny_llama_copy / "tokenizer_config.json").write_text(json.dumps(config))
    assert inspect_model(tiny_llama_copy).chat_template is None


def test_architecture_falls_back_to_model_type_and_licence_is_optional(tiny_llama_copy: Path) -> None:
    config_path = tiny_llama_copy / "config.json"
    config = json.loads(config_path.read_text())
    del config["architectures"]
    config_path.write_text(json.dumps(config))
    (tiny_llama_copy / "README.md").write_text("# no front matter\nlicense: not-this\n")
    info = inspect_model(tiny_llama_copy)
    assert info.architecture == "llama" and info.license is None


def _split_into_shards(model_dir: Path) -> dict[str, str]:
    """Rewrite the tiny model as two shards plus a model.safetensors.index.json."""
    with safetensors.safe_open(str(model_dir / "model.safetensors"), framework="numpy") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safetensors' safe_open handle has keys() but is not iterable
    (model_dir / "model.safetensors").unlink()
    names = sorted(tensors)
    half = len(names) // 2
    weight_map: dict[str, str] = {}
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for shard, part in shards.items():
        save_file({k: tensors[k] for k in part}, str(model_dir / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, shard))
    (model_dir / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return weight_map


def test_sharded_dir_is_described(tiny_llama_dir: Path, tiny_llama_copy: Path) -> None:
    _split_into_shards(tiny_llama_copy)
    info = inspect_model(tiny_llama_copy)
    whole = inspect_model(tiny_llama_dir)
    assert info.parameters["shard_count"] == 2
    assert info.parameters["parameter_count"] == whole.parameters["parameter_count"]
    assert info.parameters["tensor_count"] == whole.parameters["tensor_count"]


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("../evil.safetensors", "'../evil.safetensors', which is outside the model directory"),
        ("/etc/evil.safetensors", "'/etc/evil.safetensors', which is outside the model directory"),
        ("sub/../../evil.safetensors", "outside the model directory"),
        ("missing.safetensors", "'missing.safetensors', which does not exist"),
    ],
)
def test_index_naming_files_outside_or_missing_is_refused(tiny_llama_copy: Path, target: str, fragment: str) -> None:
    weight_map = _split_into_shards(tiny_llama_copy)
    save_file({"x": np.zeros(1, dtype=np.float32)}, str(tiny_llama_copy.parent / "evil.safetensors"))
    first = sorted(weight_map)[0]
    weight_map[first] = target
    index = tiny_llama_copy / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": weight_map}))
    expect_invalid(lambda: inspect_model(tiny_llama_copy), "model.safetensors.index.json", fragment)


def test_index_placing_a_tensor_in_the_wrong_shard_is_refused(tiny_llama_copy: Path) -> None:
    weight_map = _split_into_shards(tiny_llama_copy)
    first = sorted(weight_map)[0]
    weight_map[first] = "model-00002-of-00002.safetensors"
    (tiny_llama_copy / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    expect_invalid(lambda: inspect_model(tiny_llama_copy), f"tensor {first!r}", "does not hold it")


def test_damaged_shard_in_dir_is_named(tiny_llama_copy: Path) -> None:
    weights = tiny_llama_copy / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(weights.stat().st_size - 100)
    expect_invalid(lambda: inspect_model(tiny_llama_copy), str(weights.resolve()), "truncated: tensor")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "config.json is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"hidden_size": 8}', "neither 'architectures' nor 'model_type'"),
    ],
)
def test_bad_config_json_is_invalid(tiny_llama_copy: Path, content: str, fragment: str) -> None:
    (tiny_llama_copy / "config.json").write_text(content)
    expect_invalid(lambda: inspect_model(tiny_llama_copy), fragment)


def test_symlink_escaping_the_dir_is_refused(tiny_llama_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    (tiny_llama_copy / "notes.txt").symlink_to(outside)
    expect_invalid(lambda: inspect_model(tiny_llama_copy), "symlink notes.txt points outside the model directory")


def test_symlinked_weights_outside_the_dir_are_refused(tiny_llama_copy: Path, tmp_path: Path) -> None:
    """As in a Hugging Face cache snapshot, where files link to ../../blobs."""
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    os.replace(tiny_llama_copy / "model.safetensors", blobs / "abc123")
    (tiny_llama_copy / "model.safetensors").symlink_to(blobs / "abc123")
    expect_invalid(lambda: inspect_model(tiny_llama_copy), "model.safetensors points outside", "cp -rL")


def test_symlinked_directory_escaping_is_refused(tiny_llama_copy: Path, tmp_path: Path) -> None:
    (tiny_llama_copy / "extras").symlink_to(tmp_path, target_is_directory=True)
    expect_invalid(lambda: inspect_model(tiny_llama_copy), "symlink extras points outside")


def test_dangling_symlink_is_refused(tiny_llama_copy: Path) -> None:
    (tiny_llama_copy / "dangling").symlink_to(tiny_llama_copy / "nowhere")
    expect_invalid(lambda: inspect_model(tiny_llama_copy), "symlink dangling is broken")


def test_symlink_inside_the_dir_is_accepted_and_counted_once(tiny_llama_dir: Path, tiny_llama_copy: Path) -> None:
    (tiny_llama_copy / "alias.json").symlink_to(tiny_llama_copy / "config.json")
    info = inspect_model(tiny_llama_copy)
    assert info.size_bytes == inspect_model(tiny_llama_dir).size_bytes


def test_inspect_safetensors_dir_needs_config(tiny_llama_copy: Path) -> None:
    (tiny_llama_copy / "config.json").unlink()
    expect_invalid(lambda: inspect_safetensors_dir(tiny_llama_copy), "config.json is missing")
