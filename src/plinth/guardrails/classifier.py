"""A small linear text classifier: word and character n-grams plus named rule features,
logistic regression trained with numpy, weights shipped as JSON (never pickle).

Features are computed on :func:`plinth.guardrails.text.fold`-ed text (lower case, homoglyphs
and leetspeak undone), so ``1gn0re`` and ``ignore`` look alike. Rule features (``@name``)
come from the detector's own patterns (insults aimed at someone, override instructions...)
and carry most of the generalisation to wordings the training data never had; n-grams add
what the rules do not name. The feature vector is binary and L2-normalised.

A model file holds the vocabulary with one weight per feature, the bias, the n-gram
settings and the sha256 of the training data it came from, so a test can check that the
shipped weights are what training on the shipped data gives.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from plinth.guardrails.text import fold

RuleFeatures = Callable[[str, str], Iterable[str]]  # (original text, folded text) -> names

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def ngram_features(folded: str, word_n: int = 2, char_min: int = 3, char_max: int = 5) -> set[str]:
    feats: set[str] = set()
    toks = _WORD.findall(folded)
    for i, t in enumerate(toks):
        feats.add("w:" + t)
        if word_n >= 2 and i + 1 < len(toks):
            feats.add("b:" + t + " " + toks[i + 1])
    for t in toks:
        padded = f" {t} "
        if _CJK.search(t):
            # no spaces between CJK words: character bigrams and trigrams stand in for words
            for n in (2, 3):
                for i in range(len(t) - n + 1):
                    feats.add("h:" + t[i : i + n])
            continue
        if len(padded) > 24:
            padded = padded[:24]
        for n in range(char_min, char_max + 1):
            for i in range(len(padded) - n + 1):
                feats.add("c:" + padded[i : i + n])
    return feats


@functools.lru_cache(maxsize=64)
def _folded_ngrams(text: str, word_n: int, char_min: int, char_max: int) -> tuple[str, frozenset[str]]:
    """Folded text and its n-grams, shared by the classifiers that look at the same text."""
    folded = fold(text)
    return folded, frozenset(ngram_features(folded, word_n, char_min, char_max))


@dataclass
class LinearModel:
    weights: dict[str, float]
    bias: float
    word_n: int = 2
    char_min: int = 3
    char_max: int = 5
    meta: dict[str, Any] = field(default_factory=dict)

    def features(self, text: str, rules: RuleFeatures | None) -> set[str]:
        folded, grams = _folded_ngrams(text, self.word_n, self.char_min, self.char_max)
        feats = set(grams)
        if rules is not None:
            feats.update("@" + r for r in rules(text, folded))
        return feats

    def score(self, text: str, rules: RuleFeatures | None = None) -> tuple[float, list[tuple[str, float]]]:
        """Probability of the positive class and the features that pushed it most."""
        folded, grams = _folded_ngrams(text, self.word_n, self.char_min, self.char_max)
        weights = self.weights
        known = [(f, weights[f]) for f in grams if f in weights]
        ruled = [("@" + r, weights.get("@" + r, 0.0)) for r in (rules(text, folded) if rules is not None else ())]
        norm = math.sqrt(len(grams)) or 1.0
        # n-grams are L2-normalised; rule features count fully whatever the text's length
        z = self.bias + sum(w for _, w in known) / norm + sum(w for _, w in ruled)
        top = heapq.nlargest(3, [*ruled, *((f, w / norm) for f, w in known)], key=lambda t: t[1])
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))), top

    # -- files --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": "plinth-linear-text-classifier/1",
            "bias": round(self.bias, 6),
            "word_n": self.word_n,
            "char_min": self.char_min,
            "char_max": self.char_max,
            "meta": self.meta,
            "weights": {k: round(v, 5) for k, v in sorted(self.weights.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearModel:
        if data.get("format") != "plinth-linear-text-classifier/1":
            raise ValueError(f"not a plinth linear classifier file (format {data.get('format')!r})")
        return cls(
            weights={str(k): float(v) for k, v in data["weights"].items()},
            bias=float(data["bias"]),
            word_n=int(data["word_n"]),
            char_min=int(data["char_min"]),
            char_max=int(data["char_max"]),
            meta=dict(data.get("meta", {})),
        )

    @classmethod
    def load_packaged(cls, name: str) -> LinearModel:
        text = resources.files("plinth.guardrails").joinpath("data").joinpath(name).read_text(encoding="utf-8")
        return cls.from_json(json.loads(text))


def data_digest(examples: Sequence[tuple[str, int]]) -> str:
    h = hashlib.sha256()
    for text, label in examples:
        h.update(f"{label}\t{text}\n".encode())
    return "sha256:" + h.hexdigest()


def train(
    examples: Sequence[tuple[str, int]],
    rules: RuleFeatures | None,
    *,
    l2: float = 1e-3,
    epochs: int = 400,
    lr: float = 0.5,
    min_count: int = 2,
    rule_weight_floor: float = 0.0,
    rule_l2_scale: float = 1.0,
    word_n: int = 2,
    char_min: int = 3,
    char_max: int = 5,
    positive_weight: float = 1.0,
) -> LinearModel:
    """Logistic regression by full-batch Adam on binary, L2-normalised features.

    Deterministic: the same examples give the same weights. Features seen in fewer than
    ``min_count`` examples are dropped (rule features are always kept)."""
    import numpy as np

    probe = LinearModel({}, 0.0, word_n, char_min, char_max)
    rows = [probe.features(t, rules) for t, _ in examples]
    counts = Counter(f for r in rows for f in r)
    vocab = sorted(f for f, c in counts.items() if c >= min_count or f.startswith("@"))
    index = {f: i for i, f in enumerate(vocab)}
    indptr = [0]
    indices: list[int] = []
    values: list[float] = []
    for r in rows:
        norm = math.sqrt(sum(1 for f in r if not f.startswith("@"))) or 1.0
        kept = sorted(index[f] for f in r if f in index)
        indices.extend(kept)
        values.extend([1.0 if vocab[i].startswith("@") else 1.0 / norm for i in kept])
        indptr.append(len(indices))
    ind = np.asarray(indices, dtype=np.int64)
    val = np.asarray(values, dtype=np.float64)
    row_of = np.repeat(np.arange(len(rows)), np.diff(np.asarray(indptr)))
    y = np.asarray([label for _, label in examples], dtype=np.float64)
    sample_w = np.where(y > 0, positive_weight, 1.0)
    sample_w = sample_w / sample_w.mean()
    n_feat = len(vocab)
    w = np.zeros(n_feat)
    b = 0.0
    m_w = np.zeros(n_feat)
    v_w = np.zeros(n_feat)
    m_b = v_b = 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    is_rule = np.asarray([f.startswith("@") for f in vocab])
    l2_vec = np.where(is_rule, l2 * rule_l2_scale, l2)
    for step in range(1, epochs + 1):
        z = np.bincount(row_of, weights=val * w[ind], minlength=len(rows)) + b
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        err = (p - y) * sample_w / len(rows)
        g_w = np.bincount(ind, weights=val * err[row_of], minlength=n_feat) + l2_vec * w
        g_b = float(err.sum())
        m_w = beta1 * m_w + (1 - beta1) * g_w
        v_w = beta2 * v_w + (1 - beta2) * g_w * g_w
        m_b = beta1 * m_b + (1 - beta1) * g_b
        v_b = beta2 * v_b + (1 - beta2) * g_b * g_b
        lr_t = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
        w -= lr_t * m_w / (np.sqrt(v_w) + eps)
        b -= lr_t * m_b / (math.sqrt(v_b) + eps)
        if rule_weight_floor:
            w[is_rule] = np.maximum(w[is_rule], rule_weight_floor)
    weights = {f: float(w[i]) for i, f in enumerate(vocab) if abs(w[i]) >= 1e-3}
    z = np.bincount(row_of, weights=val * w[ind], minlength=len(rows)) + b
    acc = float(((z > 0) == (y > 0)).mean())
    meta = {"examples": len(examples), "positives": int(y.sum()), "train_accuracy": round(acc, 4), "data": data_digest(examples)}
    return LinearModel(weights, b, word_n, char_min, char_max, meta)


def read_training(path: Path, positive: str, *, all_benign: bool = False) -> list[tuple[str, int]]:
    """(text, 1 for ``positive`` else 0); with ``all_benign`` every record counts as a
    negative (texts of another task that are not of this class)."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        obj = json.loads(line)
        if all_benign:
            out.append((obj["text"], 0))
            continue
        if obj["label"] not in (positive, "benign"):
            raise ValueError(f"{path.name} line {n}: label must be {positive!r} or 'benign'")
        out.append((obj["text"], 1 if obj["label"] == positive else 0))
    return out


