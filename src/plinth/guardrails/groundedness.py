"""Groundedness: flags answer sentences that the retrieved passages do not support.

Each sentence of the answer is compared with every passage retrieved for the request:

- *lexical support*: the share of the sentence's content words (lower-cased, light
  stemming, stop words dropped) found in the passage, where every number in the sentence
  (amounts, percentages, counts) must appear in the passage or the support is halved;
- *semantic support* (with ``semantic: true``, the default): cosine similarity of the
  sentence and the passage in the shared embedder.

A sentence's support is the best over passages of the larger of the two; one below the
threshold gives an ``unsupported`` finding whose score is ``1 - support``. Sentences with
fewer than ``min_words`` content words (greetings, "I hope this helps") are skipped, and so
are abstentions ("I don't know ...", "Please contact Member Services at 1-800-...": an answer
that declines states nothing the passages must support; a figure other than a phone number
in such a sentence still gets it checked). With no passages (no knowledge base attached) the
detector finds nothing.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from plinth.domain.guardrails import Direction, Finding
from plinth.guardrails.base import DetectContext, Detector, DetectorOptions, register_detector
from plinth.guardrails.text import sentences, strip_accents

_STOP = frozenset(
    """a an the and or but if then than so to of in on at by for with from as is are was were be been being am do does did
    have has had having it its it's this that these those there here which who whom whose what when where why how i you he
    she we they me him her us them my your his our their mine yours not no yes can could will would shall should may might
    must also just only very more most less least some any all each every other such own same both either neither into
    about over under again further once up down out off too s t don doesn didn isn aren wasn weren won wouldn shouldn
    please thank thanks hope help helps let know sure yes okay ok well get got like one ask also per via each""".split()
)
_ABSTAIN = re.compile(
    r"^\W*(i (?:do not|don't|don’t) know\b|i (?:can ?not|can't|can’t) (?:find|answer)\b|please (?:contact|call)\b)", re.IGNORECASE
)
_PHONE = re.compile(r"(?:\+?\d[-. ]?)?(?:\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}")
_TOKEN = re.compile(r"\$?\d[\d,.]*%?|[^\W\d_]+", re.UNICODE)


def is_abstention(sentence: str) -> bool:
    """A sentence that declines or refers the member elsewhere, with no figure but a phone number."""
    return bool(_ABSTAIN.search(sentence)) and not re.search(r"\d", _PHONE.sub("", sentence))


def _stem(w: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def content_terms(text: str) -> tuple[set[str], set[str]]:
    """(content words, numbers) of a text."""
    terms, numbers = set(), set()
    for tok in _TOKEN.findall(strip_accents(text.lower())):
        if tok[0].isdigit() or tok[0] == "$":
            numbers.add(tok.strip("$,.%").replace(",", ""))
        elif tok not in _STOP and len(tok) > 1:
            terms.add(_stem(tok))
    return terms, numbers


class GroundednessOptions(DetectorOptions):
    semantic: bool = Field(True, description="also use embedding similarity (the shared MiniLM embedder)")
    min_words: int = Field(3, ge=1, le=50, description="sentences with fewer content words are not checked")
    max_sentences: int = Field(40, ge=1, le=500, description="only the first sentences of a long answer are checked")


@register_detector
class GroundednessDetector(Detector):
    kind = "groundedness"
    description = (
        "Flags answer sentences the retrieved passages do not support (word overlap with numbers checked, and embedding similarity)"
    )
    Options = GroundednessOptions
    labels = ("unsupported",)
    directions = frozenset({Direction.OUTPUT})

    def support(self, sentence: str, passages: list[str], passage_vectors: Any = None, sentence_vector: Any = None) -> float:
        terms, numbers = content_terms(sentence)
        best = 0.0
        for i, p in enumerate(passages):
            pterms, pnumbers = content_terms(p)
            lexical = len(terms & pterms) / len(terms) if terms else 0.0
            if numbers and not numbers <= pnumbers:
                lexical *= 0.5
            semantic = 0.0
            if passage_vectors is not None and sentence_vector is not None:
                semantic = float(passage_vectors[i] @ sentence_vector)
                if numbers and not numbers <= pnumbers:
                    semantic *= 0.6
            best = max(best, lexical, semantic)
        return best

    def detect(self, text: str, ctx: DetectContext) -> list[Finding]:
        passages = [str(p.get("text", "")) for p in ctx.passages if p.get("text")]
        if not passages or not text.strip():
            return []
        o: GroundednessOptions = self.options  # type: ignore[assignment]
        spans = [
            s for s in sentences(text) if len(content_terms(text[s[0] : s[1]])[0]) >= o.min_words and not is_abstention(text[s[0] : s[1]])
        ][: o.max_sentences]
        if not spans:
            return []
        pv = sv = None
        if o.semantic:
            emb = self.resources.embedder()
            pv = emb.embed(passages)
            sv = emb.embed([text[s:e] for s, e in spans])
        out = []
        for i, (s, e) in enumerate(spans):
            support = self.support(text[s:e], passages, pv, None if sv is None else sv[i])
            out.append(self.finding("unsupported", round(1.0 - support, 4), f"best passage support {support:.2f}", s, e))
        return out
