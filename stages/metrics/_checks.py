"""Input checks shared by the FID, KID and IS functions: clear errors instead of NaN results."""

from __future__ import annotations

import numpy as np


def as_feature_matrix(x, name: str = "features", min_rows: int = 2) -> np.ndarray:
    """A finite float64 (N, d) matrix with at least `min_rows` rows, or a ValueError saying why not.

    Accepts an array or a `features.Features` (its pool3 features are used)."""
    if hasattr(x, "pool") and not isinstance(x, np.ndarray):
        x = x.pool
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected an (N, d) matrix, got shape {a.shape}")
    if a.shape[0] < min_rows:
        raise ValueError(f"{name}: needs at least {min_rows} images, got {a.shape[0]}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def same_width(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