# -- semantic head -------------------------------------------------------------------------------
@dataclass
class EmbeddingHead:
    """Logistic regression on sentence embeddings (the shared MiniLM's 384-d, L2-normalised
    vectors): the semantic half of a classifier, for wordings no n-gram or rule of the linear
    model has seen. ``embedder`` names the model the vectors must come from."""

    weights: list[float]
    bias: float
    embedder: str
    meta: dict[str, Any] = field(default_factory=dict)

    def score(self, vector: Any) -> float:
        import numpy as np

        z = float(np.dot(np.asarray(vector, dtype=np.float64), np.asarray(self.weights))) + self.bias
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "plinth-embedding-head/1",
            "embedder": self.embedder,
            "bias": round(self.bias, 6),
            "meta": self.meta,
            "weights": [round(w, 5) for w in self.weights],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EmbeddingHead:
        if data.get("format") != "plinth-embedding-head/1":
            raise ValueError(f"not a plinth embedding head file (format {data.get('format')!r})")
        return cls([float(w) for w in data["weights"]], float(data["bias"]), str(data["embedder"]), dict(data.get("meta", {})))

    @classmethod
    def load_packaged(cls, name: str) -> EmbeddingHead | None:
        path = resources.files("plinth.guardrails").joinpath("data").joinpath(name)
        if not path.is_file():
            return None
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))


