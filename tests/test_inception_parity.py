"""Parity of FIDInception + our FID/KID/IS with pytorch-fid and torch-fidelity, on one shared network.

A randomly initialised FIDInception (fixed seed) gets its batch-norm statistics calibrated on a
fixed batch of phantom-like images (default init gives pool features near 1e-8 and a meaningless
FID), its fc scaled up so IS is not ~1, and is saved as a .pth. That file is loaded through the
verified-file path (explicit custom flag) for medtrans, and the same state dict into pytorch-fid's
InceptionV3 (download bypassed) and torch-fidelity's FeatureExtractorInceptionV3 (local path).
"""

import metrics_helpers
import numpy as np
import pytest
import torch
from test_inception_shim import references

from medtrans.shared.hashing import sha256_file
from medtrans.stages.metrics import features
from medtrans.stages.metrics.features import extract_features, preprocess_batch
from medtrans.stages.metrics.fid import fid_from_features
from medtrans.stages.metrics.inception import FIDInception, load_inception
from medtrans.stages.metrics.inception_score import inception_score
from medtrans.stages.metrics.kid import kid_from_features
from medtrans.stages.metrics.weights import locate_inception

N = 8  # images per set: 299x299 Inception on CPU runs at a few images/s


def phantoms(n: int, seed: int, size: int = 64, blobs: int = 6, noise: float = 0.0) -> np.ndarray:
    """The metrics tests' phantoms at this module's defaults (64 px, 6 blobs)."""
    return metrics_helpers.phantoms(n, seed, size=size, blobs=blobs, noise=noise)


def calibrated_inception(seed: int = 0) -> FIDInception:
    """Random FIDInception whose batch-norm running statistics come from one fixed image batch."""
    torch.manual_seed(seed)
    net = FIDInception()
    with torch.no_grad():
        net.fc.weight.mul_(30)  # logits with a usable spread, so IS is well above 1
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average: after one batch, exactly its statistics
            m.reset_running_stats()
    net.train()
    with torch.no_grad():
        net(preprocess_batch(phantoms(8, 99), "pytorch-fid"))
    return net.eval()


@pytest.fixture(scope="module")
def net_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(calibrated_inception().state_dict(), path)
    return locate_inception(custom=path)


@pytest.fixture(scope="module")
def images():
    return phantoms(N, 1), phantoms(N, 2, blobs=3, noise=0.05)


@pytest.fixture(scope="module")
def ours(net_file, images):
    net = load_inception(net_file, "cpu")
    return {
        conv: tuple(extract_features(net, im, conv, batch_size=N, progress=False) for im in images)
        for conv in ("pytorch-fid", "torch-fidelity")
    }


def test_loaded_through_verified_custom_path(net_file, ours):
    assert net_file.standard is False
    assert net_file.sha256 == sha256_file(net_file.path)
    assert "not the standard" in net_file.label
    real, _ = ours["pytorch-fid"]
    assert real.pool.shape == (N, 2048) and real.logits.shape == (N, 1008)
    assert real.pool.dtype == np.float64
    # calibrated: features have a usable scale (default init gives ~1e-8)
    assert 0.05 < real.pool.std() < 50


