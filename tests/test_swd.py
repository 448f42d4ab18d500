"""SWD (Karras et al.) in torch against the independent plain-NumPy reference (swd_reference.py)."""

import numpy as np
import pytest
import scipy.stats
import torch
from bench import swd_reference as ref
from metrics_helpers import phantoms
from scipy import ndimage

from medtrans.stages.metrics import swd

P = swd.SWDParams()


def _centres(seed: int, n: int, side: int, levels: int, params: swd.SWDParams = P):
    """The centres `describe` draws from `seed`, as NumPy arrays for the reference."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(levels):
        ys, xs = swd.draw_centres(n, side, side, params, gen)
        out.append((ys.numpy(), xs.numpy()))
        side = (side + 1) // 2
    return out


@pytest.fixture(scope="module")
def sets():
    real = phantoms(40, 1, size=64)
    fake = phantoms(40, 2, size=64, blobs=3, noise=0.03)
    return real, fake


def test_pyramid_equals_reference():
    x = np.random.default_rng(0).random((3, 2, 64, 64))
    ours = swd.laplacian_pyramid(torch.from_numpy(x), 3)
    theirs = ref.pyramid(x, 3)
    assert [tuple(o.shape) for o in ours] == [t.shape for t in theirs]
    for o, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(o.numpy(), t, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "shape, dtype",
    [((5, 1, 64, 64), torch.float32), ((4, 3, 50, 70), torch.float64), ((3, 1, 33, 47), torch.float32)],
)
def test_descriptors_do_not_depend_on_the_batch(shape, dtype):
    """Each image's pyramid is independent: any batch size gives the same descriptors, bit for bit."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=dtype) * 255
    one = swd.describe(x, P, 4, dtype=dtype, batch_size=1)
    whole = swd.describe(x, P, 4, dtype=dtype, batch_size=64)
    assert one.resolutions == whole.resolutions
    for a, b in zip(one.levels, whole.levels, strict=True):
        assert a.dtype == b.dtype == dtype and torch.equal(a, b)


def test_value_does_not_depend_on_torch_threads(sets):
    """SWD runs torch single-threaded, so the machine's thread count never changes a digit."""
    real, fake = sets[0][:8], sets[1][:8]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = swd.swd(real, fake, P, 5)
        torch.set_num_threads(2)
        two = swd.swd(real, fake, P, 5)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)
    assert one.per_level == two.per_level


def test_blockwise_distance_equals_whole_sorted_projections(sets):
    """Equal sizes: the distance taken block by block beside the sort equals the mean absolute
    difference of the whole sorted projections (float64), to rounding."""
    d_real = swd.describe(sets[0][:6], P, 1)
    d_fake = swd.describe(sets[1][:6], P, 2)
    ref_ = swd.SWDReference(d_real, P, 3)
    with swd._one_torch_thread():  # as SWD itself runs: a float32 reduction's order follows the threads
        fake = swd.sorted_projections(ref_._normalised(d_fake.levels), ref_.directions, P.channels)
    pairs = zip(ref_.sorted_real, fake, strict=True)
    whole = [1e3 * float((r.double() - f.double()).abs().mean()) for r, f in pairs]
    assert list(ref_.score(d_fake).per_level.values()) == pytest.approx(whole, rel=1e-12)
    for level in fake:
        assert torch.equal(level, level.sort(dim=-1).values)  # every row sorted


def test_one_pair_scored_as_a_stored_reference_would_be(sets):
    """`swd` makes the real set's sorted projections block by block beside the fake set's
    (`pair_distance`) instead of holding them whole (`SWDReference`): the same value, bit for bit."""
    from medtrans.shared.seeding import derive_seed

    real, fake = sets[0][:10], sets[1][:10]
    d_real = swd.describe(real, P, derive_seed(7, "swd", "real"))
    d_fake = swd.describe(fake, P, derive_seed(7, "swd", "fake"))
    dirs = swd.level_directions(d_real.resolutions, P, derive_seed(7, "swd", "directions"), 49, torch.float32)
    stored = swd.SWDReference(d_real, P, directions=dirs).score(d_fake)
    assert swd.swd(real, fake, P, seed=7).per_level == stored.per_level


def test_same_centres_and_directions_equal_reference(sets):
    real, fake = sets[0][:12], sets[1][:12]
    d_real = swd.describe(real, P, 11, dtype=torch.float64)
    d_fake = swd.describe(fake, P, 12, dtype=torch.float64)
    dirs = swd.level_directions(d_real.resolutions, P, 13, 49, torch.float64)
    ours = swd.SWDReference(d_real, P, directions=dirs, dtype=torch.float64).score(d_fake)
    theirs = ref.reference_swd(
        real, fake,
        centres_real=_centres(11, 12, 64, 3), centres_fake=_centres(12, 12, 64, 3),
        directions=[[d.numpy() for d in level] for level in dirs], dtype=np.float64,
    )  # fmt: skip
    assert list(ours.per_level) == [64, 32, 16] == list(theirs["per_level"])
    for res in ours.per_level:
        assert ours.per_level[res] == pytest.approx(theirs["per_level"][res], rel=1e-5)
    assert ours.average == pytest.approx(theirs["average"], rel=1e-5)


