"""Image-level intervals of set distances: half-sampling without replacement (the delete-d
jackknife / subsampling), centred on the subsample mean, in the reverse (basic) form.

Why not the percentile bootstrap: resampling images *with* replacement duplicates images, and a
duplicated image inflates every set distance (FID, KID, SWD, FRD; IS too), so the replicates
lie above the point estimate and so does their percentile interval. Here each replicate keeps
b = n // 2 distinct images of every set (the reference too). The replicate values are biased
by the smaller size (bias O(1/b) instead of O(1/n)), so their deviations are taken from their
own mean, not from the point estimate, and scaled to size n by sqrt(b / (n - b)) (the
finite-population rate correction of a sqrt(n)-consistent statistic; 1 for even n). The
interval is then [point - q_hi, point - q_lo] with q the quantiles of the scaled deviations
(Politis, Romano & Wolf 1999; Shao & Wu 1989). It estimates the metric's expected value at
these set sizes, the quantity a comparison at equal n is about (README: "Intervals").
"""

from __future__ import annotations

import math

import numpy as np


def half(n: int) -> int:
    """Subsample size of a set of n images: n // 2 (at least 1)."""
    if n < 1:
        raise ValueError("cannot subsample an empty set")
    return max(1, n // 2)


def rate_scale(n: int, b: int) -> float:
    """sqrt(b / (n - b)): scales the spread of size-b subsamples drawn without replacement to
    the sampling spread at size n (1 for b = n / 2); 1 where b >= n (nothing to scale)."""
    return math.sqrt(b / (n - b)) if b < n else 1.0


def recentred(point: float, values: np.ndarray, scale: float) -> np.ndarray:
    """Replicates as draws of the size-n estimate: point + scale * (value - mean of the values).
    NaN stays NaN; an undefined point gives all NaN."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    if point is None or not math.isfinite(point) or not ok.any():
        return np.full(v.shape, np.nan)
    return point + scale * (v - v[ok].mean())


def contain(lo: float, hi: float, point: float) -> tuple[float, float]:
    """The interval widened, if need be, to hold its point estimate (a wider interval never
    covers less); undefined bounds stay NaN."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or point is None or not math.isfinite(point):
        return lo, hi
    return min(lo, point), max(hi, point)


def subsample_interval(
    point: float, values: np.ndarray, scale: float, level: float = 0.95
) -> tuple[float, float]:
    """Reverse-form interval of the size-n estimate from size-b subsample values (NaNs ignored):
    [point - q_hi, point - q_lo], q the quantiles of scale * (value - mean); (NaN, NaN) where the
    point or every replicate is undefined. Always holds the point."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or point is None or not math.isfinite(point):
        return float("nan"), float("nan")
    dev = scale * (v - v.mean())
    q_lo, q_hi = np.quantile(dev, [(1 - level) / 2, (1 + level) / 2])
    return contain(float(point - q_hi), float(point - q_lo), point)


def percentile_interval(values: np.ndarray, point: float, level: float = 0.95) -> tuple[float, float]:
    """Two-sided percentile interval of replicate values (NaNs ignored), widened to hold `point`
    (used for statistics of recentred replicates, e.g. a correlation across translators)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(v, [(1 - level) / 2, (1 + level) / 2])
    return contain(float(lo), float(hi), point)
