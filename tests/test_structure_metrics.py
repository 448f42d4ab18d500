"""The structure-preservation metrics (NMI, MIND-SSC, NGF): their defining properties on phantom
spine slices rendered as MRI and as CT from one anatomy (the cross-modality case they exist for),
independent references, determinism, and `score_pairs`."""

import numpy as np
import pytest
from scipy import ndimage

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.volumes.windowing import CT_WINDOW, MRI_PERCENTILES, intensity_range, to_uint8
from medtrans.stages.metrics import mind, ngf, nmi
from medtrans.stages.metrics.pairs import (
    CHUNK,
    mean_over_pairs,
    pair_metrics,
    pair_values,
    pair_values_many,
    score_pairs,
)
from medtrans.stages.preprocess.phantom import spine

METRICS = ("nmi", "mind", "ngf")
OPTIMUM = {"nmi": 2.0, "mind": 0.0, "ngf": 1.0}
BETTER = {"nmi": 1, "mind": -1, "ngf": 1}  # +1: higher is better


def _u8(volume: np.ndarray, modality: str) -> np.ndarray:
    lo, hi = intensity_range(volume, modality, MRI_PERCENTILES, CT_WINDOW)
    return np.round(to_uint8(volume, lo, hi)).astype(np.uint8)


@pytest.fixture(scope="module")
def spines():
    """(MRI, CT): 3 sagittal 96 x 96 slices each, of the same two phantom patients' anatomy."""
    mri, ct = [], []
    for seed in (3, 4):
        r = np.random.default_rng(seed)
        anat = spine.anatomy(r, (4, 96, 96))
        mri.append(_u8(spine.render_mri(anat, r), "MR")[1:3])
        ct.append(_u8(spine.render_ct(anat, r), "CT")[1:3])
    return np.concatenate(mri), np.concatenate(ct)


def _value(metric: str, a: np.ndarray, b: np.ndarray) -> float:
    return score_pairs([metric], a, b)[metric]


def _elastic(images: np.ndarray, seed: int, amplitude: float = 3.0, smooth: float = 8.0) -> np.ndarray:
    """A smooth random displacement of up to about `amplitude` pixels (anatomy moved)."""
    r = np.random.default_rng(seed)
    out = []
    for img in images:
        field = [ndimage.gaussian_filter(r.standard_normal(img.shape), smooth) for _ in range(2)]
        field = [amplitude * f / np.abs(f).max() for f in field]
        yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]].astype(np.float64)
        coords = [yy + field[0], xx + field[1]]
        out.append(np.round(ndimage.map_coordinates(img.astype(np.float64), coords, order=1, mode="nearest")))
    return np.stack(out).astype(np.uint8)


def _shuffled(images: np.ndarray, seed: int) -> np.ndarray:
    r = np.random.default_rng(seed)
    return np.stack([r.permutation(img.ravel()).reshape(img.shape) for img in images])


def test_catalogue_declares_the_pair_metrics():
    assert pair_metrics(catalogue.names()) == METRICS == catalogue.using("pairs")
    for name in METRICS:
        spec = catalogue.get(name)
        assert spec.inputs == "pairs" and not spec.needs_weights and spec.rows() == [name]
        assert catalogue.direction(name) == BETTER[name]
    assert [catalogue.label(m) for m in METRICS] == ["NMI", "MIND-SSC", "NGF"]


