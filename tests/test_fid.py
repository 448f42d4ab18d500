"""Frechet distance: the low-rank and eigen routes equal the scipy.linalg.sqrtm formula."""

import warnings

import numpy as np
import pytest
from scipy import linalg

from medtrans.stages.metrics.fid import (
    SmallSampleWarning,
    fid_from_features,
    fid_result,
    frechet_distance,
    mean_cov,
)


def sqrtm_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's matrix square root (what pytorch-fid computes)."""
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Correlated, non-negative, Inception-like features."""
    r = np.random.default_rng(seed)
    mix = np.random.default_rng(1000).standard_normal((d, d)) / np.sqrt(d)
    z = r.standard_normal((n, d)) @ mix + shift
    return np.maximum(z + 0.5, 0.0)


@pytest.mark.parametrize(
    ("n1", "n2", "route"),
    [(20, 20, "low-rank"), (12, 30, "low-rank"), (300, 300, "eigh"), (150, 400, "eigh")],
)
def test_equals_sqrtm_formula(n1, n2, route):
    d = 64
    a, b = features(n1, d, 1), features(n2, d, 2, shift=0.3)
    res = fid_result(a, b, warn=False)
    assert res.method == route and (res.n1, res.n2) == (n1, n2)
    ref = sqrtm_fid(a, b)
    assert ref > 0.5
    assert res.value == pytest.approx(ref, rel=1e-6)


def test_routes_agree_and_statistics_entry_point():
    a, b = features(40, 32, 3), features(50, 32, 4, shift=0.2)
    low = fid_result(a, b, warn=False)  # 40*50 > 32^2: eigh route
    assert low.method == "eigh"
    wide_a, wide_b = features(10, 32, 3), features(12, 32, 4, shift=0.2)
    lr = fid_result(wide_a, wide_b, warn=False)
    assert lr.method == "low-rank"
    mu1, s1 = mean_cov(wide_a)
    mu2, s2 = mean_cov(wide_b)
    # the eigen route takes square roots of round-off-sized eigenvalues of singular covariances
    # (errors ~ sqrt(machine eps)); the low-rank route never forms them
    assert lr.value == pytest.approx(frechet_distance(mu1, s1, mu2, s2), rel=1e-6)
    mu1, s1 = mean_cov(a)
    mu2, s2 = mean_cov(b)
    assert low.value == pytest.approx(frechet_distance(mu1, s1, mu2, s2), rel=1e-12)


def test_very_singular_covariances_match_sqrtm():
    """N << d, as in medical studies (the d = 2048 case is compared with pytorch-fid's sqrtm in
    test_inception_parity)."""
    a, b = features(15, 256, 5), features(15, 256, 6, shift=0.1)
    assert fid_from_features(a, b, warn=False) == pytest.approx(sqrtm_fid(a, b), rel=1e-6)


def test_identical_sets_give_zero_and_distance_grows():
    a = features(25, 64, 7)
    assert fid_from_features(a, a, warn=False) == pytest.approx(0.0, abs=1e-9 * np.trace(np.cov(a.T)))
    b = [fid_from_features(a, features(25, 64, 8, shift=s), warn=False) for s in (0.0, 0.5, 1.0)]
    assert b[0] < b[1] < b[2]


def test_small_sample_warning_reports_n():
    a, b = features(10, 16, 1), features(12, 16, 2)
    with pytest.warns(SmallSampleWarning, match="10 and 12 images"):
        fid_from_features(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fid_from_features(a, b, warn=False)


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.zeros((1, 8)), np.zeros((5, 8)), "at least 2"),
        (np.full((4, 8), np.nan), np.zeros((5, 8)), "NaN"),
        (np.zeros((4, 8)), np.zeros((5, 9)), "dimensions differ"),
        (np.zeros(8), np.zeros((5, 8)), r"\(N, d\)"),
    ],
)
def test_degenerate_inputs_are_clear_errors(a, b, match):
    with pytest.raises(ValueError, match=match):
        fid_from_features(a, b, warn=False)


def test_frechet_distance_rejects_bad_statistics():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.zeros(3), np.full((3, 3), np.nan), np.zeros(3), np.eye(3))
