"""The windowing and slicing policy: how a canonical (RAS+) volume becomes 8-bit 2-D slices.

Slices are cut along a plane in the radiological display orientation; intensities map to
[0, 255] with the volume's own percentiles (MRI, as the paper scales each scan) or a fixed
Hounsfield window (CT); images are resized antialiased-linear and rounded; masks nearest
neighbour. A slice that is constant once windowed carries nothing to learn or measure and is
skipped (`is_constant`). Pure NumPy/scikit-image: no file access."""

import numpy as np
from skimage.transform import resize

PLANE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}
PLANES = ("axial", "sagittal", "coronal")
MRI_PERCENTILES = (0.5, 99.5)
CT_WINDOW = (400.0, 1800.0)  # level, width (HU)
CT_MINIMUM = -500.0  # a volume reaching this is taken as CT when its modality is unknown


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


def guess_modality(values: np.ndarray, tag: str | None = None) -> str:
    """CT or MR for windowing: the DICOM Modality tag when there is one, else CT when the
    values reach air in Hounsfield units."""
    if tag:
        return "CT" if tag.upper() == "CT" else "MR"
    return "CT" if float(values.min()) <= CT_MINIMUM else "MR"


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


def resize_image(image: np.ndarray, size: int | None) -> np.ndarray:
    """Antialiased linear resize of a [0,255] image to size x size (None: keep the size),
    rounded to uint8."""
    if size is not None and image.shape != (size, size):
        image = resize(
            image.astype(np.float32), (size, size), order=1, anti_aliasing=True, preserve_range=True,
            mode="edge",
        )  # fmt: skip
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of a label map (labels stay labels)."""
    if mask.shape != (size, size):
        mask = resize(mask, (size, size), order=0, anti_aliasing=False, preserve_range=True, mode="edge")
    return mask.astype(np.uint8)


def is_constant(image: np.ndarray) -> bool:
    """A windowed slice with one value everywhere (blank, or all clipped to 0 or 255)."""
    return bool(image.size) and float(image.max()) == float(image.min())
