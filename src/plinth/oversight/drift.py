"""Drift of what members ask (issue 14): a window of a deployment's recent prompts against a
reference, by several methods, each with a p-value and a calibrated effect floor (ADR 0091).

Methods (:func:`compare`):

``embedding``
    MMD between the MiniLM vectors of the window and the reference (RBF kernel, bandwidth by
    the median heuristic on the reference), p-value by a permutation test on at most
    :data:`Options.mmd_max_per_side` items a side (sub-sampled at random: the permutations
    cost O(P n^2)). Effect: the unbiased MMD^2.
``length``
    Two-sample Kolmogorov-Smirnov on prompt length in words. Effect: the difference of mean
    log length (0 for the same distribution; the floor 0.7 is about twice as long or half as long).
``language``
    The share of prompts that do not look English (a cheap detector: mostly non-ASCII letters,
    or more function words of Spanish, French, German, Portuguese, Italian or Dutch than of
    English), one-sided two-proportion test. Effect:
    the difference of shares.
``oov``
    The out-of-vocabulary share: per prompt, the share of its words not in the reference's
    vocabulary, the vocabulary built from half the reference and the other half measured
    against it (so the reference's own rate is not 0 by construction). One-sided Mann-Whitney.
    Effect: the difference of mean shares.
``unanswerable`` (only when the deployment's target has a knowledge base)
    The share of prompts whose best retrieved passage is below the knowledge base's relevance
    floor (``kb_min_score``), window vs reference (each sub-sampled to
    :data:`Options.kb_max_per_side`), one-sided two-proportion test. Effect: the difference.

A method finds drift when its p-value is below ``alpha / k`` (Bonferroni over the ``k``
methods run) **and** its effect reaches its floor (:data:`FLOORS`, chosen on the benchmark's
dev split, ``bench/drift.py``): with a large window every real difference becomes
significant, and paraphrases of the training questions are a real but harmless difference.
The run drifted when any method did. ``score`` = the largest effect / floor (0 = like the
reference, 1 = at a floor), the number charts and alerts use.

What changed: the most characteristic words on each side (log-odds ratio with an informative
Dirichlet prior, Monroe et al. 2008), and example prompts: the window's furthest from the
reference and the reference's least covered by the window (cosine distance to the nearest
neighbours on the other side).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from plinth.domain.drift import MAX_WINDOW, MIN_REFERENCE, MIN_WINDOW, Comparison, DriftRun, ReferenceSpec
from plinth.domain.projects import DEFAULT_PROJECT, project_scope, system_scope
from plinth.errors import ErrorCode, PlinthError, transient
from plinth.oversight import stats
from plinth.usage.service import parse_duration, parse_time

log = logging.getLogger("plinth.oversight.drift")

#: effect floors per method (ADR 0091): a significant difference smaller than this is not drift
FLOORS: dict[str, float] = {
    "embedding": 0.015,
    "length": 0.7,
    "language": 0.10,
    "oov": 0.2,
    "unanswerable": 0.15,
}

_WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
#: English function words
STOPWORDS = frozenset(
    """a about after all am an and any are as at be been before but by can could did do does doing for from had has
    have how i if in is it its me my no not of on or our so than that the their them then there these they this to
    too up us was we were what when where which who why will with would you your""".split()
)
#: function words of other common languages (Spanish, French, German, Portuguese, Italian, Dutch)
#: that are not English words too
FOREIGN_STOPWORDS = frozenset(
    """el la los las del es un una por para con que cual cuál cuánto cómo qué mi su sus está puedo tengo hay le les du des
    une est pour avec qui quel quelle dans sur mon ma mes ce cette sont peut ai der das ist und nicht ein eine mit für wie
    ich mein meine kann wird zu im bei oder o os uma com não qual quanto meu minha posso é il lo gli di della sono
    posso mio cosa het een niet voor wat hoe ik mijn kan zijn""".split()
)


@dataclass(frozen=True)
class Options:
    """The knobs of :func:`compare`; defaults are ADR 0091's."""

    alpha: float = 0.05
    floors: dict[str, float] = field(default_factory=lambda: dict(FLOORS))
    permutations: int = 300
    mmd_max_per_side: int = 1000
    kb_max_per_side: int = 200
    top_terms: int = 10
    examples: int = 5
    seed: int = 0


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD_RE.findall(text or "")]