def test_independent_seeds_agree_within_3_percent(sets):
    real, fake = sets  # 40 images of 64 x 64: one seed varies by about 5%, 10 seeds by about 1.5%
    ours = np.mean([swd.swd(real, fake, P, seed=s).average for s in range(10)])
    theirs = np.mean(
        [ref.reference_swd(real, fake, rng=np.random.default_rng(1000 + s))["average"] for s in range(10)]
    )
    assert abs(ours - theirs) / theirs < 0.03


def test_identical_sets_with_shared_centres_give_exactly_zero(sets):
    real = sets[0]
    d = swd.describe(real, P, 5)
    result = swd.SWDReference(d, P, 6).score(d)
    assert all(v == 0.0 for v in result.per_level.values())
    # independently drawn centres never give 0, even for identical sets (documented)
    assert swd.swd(real, real, P, seed=5).average > 0


def test_grows_monotonically_with_blur_and_noise():
    real = phantoms(24, 1, size=32)
    blurred = [
        swd.swd(
            real, np.stack([ndimage.gaussian_filter(i.astype(float), s) for i in real]), P, seed=3
        ).average
        for s in (0.5, 1.0, 2.0, 3.0)
    ]
    assert np.all(np.diff(blurred) > 0), blurred
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(real.shape)
    noisy = [swd.swd(real, np.clip(real + a * noise, 0, 255), P, seed=3).average for a in (5, 15, 40, 100)]
    assert np.all(np.diff(noisy) > 0), noisy


def test_grayscale_replication_is_implicit_and_exact(sets):
    real, fake = sets[0][:8], sets[1][:8]
    gray = swd.swd(real, fake, P, seed=1, dtype=torch.float64)
    rgb = swd.swd(
        np.repeat(real[:, None], 3, 1), np.repeat(fake[:, None], 3, 1), P, seed=1, dtype=torch.float64
    )
    for res in gray.per_level:
        assert gray.per_level[res] == pytest.approx(rgb.per_level[res], rel=1e-10)
    one = swd.swd(real, fake, swd.SWDParams(channels=1), seed=1)
    assert one.average > 0 and one.average != pytest.approx(gray.average, rel=1e-3)


def test_float32_close_to_float64(sets):
    real, fake = sets[0][:8], sets[1][:8]
    a = swd.swd(real, fake, P, seed=2, dtype=torch.float32).average
    b = swd.swd(real, fake, P, seed=2, dtype=torch.float64).average
    assert a == pytest.approx(b, rel=1e-3)


def test_unequal_sizes_use_exact_quantile_distance():
    rng = np.random.default_rng(0)
    a, b = np.sort(rng.normal(size=(3, 7))), np.sort(rng.normal(1, 2, size=(3, 11)))
    got = float(swd.wasserstein_1d(torch.from_numpy(a), torch.from_numpy(b)))
    want = np.mean([scipy.stats.wasserstein_distance(a[i], b[i]) for i in range(3)])
    assert got == pytest.approx(want, rel=1e-12)
    same = np.sort(rng.normal(size=(2, 9)))
    other = np.sort(rng.normal(size=(2, 9)))
    assert float(swd.wasserstein_1d(torch.from_numpy(same), torch.from_numpy(other))) == pytest.approx(
        np.abs(same - other).mean(), rel=1e-12
    )


def test_sets_of_different_sizes(sets):
    value = swd.swd(sets[0][:10], sets[1][:7], P, seed=0)
    assert np.isfinite(value.average) and value.average > 0


def test_deterministic(sets):
    a = swd.swd(sets[0][:6], sets[1][:6], P, seed=4)
    b = swd.swd(sets[0][:6], sets[1][:6], P, seed=4)
    assert a.per_level == b.per_level


def test_bootstrap_index_equals_materialised_resample(sets):
    real, fake = sets[0][:10], sets[1][:10]
    idx = np.random.default_rng(0).integers(0, 10, 10)
    d_real, d_fake = swd.describe(real, P, 1), swd.describe(fake, P, 2)
    scorer = swd.SWDReference(d_real, P, 3)
    picked = swd.SWDDescriptors(d_fake.resolutions, [lvl[idx] for lvl in d_fake.levels], d_fake.channels)
    assert scorer.score(d_fake, index=idx).per_level == scorer.score(picked).per_level


@pytest.mark.parametrize(
    "images, message",
    [
        (np.full((4, 32, 32), 7, np.uint8), "constant"),
        (np.zeros((1, 32, 32), np.uint8) + np.arange(32, dtype=np.uint8), "at least 2"),
        (np.random.default_rng(0).random((4, 8, 8)), "smaller than"),
        (np.full((4, 32, 32), np.nan), "NaN"),
    ],
)
def test_degenerate_inputs_raise(sets, images, message):
    with pytest.raises(swd.SWDInputError, match=message):
        swd.swd(images, images, P, seed=0)


def test_different_image_sizes_between_sets_raise(sets):
    with pytest.raises(swd.SWDInputError, match="same image size"):
        swd.swd(sets[0][:4], sets[1][:4, :32, :32], P, seed=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(sets):
    cpu = swd.swd(sets[0][:8], sets[1][:8], P, seed=0, dtype=torch.float64)
    gpu = swd.swd(sets[0][:8], sets[1][:8], P, seed=0, dtype=torch.float64, device="cuda")
    for res in cpu.per_level:
        assert gpu.per_level[res] == pytest.approx(cpu.per_level[res], rel=1e-6)
