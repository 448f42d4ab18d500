"""KID: unbiased MMD^2, cubic kernel, seeded subsets; equal to torch-fidelity and a naive loop."""

import numpy as np
import pytest
import torch
from test_inception_shim import references

from medtrans.stages.metrics.kid import kid_from_features, kid_from_kernels, polynomial_kernel


def naive_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 written as the double sums of its definition."""
    m, d = len(x), x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def feats(n, d, seed, shift=0.0):
    r = np.random.default_rng(seed)
    return np.maximum(r.standard_normal((n, d)) + 0.3 + shift, 0)


def test_equals_torch_fidelity_in_float64():
    references()
    from torch_fidelity.metric_kid import kid_features_to_metric

    x, y = feats(60, 128, 1), feats(50, 128, 2, shift=0.2)
    ref = kid_features_to_metric(
        torch.from_numpy(x),
        torch.from_numpy(y),
        kid_subsets=20,
        kid_subset_size=30,
        rng_seed=2020,
        verbose=False,
    )
    mean, std = kid_from_features(x, y, subsets=20, subset_size=30, seed=2020)
    assert mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-10)
    assert std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-8)


def test_equals_naive_double_sum_when_subset_is_whole_set():
    x, y = feats(7, 16, 3), feats(7, 16, 4, shift=0.5)
    mean, std = kid_from_features(x, y, subsets=3, subset_size=1000, seed=0)  # m = min(1000, 7, 7)
    assert mean == pytest.approx(naive_mmd2(x, y), rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)  # every subset is the whole set


def test_seeded_and_near_zero_for_identical_distributions():
    x, y = feats(80, 64, 5), feats(80, 64, 6)
    a = kid_from_features(x, y, subsets=10, subset_size=40, seed=1)
    assert a == kid_from_features(x, y, subsets=10, subset_size=40, seed=1)
    assert a != kid_from_features(x, y, subsets=10, subset_size=40, seed=2)
    far = kid_from_features(x, feats(80, 64, 7, shift=1.0), subsets=10, subset_size=40, seed=1)
    assert abs(a[0]) < far[0] / 20


def test_kernel_entry_point_for_bootstrap():
    x, y = feats(30, 32, 8), feats(25, 32, 9, shift=0.3)
    idx = np.random.default_rng(0).integers(0, 30, 30)  # a resample with repeats
    kxx, kxy, kyy = polynomial_kernel(x, x), polynomial_kernel(x, y), polynomial_kernel(y, y)
    via_kernels = kid_from_kernels(kxx[np.ix_(idx, idx)], kxy[idx], kyy, subsets=5, subset_size=20, seed=3)
    direct = kid_from_features(x[idx], y, subsets=5, subset_size=20, seed=3)
    assert via_kernels == pytest.approx(direct, rel=1e-12)


def test_degenerate_inputs():
    with pytest.raises(ValueError, match="at least 2"):
        kid_from_features(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="NaN"):
        kid_from_features(np.full((3, 4), np.nan), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="dimensions differ"):
        kid_from_features(np.zeros((3, 4)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="subset"):
        kid_from_features(np.ones((3, 4)), np.ones((5, 4)), subsets=0)
