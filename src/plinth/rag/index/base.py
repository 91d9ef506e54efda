"""The index interface."""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plinth.domain.knowledge import KnowledgeBase

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    score: float  # vector: cosine similarity; keyword: the backend's relevance (higher is better)


class KnowledgeIndex(abc.ABC):
    """Candidates for a query in one version of a knowledge base.

    ``documents`` restricts results to those document ids (metadata filters); ``None`` means
    every document. Implementations catch up with the store themselves (``sync``), using the
    knowledge base's ``seq`` (any change) and ``rebuild_seq`` (rows deleted by pruning).
    """

    name: str

    @abc.abstractmethod
    def sync(self, kb: KnowledgeBase) -> None:
        """Bring the index up to the store's state of ``kb`` (cheap when nothing changed)."""

    @abc.abstractmethod
    def vector_search(self, kb: KnowledgeBase, version: int, query: np.ndarray, k: int, documents: set[int] | None = None) -> list[Hit]: ...

    @abc.abstractmethod
    def keyword_search(self, kb: KnowledgeBase, version: int, query: str, k: int, documents: set[int] | None = None) -> list[Hit]: ...

    def forget(self, kb_id: int) -> None:  # noqa: B027 - an optional hook: an index with no per-kb state does nothing
        """The knowledge base is gone: drop what the index holds for it."""

    def describe(self) -> dict[str, object]:
        return {"name": self.name}


# Words too common to help a keyword query (they only slow it down).
STOPWORDS = frozenset(
    """a an and are as at be but by can could did do does for from had has have how i if in into is it its
    me my of on or our should so than that the their them then there these they this to was we were what
    when where which who whom why will with would you your yours am been being any all about""".split()
)
_WORD = re.compile(r"[\w$%]+", re.UNICODE)


def query_terms(text: str, limit: int = 32) -> list[str]:
    """Lower-cased search terms of a query, without stop words and duplicates."""
    seen: list[str] = []
    for w in _WORD.findall(text.lower()):
        w = w.strip("_")
        if len(w) < 2 and not w.isdigit():
            continue
        if w in STOPWORDS or w in seen:
            continue
        seen.append(w)
        if len(seen) >= limit:
            break
    return seen


#: Keyword queries on large knowledge bases drop terms found in more than this share of the
#: chunks (their IDF is low, and ranking their matches costs most of the query time) —
#: keeping at least the two rarest terms. Small knowledge bases keep every term.
COMMON_TERM_RATIO = 0.1
PRUNE_MIN_CHUNKS = 5000


def prune_common_terms(terms: list[str], doc_freq: dict[str, int], n_chunks: int) -> list[str]:
    if n_chunks < PRUNE_MIN_CHUNKS or len(terms) <= 2:
        return terms
    keep = [t for t in terms if doc_freq.get(t, 0) <= COMMON_TERM_RATIO * n_chunks]
    if len(keep) >= 2:
        return keep
    return sorted(terms, key=lambda t: doc_freq.get(t, 0))[:2]
