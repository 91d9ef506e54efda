"""OpenAI's moderation API (``POST /v1/moderations``) over plinth's guardrail detectors (ADR 0113).

``model`` picks what judges the texts:

- one of OpenAI's moderation model names (:data:`ALIASES`, and no model at all): plinth's
  toxicity detector with its shipped weights, flagged at :data:`THRESHOLD` (the built-in
  ``default`` policy's threshold);
- a guardrail policy name (``NAME`` or ``NAME@VERSION``): every rule of the policy that looks
  at inputs. A result is flagged when any of them fires at its own threshold (PII, secrets,
  injection and topic rules too: they have no OpenAI category and are listed in the result's
  ``findings``, plinth's extension); toxicity rules fill the OpenAI categories.

The toxicity detector's score goes to the OpenAI categories its rule features point at
(:func:`category_scores`): hateful generalisations about a group -> ``hate``; anything else
toxic -> ``harassment``; threats and wishes of harm -> the ``/threatening`` variant, and
``violence`` when they name physical harm. The categories plinth has no detector for
(:data:`NOT_JUDGED`) are always false with score 0 and an empty
``category_applied_input_types`` list: they were not looked at.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from plinth.domain.guardrails import Direction, Finding
from plinth.errors import ErrorCode, PlinthError
from plinth.guardrails.base import DetectContext
from plinth.guardrails.policy import NAME_RE
from plinth.guardrails.service import GuardrailService
from plinth.guardrails.text import fold
from plinth.guardrails.toxicity import ToxicityDetector, ToxicityOptions, rule_features

#: OpenAI's moderation model names, answered by the toxicity detector
ALIASES = ("omni-moderation-latest", "omni-moderation-2024-09-26", "text-moderation-latest", "text-moderation-stable")
DEFAULT_MODEL = "omni-moderation-latest"
#: the toxicity score from which a category is flagged (the built-in policy's threshold)
THRESHOLD = 0.5
#: OpenAI's categories, in OpenAI's order
CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
#: the categories plinth's detectors judge (from the toxicity detector)
JUDGED = ("harassment", "harassment/threatening", "hate", "hate/threatening", "violence")
NOT_JUDGED = tuple(c for c in CATEGORIES if c not in JUDGED)
#: inputs in one request, characters in one input, characters in all
MAX_INPUTS = 256
MAX_CHARS = 100_000
MAX_TOTAL_CHARS = 1_000_000

_AIMED = frozenset({"insult+target", "insult_aimed", "insult_address", "profanity+target", "dismissal"})
_GROUP = frozenset({"group+negative", "generalisation"})
_THREAT = frozenset({"threat", "harm_wish"})
#: words of physical harm: a threat or a wish of harm naming one is violence (not "should be deported")
_PHYSICAL = re.compile(
    r"\b(?:kill\w*|murder\w*|die|dies|dead|death|dying|hurt\w*|beat\w*|punch\w*|stab\w*|shoot\w*|shot|strangl\w*|choke\w*|"
    r"slap\w*|smash\w*|break (?:your|his|her|their)|burn\w*|bomb\w*|blow up|hang\w*|gassed|lined up|exterminat\w+|wipe\w* (?:them|you|out)|"
    r"torture\w*|rot|cut|rip|headbutt\w*|kick\w*|hit|kys|matar|muer\w+|umbringen|tuer|杀|死|убью)\b",
    re.IGNORECASE,
)


def category_scores(detector: ToxicityDetector, text: str) -> dict[str, float]:
    """The toxicity detector's judgement of ``text`` in OpenAI's judged categories."""
    scores = dict.fromkeys(JUDGED, 0.0)
    if not text.strip():
        return scores
    for piece in detector.pieces(text):
        # the detector's own score: linear model, decoded variants, and the semantic head where it has the embedder
        p, _ = detector.combined_score(piece)
        feats = set(rule_features(piece, fold(piece)))
        group = bool(feats & _GROUP)
        threat = bool(feats & _THREAT)
        aimed = bool(feats & _AIMED)
        physical = threat and bool(_PHYSICAL.search(fold(piece)))
        found = {
            "harassment": not group or aimed,
            "harassment/threatening": threat and (not group or aimed),
            "hate": group,
            "hate/threatening": group and threat,
            "violence": physical,
        }
        for name, applies in found.items():
            if applies:
                scores[name] = max(scores[name], p)
    return scores


@dataclass
class Judged:
    scores: dict[str, float]
    flagged: dict[str, bool]
    findings: list[Finding]


def _result(j: Judged) -> dict[str, Any]:
    return {
        "flagged": any(j.flagged.values()) or bool(j.findings),
        "categories": {c: j.flagged.get(c, False) for c in CATEGORIES},
        "category_scores": {c: round(j.scores.get(c, 0.0), 6) for c in CATEGORIES},
        "category_applied_input_types": {c: ["text"] if c in JUDGED else [] for c in CATEGORIES},
        "findings": [f.public_dict() for f in j.findings],
    }


_DEFAULT_DETECTOR: ToxicityDetector | None = None


def _default_detector() -> ToxicityDetector:
    global _DEFAULT_DETECTOR
    if _DEFAULT_DETECTOR is None:
        _DEFAULT_DETECTOR = ToxicityDetector("toxicity", ToxicityOptions(), None)
    return _DEFAULT_DETECTOR


def _by_toxicity(text: str) -> Judged:
    scores = category_scores(_default_detector(), text)
    return Judged(scores, {c: s >= THRESHOLD for c, s in scores.items()}, [])


def _by_policy(guardrails: GuardrailService, ref: str, text: str) -> Judged:
    guard = guardrails.guard(ref)
    ctx = DetectContext(direction=Direction.INPUT)
    scores = dict.fromkeys(JUDGED, 0.0)
    flagged = dict.fromkeys(JUDGED, False)
    findings: list[Finding] = []
    if not text.strip():
        return Judged(scores, flagged, findings)
    for rule in guard.rules_for(Direction.INPUT):
        if isinstance(rule.detector, ToxicityDetector):
            for c, s in category_scores(rule.detector, text).items():
                scores[c] = max(scores[c], s)
                flagged[c] = flagged[c] or s >= rule.spec.threshold
        findings.extend(rule.run(text, ctx))
    return Judged(scores, flagged, findings)


def texts_of(value: Any) -> list[str]:
    """The texts of ``input`` (a string, a list of strings, or OpenAI's multi-modal list of
    ``{"type": "text", "text": ...}`` parts), or PlinthError(400) naming ``input``."""
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list):
        if not value:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "input must not be an empty list", param="input")
        if len(value) > MAX_INPUTS:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"input has {len(value)} items; at most {MAX_INPUTS} are allowed", param="input")
        texts = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
                texts.append(item["text"])
            elif isinstance(item, dict) and item.get("type") == "image_url":
                raise PlinthError(ErrorCode.INVALID_REQUEST, f"input[{i}] is an image: plinth's detectors judge text only", param="input")
            else:
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST,
                    f"input[{i}] must be a string or a text part {{'type': 'text', 'text': ...}}",
                    param="input",
                )
    else:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "input must be a string or a list of strings", param="input")
    for i, t in enumerate(texts):
        if len(t) > MAX_CHARS:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"input[{i}] has {len(t)} characters; at most {MAX_CHARS}", param="input")
    total = sum(len(t) for t in texts)
    if total > MAX_TOTAL_CHARS:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST, f"input has {total} characters in all; at most {MAX_TOTAL_CHARS} per request", param="input"
        )
    return texts


def moderate(guardrails: GuardrailService, model: str | None, input: Any) -> dict[str, Any]:
    """OpenAI's moderation answer for one request."""
    texts = texts_of(input)
    model = model or DEFAULT_MODEL
    if model in ALIASES:
        results = [_result(_by_toxicity(t)) for t in texts]
        shown = model
    else:
        unknown = PlinthError(
            ErrorCode.MODEL_NOT_FOUND,
            f"moderation model {model[:100]!r} does not exist here: use {DEFAULT_MODEL!r} (plinth's toxicity detector) "
            "or the name of a guardrail policy (NAME or NAME@VERSION)",
            param="model",
        )
        if not NAME_RE.match(model.partition("@")[0]):
            raise unknown
        try:
            pv = guardrails.get(model)
        except PlinthError as e:
            if e.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID_REQUEST):  # no such policy, or not a policy reference
                raise unknown from None
            raise
        results = [_result(_by_policy(guardrails, pv.ref, t)) for t in texts]
        shown = pv.ref
    return {"id": "modr-" + secrets.token_hex(12), "model": shown, "results": results}


__all__ = ["ALIASES", "CATEGORIES", "JUDGED", "NOT_JUDGED", "category_scores", "moderate", "texts_of"]