def looks_english(text: str) -> bool:
    """A cheap language check: mostly ASCII letters, and no more function words of other
    common languages than English ones (keyword-style English, "Gold copay?", is English)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return True
    ascii_share = sum(1 for c in letters if c.isascii()) / len(letters)
    if ascii_share < 0.95:
        return False
    ws = words(unicodedata.normalize("NFKC", text))
    foreign = sum(1 for w in ws if w in FOREIGN_STOPWORDS)
    return foreign == 0 or foreign < sum(1 for w in ws if w in STOPWORDS)


def _lengths(texts: Sequence[str]) -> np.ndarray:
    return np.array([max(1, len(words(t))) for t in texts], dtype=np.float64)


def _method(name: str, statistic: float, p_value: float, effect: float, floors: dict[str, float], **extra: Any) -> dict[str, Any]:
    floor = floors[name]
    return {
        "statistic": round(float(statistic), 6),
        "p_value": float(p_value),
        "effect": round(float(effect), 6),
        "floor": floor,
        "score": round(max(0.0, float(effect)) / floor, 4),
        **extra,
    }


def _oov(recent: Sequence[str], reference: Sequence[str], rng: np.random.Generator, floors: dict[str, float]) -> dict[str, Any]:
    order = rng.permutation(len(reference))
    half = len(reference) // 2
    vocab = {w for i in order[:half] for w in words(reference[i])}
    held = [reference[i] for i in order[half:]]

    def shares(texts: Sequence[str]) -> np.ndarray:
        out = []
        for t in texts:
            ws = words(t)
            out.append(sum(1 for w in ws if w not in vocab) / len(ws) if ws else 0.0)
        return np.array(out)

    a, b = shares(recent), shares(held)
    auc, p = stats.mann_whitney_greater(a, b)
    return _method("oov", auc, p, float(a.mean() - b.mean()), floors, recent=round(float(a.mean()), 4), reference=round(float(b.mean()), 4))


def characteristic_terms(
    recent: Sequence[str], reference: Sequence[str], top: int = 10, prior: float = 50.0
) -> dict[str, list[dict[str, Any]]]:
    """Words most characteristic of each side: the log-odds ratio with an informative Dirichlet
    prior (the pooled frequencies scaled to ``prior`` pseudo-counts), as z-scores."""
    ca = Counter(w for t in recent for w in words(t))
    cb = Counter(w for t in reference for w in words(t))
    na, nb = sum(ca.values()), sum(cb.values())
    if not na or not nb:
        return {"recent": [], "reference": []}
    pooled = ca + cb
    total = na + nb
    scored = []
    for w, c in pooled.items():
        a0 = prior * c / total
        ya, yb = ca.get(w, 0), cb.get(w, 0)
        delta = math.log((ya + a0) / (na + prior - ya - a0)) - math.log((yb + a0) / (nb + prior - yb - a0))
        z = delta / math.sqrt(1.0 / (ya + a0) + 1.0 / (yb + a0))
        scored.append((z, w, ya, yb))
    scored.sort()
    high = [{"term": w, "z": round(z, 2), "recent": ya, "reference": yb} for z, w, ya, yb in reversed(scored[-top:]) if z > 1.96]
    low = [{"term": w, "z": round(-z, 2), "recent": ya, "reference": yb} for z, w, ya, yb in scored[:top] if z < -1.96]
    return {"recent": high, "reference": low}


def _knn_distance(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """For each row of ``a``: the mean cosine distance to its ``k`` nearest rows of ``b``
    (rows L2-normalised), in blocks."""
    k = max(1, min(k, len(b)))
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), 1024):
        sims = a[s : s + 1024] @ b.T
        part = np.partition(-sims, k - 1, axis=1)[:, :k]
        out[s : s + 1024] = 1.0 + part.mean(1)
    return out


def compare(
    recent_texts: Sequence[str],
    recent_vecs: np.ndarray,
    reference_texts: Sequence[str],
    reference_vecs: np.ndarray,
    *,
    options: Options | None = None,
    unanswerable: Callable[[Sequence[str]], list[bool]] | None = None,
) -> Comparison:
    """Compare a window with a reference (texts and their L2-normalised MiniLM vectors, one
    row each). ``unanswerable``: for texts, whether retrieval finds no relevant passage (the
    deployment's knowledge base), or None. Refuses windows or references below the minimum."""
    opt = options or Options()
    if len(recent_texts) < MIN_WINDOW:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"the window holds {len(recent_texts)} prompts with text; drift needs at least {MIN_WINDOW} "
            "(widen the window or wait for traffic)",
            param="window",
        )
    if len(reference_texts) < MIN_REFERENCE:
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"the reference holds {len(reference_texts)} items; drift needs at least {MIN_REFERENCE}",
            param="reference",
        )
    if len(recent_vecs) != len(recent_texts) or len(reference_vecs) != len(reference_texts):
        raise PlinthError(ErrorCode.INTERNAL, "drift: texts and vectors differ in number")
    rng = np.random.default_rng(opt.seed)
    floors = {**FLOORS, **opt.floors}
    methods: dict[str, dict[str, Any]] = {}

    x = np.asarray(recent_vecs, dtype=np.float32)
    y = np.asarray(reference_vecs, dtype=np.float32)
    bw = stats.rbf_bandwidth(y, rng=rng)
    mmd2, p, n_used, m_used = stats.mmd_permutation(
        x, y, bandwidth=bw, permutations=opt.permutations, max_per_side=opt.mmd_max_per_side, rng=rng
    )
    methods["embedding"] = _method(
        "embedding",
        mmd2,
        p,
        mmd2,
        floors,
        test="MMD (RBF kernel, median-heuristic bandwidth on the reference), permutation test",
        bandwidth=round(bw, 4),
        permutations=opt.permutations,
        n_recent_used=n_used,
        n_reference_used=m_used,
        subsampled=n_used < len(x) or m_used < len(y),
    )

    la, lb = _lengths(recent_texts), _lengths(reference_texts)
    d, p = stats.ks_two_sample(la, lb)
    methods["length"] = _method(
        "length",
        d,
        p,
        abs(float(np.log(la).mean() - np.log(lb).mean())),
        floors,
        test="Kolmogorov-Smirnov on words per prompt",
        median_recent=float(np.median(la)),
        median_reference=float(np.median(lb)),
    )

    ka = sum(1 for t in recent_texts if not looks_english(t))
    kb = sum(1 for t in reference_texts if not looks_english(t))
    p = stats.two_proportions_greater(ka, len(recent_texts), kb, len(reference_texts))
    ra, rb = ka / len(recent_texts), kb / len(reference_texts)
    methods["language"] = _method(
        "language",
        ra - rb,
        p,
        ra - rb,
        floors,
        test="share not English, one-sided two proportions",
        recent=round(ra, 4),
        reference=round(rb, 4),
    )

    methods["oov"] = {**_oov(recent_texts, reference_texts, rng, floors), "test": "out-of-vocabulary share, one-sided Mann-Whitney"}

    if unanswerable is not None:
        sa = _sample(recent_texts, opt.kb_max_per_side, rng)
        sb = _sample(reference_texts, opt.kb_max_per_side, rng)
        ua, ub = sum(unanswerable(sa)), sum(unanswerable(sb))
        p = stats.two_proportions_greater(ua, len(sa), ub, len(sb))
        ra, rb = ua / len(sa), ub / len(sb)
        methods["unanswerable"] = _method(
            "unanswerable",
            ra - rb,
            p,
            ra - rb,
            floors,
            test="share with no relevant passage, one-sided two proportions",
            recent=round(ra, 4),
            reference=round(rb, 4),
            n_recent_used=len(sa),
            n_reference_used=len(sb),
        )

    level = opt.alpha / len(methods)
    for m in methods.values():
        m["significant"] = m["p_value"] < level
        m["drifted"] = bool(m["significant"] and m["effect"] >= m["floor"])
    drifted = any(m["drifted"] for m in methods.values())
    score = round(max(m["score"] for m in methods.values()), 4)

    d_recent = _knn_distance(x, y, 5)
    d_ref = _knn_distance(y, x, 5)
    results = {
        "methods": methods,
        "rule": f"drift when a method's p-value < {opt.alpha:g}/{len(methods)} (Bonferroni) and its effect >= its floor; "
        "score = max effect/floor",
        "alpha": opt.alpha,
        "changed": {
            "terms": characteristic_terms(recent_texts, reference_texts, opt.top_terms),
            "examples": {
                "recent": [recent_texts[i] for i in np.argsort(-d_recent)[: opt.examples]],
                "reference": [reference_texts[i] for i in np.argsort(-d_ref)[: opt.examples]],
            },
        },
    }
    return Comparison(results=results, drifted=drifted, score=score, methods=methods)


