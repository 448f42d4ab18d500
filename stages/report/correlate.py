"""The maths of the correlation study: pure functions of arrays, no run folder.

A perceptual metric "agrees" with anatomy when it moves the way a better translation should
(its direction in the metric catalogue, `medtrans.shared.catalogue.metrics`): lower FID/KID/SWD/
FRD with higher Dice (negative correlation), higher IS with higher Dice (positive). HD95 is
lower-is-better, so its expected signs are the opposite. `oriented`
values are multiplied by the expected sign, so that +1 always means perfect agreement.
"""

import numpy as np
from scipy import stats

from medtrans.shared.catalogue import metrics as catalogue

METHODS = ("pearson", "spearman", "kendall")
ANATOMY = ("dice", "hd95")


def is_reportable(metric: str) -> bool:
    """Metrics that measure realism (not their own spread: kid_std, is_std)."""
    return not catalogue.is_spread(metric)


def metric_direction(metric: str) -> int:
    """+1 when higher values mean a better translation, -1 when lower values do."""
    return catalogue.direction(metric)


def anatomy_direction(anatomy: str) -> int:
    """+1 for Dice (higher is better), -1 for HD95 (lower is better)."""
    return 1 if anatomy == "dice" else -1


def expected_sign(metric: str, anatomy: str) -> int:
    """The sign a correlation has when the metric and the anatomy agree on which is better."""
    return metric_direction(metric) * anatomy_direction(anatomy)


def correlation(x: np.ndarray, y: np.ndarray, method: str) -> tuple[float, float]:
    """(r, p) by scipy.stats; NaN where undefined (fewer than 3 points, a constant side)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    if method == "pearson":
        res = stats.pearsonr(x, y)
    elif method == "spearman":
        res = stats.spearmanr(x, y)
    elif method == "kendall":
        res = stats.kendalltau(x, y)
    else:
        raise ValueError(f"unknown correlation method {method!r}")
    return float(res.statistic), float(res.pvalue)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / den
    r[den == 0] = np.nan
    return np.clip(r, -1.0, 1.0)


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b per row (same as scipy.stats.kendalltau), vectorised over pairs."""
    i, j = np.triu_indices(x.shape[1], k=1)
    sx = np.sign(x[:, i] - x[:, j])
    sy = np.sign(y[:, i] - y[:, j])
    den = np.sqrt((sx**2).sum(axis=1) * (sy**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (sx * sy).sum(axis=1) / den
    r[den == 0] = np.nan
    return r


def correlation_rows(x: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """The correlation of each row pair of two (R, n) arrays: one value per bootstrap replicate.

    Rows with a non-finite entry give NaN (they are left out of the interval)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"expected two (R, n) arrays of one shape, got {x.shape} and {y.shape}")
    if x.shape[1] < 3:
        return np.full(x.shape[0], np.nan)
    bad = ~(np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1))
    x = np.where(np.isfinite(x), x, 0.0)
    y = np.where(np.isfinite(y), y, 0.0)
    if method == "pearson":
        r = _pearson_rows(x, y)
    elif method == "spearman":
        r = _pearson_rows(stats.rankdata(x, axis=1), stats.rankdata(y, axis=1))
    elif method == "kendall":
        r = _kendall_rows(x, y)
    else:
        raise ValueError(f"unknown correlation method {method!r}")
    r[bad] = np.nan
    return r


def standardise(values: np.ndarray, how: str) -> np.ndarray:
    """Within-task transform before pooling tasks, along the last axis (the translators).

    zscore: (v - mean) / std (population std; a constant task gives zeros). rank: average ranks
    1..n. Either removes each task's own location and scale, so tasks can share one axis."""
    v = np.asarray(values, dtype=np.float64)
    if how == "rank":
        return stats.rankdata(v, axis=-1)
    if how != "zscore":
        raise ValueError(f"unknown pooling {how!r}")
    mean = v.mean(axis=-1, keepdims=True)
    std = v.std(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (v - mean) / std
    return np.where(std > 0, z, 0.0)


def pool(parts: list[tuple[np.ndarray, np.ndarray]], how: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-task (x, y) after standardising each within its task (last axis)."""
    xs = [standardise(x, how) for x, _ in parts]
    ys = [standardise(y, how) for _, y in parts]
    return np.concatenate(xs, axis=-1), np.concatenate(ys, axis=-1)


def orientation(values: np.ndarray, direction: int) -> np.ndarray:
    """Values turned so that higher is better (for ranking)."""
    return np.asarray(values, dtype=np.float64) * direction


def order(values: np.ndarray) -> tuple[int, ...]:
    """Positions from best to worst of higher-is-better values (ties broken by position)."""
    return tuple(int(i) for i in np.argsort(-np.asarray(values), kind="stable"))


def top_set(values: np.ndarray) -> set[int]:
    v = np.asarray(values, dtype=np.float64)
    return set(np.flatnonzero(v == np.nanmax(v)).tolist())


def rank_agreement(metric_good: np.ndarray, dice: np.ndarray) -> dict:
    """How one metric orders the translators against Dice's order (both higher-is-better).

    tau: Kendall tau-b of the two orderings (+1 identical, -1 reversed), with scipy's p-value;
    top1: whether a translator best by the metric is also best by Dice."""
    tau, p = correlation(metric_good, dice, "kendall") if len(dice) >= 3 else (float("nan"),) * 2
    if len(dice) == 2:
        tau = float(np.sign(metric_good[0] - metric_good[1]) * np.sign(dice[0] - dice[1]))
    top1 = bool(top_set(metric_good) & top_set(dice)) if len(dice) else False
    return {"tau": tau, "p": p, "top1": top1}


def rank_bootstrap(
    metric_good: np.ndarray, dice: np.ndarray, metric_rep: np.ndarray, dice_rep: np.ndarray
) -> dict:
    """How often the bootstrap replicates (R, n) keep the point estimates' orders.

    metric_stable / dice_stable: fraction of replicates whose full ordering equals the point
    ordering; top1: fraction where the metric's best is also Dice's best; pairs: fraction of
    (replicate, translator pair) where metric and Dice order the pair the same way; tau: the
    replicates' Kendall tau between the two orderings."""
    ok = np.isfinite(metric_rep).all(axis=1) & np.isfinite(dice_rep).all(axis=1)
    m, d = metric_rep[ok], dice_rep[ok]
    if m.shape[0] == 0 or m.shape[1] < 2:
        nan = float("nan")
        return {
            "replicates": 0,
            "metric_stable": nan,
            "dice_stable": nan,
            "top1": nan,
            "pairs": nan,
            "tau_rep": np.array([]),
        }
    point_m, point_d = order(metric_good), order(dice)
    metric_stable = np.mean([order(row) == point_m for row in m])
    dice_stable = np.mean([order(row) == point_d for row in d])
    top1 = np.mean([int(np.argmax(a)) in top_set(b) for a, b in zip(m, d, strict=True)])
    i, j = np.triu_indices(m.shape[1], k=1)
    same = np.sign(m[:, i] - m[:, j]) * np.sign(d[:, i] - d[:, j])
    pairs = float(np.mean(same > 0))
    tau_rep = _kendall_rows(m, d) if m.shape[1] >= 2 else np.array([])
    return {
        "replicates": int(m.shape[0]),
        "metric_stable": float(metric_stable),
        "dice_stable": float(dice_stable),
        "top1": float(top1),
        "pairs": pairs,
        "tau_rep": tau_rep,
    }
