"""Every calibration perturbation applied to a whole image set at one severity, seeded per slice.

Severity s of S (1..S) has strength t = s / S: the strongest (t = 1) is what the perturbation
catalogue (`medtrans.shared.catalogue.perturbations`) describes, the lowest is the mildest step
towards it. Slice i of the set gets its own generator from (seed, perturbation, i), so a set is
the same whatever else runs. The severity is deliberately not part of that seed: every severity
of one slice draws the same noise, directions, positions and times, so two severities differ
only in strength and a response curve is a clean dose-response rather than a new random draw
per step (the seed is the unit's, derived from the study seed and the task).
"""

from __future__ import annotations

import numpy as np

from medtrans.shared.catalogue import perturbations as catalogue
from medtrans.shared.seeding import rng
from medtrans.stages.calibrate.anatomy import ANATOMY
from medtrans.stages.calibrate.appearance import APPEARANCE

if set(APPEARANCE) | set(ANATOMY) != set(catalogue.names()):
    raise RuntimeError(f"{__file__}: the perturbations implemented differ from {catalogue.__file__}")
for _name in catalogue.names():
    if (_name in ANATOMY) != (catalogue.family(_name) == "anatomy"):
        raise RuntimeError(f"{__file__}: {_name} is implemented in the other family than it is declared")

NEEDS_MASK = ("erase", "shift", "duplicate")  # edits of a structure: nothing to edit without a mask


def strength(severity: int, severities: int) -> float:
    if not 1 <= severity <= severities:
        raise ValueError(f"severity {severity} outside 1..{severities}")
    return severity / severities


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(image, np.float64) * 255.0), 0, 255).astype(np.uint8)


def perturb_set(
    images: np.ndarray, masks: np.ndarray | None, name: str, severity: int, severities: int, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, H, W) uint8 images (and label masks, or None) perturbed by `name` at `severity`.
    Appearance perturbations return the masks unchanged; anatomy ones return new masks."""
    t = strength(severity, severities)
    if name in NEEDS_MASK and masks is None:
        raise ValueError(f"perturbation {name!r} edits a structure and needs masks (--masks)")
    out_images, out_masks = [], []
    for i, image in enumerate(images):
        g = rng(seed, name, i)
        x = image.astype(np.float32) / 255.0
        if name in APPEARANCE:
            out_images.append(to_uint8(APPEARANCE[name](x, t, g)))
            continue
        mask = masks[i] if masks is not None else np.zeros(image.shape, np.uint8)
        y, m = ANATOMY[name](x, mask, t, g)
        out_images.append(to_uint8(y))
        out_masks.append(m)
    new_masks = masks if name in APPEARANCE or masks is None else np.stack(out_masks)
    return np.stack(out_images), new_masks
