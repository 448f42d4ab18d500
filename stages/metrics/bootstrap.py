"""Image-level intervals of every metric, from cached per-image features.

Replicate r rescores every set at the positions `indices[r]` (half-samples drawn without
replacement; the stage passes `medtrans.shared.bootstrap.subsample_indices(seed, task, n, R)`,
the draws the report uses for Dice, so it can pair replicate r of Dice and of every metric)
against the reference's images at `ref_indices[r]` (its own half-sample; the same for every set
of replicate r). The interval is the reverse-form subsampling interval of
`medtrans.shared.intervals` (why: its docstring and the README's "Intervals"). No network runs
again: FID/KID/IS reuse the Inception features (KID even the kernel matrices), SWD the
neighbourhood descriptors (normalised again per replicate, as the sets' own statistics change),
FRD the radiomics.
"""

from __future__ import annotations

import numpy as np

from medtrans.shared.intervals import rate_scale, subsample_interval
from medtrans.shared.log import progress
from medtrans.stages.metrics.scoring import Scorer, Scores, SetFeatures


def _check(indices: np.ndarray, n: int, what: str) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[1] > n or (indices.size and indices.max() >= n):
        raise ValueError(f"replicate indices of shape {indices.shape} do not fit {what} of {n} images")
    return indices


def replicate_values(
    scorer: Scorer,
    sets: list[tuple[str, SetFeatures, np.ndarray]],
    ref_indices: np.ndarray | None = None,
    desc: str = "intervals",
) -> dict[str, dict[str, np.ndarray]]:
    """{set: {row: (R,) float array}} of every metric row per replicate (NaN where undefined
    there). Replicates run outermost, so a reference subsample is prepared once for all sets."""
    if not sets:
        return {}
    count = len(sets[0][2])
    checked = [(name, feats, _check(idx, len(feats), f"set {name}")) for name, feats, idx in sets]
    if any(len(idx) != count for _, _, idx in checked):
        raise ValueError("every set needs the same number of replicates")
    if ref_indices is not None:
        ref_indices = _check(ref_indices, len(scorer.real), "the reference")
        if len(ref_indices) != count:
            raise ValueError(f"{len(ref_indices)} reference replicates for {count} set replicates")
    rows = scorer.rows()
    out = {name: {row: np.full(count, np.nan) for row in rows} for name, _, _ in checked}
    # a replicate's values depend only on its (set, positions, reference positions); small sets
    # draw the same half-samples again and again (4 images: 6 distinct, so 1000 replicates of a
    # set and its reference hold at most 36 distinct pairs), which are scored once
    seen: dict[tuple[str, bytes, bytes], dict[str, float | None]] = {}
    for r in progress(range(count), desc, total=count):
        ref = None if ref_indices is None else ref_indices[r]
        ref_key = b"" if ref is None else np.asarray(ref, dtype=np.int64).tobytes()
        for name, feats, idx in checked:
            key = (name, np.asarray(idx[r], dtype=np.int64).tobytes(), ref_key)
            if key not in seen:
                seen[key] = scorer.evaluate(feats, index=idx[r], ref_index=ref).values
            values = seen[key]
            for row in rows:
                v = values.get(row)
                out[name][row][r] = np.nan if v is None else v
    return out


def intervals(
    point: Scores, replicates: dict[str, np.ndarray], n: int, b: int, level: float = 0.95
) -> dict[str, tuple[float | None, float | None]]:
    """Reverse-form subsampling intervals per row (size-b replicates of a set of n images,
    `medtrans.shared.intervals.subsample_interval`); (None, None) where undefined. Each holds its
    point estimate."""
    scale = rate_scale(n, b)
    out = {}
    for row, values in replicates.items():
        v = point.values.get(row)
        lo, hi = subsample_interval(np.nan if v is None else v, values, scale, level)
        out[row] = (None, None) if not np.isfinite([lo, hi]).all() else (lo, hi)
    return out
