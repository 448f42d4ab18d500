"""The image sets the UNet trains on and is scored on, read from the run folder and checked.

Every set is held in memory (the slices are small 8-bit PNGs) as arrays sorted by slice id,
the order the bootstrap resamples refer to. A translated set must cover every source test
slice at the study's image size; anything else is refused before any training starts.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medtrans.shared.dataset import SliceIndex
from medtrans.shared.imageio import ImageFormatError, read_png
from medtrans.shared.log import get_logger
from medtrans.shared.stage import StageInputError

log = get_logger("medtrans.segment")
TRANSLATED_DIR = "test"


@dataclass(frozen=True)
class ImageSet:
    """N images (uint8, HxW), their label masks (0..K) and slice ids, sorted by slice id."""

    name: str
    slice_ids: tuple[str, ...]
    images: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.slice_ids)


def _masked_rows(rows: pd.DataFrame, what: str) -> pd.DataFrame:
    """Rows that carry a mask; a slice without one cannot be scored (logged, not hidden)."""
    keep = rows[rows["mask"] != ""]
    if len(keep) < len(rows):
        log.warning("%s: %d slice(s) without a mask left out", what, len(rows) - len(keep))
    return keep.reset_index(drop=True)


def _read(path: Path, size: int, n_labels: int | None = None) -> np.ndarray:
    try:
        arr = read_png(path, size)
    except ImageFormatError as err:
        raise StageInputError(f"{err}; rerun the stage that wrote it") from None
    if n_labels is not None and arr.max(initial=0) > n_labels:
        raise StageInputError(
            f"{path}: label {int(arr.max())} but the task has {n_labels} structure(s); "
            "rerun `medtrans preprocess`"
        )
    return arr


def _stack(arrays: list[np.ndarray], size: int) -> np.ndarray:
    return np.stack(arrays) if arrays else np.zeros((0, size, size), np.uint8)


def load_split(index: SliceIndex, role: str, split: str, size: int, n_labels: int, name: str) -> ImageSet:
    """The real images and masks of one role and split of the slice index."""
    rows = _masked_rows(index.select(role, split), f"{name} ({role} {split})")
    if rows.empty:
        raise StageInputError(
            f"{index.folder / 'index.csv'}: no {role} {split} slices with masks; "
            "check the study's split and rerun `medtrans preprocess`"
        )
    images = [_read(index.path(r), size) for r in rows["image"]]
    masks = [_read(index.path(r), size, n_labels) for r in rows["mask"]]
    return ImageSet(name, tuple(rows["slice_id"]), _stack(images, size), _stack(masks, size))


def check_translated(index: SliceIndex, folder: Path, size: int) -> None:
    """Refuse a translated set that misses a source test slice or has a wrong image size."""
    test = Path(folder) / TRANSLATED_DIR
    expected = list(index.select("source", "test")["slice_id"])
    missing = [sid for sid in expected if not (test / f"{sid}.png").is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise StageInputError(
            f"{test / (missing[0] + '.png')}: translated slice {missing[0]!r} missing{more}; "
            f"a translated set must hold every source test slice; rerun the translator "
            f"(`medtrans translate {Path(folder).name} --force`)"
        )
    for sid in expected:
        path = test / f"{sid}.png"
        try:
            read_png(path, size)
        except ImageFormatError as err:
            raise StageInputError(
                f"{err} (translated slice {sid!r}); rerun the translator "
                f"(`medtrans translate {Path(folder).name} --force`)"
            ) from None
    extra = {p.stem for p in test.glob("*.png")} - set(expected)
    if extra:
        log.warning("%s: %d file(s) that are not source test slices ignored", test, len(extra))


def load_translated(index: SliceIndex, folder: Path, size: int, n_labels: int, name: str) -> ImageSet:
    """A translator's test set: each translated slice with the mask of its source slice."""
    check_translated(index, folder, size)
    rows = _masked_rows(index.select("source", "test"), f"{name} (translated source test)")
    images = [_read(Path(folder) / TRANSLATED_DIR / f"{sid}.png", size) for sid in rows["slice_id"]]
    masks = [_read(index.path(r), size, n_labels) for r in rows["mask"]]
    return ImageSet(name, tuple(rows["slice_id"]), _stack(images, size), _stack(masks, size))