def _sample(texts: Sequence[str], k: int, rng: np.random.Generator) -> list[str]:
    if len(texts) <= k:
        return list(texts)
    return [texts[i] for i in rng.choice(len(texts), k, replace=False)]


# -- the service: windows, references, runs, gauges, anomaly scores, the schedule -------------------
@dataclass(frozen=True)
class Reference:
    """What a run compares with: a description stored with the run, the texts, their vectors."""

    info: dict[str, Any]
    texts: list[str]
    vecs: np.ndarray


def _user_texts(messages: list[list[dict[str, Any]]]) -> list[str]:
    out = []
    for conv in messages:
        for m in conv:
            if m.get("role") == "user" and isinstance(m.get("content"), str) and m["content"].strip():
                out.append(m["content"])
    return out


class DriftService:
    """Drift runs of deployments in the caller's project (ADR 0091) and the anomaly scores
    they write on the request log (ADR 0092).

    ``requests``, ``deployments``, ``registry``, ``datasets`` and ``knowledge`` are the
    services of those names; ``embedder`` builds the embedded MiniLM on first use; ``metrics``
    the process's Prometheus metrics; ``clock`` the time (tests inject it)."""

    def __init__(
        self,
        store: Any,
        requests: Any,
        deployments: Any,
        *,
        embedder: Callable[[], Any],
        registry: Any = None,
        datasets: Any = None,
        knowledge: Any = None,
        metrics: Any = None,
        options: Options | None = None,
        clock: Callable[[], datetime] | None = None,
        cache_size: int = 8,
    ) -> None:
        self.store = store
        self.requests = requests
        self.deployments = deployments
        self.embedder = embedder
        self.registry = registry
        self.datasets = datasets
        self.knowledge = knowledge
        self.metrics = metrics
        self.options = options or Options()
        self.clock = clock or (lambda: datetime.now(UTC))
        self._cache: OrderedDict[str, tuple[list[str], np.ndarray]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # -- references ------------------------------------------------------------------------------
    def _embed_cached(self, key: str, texts: list[str]) -> np.ndarray:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == texts:
                self._cache.move_to_end(key)
                return hit[1]
        vecs = np.asarray(self.embedder().embed(texts), dtype=np.float32)
        with self._lock:
            self._cache[key] = (texts, vecs)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vecs

    def _targets(self, deployment: str, revision: int | None) -> tuple[int, Any]:
        dep = self.deployments.get(deployment)
        number = revision if revision is not None else dep.stable_revision
        return number, self.deployments.revision(deployment, number)

    def lineage_dataset(self, deployment: str, revision: int | None = None) -> tuple[str, str]:
        """(model version, dataset version) the serving revision's lineage names; a clear
        ``invalid_request`` when it names none."""
        number, rev = self._targets(deployment, revision)
        served = [t.served for t in rev.targets]
        for target in rev.targets:
            mv = self.registry.resolve_version(target.served) if self.registry is not None else None
            if mv is not None and mv.dataset:
                return mv.ref, str(mv.dataset)
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            f"revision {number} of deployment {deployment!r} serves {', '.join(served)}, whose lineage names no training dataset "
            "(not a registry version, or registered without one); choose a reference: dataset:NAME@VERSION or window:START/END",
            param="reference",
        )

    def reference(self, deployment: str, spec: ReferenceSpec, *, revision: int | None = None, adapter: str | None = None) -> Reference:
        if spec.kind in ("lineage", "dataset"):
            model_version = None
            ref = spec.value
            if spec.kind == "lineage":
                model_version, ref = self.lineage_dataset(deployment, revision)
            if self.datasets is None:  # pragma: no cover - always built by build_services
                raise PlinthError(ErrorCode.UNSUPPORTED, "datasets are not available on this server")
            version = self.datasets.get(ref)
            texts = _user_texts(self.datasets.load_messages(version, "train"))
            info = {"kind": spec.kind, "dataset": version.ref, "split": "train", "model_version": model_version}
            return Reference(info, texts, self._embed_cached(f"dataset:{version.ref}:{version.digest}", texts) if texts else _empty())
        if spec.kind == "window":
            start_s, _, end_s = spec.value.partition("/")
            now = self.clock()
            start = parse_time(start_s, "reference", now=now)
            end = parse_time(end_s, "reference", now=now)
            if start is None or end is None or start >= end:
                raise PlinthError(
                    ErrorCode.INVALID_REQUEST, f"reference window {spec.value!r}: START must be before END", param="reference"
                )
            samples = self.requests.recent_prompts(deployment, since=start, until=end, adapter=adapter, limit=MAX_WINDOW)
            samples = [s for s in samples if s.prompt_text and s.embedding]
            vecs = np.vstack([np.frombuffer(s.embedding, dtype=np.float32) for s in samples]) if samples else _empty()
            info = {"kind": "window", "start": start.isoformat(), "end": end.isoformat()}
            return Reference(info, [s.prompt_text for s in samples], vecs)
        raise PlinthError(
            ErrorCode.INVALID_REQUEST,
            "a knowledge base holds passages, not questions, so it is not a drift reference (ADR 0091); every run of a "
            "deployment whose target has a knowledge base measures the share of questions it cannot answer",
            param="reference",
        )

    def _unanswerable(self, deployment: str, revision: int | None) -> tuple[str | None, Callable[[Sequence[str]], list[bool]] | None]:
        if self.knowledge is None:
            return None, None
        _number, rev = self._targets(deployment, revision)
        kb = next((t.knowledge_base for t in rev.targets if t.knowledge_base), None)
        if kb is None:
            return None, None
        knowledge = self.knowledge

        def check(texts: Sequence[str]) -> list[bool]:
            return [not knowledge.search(kb, t, k=3).relevant for t in texts]

        return kb, check

    # -- runs ------------------------------------------------------------------------------------
    def run(
        self,
        deployment: str,
        *,
        window: str = "24h",
        reference: str | None = None,
        revision: int | None = None,
        adapter: str | None = None,
        limit: int = MAX_WINDOW,
        score_anomalies: bool = True,
    ) -> DriftRun:
        """Measure drift of the deployment's prompts in the last ``window`` against the
        reference, store the run, set the gauges and (by default) the window's anomaly scores."""
        if not 1 <= limit <= MAX_WINDOW:
            raise PlinthError(ErrorCode.INVALID_REQUEST, f"limit must be from 1 to {MAX_WINDOW}", param="limit")
        spec = ReferenceSpec.parse(reference)
        self.deployments.get(deployment)  # 404 for one the project lacks
        end = self.clock()
        start = end - parse_duration(window, "window")
        samples = self.requests.recent_prompts(
            deployment, since=start, until=end + timedelta(microseconds=1), revision=revision, adapter=adapter, limit=limit
        )
        samples = [s for s in samples if s.prompt_text and s.embedding]
        if len(samples) < MIN_WINDOW:
            raise PlinthError(
                ErrorCode.INVALID_REQUEST,
                f"deployment {deployment!r} logged {len(samples)} prompts with text in the last {window}; drift needs at least "
                f"{MIN_WINDOW} (widen the window, or attach a guardrail policy so that prompts are logged with text)",
                param="window",
                details={"prompts": len(samples), "minimum": MIN_WINDOW},
            )
        ref = self.reference(deployment, spec, revision=revision, adapter=adapter)
        texts = [s.prompt_text or "" for s in samples]
        vecs = np.vstack([np.frombuffer(s.embedding or b"", dtype=np.float32) for s in samples])
        kb, unanswerable = self._unanswerable(deployment, revision)
        cmp = compare(texts, vecs, ref.texts, ref.vecs, options=self.options, unanswerable=unanswerable)
        results = dict(cmp.results)
        if kb is not None:
            results["knowledge_base"] = kb
        if score_anomalies:
            from plinth.oversight.anomalies import AnomalyScorer

            scorer = AnomalyScorer.build(ref.texts, ref.vecs, label=spec.label())
            scores = scorer.score_samples(samples, self._decode_rates(deployment, start, end, revision, adapter))
            self.requests.set_anomaly_scores(scores)
            flagged = sum(1 for _i, sc, _d in scores if sc > getattr(self.requests, "flag_score", 0.9))
            results["anomalies"] = {"scored": len(scores), "flagged": flagged}
        run = self.store.add_drift_run(
            DriftRun(
                deployment=deployment,
                revision=revision,
                adapter=adapter,
                at=end,
                window_start=min(s.at for s in samples),
                window_end=max(s.at for s in samples),
                n_recent=len(samples),
                n_reference=len(ref.texts),
                reference={**{k: v for k, v in ref.info.items() if v is not None}, "items": len(ref.texts)},
                results=results,
                drifted=cmp.drifted,
                score=cmp.score,
            )
        )
        self._gauges(run)
        return run

    def _decode_rates(self, deployment: str, start: datetime, end: datetime, revision: int | None, adapter: str | None) -> dict[int, float]:
        """Each logged answer's decoding rate in the window, by entry id (for the token-rate
        component of the anomaly score)."""
        from plinth.domain.requests import RequestQuery
        from plinth.oversight.anomalies import decode_rate

        query = RequestQuery(deployment=deployment, revision=revision, adapter=adapter, since=start, until=end + timedelta(microseconds=1))
        out: dict[int, float] = {}
        for e in self.store.iter_request_logs(query):
            rate = decode_rate(e.completion_tokens, e.latency_s, e.ttft_s)
            if rate is not None and e.id is not None:
                out[e.id] = rate
            if len(out) >= MAX_WINDOW:
                break
        return out

    def _gauges(self, run: DriftRun) -> None:
        m = self.metrics
        if m is None or not hasattr(m, "drift_score") or run.revision is not None or run.adapter is not None:
            return  # per revision or adapter the gauges are not set: they are per deployment
        m.drift_score.labels(run.deployment).set(run.score)
        m.drift_detected.labels(run.deployment).set(1.0 if run.drifted else 0.0)
        for name, method in run.results.get("methods", {}).items():
            m.drift_p_value.labels(run.deployment, name).set(float(method.get("p_value", 1.0)))

    def refresh_gauges(self) -> int:
        """Set the gauges from the newest stored run of every deployment of every project
        (runs made by job processes and before a restart included); how many were set."""
        with system_scope():
            runs = self.store.latest_drift_runs()
        for run in runs:
            self._gauges(run)
        return len(runs)

    def get(self, run_id: int) -> DriftRun:
        return self.store.get_drift_run(run_id)

    def series(
        self, deployment: str, *, since: str | None = "30d", until: str | None = None, revision: int | None = None, limit: int = 1000
    ) -> list[DriftRun]:
        """The deployment's stored runs, oldest first (the newest ``limit``)."""
        if not 1 <= limit <= 10_000:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "limit must be from 1 to 10000", param="limit")
        self.deployments.get(deployment)
        now = self.clock()
        runs = self.store.list_drift_runs(
            deployment, since=parse_time(since, "since", now=now), until=parse_time(until, "until", now=now), revision=revision, limit=limit
        )
        return list(reversed(runs))

    def anomalies(self, deployment: str, *, since: str | None = "24h", above: float | None = None, limit: int = 50) -> list[Any]:
        """The deployment's scored prompts, most anomalous first (those above ``above``)."""
        if not 1 <= limit <= 1000:
            raise PlinthError(ErrorCode.INVALID_REQUEST, "limit must be from 1 to 1000", param="limit")
        self.deployments.get(deployment)
        samples = self.requests.recent_prompts(deployment, since=parse_time(since, "since", now=self.clock()), with_embedding=False)
        scored = [s for s in samples if s.anomaly_score is not None and (above is None or s.anomaly_score > above)]
        scored.sort(key=lambda s: (-(s.anomaly_score or 0.0), -s.id))
        return scored[:limit]


