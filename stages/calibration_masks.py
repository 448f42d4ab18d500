"""Calibration of any folder of real images (`medtrans calibrate REAL`): the images through the
shared readers (as `medtrans compare` reads them), label masks from a second folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medtrans.shared.volumes.raster import is_raster, read_raster
from medtrans.shared.volumes.windowing import resize_mask
from medtrans.stages.metrics.images import FolderError, FolderImages


def _mask_file(masks: Path, name: str) -> Path | None:
    """The mask of image `name` (its path under REAL): the same path, or the same stem with any
    raster extension, under MASKS."""
    rel = Path(name)
    exact = masks / rel
    if exact.is_file():
        return exact
    candidates = sorted(p for p in (masks / rel.parent).glob(f"{rel.stem}.*") if is_raster(p))
    return candidates[0] if candidates else None


def read_masks(masks: Path, images: FolderImages, size: int | None) -> np.ndarray:
    """(N, H, W) uint8 label maps in the images' order; one FolderError listing every problem."""
    if not masks.is_dir():
        raise FolderError(f"{masks}: not a folder (--masks: label images named like the images)")
    out, problems = [], []
    for name, image in zip(images.names, images.images, strict=True):
        if "#" in name:
            problems.append(f"{name}: a volume slice; --masks takes 2-D label images (slice volumes with "
                            "`medtrans preprocess`)")  # fmt: skip
            continue
        path = _mask_file(masks, name)
        if path is None:
            problems.append(f"{name}: no mask {masks / name} (same path or stem, any image extension)")
            continue
        try:
            arr = np.asarray(read_raster(path)[0])
        except (OSError, ValueError) as err:
            problems.append(f"{path}: unreadable ({err})")
            continue
        if arr.ndim != 2 or arr.max(initial=0) > 255 or arr.min(initial=0) < 0 or np.any(arr != np.rint(arr)):
            problems.append(f"{path}: not a 2-D label image with values 0..255")
            continue
        arr = arr.astype(np.uint8)
        if size is not None and arr.shape != (size, size):
            arr = resize_mask(arr, size)
        if arr.shape != image.shape:
            problems.append(
                f"{path}: {arr.shape[1]}x{arr.shape[0]} but its image is {image.shape[1]}x{image.shape[0]}"
            )
            continue
        out.append(arr)
    if problems:
        raise FolderError(f"{masks}: {len(problems)} unusable mask(s):\n  " + "\n  ".join(problems))
    return np.stack(out)
