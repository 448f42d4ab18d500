"""Frechet distance (FID) in float64, exact and fast for the small sets of medical studies.

    FID = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1^1/2 S2 S1^1/2)

With A, B the centred feature matrices divided by sqrt(n - 1) (so S1 = A'A, S2 = B'B), the
nonzero eigenvalues of S1 S2 are the squared singular values of A B' (n1 x n2), so
tr sqrt(...) = sum of the singular values of A B' and tr S = |A|_F^2: no d x d matrix at all
("low-rank" route, used when n1 n2 <= d^2, i.e. N < d for equal sets). Otherwise the symmetric
route: S1^1/2 from an eigendecomposition, then the eigenvalues of S1^1/2 S2 S1^1/2 (symmetric
PSD, clipped at 0). Neither uses scipy.linalg.sqrtm, which is slow (44 s at d = 2048 on 2
cores), approximates singular products, and whose `disp` argument scipy 1.18 removed.

FID is biased upward for small N and its covariances are singular for N < d (pytorch-fid #13):
every result carries N, and N < 2048 raises a `SmallSampleWarning`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from medtrans.stages.metrics._checks import as_feature_matrix, same_width

RECOMMENDED_N = 2048


class SmallSampleWarning(UserWarning):
    """FID from fewer than 2048 images: biased upward and not comparable across N."""


@dataclass(frozen=True)
class FIDResult:
    value: float
    n1: int
    n2: int
    method: str  # "low-rank" or "eigh"


def mean_cov(x) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (ddof 1, as pytorch-fid and torch-fidelity) in float64."""
    a = as_feature_matrix(x)
    return a.mean(axis=0), np.cov(a, rowvar=False)


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """tr sqrt(S1 S2) for symmetric PSD S1, S2 via two symmetric eigendecompositions."""
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root @ s2 @ root
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def frechet_distance(mu1, s1, mu2, s2) -> float:
    """Frechet distance between N(mu1, S1) and N(mu2, S2) (symmetric eigen route)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(s1, np.float64)), np.atleast_2d(np.asarray(s2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"shapes do not match: mu {mu1.shape} {mu2.shape}, sigma {s1.shape} {s2.shape}")
    for name, arr in (("mu1", mu1), ("mu2", mu2), ("sigma1", s1), ("sigma2", s2)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or inf")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2)
    return max(float(value), 0.0)


def _low_rank(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    ca = (a - mu1) / np.sqrt(len(a) - 1)
    cb = (b - mu2) / np.sqrt(len(b) - 1)
    sv = np.linalg.svd(ca @ cb.T, compute_uv=False)
    diff = mu1 - mu2
    value = diff @ diff + np.einsum("ij,ij->", ca, ca) + np.einsum("ij,ij->", cb, cb) - 2 * sv.sum()
    return max(float(value), 0.0)


def fid_result(f1, f2, warn: bool = True) -> FIDResult:
    """FID between two feature sets (arrays (N, d) or `Features`), with N and the route used."""
    a, b = as_feature_matrix(f1, "set 1"), as_feature_matrix(f2, "set 2")
    same_width(a, b)
    n1, n2, d = len(a), len(b), a.shape[1]
    if warn and min(n1, n2) < RECOMMENDED_N:
        warnings.warn(
            f"FID from {n1} and {n2} images (< {RECOMMENDED_N}): biased upward, comparable only at equal N",
            SmallSampleWarning,
            stacklevel=3,
        )
    if n1 * n2 <= d * d:
        return FIDResult(_low_rank(a, b), n1, n2, "low-rank")
    mu1, s1 = mean_cov(a)
    mu2, s2 = mean_cov(b)
    return FIDResult(frechet_distance(mu1, s1, mu2, s2), n1, n2, "eigh")


def fid_from_features(f1, f2, warn: bool = True) -> float:
    """FID between two feature sets; see `fid_result` for N and the route."""
    return fid_result(f1, f2, warn=warn).value
