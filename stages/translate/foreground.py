"""The fallback foreground masks, per 2D slice, for slices shipped without one.

Preprocess computes MaskGAN's masks per volume, as its reference preprocessing does
(stages/preprocess/foreground.py), and ships them with the slices; only an index written
without them (made by hand, or by another tool) gets these: the same steps (threshold,
opening, hole filling, largest component) on one 8-bit slice.
"""

import numpy as np
from scipy import ndimage


def disk(radius: int) -> np.ndarray:
    """A boolean disk structuring element of the given radius."""
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (yy * yy + xx * xx) <= radius * radius


def foreground_mask(image: np.ndarray, threshold: float = 0.1, radius: int | None = None) -> np.ndarray:
    """uint8 image [0,255] (H,W) -> bool foreground mask (H,W).

    threshold: fraction of full scale; radius of the opening: 1 pixel per 64 of image side
    (at least 1) unless given. An image with nothing above threshold has no foreground.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {image.shape}")
    if radius is None:
        radius = max(1, image.shape[0] // 64)
    mask = image.astype(np.float32) / 255.0 > threshold
    mask = ndimage.binary_opening(mask, structure=disk(radius))
    mask = ndimage.binary_fill_holes(mask)
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))