def train_head(
    vectors: Any,
    labels: Sequence[int],
    *,
    embedder: str,
    l2: float = 1e-4,
    epochs: int = 1500,
    lr: float = 0.05,
    balanced: bool = False,
) -> EmbeddingHead:
    """Logistic regression by full-batch Adam on embedding rows (deterministic). ``balanced``
    gives each class half of the loss whatever its size (the topic detector's few dozen allowed
    examples against a background of a thousand texts, ADR 0127)."""
    import numpy as np

    x = np.asarray(vectors, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if balanced and 0 < y.sum() < len(y):
        row_weight = np.where(y > 0, 0.5 / y.sum(), 0.5 / (len(y) - y.sum()))
    else:
        row_weight = np.full(len(y), 1.0 / len(y))
    w = np.zeros(x.shape[1])
    b = 0.0
    m_w = np.zeros_like(w)
    v_w = np.zeros_like(w)
    m_b = v_b = 0.0
    for step in range(1, epochs + 1):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w + b, -30, 30)))
        err = (p - y) * row_weight
        g_w = x.T @ err + l2 * w
        g_b = float(err.sum())
        m_w = 0.9 * m_w + 0.1 * g_w
        v_w = 0.999 * v_w + 0.001 * g_w * g_w
        m_b = 0.9 * m_b + 0.1 * g_b
        v_b = 0.999 * v_b + 0.001 * g_b * g_b
        lr_t = lr * math.sqrt(1 - 0.999**step) / (1 - 0.9**step)
        w -= lr_t * m_w / (np.sqrt(v_w) + 1e-8)
        b -= lr_t * m_b / (math.sqrt(v_b) + 1e-8)
    acc = float((((x @ w + b) > 0) == (y > 0)).mean())
    meta = {"examples": len(y), "positives": int(y.sum()), "train_accuracy": round(acc, 4)}
    return EmbeddingHead([float(v) for v in w], float(b), embedder, meta)


# -- prototype neighbours ------------------------------------------------------------------------
@dataclass
class PrototypeSet:
    """The training texts' sentence embeddings with their labels: a message's score is the
    similarity-weighted vote of its ``k`` nearest training texts (the third voter of a
    classifier, ADR 0125). A nearest-neighbour vote keeps local structure a single linear head
    averages away (a paraphrase sits next to the template it paraphrases), and needs no
    training. Vectors are stored as int8 (``scale`` restores them) in a ``.npz`` file read
    without pickle."""

    vectors: Any  # int8 array (n, dim)
    scale: float
    labels: Any  # uint8 array (n,)
    embedder: str
    k: int = 15
    sharpness: float = 10.0
    meta: dict[str, Any] = field(default_factory=dict)
    _matrix: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls, vectors: Any, labels: Sequence[int], *, embedder: str, k: int = 15, sharpness: float = 10.0) -> PrototypeSet:
        import numpy as np

        x = np.asarray(vectors, dtype=np.float32)
        scale = float(np.abs(x).max()) / 127.0 or 1.0
        q = np.clip(np.round(x / scale), -127, 127).astype(np.int8)
        meta = {"examples": len(labels), "positives": int(sum(labels))}
        return cls(q, scale, np.asarray(labels, dtype=np.uint8), embedder, k, sharpness, meta)

    def score(self, vector: Any) -> float:
        import numpy as np

        if self._matrix is None:
            self._matrix = self.vectors.astype(np.float32) * np.float32(self.scale)
        sims = self._matrix @ np.asarray(vector, dtype=np.float32)
        k = min(self.k, len(sims))
        nearest = np.argpartition(-sims, k - 1)[:k]
        w = np.exp(sims[nearest] * self.sharpness)
        return float((w * self.labels[nearest]).sum() / w.sum())

    def save(self, path: Path) -> None:
        import numpy as np

        head = {"format": "plinth-prototypes/1", "embedder": self.embedder, "scale": self.scale, "k": self.k}
        head.update({"sharpness": self.sharpness, "meta": self.meta})
        with path.open("wb") as f:
            np.savez_compressed(f, vectors=self.vectors, labels=self.labels, header=np.asarray([json.dumps(head, sort_keys=True)]))

    @classmethod
    def load(cls, source: Any) -> PrototypeSet:
        import numpy as np

        with np.load(source, allow_pickle=False) as z:
            head = json.loads(str(z["header"][0]))
            if head.get("format") != "plinth-prototypes/1":
                raise ValueError(f"not a plinth prototype file (format {head.get('format')!r})")
            vectors, labels = z["vectors"], z["labels"]
        return cls(vectors, float(head["scale"]), labels, str(head["embedder"]), int(head["k"]), float(head["sharpness"]), head["meta"])

    @classmethod
    def load_packaged(cls, name: str) -> PrototypeSet | None:
        path = resources.files("plinth.guardrails").joinpath("data").joinpath(name)
        if not path.is_file():
            return None
        with path.open("rb") as f:
            return cls.load(f)
