"""Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel, over random subsets.

k(x, y) = (x.y / d + 1)^3. For each of `subsets` draws, `m = min(subset_size, n1, n2)` rows of
each set are chosen without replacement (NumPy RandomState(seed): first set 1, then set 2, as
torch-fidelity does, so the same seed picks the same subsets) and

    MMD^2_u = sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum_{i,j} k(x_i,y_j)/m^2.

Result: mean and (population) std over subsets. The kernel matrices of the full sets are
computed once in float64 and indexed per subset, instead of 3 x subsets matrix products.
The unbiased estimate of near-identical sets is near zero and may be slightly negative.
"""

from __future__ import annotations

import numpy as np

from medtrans.stages.metrics._checks import as_feature_matrix, same_width

TORCH_FIDELITY_SEED = 2020


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """(x y' / d + coef0)^degree, d the feature dimension."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(kxx: np.ndarray, kxy: np.ndarray, kyy: np.ndarray) -> float:
    """Unbiased MMD^2 from the three m x m kernel matrices (within-set diagonals dropped)."""
    m = kxx.shape[0]
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(xx + yy - 2 * kxy.sum() / (m * m))


def kid_from_kernels(
    kxx: np.ndarray,
    kxy: np.ndarray,
    kyy: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = TORCH_FIDELITY_SEED,
) -> tuple[float, float]:
    """KID mean and std from the full kernel matrices (n1 x n1, n1 x n2, n2 x n2).

    A bootstrap that resamples set 1 with positions `idx` can pass kxx[idx][:, idx] and
    kxy[idx] instead of recomputing the kernels."""
    n1, n2 = kxy.shape
    if kxx.shape != (n1, n1) or kyy.shape != (n2, n2):
        raise ValueError(f"kernel shapes do not match: {kxx.shape}, {kxy.shape}, {kyy.shape}")
    if min(n1, n2) < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {n1} and {n2}")
    if subsets < 1 or subset_size < 2:
        raise ValueError("KID needs subsets >= 1 and subset_size >= 2")
    m = min(subset_size, n1, n2)
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    for i in range(subsets):
        a = rng.choice(n1, m, replace=False)
        b = rng.choice(n2, m, replace=False)
        mmds[i] = mmd2_unbiased(kxx[np.ix_(a, a)], kxy[np.ix_(a, b)], kyy[np.ix_(b, b)])
    return float(mmds.mean()), float(mmds.std())


def kid_from_features(
    f1, f2, subsets: int = 100, subset_size: int = 1000, seed: int = TORCH_FIDELITY_SEED
) -> tuple[float, float]:
    """KID (mean, std) between two feature sets (arrays (N, d) or `Features`)."""
    x, y = as_feature_matrix(f1, "set 1"), as_feature_matrix(f2, "set 2")
    same_width(x, y)
    return kid_from_kernels(
        polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y), subsets, subset_size, seed
    )
