"""Shared bootstrap resamples, so that every stage resamples the *same* test images.

The segment stage (per-image Dice), the metrics stage (metrics recomputed from cached
features) and the report (correlations per replicate) all draw replicate r from
`resample_indices(seed, task, n, replicates)[r]`: positions into the task's source test
slices sorted by slice_id. Translated sets carry the source slice ids, so replicate r
means the same images for every translator.
"""

import numpy as np

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
