"""Bootstrap confidence intervals of every metric, from cached per-image features.

Replicate r rescores the set's images at positions `indices[r]` (drawn with replacement; the
stage passes `medtrans.shared.bootstrap.resample_indices(seed, task, n, R)`, the same draws the
segment stage uses for Dice, so the report can pair replicate r of Dice and of every metric).
The real reference is not resampled. No network runs again: FID/KID/IS reuse the Inception
features (KID even the kernel matrices), SWD the neighbourhood descriptors (normalised again per
replicate, as the set's own statistics change), FRD the radiomics.
"""

from __future__ import annotations

import numpy as np

from medtrans.shared.bootstrap import percentile_ci
from medtrans.shared.log import progress
from medtrans.stages.metrics.scoring import Scorer, SetFeatures


def replicate_values(
    scorer: Scorer, fake: SetFeatures, indices: np.ndarray, desc: str = "bootstrap"
) -> dict[str, np.ndarray]:
    """{row: (R,) float array} of every metric row per replicate; NaN where undefined there."""
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[1] != len(fake):
        raise ValueError(f"bootstrap indices of shape {indices.shape} do not fit a set of {len(fake)} images")
    rows = scorer.rows()
    out = {row: np.full(len(indices), np.nan) for row in rows}
    for r in progress(range(len(indices)), desc, total=len(indices)):
        values = scorer.evaluate(fake, index=indices[r]).values
        for row in rows:
            v = values.get(row)
            out[row][r] = np.nan if v is None else v
    return out


def intervals(
    replicates: dict[str, np.ndarray], level: float = 0.95
) -> dict[str, tuple[float | None, float | None]]:
    """Two-sided percentile intervals per row; (None, None) where no replicate is defined."""
    out = {}
    for row, values in replicates.items():
        lo, hi = percentile_ci(values, level)
        out[row] = (None, None) if not np.isfinite([lo, hi]).all() else (lo, hi)
    return out