@pytest.mark.parametrize("metric", METRICS)
def test_identical_images_give_the_optimum(spines, metric):
    mri, ct = spines
    for images in (mri, ct):
        values = pair_values([metric], images, images)[metric]
        assert values == pytest.approx(np.full(len(images), OPTIMUM[metric]), abs=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_intensity_inversion_and_monotone_remap_keep_structure(spines, metric):
    """An inversion and a gamma remap change every intensity but no anatomy: near the optimum,
    far better than a smooth 3-pixel warp (anatomy moved), itself better than shuffled pixels."""
    mri, _ = spines
    inverted = 255 - mri
    gamma = np.round(255 * (mri / 255.0) ** 0.5).astype(np.uint8)
    sign = BETTER[metric]
    inv, remap = _value(metric, mri, inverted), _value(metric, mri, gamma)
    warp, shuffled = _value(metric, mri, _elastic(mri, 0)), _value(metric, mri, _shuffled(mri, 0))
    assert abs(inv - OPTIMUM[metric]) < 0.01  # MIND and NGF exactly; NMI to its bin edges
    assert sign * (remap - warp) > 0.1 and sign * (warp - shuffled) > 0.05, (remap, warp, shuffled)
    if metric != "nmi":
        assert inv == pytest.approx(OPTIMUM[metric], abs=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_mri_vs_ct_of_one_anatomy_beats_moved_or_other_anatomy(spines, metric):
    """The use case: a faithful MRI -> CT translation keeps the anatomy of its source."""
    mri, ct = spines
    sign = BETTER[metric]
    same = _value(metric, mri, ct)
    swapped = _value(metric, mri, ct[::-1])  # each MRI slice against another slice's CT
    warped = _value(metric, mri, _elastic(ct, 1))
    assert sign * (same - swapped) > 0 and sign * (same - warped) > 0, (same, swapped, warped)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("modality", ["MR", "CT"])
def test_shift_by_k_pixels_degrades_monotonically(spines, metric, modality):
    """Source: the MRI slices' centre; other: the same crop of the MRI (or of the CT) k pixels
    to the right, k = 0..4: every step moves the value away from the optimum."""
    mri, ct = spines
    other = mri if modality == "MR" else ct
    crop = slice(12, 84)
    values = [_value(metric, mri[:, crop, crop], other[:, crop, 12 + k : 84 + k]) for k in range(5)]
    steps = BETTER[metric] * np.diff(values)
    assert (steps < 0).all(), values


@pytest.mark.parametrize("metric", METRICS)
def test_symmetric_and_deterministic(spines, metric):
    mri, ct = spines
    ab = pair_values([metric], mri, ct)[metric]
    ba = pair_values([metric], ct, mri)[metric]
    assert ab == pytest.approx(ba, rel=1e-12)
    again = pair_values([metric], mri, ct)[metric]
    alone = np.concatenate(
        [pair_values([metric], mri[i : i + 1], ct[i : i + 1])[metric] for i in range(len(mri))]
    )
    assert np.array_equal(ab, again) and np.array_equal(ab, alone)  # bit for bit, whatever the batch


def test_nmi_equals_scikit_image(spines):
    skimage_metrics = pytest.importorskip("skimage.metrics")
    mri, ct = spines
    gamma = np.round(255 * (mri / 255.0) ** 2).astype(np.uint8)
    for a, b in [
        (mri[0], ct[0]),
        (mri[1], ct[2]),
        (mri[2], 255 - mri[2]),
        (ct[3], gamma[3]),
        (mri[0], mri[0]),
    ]:
        want = skimage_metrics.normalized_mutual_information(a, b, bins=nmi.BINS)
        assert nmi.nmi(a, b) == pytest.approx(want, rel=1e-12)


def _mind_by_loops(img: np.ndarray, radius: int, dilation: int) -> np.ndarray:
    """The MIND-SSC definition pixel by pixel, with explicit border replication (slow)."""
    img = img.astype(np.float64)
    h, w = img.shape

    def at(y, x):
        return img[min(max(y, 0), h - 1), min(max(x, 0), w - 1)]

    def patch_distance(y, x, a, b):  # mean over the box of squared differences
        total = 0.0
        for py in range(-radius, radius + 1):
            for px in range(-radius, radius + 1):
                cy, cx = min(max(y + py, 0), h - 1), min(max(x + px, 0), w - 1)  # box padded too
                d = at(cy + a[0] * dilation, cx + a[1] * dilation) - at(
                    cy + b[0] * dilation, cx + b[1] * dilation
                )
                total += d * d
        return total / (2 * radius + 1) ** 2

    dist = np.array(
        [[[patch_distance(y, x, a, b) for x in range(w)] for y in range(h)] for a, b in mind.PAIRS]
    )
    dist -= dist.min(axis=0)
    var = dist.mean(axis=0)
    var = np.clip(var, 1e-3 * var.mean(), 1e3 * var.mean())
    return np.exp(-dist / var)


def test_mind_ssc_equals_the_definition_pixel_by_pixel(spines):
    mri, ct = spines
    assert mind.PAIRS == (((-1, 0), (0, -1)), ((-1, 0), (0, 1)), ((0, -1), (1, 0)), ((1, 0), (0, 1)))
    for img in (mri[0, 30:50, 30:52], ct[1, 40:56, 20:44]):
        want = _mind_by_loops(img, mind.RADIUS, mind.DILATION)
        assert mind.mind_ssc(img[None])[0] == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_ngf_equals_the_definition_pixel_by_pixel(spines):
    mri, ct = spines
    a, b = mri[0, 20:60, 20:60].astype(np.float64), ct[0, 20:60, 20:60].astype(np.float64)

    def fields(img):  # central differences inside, one-sided at the border
        gy, gx = np.zeros_like(img), np.zeros_like(img)
        h, w = img.shape
        for y in range(h):
            for x in range(w):
                y0, y1, x0, x1 = max(y - 1, 0), min(y + 1, h - 1), max(x - 1, 0), min(x + 1, w - 1)
                gy[y, x] = (img[y1, x] - img[y0, x]) / (y1 - y0)
                gx[y, x] = (img[y, x1] - img[y, x0]) / (x1 - x0)
        eta = np.mean(np.hypot(gy, gx))
        norm = np.sqrt(gy**2 + gx**2 + eta**2)
        return gy / norm, gx / norm

    (ay, ax), (by, bx) = fields(a), fields(b)
    s = np.mean((ay * by + ax * bx) ** 2)
    want = s / np.sqrt(np.mean((ay**2 + ax**2) ** 2) * np.mean((by**2 + bx**2) ** 2))
    assert ngf.ngf(a, b) == pytest.approx(want, rel=1e-12)


def test_constant_images_and_bad_input(spines):
    mri, _ = spines
    blank = np.zeros((2, 32, 32), np.uint8)
    values = pair_values(METRICS, blank, blank)
    assert np.isnan(values["nmi"]).all() and np.isnan(values["ngf"]).all()
    assert np.array_equal(values["mind"], [0.0, 0.0])  # every descriptor entry 1 on both sides
    collapsed = pair_values(["nmi"], mri[:2, :32, :32], blank)["nmi"]
    assert collapsed == pytest.approx([1.0, 1.0])  # a constant translation shares no information
    assert mean_over_pairs(np.array([1.5, np.nan, 1.7])) == pytest.approx(1.6)
    assert mean_over_pairs(np.array([1.5, np.nan, 1.7]), np.array([0, 0, 1])) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="undefined for every pair"):
        score_pairs(["ngf"], blank, blank)
    with pytest.raises(ValueError, match="not a pair metric; pair metrics: nmi, mind, ngf"):
        score_pairs(["fid"], blank, blank)
    with pytest.raises(ValueError, match=r"two \(N, H, W\) image stacks of one shape"):
        score_pairs(["mind"], blank, blank[:, :16])
    with pytest.raises(ValueError, match="NaN or inf"):
        score_pairs(["nmi"], blank.astype(float), np.full((2, 32, 32), np.nan))


def test_score_pairs_is_the_mean_of_the_pair_values(spines):
    mri, ct = spines
    per_pair = pair_values(METRICS, mri, ct)
    scores = score_pairs(METRICS, mri, ct)
    assert list(scores) == list(METRICS)
    for name in METRICS:
        assert scores[name] == float(per_pair[name].mean())
        assert per_pair[name].shape == (len(mri),) and per_pair[name].dtype == np.float64


def test_many_sets_against_one_source_equal_each_set_alone(spines):
    """The stage describes the source slices once for every translator (blocks of CHUNK images):
    the same values, bit for bit, as each set on its own and as each pair on its own."""
    mri, ct = spines
    r = np.random.default_rng(5)
    corners = r.integers(0, 48, size=(CHUNK + 8, 2))
    pick = r.integers(0, len(mri), size=len(corners))
    src = np.stack([mri[k, y : y + 48, x : x + 48] for k, (y, x) in zip(pick, corners, strict=True)])
    tra = np.stack([ct[k, y : y + 48, x : x + 48] for k, (y, x) in zip(pick, corners, strict=True)])
    many = pair_values_many(METRICS, src, {"ct": tra, "warped": _elastic(tra, 2), "self": src})
    for key, other in (("ct", tra), ("warped", _elastic(tra, 2))):
        alone = pair_values(METRICS, src, other)
        for name in METRICS:
            assert np.array_equal(many[key][name], alone[name]), (key, name)
            one = pair_values([name], src[CHUNK : CHUNK + 1], other[CHUNK : CHUNK + 1])[name]
            assert np.array_equal(one, alone[name][CHUNK : CHUNK + 1])
    for name in METRICS:
        assert many["self"][name] == pytest.approx(np.full(len(src), OPTIMUM[name]), abs=1e-12)
    with pytest.raises(ValueError, match="ct: expected two"):
        pair_values_many(["nmi"], src, {"ct": tra[:, :40]})
