"""Per-request anomaly scores (issue 14, ADR 0092): how unlike the reference one prompt is.

Up to four components, each a tail probability (the first three under the reference's own
distribution, the last under the window's):

``embedding``
    The prompt's mean cosine distance to its ``k`` nearest reference items (MiniLM vectors),
    ranked among the reference items' own leave-one-out distances to their ``k`` nearest
    neighbours: ``p = (1 + #{reference distances >= d}) / (n + 1)``; beyond the largest of
    them, the tail of a log-normal fitted to them (so a small reference can still say "far
    beyond anything in it").
``length``
    The prompt's length in words against the reference's lengths, upper tail (a pasted
    document or a stuffed prompt; short messages such as "thanks" are ordinary in a chat),
    with slack: ``p = (1 + #{2 * reference lengths >= words}) / (n + 1)``.
``language`` (only for a prompt that does not look English, :func:`~plinth.oversight.drift.looks_english`)
    The rate of such items in the reference, Jeffreys-smoothed (an all-English reference of
    ``n`` items says about ``1/(2n)``): ``p = (0.5 + #{reference not English}) / (n + 1)``.
``token_rate`` (when the batch has 30 or more answers with a measurable rate)
    The answer's decoding rate (completion tokens per second after the first token) against
    the batch's own rates, lower tail of a normal fitted robustly (median, MAD) to their logs:
    a generation that crawled compared with its neighbours in the window.

They are combined by Bonferroni over the components that apply,
``p = min(1, c * min(p_1, .., p_c))``, and mapped to
a score in [0, 1] by ``score = min(1, 0.45 * log10(1 / p))``: the request log's flag threshold
``request_log_flag_score`` (0.9) is then ``p <= 0.01``, one in-distribution request in a
hundred; 0.45 is ``p`` = 0.1. Within the reference's range a reference of ``n`` items cannot
give ``p`` below ``c/(n+1)``: with fewer than about 200 items only prompts beyond its range
are flagged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from plinth.domain.requests import PromptSample
from plinth.oversight import stats
from plinth.oversight.drift import looks_english, words

#: neighbours averaged for the embedding distance
K = 5
#: a prompt's length is ranked among the reference lengths times this: only a prompt longer
#: than twice a reference item counts as longer (paraphrases run up to 70% longer; ADR 0092)
LENGTH_SLACK = 2.0
#: score = SCALE * log10(1 / p), capped at 1: 0.9 <=> p = 0.01
SCALE = 0.45


def score_of(p: float) -> float:
    return min(1.0, SCALE * math.log10(1.0 / max(p, 1e-12)))


def _knn_mean_distance(a: np.ndarray, b: np.ndarray, k: int, *, leave_one_out: bool = False) -> np.ndarray:
    k = max(1, min(k, len(b) - (1 if leave_one_out else 0)))
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), 1024):
        sims = a[s : s + 1024] @ b.T
        if leave_one_out:  # a is b: each row's similarity with itself does not count
            rows = np.arange(sims.shape[0])
            sims[rows, rows + s] = -np.inf
        part = np.partition(-sims, k - 1, axis=1)[:, :k]
        out[s : s + 1024] = 1.0 + part.mean(1)
    return out


def rate_tail(rates: Sequence[float | None], *, min_known: int = 30) -> dict[int, float]:
    """Per index with a known positive rate: the lower-tail p-value of its log rate under a
    normal fitted robustly to the batch's log rates (median, 1.4826 x MAD), so the outlier does
    not hide itself; nothing when fewer than ``min_known`` rates are known or they do not vary."""
    known = {i: math.log(r) for i, r in enumerate(rates) if r is not None and r > 0}
    if len(known) < min_known:
        return {}
    values = np.array(list(known.values()))
    med = float(np.median(values))
    mad = 1.4826 * float(np.median(np.abs(values - med)))
    if mad <= 1e-9:
        return {}
    return {i: stats.normal_sf((med - v) / mad) for i, v in known.items()}


def decode_rate(completion_tokens: int, latency_s: float, ttft_s: float | None) -> float | None:
    """Completion tokens per second after the first token; None when not measurable (fewer
    than two tokens, no time)."""
    span = latency_s - (ttft_s or 0.0)
    if completion_tokens < 2 or span <= 0:
        return None
    return (completion_tokens - 1) / span


@dataclass
class AnomalyScorer:
    """Scores prompts against one reference (its texts and L2-normalised MiniLM vectors)."""

    reference_label: str
    ref_distances: np.ndarray  # sorted leave-one-out kNN distances of the reference
    ref_lengths: np.ndarray  # sorted words per reference item
    ref_vecs: np.ndarray
    ref_foreign: int = 0  # reference items that do not look English
    k: int = K

    @staticmethod
    def build(texts: Sequence[str], vecs: np.ndarray, *, label: str = "reference", k: int = K) -> AnomalyScorer:
        v = np.asarray(vecs, dtype=np.float32)
        d = _knn_mean_distance(v, v, k, leave_one_out=True)
        lengths = np.array([max(1, len(words(t))) for t in texts], dtype=np.float64)
        foreign = sum(1 for t in texts if not looks_english(t))
        return AnomalyScorer(label, np.sort(d), np.sort(lengths), v, foreign, k)

    def _upper(self, sorted_ref: np.ndarray, x: float) -> float:
        """The upper tail share, ``(1 + #{ref >= x}) / (n + 1)``; beyond the reference's
        largest value, the log-normal tail fitted to the reference (never above the share)."""
        n = len(sorted_ref)
        above = n - int(np.searchsorted(sorted_ref, x, side="left"))
        p = (1 + above) / (n + 1)
        if above == 0 and x > 0:
            logs = np.log(np.maximum(sorted_ref, 1e-9))
            sd = float(logs.std())
            if sd > 0:
                p = min(p, stats.normal_sf((math.log(x) - float(logs.mean())) / sd))
        return p

    def score(
        self, texts: Sequence[str | None], vecs: Sequence[np.ndarray | None], rates: Sequence[float | None] | None = None
    ) -> list[tuple[float, dict[str, Any]]]:
        """(score, details) per prompt; a prompt with neither text nor vector scores 0.
        ``rates``: each answer's decoding rate (completion tokens per second), judged against
        the batch's own rates (None where unknown)."""
        rate_p = rate_tail(rates) if rates is not None else {}
        have = [i for i, v in enumerate(vecs) if v is not None]
        dist: dict[int, float] = {}
        if have:
            m = np.vstack([np.asarray(vecs[i], dtype=np.float32) for i in have])
            for i, d in zip(have, _knn_mean_distance(m, self.ref_vecs, self.k), strict=True):
                dist[i] = float(d)
        out: list[tuple[float, dict[str, Any]]] = []
        for i, text in enumerate(texts):
            details: dict[str, Any] = {"reference": self.reference_label, "method": "knn-percentile+length+language+token-rate, Bonferroni"}
            ps: list[float] = []
            if i in dist:
                p_e = self._upper(self.ref_distances, dist[i])
                details.update(knn_distance=round(dist[i], 4), embedding_p=round(p_e, 5))
                ps.append(p_e)
            if text is not None:
                n_words = max(1, len(words(text)))
                p_l = self._upper(LENGTH_SLACK * self.ref_lengths, n_words)
                details.update(length_words=n_words, length_p=round(p_l, 5))
                ps.append(p_l)
                if not looks_english(text):  # as rare as the reference's own non-English items
                    p_lang = (0.5 + self.ref_foreign) / (len(self.ref_lengths) + 1)
                    details.update(language_p=round(p_lang, 5))
                    ps.append(p_lang)
            if i in rate_p and rates is not None:
                details.update(tokens_per_s=round(float(rates[i] or 0.0), 2), token_rate_p=round(rate_p[i], 6))
                ps.append(rate_p[i])
            if not ps:
                out.append((0.0, details | {"reason": "no text or embedding"}))
                continue
            p = min(1.0, len(ps) * min(ps))
            details["p"] = round(p, 6)
            out.append((round(score_of(p), 4), details))
        return out

    def score_samples(
        self, samples: Sequence[PromptSample], rates: dict[int, float] | None = None
    ) -> list[tuple[int, float, dict[str, Any] | None]]:
        """``(entry id, score, details)`` for the request log's ``set_request_anomalies``;
        ``rates``: decoding rates by entry id."""
        vecs = [np.frombuffer(s.embedding, dtype=np.float32) if s.embedding else None for s in samples]
        per = [rates.get(int(s.id)) for s in samples] if rates else None
        scored = self.score([s.prompt_text for s in samples], vecs, per)
        return [(int(s.id), sc, det) for s, (sc, det) in zip(samples, scored, strict=True)]
