"""Preprocessing conventions: bit-for-bit the input each reference library feeds its network."""

import numpy as np
import pytest
import torch
from test_inception_shim import references

from medtrans.stages.metrics.features import Features, extract_features, preprocess_batch
from medtrans.stages.metrics.inception import FIDInception

SIZES = [(64, 64), (256, 256), (299, 299), (320, 320), (100, 150)]


class _Stop(Exception):
    pass


def captured_input(module: torch.nn.Module, first_layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The tensor a reference network feeds its first conv (captured, then the pass is stopped)."""
    seen = {}

    def hook(_m, args):
        seen["x"] = args[0].detach().clone()
        raise _Stop

    h = first_layer.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            module(x)
    except _Stop:
        pass
    finally:
        h.remove()
    return seen["x"]


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    pfi, _, _ = references()
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    state = FIDInception().state_dict()
    path = tmp_path_factory.mktemp("w") / "w.pth"
    torch.save(state, path)
    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *a, **k: state
    try:
        pf = pfi.InceptionV3([3]).eval()
    finally:
        pfi.load_state_dict_from_url = original
    tf = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path)
    )
    return pf, tf


def images(h, w, n=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w), dtype=np.uint8)


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_pytorch_fid_convention(refs, h, w):
    pf, _ = refs
    u8 = images(h, w)
    theirs = captured_input(
        pf, pf.blocks[0][0], torch.from_numpy(u8).float().div(255)[:, None].repeat(1, 3, 1, 1)
    )
    mine = preprocess_batch(u8, "pytorch-fid")
    assert mine.shape == (2, 3, 299, 299) and mine.dtype == torch.float32
    assert torch.equal(mine, theirs)
    # float input in [0, 1] is the same convention
    assert torch.equal(preprocess_batch(torch.from_numpy(u8).float() / 255, "pytorch-fid"), theirs)


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_torch_fidelity_convention(refs, h, w):
    _, tf = refs
    u8 = images(h, w, seed=1)
    theirs = captured_input(tf, tf.Conv2d_1a_3x3, torch.from_numpy(u8)[:, None].repeat(1, 3, 1, 1))
    mine = preprocess_batch(u8[:, None], "torch-fidelity")
    assert torch.equal(mine, theirs)
    # float in [0, 1] is quantised to uint8 first, as torch-fidelity only takes uint8
    assert torch.equal(preprocess_batch(u8.astype(np.float64) / 255, "torch-fidelity"), theirs)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="NaN"):
        preprocess_batch(np.full((2, 8, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        preprocess_batch(np.full((2, 8, 8), 255.0, np.float32))
    with pytest.raises(ValueError, match="shape"):
        preprocess_batch(np.zeros((2, 2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="no images"):
        preprocess_batch(np.zeros((0, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="convention"):
        preprocess_batch(np.zeros((1, 8, 8), np.uint8), "clean-fid")
    with pytest.raises(ValueError, match="differ in size"):
        extract_features(torch.nn.Identity(), [np.zeros((8, 8), np.uint8), np.zeros((9, 8), np.uint8)])


def test_extract_features_batches_and_features_roundtrip(tmp_path):
    """Batching does not change features; Features subset/save/load keep float64 rows."""

    class Tiny(torch.nn.Module):
        def forward(self, x):
            pool = x.mean(dim=(2, 3)).repeat(1, 4)
            return pool, pool[:, :5] * 2

    u8 = images(32, 32, n=7, seed=3)
    a = extract_features(Tiny(), u8, batch_size=3, progress=False)
    b = extract_features(Tiny(), list(u8), batch_size=7, progress=False)
    assert a.pool.dtype == np.float64 and a.pool.shape == (7, 12) and a.logits.shape == (7, 5)
    np.testing.assert_array_equal(a.pool, b.pool)
    a.save(tmp_path / "f.npz")
    c = Features.load(tmp_path / "f.npz")
    np.testing.assert_array_equal(c.subset([0, 0, 6]).logits, a.logits[[0, 0, 6]])
