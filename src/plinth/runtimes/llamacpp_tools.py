"""llama.cpp for work beside serving: a GGUF's tokenizer alone, the logits a GGUF gives a
token sequence, and llama.cpp's own quantiser.

Dataset statistics (:mod:`plinth.tuning.dataset_stats`), evaluation
(:mod:`plinth.tuning.evaluation`) and export (:mod:`plinth.tuning.export`) use these, so
``llama_cpp`` is imported only by the llama.cpp runtime's modules (``runtimes/llamacpp*.py``),
and only inside the functions here: importing this module costs nothing.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from plinth.errors import ErrorCode, PlinthError

#: llama.cpp's ``llama_ftype`` values of the quantisations plinth exports
QUANT_FTYPES = {"f16": 1, "q8_0": 7, "q4_k_m": 15}


class LlamaVocab:
    """llama.cpp's tokenizer of a GGUF, loaded vocabulary-only through the low-level API
    (no context is created, so nothing is allocated for inference)."""

    def __init__(self, path: Path, *, name: str) -> None:
        import llama_cpp
        import llama_cpp._logger as llama_logger

        if not logging.getLogger("plinth").isEnabledFor(logging.DEBUG):
            llama_logger.set_verbose(False)
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self._lib: Any = llama_cpp
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self._model:
            raise PlinthError(ErrorCode.INVALID_MODEL_FILE, f"llama.cpp could not read the vocabulary of {name!r}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)

    def count(self, text: str, *, special: bool = False) -> int:
        """How many tokens llama.cpp makes of ``text`` (no BOS added)."""
        data = text.encode("utf-8")
        size = len(data) + 16
        while True:
            buf = (self._lib.llama_token * size)()
            n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, size, False, special)
            if n >= 0:
                return int(n)
            size = -n  # the buffer was too small: llama.cpp says how many are needed

    def close(self) -> None:
        model = getattr(self, "_model", None)
        if model:
            self._lib.llama_model_free(model)
            self._model = None

    def __del__(self) -> None:
        self.close()


def gguf_logits(path: Path, sequences: Iterable[list[int]], *, n_ctx: int, threads: int, extra_buffers: bool) -> Iterator[Any]:
    """For each token sequence, llama.cpp's logits at every position (a float64 numpy array
    of shape (len, vocab)) from the GGUF at ``path``, as it is served."""
    import llama_cpp
    import llama_cpp.llama as high_level
    import numpy as np

    original = llama_cpp.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = extra_buffers
        return p

    high_level.llama_cpp.llama_model_default_params = params
    try:
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=threads)
    finally:
        high_level.llama_cpp.llama_model_default_params = original
    try:
        for ids in sequences:
            llm.reset()
            llm.eval(ids)
            yield np.array(llm.scores[: len(ids)], dtype=np.float64)
    finally:
        llm.close()


def quantize_gguf(src: Path, dest: Path, quant: str, *, threads: int) -> None:
    """llama.cpp's own quantiser (the same code as its llama-quantize tool): ``src`` (F16 or
    F32) to ``dest`` as ``quant`` (a key of :data:`QUANT_FTYPES`)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_FTYPES[quant]
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dest).encode(), ctypes.byref(params))
    if rc != 0 or not dest.is_file():
        dest.unlink(missing_ok=True)
        raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"llama.cpp could not quantise {src.name} to {quant} (code {rc})")
