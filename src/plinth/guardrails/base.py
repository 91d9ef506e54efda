"""The detector interface and the registry of detector kinds.

A detector looks at one text and returns :class:`~plinth.domain.guardrails.Finding` objects
with a score in [0, 1] and a reason. Span detectors (PII, secrets) return offsets that a
redact rule can replace; classifiers (toxicity, injection, topic) return one finding about
the whole text; groundedness returns one finding per unsupported answer sentence.

Kinds register by name with :func:`register_detector`, exactly as a third-party detector
would; a policy rule names the kind (``detector: pii``) and gives its options, which the
kind's ``Options`` model validates. Detectors are built once per policy version and must be
safe to call from several threads.
"""

from __future__ import annotations

import abc
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from plinth.domain.guardrails import Direction, Finding
from plinth.errors import ErrorCode, PlinthError


class DetectorOptions(BaseModel):
    """Options of a detector kind (the keys of a policy rule besides the common ones)."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class DetectContext:
    """What a detector may need besides the text."""

    direction: Direction = Direction.INPUT
    #: passages retrieved for the request (dicts with ``text``), for groundedness
    passages: list[dict[str, Any]] = field(default_factory=list)
    #: the question the answer replies to (groundedness, topic)
    question: str = ""


class Resources:
    """Shared, lazily built resources detectors may use (the embedder). One per service."""

    def __init__(self, embedder_factory: Callable[[], Any] | None = None) -> None:
        self._embedder_factory = embedder_factory
        self._embedder: Any = None

    def embedder(self) -> Any:
        """The shared sentence embedder (``embed(list[str]) -> np.ndarray`` of L2-normalised
        float32 rows); PlinthError(RUNTIME_UNAVAILABLE) with the install hint if missing."""
        if self._embedder is None:
            if self._embedder_factory is None:
                raise PlinthError(
                    ErrorCode.RUNTIME_UNAVAILABLE,
                    "this detector needs the sentence embedder (plinth.embeddings), which is not available",
                )
            self._embedder = self._embedder_factory()
        return self._embedder


class Detector(abc.ABC):
    """One detector instance, configured for one rule of one policy version."""

    kind: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[DetectorOptions]] = DetectorOptions
    #: True when findings are spans (so ``redact`` applies and streaming needs hold-back)
    spans: ClassVar[bool] = False
    #: the labels this kind can report (entity types, classes)
    labels: ClassVar[tuple[str, ...]] = ()
    #: directions a rule of this kind may use
    directions: ClassVar[frozenset[Direction]] = frozenset(Direction)

    def __init__(self, rule_id: str, options: DetectorOptions, resources: Resources) -> None:
        self.id = rule_id
        self.options = options
        self.resources = resources

    @abc.abstractmethod
    def detect(self, text: str, ctx: DetectContext) -> list[Finding]:
        """Every finding in ``text`` (scores in [0, 1]; the rule applies its threshold)."""

    def pending(self, text: str) -> int:
        """For streaming span detectors: the smallest index ``i`` such that appending text
        to ``text`` may still change what is found in ``text[i:]``. Findings wholly before
        ``i`` are final. It must hold back at least the last token when ``text`` does not end
        in whitespace (the stream filter relies on it to skip work between tokens)."""
        m = re.search(r"\S+$", text)
        return m.start() if m else len(text)

    def warm_up(self) -> None:  # noqa: B027 - an optional hook: most detectors have nothing to build
        """Build lazy state (models, tables) before the first request."""

    def finding(self, label: str, score: float, reason: str, start: int | None = None, end: int | None = None) -> Finding:
        return Finding(detector=self.id, kind=self.kind, label=label, score=score, reason=reason, start=start, end=end)


_KINDS: dict[str, type[Detector]] = {}

#: modules whose import registers plinth's built-in detector kinds
BUILTIN_DETECTOR_MODULES = [
    "plinth.guardrails.pii",
    "plinth.guardrails.secrets",
    "plinth.guardrails.toxicity",
    "plinth.guardrails.injection",
    "plinth.guardrails.topic",
    "plinth.guardrails.groundedness",
]
_loaded = False


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Register a detector kind under ``cls.kind`` (usable as a class decorator)."""
    _KINDS[cls.kind] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in BUILTIN_DETECTOR_MODULES:
            importlib.import_module(module)
        _loaded = True


def detector_kinds() -> dict[str, type[Detector]]:
    _load_builtins()
    return dict(_KINDS)


def detector_kind(kind: str) -> type[Detector]:
    kinds = detector_kinds()
    if kind not in kinds:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"unknown detector {kind!r}; known detectors: {', '.join(sorted(kinds))}",
            param="detector",
        )
    return kinds[kind]
