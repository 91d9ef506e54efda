"""The few distribution functions and two-sample tests drift needs, on numpy and ``math`` alone
(no scipy: the server does not carry it).

Every test returns a p-value for "the recent sample comes from the same distribution as the
reference" (one-sided where the alternative is one-sided: more out-of-vocabulary words, more
unanswerable questions). They are the textbook large-sample forms; windows smaller than
:data:`MIN_SAMPLE` are refused by the callers.
"""

from __future__ import annotations

import math

import numpy as np

#: the smallest sample any test here is used on
MIN_SAMPLE = 10


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution (the limit of sqrt(n) D_n)."""
    if x <= 0.0:
        return 1.0
    if x < 0.27:  # the series below converges slowly there; the value is 1 to 12 digits
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = (-1) ** (k - 1) * math.exp(-2.0 * k * k * x * x)
        total += term
        if abs(term) < 1e-16:
            break
    return min(1.0, max(0.0, 2.0 * total))


def ks_two_sample(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: (D, asymptotic p-value, with Stephens' small-sample
    correction)."""
    a = np.sort(np.asarray(a, dtype=np.float64))
    b = np.sort(np.asarray(b, dtype=np.float64))
    n, m = len(a), len(b)
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / n
    cdf_b = np.searchsorted(b, grid, side="right") / m
    d = float(np.max(np.abs(cdf_a - cdf_b)))
    en = math.sqrt(n * m / (n + m))
    return d, kolmogorov_sf((en + 0.12 + 0.11 / en) * d)


