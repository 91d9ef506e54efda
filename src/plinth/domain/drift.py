"""Drift of what members ask (no I/O): a stored measurement and what it was compared with.

A **drift run** compares a window of a deployment's recent prompts (optionally one revision or
adapter) with a **reference**: the training dataset version the serving model's lineage names
(``lineage``, the default), a chosen dataset version (``dataset``), a knowledge base's passages
(``knowledge_base``) or an earlier window of the same deployment (``window``). The methods
(:mod:`plinth.oversight.drift`, ADR 0091) each give a statistic, a p-value and an effect size;
``drifted`` is their combined verdict and ``score`` the headline number for charts and alerts
(the largest effect as a multiple of its method's drift floor: 0 = like the reference, 1 = at
the floor).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from plinth.errors import ErrorCode, PlinthError

#: the fewest recent prompts (and reference items) a run accepts: below it the tests have too
#: little power and the permutation p-value too coarse a grid to mean anything
MIN_WINDOW = 30
MIN_REFERENCE = 30
#: the most recent prompts one run reads
MAX_WINDOW = 10_000

REFERENCE_KINDS = ("lineage", "dataset", "knowledge_base", "window")
_DURATION_RE = re.compile(r"^\d+(\.\d+)?[smhd]$")


@dataclass(frozen=True)
class ReferenceSpec:
    """What to compare with. ``value``: ``NAME@VERSION`` (dataset), ``NAME[@VERSION]``
    (knowledge base), or ``START/END`` (window: two ISO times or durations back from now,
    e.g. ``14d/7d``); empty for ``lineage``."""

    kind: str = "lineage"
    value: str = ""

    @staticmethod
    def parse(text: str | None) -> ReferenceSpec:
        """``lineage`` (or empty), ``dataset:NAME@V``, ``kb:NAME[@V]`` (or
        ``knowledge_base:...``), ``window:START/END``."""
        raw = (text or "").strip()
        if raw in ("", "lineage"):
            return ReferenceSpec()
        kind, sep, value = raw.partition(":")
        kind = {"kb": "knowledge_base"}.get(kind, kind)
        if not sep or kind not in REFERENCE_KINDS[1:] or not value.strip():
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"invalid reference {raw!r}: use lineage, dataset:NAME@VERSION, kb:NAME[@VERSION] or window:START/END (e.g. window:14d/7d)",
                param="reference",
            )
        value = value.strip()
        if kind == "dataset" and "@" not in value:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"reference dataset {value!r} needs a version: NAME@VERSION", param="reference")
        if kind == "window" and value.count("/") != 1:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST, f"reference window {value!r}: use START/END, e.g. 14d/7d or two ISO times", param="reference"
            )
        return ReferenceSpec(kind, value)

    def label(self) -> str:
        return self.kind if not self.value else f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class DriftRun:
    """One stored drift measurement. ``reference``: what was compared with (kind, name,
    version, how many items); ``results``: per method its statistic, p-value, effect,
    threshold and verdict, the combination rule, and what changed (terms, examples)."""

    deployment: str
    window_start: datetime
    window_end: datetime
    n_recent: int
    n_reference: int
    reference: dict[str, Any]
    results: dict[str, Any]
    drifted: bool
    score: float
    revision: int | None = None
    adapter: str | None = None
    at: datetime | None = None
    id: int | None = None
    project: str | None = None

    def public_dict(self, *, full: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "at": self.at.isoformat() if self.at else None,
            "project": self.project,
            "deployment": self.deployment,
            "revision": self.revision,
            "adapter": self.adapter,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "n_recent": self.n_recent,
            "n_reference": self.n_reference,
            "reference": dict(self.reference),
            "drifted": self.drifted,
            "score": self.score,
        }
        if full:
            out["results"] = dict(self.results)
        else:
            methods = self.results.get("methods", {})
            out["p_values"] = {k: v.get("p_value") for k, v in methods.items() if isinstance(v, dict)}
        return out


@dataclass(frozen=True)
class Comparison:
    """What :func:`plinth.oversight.drift.compare` found (before it is stored)."""

    results: dict[str, Any]
    drifted: bool
    score: float
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)


def check_duration(text: str, param: str) -> str:
    if not _DURATION_RE.match(text or ""):
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"invalid duration {text!r}: use e.g. 30m, 24h, 7d", param=param)
    return text
