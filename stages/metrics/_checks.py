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


def as_pair_stacks(sources, others, name: str = "pairs") -> tuple[np.ndarray, np.ndarray]:
    """Two finite float64 (N, H, W) stacks of one shape: image i of `others` is paired with
    image i of `sources` (a 2-D image is a stack of one). A ValueError says what does not fit."""
    a = np.asarray(sources, dtype=np.float64)
    b = np.asarray(others, dtype=np.float64)
    a, b = (x[None] if x.ndim == 2 else x for x in (a, b))
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(
            f"{name}: expected two (N, H, W) image stacks of one shape, got {a.shape} and {b.shape}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"{name}: images contain NaN or inf")
    return a, b
