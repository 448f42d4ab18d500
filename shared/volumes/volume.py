"""A scan on a voxel grid, and the checks every reader applies to it."""

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from medtrans.shared.volumes.errors import VolumeError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Volume:
    """A scan: data indexed (i, j, k), `affine` maps indices to RAS mm."""

    data: np.ndarray
    affine: np.ndarray

    def canonical(self) -> "Volume":
        """The same scan reordered/flipped to the closest RAS+ orientation."""
        img = nib.Nifti1Image(self.data, self.affine)
        can = nib.as_closest_canonical(img)
        return Volume(np.asarray(can.dataobj), can.affine)


def require_finite(path: Path | str, data: np.ndarray, what: str = "voxels") -> None:
    """Refuse NaN or infinite values: no windowing or metric is defined on them."""
    bad = int((~np.isfinite(data)).sum())
    if bad:
        raise VolumeError(path, f"{bad} NaN or infinite {what}")
