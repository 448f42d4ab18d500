"""FRD through frd-score: equal to calling frd-score directly on the same folders; cache; edge cases."""

import numpy as np
import pytest
from metrics_helpers import phantoms

from medtrans.shared.imageio import write_png
from medtrans.stages.metrics import frd
from medtrans.stages.metrics.images import load_folder

N = 7  # images per set: PyRadiomics takes ~0.2 s per small image


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("frd")
    sets = {"real": phantoms(N, 1, size=32), "fake": phantoms(N, 2, size=32, blobs=2, noise=0.05)}
    for name, imgs in sets.items():
        for i, img in enumerate(imgs):
            write_png(root / name / f"{i:02d}.png", img)
    return root


@pytest.fixture(scope="module")
def features(folders):
    cache = folders / "cache"
    return {
        name: frd.extract_radiomics(load_folder(folders / name).images, workers=2, cache_dir=cache)
        for name in ("real", "fake")
    }


def test_equals_frd_score_on_the_same_folders(folders, features):
    from frd_score import compute_frd

    reference_log = compute_frd([str(folders / "real"), str(folders / "fake")], num_workers=1)
    ours = frd.frd_from_features(features["real"], features["fake"])
    assert ours.frd_log == pytest.approx(reference_log, rel=1e-6)
    assert ours.frd == pytest.approx(np.exp(reference_log), rel=1e-6)
    assert ours.n_real == ours.n_fake == N
    assert ours.n_features > 100


def test_identical_sets_give_zero_and_no_log(features):
    same = frd.frd_from_features(features["real"], features["real"])
    assert same.frd == 0.0
    assert same.frd_log is None
    assert "log(0)" in same.note


def test_cache_is_used(folders, features, monkeypatch):
    def no_pool(*a, **k):
        raise AssertionError("extraction ran although every image is cached")

    monkeypatch.setattr(frd, "ProcessPoolExecutor", no_pool)
    again = frd.extract_radiomics(load_folder(folders / "real").images, cache_dir=folders / "cache")
    np.testing.assert_array_equal(again.values, features["real"].values)
    assert again.names == features["real"].names


def test_cache_key_depends_on_pixels_and_extractor_versions():
    a = phantoms(1, 1, size=32)[0]
    b = a.copy()
    b[0, 0] ^= 1
    assert frd.image_key(a) != frd.image_key(b)
    assert frd.image_key(a) == frd.image_key(a.copy())
    assert set(frd.extractor_settings()) == {"frd_version", "frd-score", "pyradiomics"}


def test_resample_equals_materialised_subset(features):
    idx = np.array([0, 0, 2, 3, 5, 6, 6])
    a = frd.frd_from_features(features["real"], features["fake"].subset(idx))
    b = frd.frd_from_features(features["real"].values, features["fake"].values[idx])
    assert a.frd == b.frd


def test_degenerate_inputs(features):
    with pytest.raises(frd.FRDError, match="at least 2"):
        frd.frd_from_features(features["real"], features["fake"].subset([0]))
    with pytest.raises(frd.FRDError, match="shapes do not match"):
        frd.frd_from_features(features["real"].values, features["fake"].values[:, :10])
    nan = features["fake"].values.copy()
    nan[:-1, 0] = np.nan
    with pytest.raises(frd.FRDError, match="finite radiomics"):
        frd.frd_from_features(features["real"].values, nan)
    with pytest.raises(frd.FRDError, match="uint8"):
        frd.extract_radiomics(np.zeros((2, 8, 8), np.float32))
