"""The embedder interface."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


class Embedder(abc.ABC):
    """Turns texts into L2-normalised float32 vectors of ``dim`` dimensions.

    ``name`` is the backend name (what a knowledge base records); ``model_id`` names the
    exact model (with its weights' digest where known), so a change of model is visible.
    ``max_tokens`` is the longest input, in tokens without special tokens, embedded whole.
    """

    name: str
    model_id: str
    dim: int
    max_tokens: int

    @abc.abstractmethod
    def embed(self, texts: list[str]) -> np.ndarray:
        """Shape (len(texts), dim), float32, rows of unit length; batched internally."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as this model counts them (no special tokens)."""

    def count_tokens_many(self, texts: list[str]) -> list[int]:
        return [self.count_tokens(t) for t in texts]

    def close(self) -> None:  # pragma: no cover - backends with resources override it
        return None

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "model": self.model_id, "dim": self.dim, "max_tokens": self.max_tokens}
