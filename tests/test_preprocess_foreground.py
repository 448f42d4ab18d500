"""MaskGAN's foreground masks, computed per volume in preprocess as its reference does
(HieuPhan33/MaskGAN preprocess/main.py `get_3d_mask`), shipped with the slices and read by the
translators instead of the per-slice computation."""

import numpy as np
import pandas as pd
import pytest

from medtrans.shared.config.preprocess import ForegroundConfig
from medtrans.shared.dataset import COLUMNS, FOREGROUND, OPTIONAL, SliceIndex
from medtrans.shared.imageio import read_png, write_png
from medtrans.shared.manifest import read_manifest
from medtrans.stages.preprocess.foreground import scaled_8bit, volume_foreground
from medtrans.stages.translate.data import load_split
from medtrans.stages.translate.foreground import foreground_mask

CFG = ForegroundConfig()
ONE_MM = np.eye(4)


def _skimage_reference(data: np.ndarray, modality: str) -> np.ndarray:
    """get_3d_mask with scikit-image, as the reference calls it (1 mm grid)."""
    from skimage import measure, morphology

    th, width = (50, 2) if modality == "CT" else (10, 10)
    mask = scaled_8bit(data, modality, CFG) > th
    mask = morphology.binary_opening(mask)
    # remove_small_holes(area_threshold=w**3) before scikit-image 0.26: holes < w**3 filled
    mask = morphology.remove_small_holes(mask, max_size=width**3 - 1)
    labels = measure.label(mask)
    return labels == np.argmax(np.bincount(labels.flat)[1:]) + 1


def _blobs(seed: int, shape=(24, 40, 40)) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    vol = ndimage.gaussian_filter(rng.normal(0, 1, shape), 2.0)
    return np.clip(vol * 8000, 0, None).astype(np.float32)


@pytest.mark.filterwarnings("ignore:`binary_opening` is deprecated:FutureWarning")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_volume_foreground_matches_the_reference_pipeline(seed):
    data = _blobs(seed)
    ours = volume_foreground(data, ONE_MM, "MR", CFG)
    assert ours.any() and not ours.all()
    assert np.array_equal(ours, _skimage_reference(data, "MR"))
    ct = data * 3 - 1000
    assert np.array_equal(volume_foreground(ct, ONE_MM, "CT", CFG), _skimage_reference(ct, "CT"))


def test_3d_component_and_hole_limit_differ_from_the_per_slice_masks():
    """A body through every slice beside a 3-slice plate that is the largest object in its
    slices: per slice, those slices keep the plate; per volume the body wins. A 500-voxel
    cavity is filled (MRI limit 10^3 voxels of 1 mm^3), a 2,048-voxel one is not."""
    vol = np.zeros((20, 64, 64), np.float32)
    vol[:, 4:30, 4:30] = 1000.0  # body: 26 x 26 in every slice
    vol[9:12, 34:62, 34:62] = 1000.0  # plate: 28 x 28 in slices 9-11 only
    vol[2:7, 8:18, 8:18] = 0.0  # 500-voxel cavity
    vol[10:18, 9:25, 9:25] = 0.0  # 2,048-voxel cavity
    fg = volume_foreground(vol, ONE_MM, "MR", CFG)
    assert not fg[10, 40, 40] and fg[10, 5, 5] and fg[8, 12, 12]  # the body, not the plate
    assert fg[4, 12, 12]  # small cavity filled
    assert not fg[14, 15, 20]  # large cavity kept open
    per_slice = foreground_mask(np.where(vol[10] > 0, 255, 0).astype(np.uint8), 10 / 255)
    assert per_slice[40, 40] and not per_slice[5, 5]  # the per-slice route keeps the plate
    small_hole = foreground_mask(np.where(vol[4] > 0, 255, 0).astype(np.uint8), 10 / 255)
    assert small_hole[12, 12]  # per slice every hole is filled, whatever its size
    assert foreground_mask(np.where(vol[14] > 0, 255, 0).astype(np.uint8), 10 / 255)[15, 20]


def test_hole_limit_is_in_mm3():
    """The reference's grid is resampled to 1 mm: at 2 mm voxels, 1000 mm^3 is 125 voxels."""
    vol = np.full((16, 24, 24), 1000.0, np.float32)
    vol[6:11, 8:13, 8:13] = 0.0  # 125 voxels = 1000 mm^3 at 2 mm: not under the limit
    assert not volume_foreground(vol, np.diag([2.0, 2.0, 2.0, 1.0]), "MR", CFG)[8, 10, 10]
    assert volume_foreground(vol, ONE_MM, "MR", CFG)[8, 10, 10]  # 125 mm^3 at 1 mm: filled


@pytest.mark.parametrize("task", ["breast", "spine"])
def test_preprocess_ships_volume_foreground_with_every_slice(smoke_preprocessed, smoke_study, task):
    index = SliceIndex.for_task(smoke_preprocessed, task)
    size = smoke_study.preprocess.image_size
    assert (index.table[FOREGROUND] != "").all()
    outputs = {o.path for o in read_manifest(smoke_preprocessed.preprocess(task)).outputs}
    for rel in index.table[FOREGROUND]:
        assert rel in outputs
        fg = read_png(index.path(rel), size)
        assert set(np.unique(fg)) <= {0, 255} and fg.any()


def _index(tmp_path, with_fg: bool) -> SliceIndex:
    rows = []
    for k in range(2):
        sid = f"p{k:010d}_a_000"
        img = np.zeros((32, 32), np.uint8)
        img[4:28, 4:28] = 200
        write_png(tmp_path / "images" / f"{sid}.png", img)
        fg = np.zeros((32, 32), np.uint8)
        fg[:, :16] = 255  # deliberately unlike what the per-slice route finds
        write_png(tmp_path / FOREGROUND / f"{sid}.png", fg)
        rows.append(
            {
                "slice_id": sid,
                "patient": f"p{k:010d}",
                "domain": "a",
                "role": "source",
                "split": "test",
                "position": 0,
                "image": f"images/{sid}.png",
                "mask": "",
                "structures": "",
                FOREGROUND: f"{FOREGROUND}/{sid}.png" if with_fg else "",
            }  # fmt: skip
        )
    pd.DataFrame(rows, columns=[*COLUMNS, *OPTIONAL]).to_csv(tmp_path / "index.csv", index=False)
    return SliceIndex.load(tmp_path)


def test_translators_read_the_shipped_foreground(tmp_path):
    split = load_split(_index(tmp_path, True), "source", "test", 32, n_classes=2)
    assert (split.fg[:, :, :16] == 1).all() and (split.fg[:, :, 16:] == 0).all()


def test_per_slice_route_only_without_shipped_masks(tmp_path):
    split = load_split(_index(tmp_path, False), "source", "test", 32, n_classes=2, fg_threshold=10 / 255)
    img = read_png(tmp_path / "images" / "p0000000000_a_000.png", 32)
    assert np.array_equal(split.fg[0], foreground_mask(img, 10 / 255).astype(np.float32))