def _empty() -> np.ndarray:
    return np.zeros((0, 384), dtype=np.float32)


class DriftScheduler:
    """A daemon thread of server processes that, every ``tick_s``, sets the drift gauges from
    the newest stored runs (those of job processes too) and runs drift of the deployments
    ``schedule`` names (``deployment`` in the default project, or ``project/deployment``) every
    so many seconds; ``PLINTH_DRIFT_SCHEDULE`` is empty by default (ADR 0091)."""

    def __init__(self, service: DriftService, schedule: dict[str, float], *, window: str = "24h", tick_s: float = 30.0) -> None:
        self.service = service
        self.schedule = {k: float(v) for k, v in schedule.items() if float(v) > 0}
        self.window = window
        self.tick_s = tick_s
        self._next: dict[str, datetime] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def due(self, now: datetime) -> list[str]:
        out = []
        for key, interval in self.schedule.items():
            if now >= self._next.get(key, now):
                out.append(key)
                self._next[key] = now + timedelta(seconds=interval)
        return out

    def tick(self, now: datetime | None = None) -> dict[str, str]:
        """Refresh the gauges, run what is due; per key run ``ok``, ``drifted`` or the error."""
        try:
            self.service.refresh_gauges()
        except Exception as e:  # the store may be briefly unavailable: the next tick tries again
            if transient(e):
                log.warning("refreshing the drift gauges deferred to the next tick: %s", e)
            else:
                log.exception("refreshing the drift gauges failed")
        outcome: dict[str, str] = {}
        for key in self.due(now or self.service.clock()):
            project, _, name = key.rpartition("/")
            try:
                with project_scope(project or DEFAULT_PROJECT):
                    run = self.service.run(name, window=self.window)
                outcome[key] = "drifted" if run.drifted else "ok"
            except PlinthError as e:
                outcome[key] = e.message
                log.info("scheduled drift run of %s: %s", key, e.message)
            except Exception as e:  # a failed run must not stop the schedule
                outcome[key] = f"{type(e).__name__}: {e}"
                log.exception("scheduled drift run of %s failed", key)
        return outcome

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="plinth-drift-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            self.tick()
            if self._stop.wait(self.tick_s):
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


