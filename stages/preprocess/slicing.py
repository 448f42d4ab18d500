"""Volumes to 2D slices: plane, anatomy-skip rule, intensity to [0,255], resize (pure NumPy)."""

import numpy as np
from skimage.transform import resize

PLANE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}


def to_display(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """One slice of a canonical (RAS+) volume in the radiological display orientation:
    axial and coronal with the patient's right on the image's left, anterior (axial) or
    superior (coronal, sagittal) at the top, sagittal with anterior on the left."""
    if plane == "axial":
        return volume[::-1, ::-1, index].T
    if plane == "sagittal":
        return volume[index, ::-1, ::-1].T
    if plane == "coronal":
        return volume[::-1, index, ::-1].T
    raise ValueError(f"unknown plane {plane!r}")


def intensity_range(
    volume: np.ndarray, modality: str, percentiles: tuple[float, float], ct_window: tuple[float, float]
) -> tuple[float, float]:
    """MRI: the volume's own percentiles (per volume, as the paper scales each scan);
    CT: a fixed Hounsfield window (level, width)."""
    if modality == "CT":
        level, width = ct_window
        return level - width / 2.0, level + width / 2.0
    lo, hi = np.percentile(volume, percentiles)
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def to_uint8(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear map of [lo, hi] to [0, 255] with clipping, as float (rounded after resizing)."""
    return np.clip((image.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0) * 255.0


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Antialiased linear resize of a [0,255] float image to size x size, rounded to uint8."""
    if image.shape != (size, size):
        image = resize(image, (size, size), order=1, anti_aliasing=True, preserve_range=True, mode="edge")
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a label map (labels stay labels)."""
    if mask.shape != (size, size):
        mask = resize(mask, (size, size), order=0, anti_aliasing=False, preserve_range=True, mode="edge")
    return mask.astype(np.uint8)


def keeps_anatomy(mask: np.ndarray | None, scaled: np.ndarray, rule: str, min_fraction: float) -> bool:
    """The skip rule: 'mask' keeps a slice whose labels cover at least `min_fraction` of it
    (without a mask: whose foreground, above 5% of the range, does); 'none' keeps all."""
    if rule == "none":
        return True
    if mask is not None:
        return float((mask > 0).mean()) >= min_fraction
    return float((scaled > 0.05 * 255.0).mean()) >= min_fraction
