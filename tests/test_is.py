"""Inception Score: torch-fidelity's split and shuffle semantics, float64."""

import numpy as np
import pytest
import torch
from test_inception_shim import references

from medtrans.stages.metrics.features import Features
from medtrans.stages.metrics.inception_score import inception_score


def test_equals_torch_fidelity_with_default_splits():
    references()
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = np.random.default_rng(0).standard_normal((53, 1008)) * 4
    ref = isc_features_to_metric(torch.from_numpy(logits).float(), splits=10, shuffle=True, rng_seed=2020)
    mean, std = inception_score(logits.astype(np.float32), splits=10, seed=2020)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-8)
    ref_other = isc_features_to_metric(torch.from_numpy(logits).float(), splits=10, shuffle=True, rng_seed=5)
    assert inception_score(logits.astype(np.float32), seed=5)[0] == pytest.approx(
        ref_other["inception_score_mean"], rel=1e-10
    )


def test_known_values():
    assert inception_score(np.zeros((20, 10)), splits=2) == pytest.approx((1.0, 0.0))  # uniform p
    # confident, evenly spread predictions over k classes within each split: IS = k
    k = 5
    logits = np.full((40, k), -50.0)
    logits[np.arange(40), np.arange(40) % k] = 50.0
    mean, std = inception_score(logits, splits=1, shuffle=False)
    assert mean == pytest.approx(k, rel=1e-9)


def test_takes_features_and_errors():
    f = Features(np.zeros((12, 4)), np.random.default_rng(1).standard_normal((12, 6)))
    assert inception_score(f, splits=3) == inception_score(f.logits, splits=3)
    with pytest.raises(ValueError, match="at least 10 images"):
        inception_score(np.zeros((9, 5)), splits=10)
    with pytest.raises(ValueError, match="NaN"):
        inception_score(np.full((20, 5), np.nan))
