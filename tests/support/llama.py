"""llama-cpp-python's high-level ``Llama`` with llama.cpp's extra buffer types off, as the
plinth engine loads models (see docs/adr/0012: the AMX buffers crash on some machines)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def no_extra_buffers() -> Iterator[None]:
    import llama_cpp
    import llama_cpp.llama as high_level

    original = llama_cpp.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = False
        return p

    high_level.llama_cpp.llama_model_default_params = params
    try:
        yield
    finally:
        high_level.llama_cpp.llama_model_default_params = original
