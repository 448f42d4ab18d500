"""Anatomy perturbations: the anatomy changes and the mask is changed to match.

Each takes a float32 image in [0, 1] (H, W), its label mask (H, W uint8, 0 background, k the
k-th structure), a severity t in (0, 1] and a seeded NumPy generator, and returns the new
image and mask. Warps move image and mask together (bilinear for the image, nearest for the
mask); the structure edits pick one structure present in the slice (seeded) and erase, move or
copy it, filling what it leaves with the texture around it. A slice without any structure is
returned unchanged by the structure edits (there is nothing to edit).
"""

from __future__ import annotations

import math

import numpy as np
from monai.transforms import Affined, Rand2DElasticd
from scipy import ndimage
from skimage.restoration import inpaint_biharmonic

KEYS = ("image", "mask")
RING = 2  # pixels of surroundings whose texture fills an erased region


def _warp(transform, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = transform({"image": image[None].astype(np.float32), "mask": mask[None].astype(np.float32)})
    return np.asarray(out["image"])[0], np.rint(np.asarray(out["mask"])[0]).astype(np.uint8)


def elastic(image: np.ndarray, mask: np.ndarray, t: float, rng: np.random.Generator):
    """A smooth random displacement field on a grid of 1/8 of the side, of magnitude 3 t grid units."""
    spacing = max(2, image.shape[0] // 8)
    warp = Rand2DElasticd(
        keys=KEYS, spacing=(spacing, spacing), magnitude_range=(3.0 * t, 3.0 * t), prob=1.0,
        mode=("bilinear", "nearest"), padding_mode="zeros",
    )  # fmt: skip
    warp.set_random_state(seed=int(rng.integers(0, 2**31 - 1)))
    return _warp(warp, image, mask)


def affine(image: np.ndarray, mask: np.ndarray, t: float, rng: np.random.Generator):
    """Rotation 20 t degrees, scale 1 +- 0.2 t, shift 0.1 t of the side; signs and direction seeded."""
    angle = float(math.radians(20.0 * t) * rng.choice([-1.0, 1.0]))
    scale = float(1.0 + 0.2 * t * rng.choice([-1.0, 1.0]))
    theta = float(rng.uniform(0, 2 * math.pi))
    shift = 0.1 * t * image.shape[0]
    warp = Affined(
        keys=KEYS, rotate_params=angle, scale_params=(scale, scale),
        translate_params=(shift * math.cos(theta), shift * math.sin(theta)),
        mode=("bilinear", "nearest"), padding_mode="zeros",
    )  # fmt: skip
    return _warp(warp, image, mask)


def _structure(mask: np.ndarray, rng: np.random.Generator) -> int | None:
    present = [int(v) for v in np.unique(mask) if v]
    return int(rng.choice(present)) if present else None


def _nearest(region: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """The `fraction` of the region's pixels closest to one of its pixels (seeded): a graded part."""
    ys, xs = np.nonzero(region)
    k = int(rng.integers(len(ys)))
    order = np.argsort((ys - ys[k]) ** 2 + (xs - xs[k]) ** 2, kind="stable")
    keep = order[: max(1, math.ceil(fraction * len(ys)))]
    part = np.zeros_like(region)
    part[ys[keep], xs[keep]] = True
    return part


def fill(image: np.ndarray, mask: np.ndarray, hole: np.ndarray, label: int, rng: np.random.Generator):
    """Erase `hole`: the mask takes the commonest other label of the ring around it, the image the
    biharmonic inpainting of the hole plus noise of the ring's fine texture (its high-pass std)."""
    ring = ndimage.binary_dilation(hole, iterations=RING) & ~hole
    around = mask[ring & (mask != label)]
    new_label = int(np.bincount(around).argmax()) if around.size else 0
    out_mask = mask.copy()
    out_mask[hole] = new_label
    smooth = inpaint_biharmonic(image.astype(np.float64), hole)
    fine = image - ndimage.gaussian_filter(image, 1.0)
    std = float(fine[ring].std()) if ring.any() else 0.0
    out = image.copy()
    out[hole] = smooth[hole] + rng.normal(0.0, std, int(hole.sum()))
    return out.astype(np.float32), out_mask


def _paste(image, mask, part: np.ndarray, label: int, offset: tuple[int, int], src_image):
    """Copy the pixels of `part` (of `src_image`) to `part + offset`, labelled `label` (clipped)."""
    ys, xs = np.nonzero(part)
    ty, tx = ys + offset[0], xs + offset[1]
    inside = (ty >= 0) & (ty < image.shape[0]) & (tx >= 0) & (tx < image.shape[1])
    image, mask = image.copy(), mask.copy()
    image[ty[inside], tx[inside]] = src_image[ys[inside], xs[inside]]
    mask[ty[inside], tx[inside]] = label
    return image, mask


def _offset(length: float, rng: np.random.Generator) -> tuple[int, int]:
    theta = float(rng.uniform(0, 2 * math.pi))
    return int(round(length * math.sin(theta))), int(round(length * math.cos(theta)))


def erase(image: np.ndarray, mask: np.ndarray, t: float, rng: np.random.Generator):
    """A fraction t of one structure (the part nearest a seeded pixel of it) erased and filled."""
    label = _structure(mask, rng)
    if label is None:
        return image.copy(), mask.copy()
    return fill(image, mask, _nearest(mask == label, t, rng), label, rng)


def shift(image: np.ndarray, mask: np.ndarray, t: float, rng: np.random.Generator):
    """One structure moved by t / 4 of the side in a seeded direction; its old place filled."""
    label = _structure(mask, rng)
    if label is None:
        return image.copy(), mask.copy()
    region = mask == label
    offset = _offset(0.25 * t * image.shape[0], rng)
    filled, filled_mask = fill(image, mask, region, label, rng)
    return _paste(filled, filled_mask, region, label, offset, image)


def duplicate(image: np.ndarray, mask: np.ndarray, t: float, rng: np.random.Generator):
    """A fraction t of one structure copied a quarter of the side away (seeded direction)."""
    label = _structure(mask, rng)
    if label is None:
        return image.copy(), mask.copy()
    part = _nearest(mask == label, t, rng)
    offset = _offset(0.25 * image.shape[0], rng)
    return _paste(image, mask, part, label, offset, image)


ANATOMY = {f.__name__: f for f in (elastic, affine, erase, shift, duplicate)}
