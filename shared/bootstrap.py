"""Shared resamples, so that every stage resamples the *same* test images.

`subsample_indices(seed, task, n, R)[r]` (half-samples without replacement) is replicate r of
the metrics stage (every metric recomputed from cached features) and of the report (Dice and
every metric on the same images, then the correlations per replicate): positions into the
task's source test slices sorted by slice_id. Translated sets carry the source slice ids, so
replicate r means the same images for every translator. `resample_indices` (with replacement)
is the segment stage's bootstrap of mean Dice in summary.csv, valid for a mean.
"""

import numpy as np

from medtrans.shared.intervals import half
from medtrans.shared.seeding import rng


def resample_indices(seed: int, task: str, n: int, replicates: int) -> np.ndarray:
    """A (replicates, n) int array of positions drawn with replacement; deterministic."""
    if n < 1:
        raise ValueError("cannot bootstrap an empty set")
    return rng(seed, "bootstrap", task, n).integers(0, n, size=(replicates, n))


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Two-sided percentile interval of bootstrap replicate values (NaNs ignored)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(values, [50 * (1 - level), 100 - 50 * (1 - level)])
    return float(lo), float(hi)


def subsample_indices(seed: int, task: str, n: int, replicates: int, role: str = "sets") -> np.ndarray:
    """A (replicates, n // 2) int array of sorted positions drawn *without* replacement (the
    half-samples of `medtrans.shared.intervals`); deterministic. `role` keeps the reference's
    draws independent of the evaluated sets' ("sets": every set of one task with n images,
    paired with Dice; "reference": the real reference)."""
    b = half(n)
    gen = rng(seed, "subsample", task, role, n)
    return np.sort(np.argsort(gen.random((replicates, n)), axis=1)[:, :b], axis=1)
