"""The calibration sets of a run folder (`calibrate/<task>/`), the one format the calibrate stage
writes and segment, metrics and the report read (README, Calibration):

    calibrate/<task>/sets.csv                    set, perturbation, family, severity, slice_id, image, mask
    calibrate/<task>/sets/<set>/images/<id>.png  the perturbed slice (8-bit)
    calibrate/<task>/sets/<set>/masks/<id>.png   its label mask (changed with the anatomy, else a copy)

Set `none` (severity 0) is the unperturbed draw of the real target test slices: its rows name the
slices of every perturbed set (same ids, same order) and point at preprocess's own images and
masks (every path is relative to calibrate/<task>/), so the real set is never copied. Only
`shared/`, NumPy and pandas: each stage reads the sets without importing the stage that wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medtrans.shared.imageio import ImageFormatError, read_png
from medtrans.shared.layout import MANIFEST, RunLayout
from medtrans.shared.log import get_logger
from medtrans.shared.manifest import ManifestError, read_manifest
from medtrans.shared.stage import StageInputError

SETS = "sets.csv"
SETS_DIR = "sets"
NONE = "none"  # the unperturbed set's name (and perturbation), severity 0
COLUMNS = ("set", "perturbation", "family", "severity", "slice_id", "image", "mask")
log = get_logger("medtrans.calibration")


def calibration_input(calibrates: bool, layout: RunLayout, task: str, stage: str) -> Path | None:
    """calibrate/<task>/ where the study calibrates and the folder has a complete manifest: the
    sets a scoring stage picks up, found at plan time like the translators (None: none to score)."""
    folder = layout.calibrate(task)
    if not calibrates or not (folder / MANIFEST).is_file():
        return None
    try:
        read_manifest(folder)
    except ManifestError as err:
        log.warning("%s/%s: %s; calibration sets left out", stage, task, err)
        return None
    return folder


def set_name(perturbation: str, severity: int) -> str:
    return f"{perturbation}-{severity}"


@dataclass(frozen=True)
class CalibrationSet:
    """One set's rows of sets.csv: its name, perturbation, family and severity, and its slices."""

    name: str
    perturbation: str
    family: str
    severity: int
    slice_ids: tuple[str, ...]
    images: tuple[Path, ...]
    masks: tuple[Path, ...]

    def read(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(N, H, W) uint8 images and label masks; a bad file is a StageInputError naming it."""
        try:
            images = np.stack([read_png(p, size) for p in self.images])
            masks = np.stack([read_png(p, size) for p in self.masks])
        except (ImageFormatError, OSError) as err:
            raise StageInputError(f"{err}; rerun `medtrans calibrate --study <study> --force`") from None
        return images, masks


@dataclass(frozen=True)
class CalibrationSets:
    """Every set of one task's calibrate/<task>/, `none` first, then in the order written."""

    folder: Path
    sets: tuple[CalibrationSet, ...]

    @property
    def reference(self) -> CalibrationSet:
        return self.sets[0]

    @property
    def perturbed(self) -> tuple[CalibrationSet, ...]:
        return self.sets[1:]

    @classmethod
    def read(cls, layout: RunLayout, task: str) -> CalibrationSets:
        folder = layout.calibrate(task)
        path = folder / SETS
        try:
            table = pd.read_csv(path, dtype={c: str for c in ("slice_id", "image", "mask")}, na_filter=False)
        except (OSError, ValueError) as err:
            raise StageInputError(f"{path}: unreadable ({err}); run `medtrans calibrate --study <study>`") \
                from None  # fmt: skip
        if tuple(table.columns) != COLUMNS or table.empty or table.set.iloc[0] != NONE:
            raise StageInputError(
                f"{path}: not a calibration set table (columns {', '.join(COLUMNS)}, "
                f"set {NONE!r} first); rerun `medtrans calibrate --study <study> --force`"
            )
        sets = []
        for name, rows in table.groupby("set", sort=False):
            first = rows.iloc[0]
            sets.append(CalibrationSet(
                str(name), str(first.perturbation), str(first.family), int(first.severity),
                tuple(rows.slice_id), tuple(folder / p for p in rows.image),
                tuple(folder / p for p in rows["mask"]),
            ))  # fmt: skip
        ids = sets[0].slice_ids
        bad = [s.name for s in sets if s.slice_ids != ids]
        if bad:
            raise StageInputError(f"{path}: set {bad[0]} does not hold the slices of set {NONE} in order")
        return cls(folder, tuple(sets))


def table_rows(
    name: str, perturbation: str, family: str, severity: int, slice_ids: list[str],
    images: list[str], masks: list[str],
) -> list[tuple]:  # fmt: skip
    """sets.csv's rows of one set (paths relative to calibrate/<task>/)."""
    return [
        (name, perturbation, family, severity, sid, i, m)
        for sid, i, m in zip(slice_ids, images, masks, strict=True)
    ]


def set_paths(name: str, slice_ids: list[str]) -> tuple[list[str], list[str]]:
    """The relative image and mask paths of a perturbed set's slices."""
    base = f"{SETS_DIR}/{name}"
    return [f"{base}/images/{s}.png" for s in slice_ids], [f"{base}/masks/{s}.png" for s in slice_ids]


def write_table(path: Path, rows: list[tuple]) -> None:
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(path, index=False)
