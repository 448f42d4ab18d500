"""Automatic foreground masks (the body, not the air around it), computed from each image.

MaskGAN (Phan et al. 2023) derives them in its preprocessing by thresholding, opening,
hole filling and keeping the largest connected component; here the same steps run per 2D
slice on the [0,1] intensity, so they need no labels and work for any modality.
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
