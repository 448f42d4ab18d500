"""Volumes to kept 2D slices: the shared windowing policy plus preprocess's anatomy-skip rule."""

import numpy as np

from medtrans.shared.volumes.windowing import (
    PLANE_AXIS,
    intensity_range,
    is_constant,
    resize_image,
    resize_mask,
    to_display,
    to_uint8,
)

# position, image uint8, label mask uint8 or None, foreground 0/255 uint8 or None, structures
Slice = tuple[int, np.ndarray, np.ndarray | None, np.ndarray | None, tuple[str, ...]]


def keeps_anatomy(mask: np.ndarray | None, scaled: np.ndarray, rule: str, min_fraction: float) -> bool:
    """The skip rule: 'mask' keeps a slice whose labels cover at least `min_fraction` of it
    (without a mask: whose foreground, above 5% of the range, does); 'none' keeps all."""
    if rule == "none":
        return True
    if mask is not None:
        return float((mask > 0).mean()) >= min_fraction
    return float((scaled > 0.05 * 255.0).mean()) >= min_fraction


def _structures(mask: np.ndarray | None, structures: tuple[str, ...]) -> tuple[str, ...]:
    if mask is None:
        return ()
    return tuple(structures[k - 1] for k in np.unique(mask) if 0 < k <= len(structures))


def slice_volume(
    image: np.ndarray, label: np.ndarray | None, modality: str, s, foreground: np.ndarray | None = None
) -> tuple[list[Slice], int]:
    """The kept slices (position, image uint8, mask uint8 or None, foreground or None,
    structures) of a canonical volume, and how many were constant once windowed (skipped, as
    compare skips them). The foreground volume (bool) is cut and resized like the mask."""
    lo, hi = intensity_range(image, modality, s.mri_percentiles, s.ct_window)
    kept, constant = [], 0
    for pos in range(image.shape[PLANE_AXIS[s.plane]]):
        scaled = to_uint8(to_display(image, s.plane, pos), lo, hi)
        mask2d = to_display(label, s.plane, pos) if label is not None else None
        if not keeps_anatomy(mask2d, scaled, s.skip_rule, s.min_fraction):
            continue
        img = resize_image(scaled, s.image_size)
        if is_constant(img):
            constant += 1
            continue
        mask = resize_mask(mask2d, s.image_size) if mask2d is not None else None
        fg = None
        if foreground is not None:
            fg = resize_mask(to_display(foreground, s.plane, pos).astype(np.uint8), s.image_size) * 255
        kept.append((pos, img, mask, fg, _structures(mask, s.structures)))
    return kept, constant