def mann_whitney_greater(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mann-Whitney U for "values of ``a`` tend to be larger than those of ``b``": (the
    probability that a random ``a`` beats a random ``b``, ties counting half; one-sided
    p-value by the normal approximation with the tie correction)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n, m = len(a), len(b)
    both = np.concatenate([a, b])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(n + m, dtype=np.float64)
    sorted_vals = both[order]
    # average ranks over ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_vals)) + 1]
    ends = np.r_[starts[1:], n + m]
    avg = (starts + ends + 1) / 2.0  # ranks are 1-based
    ranks[order] = np.repeat(avg, ends - starts)
    u = float(ranks[:n].sum() - n * (n + 1) / 2.0)
    ties = (ends - starts).astype(np.float64)
    tie_term = float((ties**3 - ties).sum()) / ((n + m) * (n + m - 1)) if n + m > 1 else 0.0
    var = n * m / 12.0 * ((n + m + 1) - tie_term)
    effect = u / (n * m)
    if var <= 0:
        return effect, 1.0
    z = (u - n * m / 2.0 - 0.5) / math.sqrt(var)  # with the continuity correction
    return effect, normal_sf(z)


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (exact)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q for i in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def two_proportions_greater(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided p-value that the first proportion (k1/n1) is larger than the second, by the
    pooled normal approximation."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var <= 0:
        return 1.0
    return normal_sf((k1 / n1 - k2 / n2) / math.sqrt(var))


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for a chi-square variable with ``dof`` degrees of freedom (the regularised
    upper incomplete gamma function, by its series or continued fraction)."""
    if dof <= 0:
        return 1.0
    if x <= 0:
        return 1.0
    a, z = dof / 2.0, x / 2.0
    if z < a + 1:  # series for the lower function
        term = total = 1.0 / a
        k = a
        for _ in range(1000):
            k += 1
            term *= z / k
            total += term
            if term < total * 1e-15:
                break
        lower = total * math.exp(-z + a * math.log(z) - math.lgamma(a))
        return max(0.0, min(1.0, 1.0 - lower))
    # Lentz's continued fraction for the upper function
    tiny = 1e-300
    b = z + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return max(0.0, min(1.0, math.exp(-z + a * math.log(z) - math.lgamma(a)) * h))


def chi2_homogeneity(counts_a: dict[str, int], counts_b: dict[str, int]) -> tuple[float, int, float]:
    """Chi-square test that two samples of categories have the same proportions: (statistic,
    degrees of freedom, p-value). Categories expected fewer than 5 times are pooled."""
    cats = sorted(set(counts_a) | set(counts_b))
    na, nb = sum(counts_a.values()), sum(counts_b.values())
    if na == 0 or nb == 0:
        return 0.0, 0, 1.0
    big: list[str] = []
    rest_a = rest_b = 0
    for c in cats:
        total = counts_a.get(c, 0) + counts_b.get(c, 0)
        if min(na, nb) * total / (na + nb) >= 5:
            big.append(c)
        else:
            rest_a += counts_a.get(c, 0)
            rest_b += counts_b.get(c, 0)
    rows = [(counts_a.get(c, 0), counts_b.get(c, 0)) for c in big]
    if rest_a + rest_b:
        rows.append((rest_a, rest_b))
    if len(rows) < 2:
        return 0.0, 0, 1.0
    stat = 0.0
    for ka, kb in rows:
        total = ka + kb
        for observed, n in ((ka, na), (kb, nb)):
            expected = n * total / (na + nb)
            if expected > 0:
                stat += (observed - expected) ** 2 / expected
    dof = len(rows) - 1
    return stat, dof, chi2_sf(stat, dof)


def permutation_p(observed: float, null: np.ndarray) -> float:
    """The permutation p-value (1 + #{null >= observed}) / (1 + permutations): never 0, exact
    in level."""
    return float((1 + int(np.count_nonzero(null >= observed))) / (1 + len(null)))


def percentile_rank(sorted_values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """For each of ``x``, the share of ``sorted_values`` strictly below it."""
    if len(sorted_values) == 0:
        return np.zeros(len(x))
    return np.searchsorted(sorted_values, x, side="left") / len(sorted_values)


def rbf_bandwidth(x: np.ndarray, *, max_items: int = 1000, rng: np.random.Generator | None = None) -> float:
    """The median heuristic: the median pairwise Euclidean distance within ``x`` (at most
    ``max_items`` rows, drawn at random), the RBF kernel's length scale."""
    rng = rng or np.random.default_rng(0)
    if len(x) > max_items:
        x = x[rng.choice(len(x), max_items, replace=False)]
    x = np.asarray(x, dtype=np.float64)
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    upper = d2[np.triu_indices(len(x), k=1)]
    med = float(np.sqrt(np.median(upper))) if len(upper) else 1.0
    return med if med > 1e-6 else 1.0


def mmd_permutation(
    x: np.ndarray,
    y: np.ndarray,
    *,
    bandwidth: float,
    permutations: int = 500,
    max_per_side: int = 1000,
    rng: np.random.Generator | None = None,
) -> tuple[float, float, int, int]:
    """Maximum mean discrepancy with the RBF kernel ``exp(-|a-b|^2 / (2 bandwidth^2))`` between
    the rows of ``x`` (recent) and ``y`` (reference), with a permutation test.

    Returns (unbiased MMD^2, permutation p-value, rows of x used, rows of y used). Each side is
    sub-sampled to at most ``max_per_side`` rows at random (the permutation test costs
    O(permutations * (n+m)^2), so 10k vs 10k is measured on 1k vs 1k); the statistic and its
    null come from the same sub-sample, so the p-value stays exact in level."""
    rng = rng or np.random.default_rng(0)
    if len(x) > max_per_side:
        x = x[rng.choice(len(x), max_per_side, replace=False)]
    if len(y) > max_per_side:
        y = y[rng.choice(len(y), max_per_side, replace=False)]
    n, m = len(x), len(y)
    pooled = np.vstack([x, y]).astype(np.float32)
    sq = (pooled * pooled).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (pooled @ pooled.T), 0.0)
    k = np.exp(-d2 / np.float32(2.0 * bandwidth * bandwidth)).astype(np.float32)
    np.fill_diagonal(k, 0.0)  # the unbiased statistic leaves out each point's kernel with itself
    total = float(k.sum(dtype=np.float64))
    labels = np.zeros((n + m, permutations + 1), dtype=np.float32)
    labels[:n, 0] = 1.0
    for j in range(1, permutations + 1):
        labels[rng.choice(n + m, n, replace=False), j] = 1.0
    kl = k @ labels  # (n+m, P+1): per point, the kernel summed over the "x" side of each split
    s_xx = (labels * kl).sum(0, dtype=np.float64)
    s_xy = ((1.0 - labels) * kl).sum(0, dtype=np.float64)
    s_yy = total - s_xx - 2.0 * s_xy
    stats = s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2.0 * s_xy / (n * m)
    return float(stats[0]), permutation_p(float(stats[0]), stats[1:]), n, m
