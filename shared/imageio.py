"""8-bit PNG slices and label masks: the image format between stages."""

from pathlib import Path

import numpy as np
from PIL import Image


class ImageFormatError(ValueError):
    """An image that is not what the stage contract promises (names the file)."""


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write a 2D uint8 array (image in [0,255] or label map 0..K) as a 1-channel PNG."""
    array = np.asarray(array)
    if array.ndim != 2 or array.dtype != np.uint8:
        raise ImageFormatError(f"{path}: expected a 2D uint8 array, got {array.dtype} {array.shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode="L").save(path, optimize=False, compress_level=6)


def read_png(path: str | Path, size: int | None = None) -> np.ndarray:
    """Read a 1-channel 8-bit PNG as uint8 HxW; refuse other modes or sizes with a clear error."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P", "I;16", "RGB", "RGBA"):
                raise ImageFormatError(f"{path}: unsupported PNG mode {im.mode}")
            if im.mode != "L":
                im = im.convert("L")
            arr = np.asarray(im, dtype=np.uint8).copy()
    except (OSError, SyntaxError) as err:
        raise ImageFormatError(f"{path}: unreadable image ({err})") from None
    if size is not None and arr.shape != (size, size):
        raise ImageFormatError(f"{path}: size {arr.shape[1]}x{arr.shape[0]}, expected {size}x{size}")
    return arr


def to_unit(array: np.ndarray) -> np.ndarray:
    """uint8 [0,255] -> float32 [-1,1], the translators' input range."""
    return array.astype(np.float32) / 127.5 - 1.0


def from_unit(array: np.ndarray) -> np.ndarray:
    """float [-1,1] -> uint8 [0,255], rounded, clipped."""
    return np.clip(np.rint((np.asarray(array, dtype=np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
