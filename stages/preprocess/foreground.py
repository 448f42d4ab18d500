"""MaskGAN's foreground masks (the body, not the air around it), computed per volume as its
reference preprocessing does (HieuPhan33/MaskGAN `preprocess/main.py`, `get_3d_mask`), so the
translator's mask loss sees the masks its authors trained with. Pure NumPy/SciPy."""

import numpy as np
from scipy import ndimage

from medtrans.shared.config.preprocess import ForegroundConfig

CROSS = ndimage.generate_binary_structure(3, 1)  # scikit-image's default footprint: radius 1
FULL = ndimage.generate_binary_structure(3, 3)  # scikit-image's `label` default: full connectivity


def scaled_8bit(data: np.ndarray, modality: str, cfg: ForegroundConfig) -> np.ndarray:
    """The reference's uint8 volume: MRI clipped to [0, max] over max; CT clipped to ct_range;
    255 x that, truncated (np.uint8)."""
    if modality == "CT":
        lo, hi = cfg.ct_range
    else:
        lo, hi = 0.0, float(data.max())
    if hi <= lo:
        return np.zeros(data.shape, np.uint8)
    unit = (np.clip(data.astype(np.float64), lo, hi) - lo) / (hi - lo)
    return (255.0 * unit).astype(np.uint8)


def fill_small_holes(mask: np.ndarray, max_voxels: float) -> np.ndarray:
    """Background components (6-connected) of fewer than `max_voxels` voxels become foreground
    (scikit-image `remove_small_holes(area_threshold=...)` before 0.26)."""
    labels, n = ndimage.label(~mask, structure=CROSS)
    if n == 0:
        return mask.copy()
    sizes = np.bincount(labels.ravel())
    small = sizes < max_voxels
    small[0] = False  # label 0 is the foreground itself
    return mask | small[labels]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component (empty when there is none)."""
    labels, n = ndimage.label(mask, structure=FULL)
    if n == 0:
        return np.zeros(mask.shape, bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def voxel_mm3(affine: np.ndarray) -> float:
    return float(abs(np.linalg.det(np.asarray(affine, float)[:3, :3]))) or 1.0


def volume_foreground(
    data: np.ndarray, affine: np.ndarray, modality: str, cfg: ForegroundConfig
) -> np.ndarray:
    """bool foreground of a 3-D volume: threshold, opening, small holes filled, largest
    component. The hole limit is width^3 mm^3 (the reference's grid is resampled to 1 mm),
    in voxels of this volume's own spacing."""
    if data.ndim != 3:
        raise ValueError(f"expected a 3-D volume, got shape {data.shape}")
    threshold, width = (
        (cfg.ct_threshold, cfg.ct_hole_width) if modality == "CT" else (cfg.mr_threshold, cfg.mr_hole_width)
    )
    mask = scaled_8bit(data, modality, cfg) > threshold
    # scikit-image's binary_opening: the erosion treats outside the volume as foreground
    mask = ndimage.binary_erosion(mask, CROSS, border_value=1)
    mask = ndimage.binary_dilation(mask, CROSS, border_value=0)
    mask = fill_small_holes(mask, round(width**3 / voxel_mm3(affine), 6))  # rounded: det() is inexact
    return largest_component(mask)
