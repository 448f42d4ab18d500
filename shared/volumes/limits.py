"""The pixel limit: checked from a file's header before any pixel is read, so that a forged or
broken header cannot make a reader allocate gigabytes."""

import math
import os
from pathlib import Path

from medtrans.shared.volumes.errors import VolumeError

ENV = "MEDTRANS_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 2**29  # 537 million voxels (2 GiB as float32): a 512 x 512 x 2048 CT fits


def max_pixels() -> int:
    """The limit in pixels (voxels), from $MEDTRANS_MAX_PIXELS when set."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        raise ValueError(f"{ENV}={text!r} is not a number of pixels") from None
    if value <= 0:
        raise ValueError(f"{ENV}={text!r} must be positive")
    return value


def check_pixels(path: Path | str, shape: tuple[int, ...]) -> None:
    """Refuse a file whose header claims more pixels than the limit (or a negative size)."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise VolumeError(path, f"header claims a negative size {tuple(dims)}")
    count = math.prod(dims)
    limit = max_pixels()
    if count > limit:
        raise VolumeError(
            path,
            f"header claims {' x '.join(map(str, dims))} = {count} pixels, over the limit of {limit} "
            f"(raise it with the environment variable {ENV} if the file is genuine)",
        )
