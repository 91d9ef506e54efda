"""Fixtures for the model-format tests: the embedded GGUF and a tiny real HF model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from plinth.formats import locate_embedded_gguf
from tests.support.tiny_hf import make_tiny_llama


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    return locate_embedded_gguf()


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per session; never modify it (copy it with ``tiny_llama_copy``)."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-hf") / "tiny-llama")


@pytest.fixture
def tiny_llama_copy(tiny_llama_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model (about 0.5 MB) that a test may damage."""
    return Path(shutil.copytree(tiny_llama_dir, tmp_path / "model"))
