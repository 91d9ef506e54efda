"""Topic: keeps a deployment to its allowed subjects, by similarity of the message to the
policy's allowed topics and examples (and to examples of what is off topic), with the shared
sentence embedder (:mod:`plinth.embeddings`, all-MiniLM-L6-v2 offline).

The score of ``off_topic`` is a similarity-weighted vote of the ``k`` nearest labelled
examples (topic descriptions count as allowed examples), pulled towards off-topic when even
the nearest allowed example is far (``min_similarity``). Very short messages (greetings,
"thanks") pass.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from pydantic import Field, model_validator

from plinth.domain.guardrails import Direction, Finding
from plinth.guardrails.base import DetectContext, Detector, DetectorOptions, register_detector
from plinth.guardrails.gloss import gloss
from plinth.guardrails.text import words


class TopicOptions(DetectorOptions):
    allowed: list[str] = Field(min_length=1, max_length=500, description="descriptions of the subjects the deployment handles")
    examples: list[str] = Field(default_factory=list, max_length=5000, description="messages that are on topic")
    denied: list[str] = Field(default_factory=list, max_length=500, description="descriptions of subjects it must not handle")
    denied_examples: list[str] = Field(default_factory=list, max_length=5000, description="messages that are off topic")
    k: int = Field(7, ge=1, le=50, description="neighbours that vote")
    min_similarity: float = Field(0.25, ge=-1, le=1, description="below this similarity to every allowed example a message is off topic")
    min_words: int = Field(3, ge=0, le=50, description="shorter messages are never off topic")
    max_chars: int = Field(1000, ge=50, le=20000, description="only this much of a message is embedded")
    gloss: bool = Field(True, description="embed a message in another language beside its English gloss (ADR 0116)")
    gloss_ascii: bool = Field(True, description="gloss messages written without accents too (German, Dutch, Spanish...)")

    @model_validator(mode="after")
    def _texts(self) -> TopicOptions:
        for name in ("allowed", "examples", "denied", "denied_examples"):
            if any(not isinstance(t, str) or not t.strip() or len(t) > 2000 for t in getattr(self, name)):
                raise ValueError(f"{name}: every entry must be a non-empty string of at most 2000 characters")
        return self


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def _word_count(text: str) -> int:
    """Words of a message; Chinese and Japanese run words together, so two of their characters
    count as one word (Korean hangul syllables likewise)."""
    cjk = len(_CJK.findall(text))
    return len(words(_CJK.sub(" ", text))) + (cjk + 1) // 2


@register_detector
class TopicDetector(Detector):
    kind = "topic"
    description = "Keeps a deployment to its allowed subjects (similarity to allowed topics and examples, with the embedded MiniLM)"
    Options = TopicOptions
    labels = ("off_topic",)
    directions = frozenset({Direction.INPUT})

    def __init__(self, rule_id: str, options: DetectorOptions, resources: Any) -> None:
        super().__init__(rule_id, options, resources)
        self._index: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def _build(self) -> tuple[Any, Any]:
        import numpy as np

        o: TopicOptions = self.options  # type: ignore[assignment]
        texts = [*o.allowed, *o.examples, *o.denied, *o.denied_examples]
        labels = np.asarray([0.0] * (len(o.allowed) + len(o.examples)) + [1.0] * (len(o.denied) + len(o.denied_examples)))
        vectors = self.resources.embedder().embed(texts)
        return vectors, labels

    def index(self) -> tuple[Any, Any]:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = self._build()
        return self._index

    def warm_up(self) -> None:
        self.index()

    def off_topic_score(self, text: str) -> tuple[float, float]:
        """(probability of off topic, similarity of the nearest allowed example)."""
        import numpy as np

        o: TopicOptions = self.options  # type: ignore[assignment]
        vectors, labels = self.index()
        q = self._query_vector(text[: o.max_chars])
        sims = vectors @ q
        allowed = sims[labels == 0]
        best_allowed = float(allowed.max()) if allowed.size else -1.0
        k = min(o.k, len(sims))
        nearest = np.argsort(-sims)[:k]
        weights = np.exp(sims[nearest] * 10.0)
        vote = float((weights * labels[nearest]).sum() / weights.sum())
        if best_allowed < o.min_similarity:
            vote = max(vote, 0.5 + (o.min_similarity - best_allowed))
        return min(1.0, vote), best_allowed

    def _query_vector(self, text: str) -> Any:
        """The message's embedding; for a message in another language, the mean with the
        embedding of its English gloss (:mod:`plinth.guardrails.gloss`), since the embedder
        reads English best."""
        glossed = gloss(text) if not text.isascii() or self.options.gloss_ascii else ""  # type: ignore[attr-defined]
        if not glossed or not self.options.gloss:  # type: ignore[attr-defined]
            return self.resources.embedder().embed([text])[0]
        both = self.resources.embedder().embed([text, glossed])
        q = both[0] + both[1]
        return q / (float((q * q).sum()) ** 0.5 or 1.0)

    def detect(self, text: str, ctx: DetectContext) -> list[Finding]:
        o: TopicOptions = self.options  # type: ignore[assignment]
        if _word_count(text) < o.min_words:
            return [self.finding("off_topic", 0.0, "short message")]
        score, best = self.off_topic_score(text)
        return [self.finding("off_topic", score, f"nearest allowed topic at similarity {best:.2f}")]
