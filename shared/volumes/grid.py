"""Masks onto image grids (nearest neighbour), for label maps stored on their own grid."""

from pathlib import Path

import numpy as np
from scipy import ndimage

from medtrans.shared.volumes.errors import VolumeError
from medtrans.shared.volumes.volume import Volume


def resample_nearest(mask: Volume, image: Volume, path: Path | str, tol: float = 0.5) -> np.ndarray:
    """`mask` on the image grid, nearest neighbour. Both canonical. A mask whose field of
    view does not cover the image's (other shape or geometry) is a `VolumeError`."""
    if mask.data.shape == image.data.shape and np.allclose(mask.affine, image.affine, atol=1e-3):
        return mask.data
    to_mask = np.linalg.inv(mask.affine) @ image.affine
    corners = np.array(
        [
            [i, j, k, 1]
            for i in (0, image.data.shape[0] - 1)
            for j in (0, image.data.shape[1] - 1)
            for k in (0, image.data.shape[2] - 1)
        ],
        float,
    )
    idx = (to_mask @ corners.T)[:3].T
    hi = np.array(mask.data.shape) - 1
    if (idx < -tol).any() or (idx > hi + tol).any():
        raise VolumeError(
            path,
            f"mask grid {tuple(mask.data.shape)} does not match image grid "
            f"{tuple(image.data.shape)} (geometry mismatch)",
        )
    return ndimage.affine_transform(
        mask.data,
        to_mask[:3, :3],
        offset=to_mask[:3, 3],
        output_shape=image.data.shape,
        order=0,
        mode="nearest",
    )
