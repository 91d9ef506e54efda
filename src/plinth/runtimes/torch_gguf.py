"""Serve a GGUF model with the torch runtime: dequantise it once into a safetensors directory.

The torch engine batches many sequences on bf16 weights (oneDNN/AMX on recent CPUs, CUDA on
GPUs); llama.cpp reads the quantised GGUF directly and is faster for one stream. To let a
user pick either runtime for the same file, the torch runtime turns a GGUF into a Hugging
Face directory (config, tokenizer with its chat template, weights) with transformers' own
GGUF reader, which undoes llama.cpp's q/k row permutation. The result is written once,
atomically, under the cache directory, keyed by the file's sha256 (or its path, size and
modification time when no digest is known), and reused on the next load.

The values are the GGUF's own, dequantised: for Q4_1 each weight is ``d * q + m`` exactly in
float32; the saved copy is in ``dtype`` (bf16 by default, the dtype the engine computes in).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

from plinth.errors import ErrorCode, PlinthError

log = logging.getLogger("plinth.runtimes.torch")

_DONE = ".plinth-complete"


def cache_key(gguf: Path, digest: str | None) -> str:
    if digest:
        return digest.replace("sha256:", "")[:32]
    st = gguf.stat()
    return hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]


def dequantised_dir(gguf: Path, cache_root: Path, digest: str | None = None, dtype_name: str = "bfloat16") -> Path:
    """The safetensors directory for ``gguf`` (made on first use, about 15 s for the
    embedded model)."""
    import torch

    dest = cache_root / f"{cache_key(gguf, digest)}-{dtype_name}"
    if (dest / _DONE).is_file():
        return dest
    dtype = getattr(torch, dtype_name)
    tmp = dest.with_name(dest.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log.info("dequantising %s for the torch runtime into %s", gguf.name, dest)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype)
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            quantizer.remove_quantization_config(model)
        model.save_pretrained(str(tmp), safe_serialization=True)
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(str(tmp))
    except Exception as e:  # unsupported architecture, damaged file...
        shutil.rmtree(tmp, ignore_errors=True)
        raise PlinthError(ErrorCode.RUNTIME_UNAVAILABLE, f"the torch runtime cannot read the GGUF {gguf.name}: {e}") from None
    (tmp / _DONE).write_text("ok\n")
    try:
        tmp.rename(dest)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (dest / _DONE).is_file():
            raise
    return dest
