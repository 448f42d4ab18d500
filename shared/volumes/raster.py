"""2-D raster images (PNG, JPEG, BMP, TIFF) through Pillow, size-checked from the header.

Pillow's own decompression-bomb guard is replaced by the medtrans pixel limit, so that a huge
header gives one clear message (and a setting to raise it) instead of DecompressionBombError."""

from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from medtrans.shared.volumes.errors import VolumeError, why
from medtrans.shared.volumes.limits import check_pixels

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def is_raster(path: Path) -> bool:
    return path.suffix.lower() in RASTER_SUFFIXES


@contextmanager
def _own_limit():
    """Pillow's guard off while a header is parsed; `check_pixels` decides instead."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def read_raster(path: Path) -> tuple[np.ndarray, bool]:
    """The image as a 2-D array and whether it is high-depth (16-bit or float: float32 to be
    windowed); else uint8 grayscale (colour converted to luminance)."""
    try:
        with _own_limit(), Image.open(path) as im:
            check_pixels(path, (im.size[1], im.size[0], len(im.getbands())))
            im.load()
            if im.mode in HIGH_DEPTH_MODES:
                return np.asarray(im, dtype=np.float32), True
            return np.asarray(im.convert("L"), dtype=np.uint8), False
    except VolumeError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise VolumeError(path, f"unreadable image ({why(err, path)})") from None