# -- the ``drift`` job kind (plinth.executors entry point) -------------------------------------------
def _job_spec(spec: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "the drift job's spec must be an object", param="spec")
    unknown = set(spec) - {"deployment", "window", "reference", "revision", "adapter"}
    if unknown:
        raise PlinthError(ErrorCode.INVALID_REQUEST, f"unknown drift job fields: {', '.join(sorted(unknown))}", param="spec")
    name = spec.get("deployment")
    if not isinstance(name, str) or not name:
        raise PlinthError(ErrorCode.INVALID_REQUEST, "the drift job needs a 'deployment'", param="deployment")
    window = str(spec.get("window") or "24h")
    parse_duration(window, "window")
    reference = spec.get("reference") or "lineage"
    ReferenceSpec.parse(str(reference))
    revision = spec.get("revision")
    if revision is not None and (not isinstance(revision, int) or isinstance(revision, bool) or revision < 1):
        raise PlinthError(ErrorCode.INVALID_REQUEST, "revision must be a positive integer", param="revision")
    adapter = spec.get("adapter")
    return {"deployment": name, "window": window, "reference": str(reference), "revision": revision, "adapter": adapter}


def validate_job(spec: dict[str, Any], services: Any) -> dict[str, Any]:
    out = _job_spec(spec)
    if services.drift is not None:
        services.drift.deployments.get(out["deployment"])
    return out


def run_job(ctx: Any) -> dict[str, Any]:
    spec = _job_spec(ctx.spec)
    ctx.log(f"drift of {spec['deployment']} over {spec['window']} against {spec['reference']}")
    run = ctx.services.drift.run(
        spec["deployment"], window=spec["window"], reference=spec["reference"], revision=spec["revision"], adapter=spec["adapter"]
    )
    ctx.log(f"run {run.id}: drifted={run.drifted} score={run.score:.3f}")
    return run.public_dict(full=False)


def _executors() -> tuple[Any, ...]:
    from plinth.domain.jobs import Resources
    from plinth.jobs.executors import ExecutorEntry

    return (
        ExecutorEntry(
            "drift",
            run="plinth.oversight.drift:run_job",
            validate="plinth.oversight.drift:validate_job",
            description="Measure drift of a deployment's recent prompts against a reference (default: the training dataset "
            "its lineage names); stores the run and the window's anomaly scores. Spec: deployment, window, reference, revision, adapter.",
            default_resources=Resources(cpu=1, memory=2 << 30, gpus=0),
        ),
    )


#: the ``plinth.executors`` entry point (pyproject.toml): the ``drift`` job kind
EXECUTORS = _executors()
