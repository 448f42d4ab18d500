"""Translator-level uncertainty of a correlation: pure functions of the per-translator points.

The image-level intervals hold the translators fixed and ask how the correlation would move
with other test images. These ask whether the conclusion survives another set of translators:
the correlation with each translator left out (its range), and the exact permutation p-value
of Spearman and Kendall over the n translators, by enumerating all n! pairings (no
approximation; n <= MAX_EXACT, beyond which scipy's p-value is given and named as such).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from medtrans.stages.report import correlate as C

MAX_EXACT = 8  # 8! = 40320 pairings, enumerated in one vectorised pass
RANKS = ("spearman", "kendall")  # the methods with an exact permutation p-value here


def leave_one_out(x: np.ndarray, y: np.ndarray, method: str, groups: list[str] | None = None) -> np.ndarray:
    """The correlation with each group of points left out in turn (`groups`: a label per point,
    e.g. the translator of each pooled task:translator point; default: every point its own).
    NaN where fewer than 3 points remain or a side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    labels = list(range(len(x))) if groups is None else list(groups)
    if len(labels) != len(x):
        raise ValueError(f"{len(labels)} group labels for {len(x)} points")
    out = []
    for g in dict.fromkeys(labels):
        keep = np.array([lab != g for lab in labels])
        out.append(C.correlation(x[keep], y[keep], method)[0])
    return np.array(out)


def _pairings(strata: list[np.ndarray]) -> np.ndarray:
    """Every permutation of positions that only permutes within each stratum: (P, n) int."""
    n = sum(len(s) for s in strata)
    blocks = [np.array(list(itertools.permutations(s.tolist())), dtype=np.int64) for s in strata]
    out = np.empty((math.prod(len(b) for b in blocks), n), dtype=np.int64)
    for row, combo in enumerate(itertools.product(*(range(len(b)) for b in blocks))):
        for s, b, k in zip(strata, blocks, combo, strict=True):
            out[row, s] = b[k]
    return out


def _statistic_rows(x: np.ndarray, y_perm: np.ndarray, method: str) -> np.ndarray:
    """Spearman rho or Kendall tau-b of x against each row of y_perm (P, n)."""
    xs = np.broadcast_to(x, y_perm.shape)
    return C.correlation_rows(xs, y_perm.astype(np.float64), method)


def pairings_count(sizes: list[int]) -> int:
    """How many within-stratum pairings strata of these sizes have."""
    return math.prod(math.factorial(k) for k in sizes)


def exact_permutation_p(
    x: np.ndarray, y: np.ndarray, method: str, strata: list[str] | None = None
) -> tuple[float, str]:
    """Two-sided p-value of Spearman's rho or Kendall's tau-b under exchangeability, and how it
    was obtained: the share of all pairings of y with x (within each stratum: pooled tasks are
    exchangeable only within a task) whose |statistic| reaches the observed one. More than
    MAX_EXACT points per stratum: scipy's p-value (method 'scipy'), NaN below 3 points."""
    if method not in RANKS:
        raise ValueError(f"exact permutation p-values are for {', '.join(RANKS)}, not {method!r}")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    labels = np.asarray(strata if strata is not None else [""] * len(x), dtype=object)[ok]
    x, y = x[ok], y[ok]
    observed = C.correlation(x, y, method)[0]
    if not math.isfinite(observed):
        return float("nan"), "undefined"
    groups = [np.flatnonzero(labels == g) for g in dict.fromkeys(labels.tolist())]
    if max(len(g) for g in groups) > MAX_EXACT or pairings_count([len(g) for g in groups]) > 10**6:
        return C.correlation(x, y, method)[1], "scipy"
    perm = _pairings(groups)
    values = _statistic_rows(x, y[perm], method)
    hits = np.abs(values) >= abs(observed) - 1e-12
    return float(np.mean(hits)), "enumeration"


RULE = (
    "A metric is said to agree with Dice only if (a) its Pearson, Spearman and Kendall correlations "
    "all have the expected sign (a zero is not agreement), (b) each keeps that sign with any one "
    "translator left out (so at least 4 translators), and (c) within a task, the translator best by "
    "the metric is Dice's best (pooled: (a) and (b), a translator left out of every task)."
)


def verdict(
    oriented: dict[str, float], loo_oriented: dict[str, np.ndarray], top1: bool | None
) -> tuple[bool, str]:
    """Whether the rule `RULE` holds, and if not the first reason why not. `oriented`: each
    method's correlation times its expected sign; `loo_oriented`: the same per translator left
    out; `top1`: whether the best translators agree (None: not asked, as when pooled)."""
    for method in C.METHODS:
        r = oriented.get(method, float("nan"))
        if not math.isfinite(r):
            return False, f"{method} undefined"
        if r <= 0:
            return False, f"{method} {'zero' if r == 0 else 'against'}"
    for method in C.METHODS:
        loo = np.asarray(loo_oriented.get(method, []), dtype=np.float64)
        if loo.size == 0 or not np.isfinite(loo).all():
            return False, "too few translators to leave one out"
        if (loo <= 0).any():
            return False, f"{method} loses its sign with a translator left out"
    if top1 is False:
        return False, "best translator is not Dice's best"
    return True, "holds"