def test_pytorch_fid_parity(net_file, images, ours):
    pfi, fid_score, _ = references()
    state = torch.load(net_file.path, weights_only=True)
    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *a, **k: state  # bypass its download
    try:
        ref = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    finally:
        pfi.load_state_dict_from_url = original

    def ref_features(u8: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(u8).float().div(255).unsqueeze(1).expand(-1, 3, -1, -1)  # as its loader
        with torch.no_grad():
            return ref(x)[0].squeeze(3).squeeze(2).double().numpy()

    theirs = [ref_features(im) for im in images]
    for mine, ref_f in zip(ours["pytorch-fid"], theirs, strict=True):
        assert np.abs(mine.pool - ref_f).max() <= 1e-4
    # its Frechet: scipy sqrtm at d = 2048 (the slow step our low-rank route avoids)
    ref_fid = fid_score.calculate_frechet_distance(
        theirs[0].mean(0), np.cov(theirs[0], rowvar=False), theirs[1].mean(0), np.cov(theirs[1], rowvar=False)
    )
    mine = fid_from_features(*ours["pytorch-fid"], warn=False)
    assert ref_fid > 1.0
    assert mine == pytest.approx(ref_fid, rel=1e-4)


def test_torch_fidelity_parity(net_file, images, ours):
    references()
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    ext = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(net_file.path)
    )

    def ref_features(u8: np.ndarray):
        x = torch.from_numpy(u8).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
        with torch.no_grad():
            return ext(x)

    theirs = [ref_features(im) for im in images]
    for mine, (pool, logits) in zip(ours["torch-fidelity"], theirs, strict=True):
        assert np.abs(mine.pool - pool.double().numpy()).max() <= 1e-4
        assert np.abs(mine.logits - logits.double().numpy()).max() <= 1e-4 * max(
            1.0, logits.abs().max().item()
        )

    real, fake = ours["torch-fidelity"]
    (rp, rl), (fp, _) = theirs
    ref_fid = fid_statistics_to_metric(fid_features_to_statistics(rp), fid_features_to_statistics(fp), False)
    assert ref_fid["frechet_inception_distance"] > 1.0
    assert fid_from_features(real, fake, warn=False) == pytest.approx(
        ref_fid["frechet_inception_distance"], rel=1e-4
    )

    for a, b, (x, y) in ((real, fake, (rp, fp)), (real, real, (rp, rp))):  # distinct sets, then ~0
        ref_kid = kid_features_to_metric(x, y, kid_subsets=10, kid_subset_size=6, rng_seed=7, verbose=False)[
            "kernel_inception_distance_mean"
        ]
        mean, std = kid_from_features(a, b, subsets=10, subset_size=6, seed=7)
        assert abs(mean - ref_kid) <= max(1e-4 * abs(ref_kid), 1e-6)
    # subset size larger than the sets: ours clips to min(1000, n1, n2), as torch-fidelity needs by hand
    ref_all = kid_features_to_metric(rp, fp, kid_subsets=3, kid_subset_size=N, rng_seed=1, verbose=False)
    assert kid_from_features(real, fake, subsets=3, subset_size=1000, seed=1)[0] == pytest.approx(
        ref_all["kernel_inception_distance_mean"], rel=1e-4
    )

    ref_is = isc_features_to_metric(rl, splits=4, shuffle=True, rng_seed=3)
    mean, std = inception_score(real, splits=4, seed=3)
    assert ref_is["inception_score_mean"] > 1.05  # the scaled fc gives a non-trivial score
    assert mean == pytest.approx(ref_is["inception_score_mean"], rel=1e-4)
    assert std == pytest.approx(ref_is["inception_score_std"], rel=1e-3, abs=1e-6)


def test_features_do_not_depend_on_the_micro_batch(net_file, images, ours, monkeypatch):
    """On a CPU the network takes CPU_MICRO_BATCH images at a time for speed. The features of one
    pass over the whole set and of uneven splits must agree within the parity bound (1e-4 of the
    feature scale): oneDNN computes each image on its own on some CPUs (bit-identical on an
    AVX-512 Xeon) but blocks the batch on others (an AVX2 EPYC moves them by ~1e-5 of the
    scale). The same micro-batch twice is bit-identical (what the stage's determinism rests on)."""
    assert features.CPU_MICRO_BATCH < N  # `ours` was computed in several micro-batches
    net = load_inception(net_file, "cpu")
    for conv in ("pytorch-fid", "torch-fidelity"):
        ref = ours[conv][0]
        again = extract_features(net, images[0], conv, batch_size=N, progress=False)
        np.testing.assert_array_equal(again.pool, ref.pool)
        np.testing.assert_array_equal(again.logits, ref.logits)
        monkeypatch.setattr(features, "CPU_MICRO_BATCH", N)
        whole = extract_features(net, images[0], conv, batch_size=N, progress=False)
        monkeypatch.setattr(features, "CPU_MICRO_BATCH", 3)
        uneven = extract_features(net, images[0], conv, batch_size=5, progress=False)  # 3+2, 3
        monkeypatch.undo()
        for got in (whole, uneven):
            for a, b in ((got.pool, ref.pool), (got.logits, ref.logits)):
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * float(np.abs(b).max()))


def test_conventions_give_different_numbers(ours):
    """The convention matters (resize and normalisation differ): it must be recorded with results."""
    a = fid_from_features(*ours["pytorch-fid"], warn=False)
    b = fid_from_features(*ours["torch-fidelity"], warn=False)
    assert a != b
