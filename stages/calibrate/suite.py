"""The calibration suite of one image set: every perturbation at every severity, scored by every
metric against the unperturbed set and by the UNet's Dice; the long table calibration.csv.

Columns: perturbation, family, severity (0: the unperturbed set itself, every metric's zero
point), metric, value, dice_perturbed_gt, dice_original_gt, note. An uncomputed value is an
empty cell with a note, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medtrans.shared.catalogue import perturbations as catalogue
from medtrans.shared.log import get_logger, progress
from medtrans.stages.calibrate.dice import UNetDice
from medtrans.stages.calibrate.perturb import NEEDS_MASK, perturb_set
from medtrans.stages.calibrate.score import Calibrator

COLUMNS = (
    "perturbation",
    "family",
    "severity",
    "metric",
    "value",
    "dice_perturbed_gt",
    "dice_original_gt",
    "note",
)
NONE = "none"  # the perturbation name of the unperturbed rows
log = get_logger("medtrans.calibrate")


@dataclass(frozen=True)
class Suite:
    perturbations: tuple[str, ...]
    severities: int
    seed: int  # of every perturbation of every slice


def usable(perturbations: tuple[str, ...], has_masks: bool) -> tuple[str, ...]:
    """The perturbations that can run: structure edits need masks."""
    return tuple(p for p in perturbations if has_masks or p not in NEEDS_MASK)


def _dice(unet: UNetDice | None, images: np.ndarray, masks: np.ndarray | None, original: np.ndarray | None):
    if unet is None or masks is None or original is None:
        return None, None
    labels = unet.predict(images)
    return unet.dice(labels, masks), unet.dice(labels, original)


def _rows(name: str, severity: int, values: dict, dice: tuple) -> list[tuple]:
    family = catalogue.family(name) if name != NONE else NONE
    return [(name, family, severity, metric, v, *dice, note) for metric, (v, note) in values.items()]


def run_suite(
    suite: Suite, images: np.ndarray, masks: np.ndarray | None, calibrator: Calibrator,
    unet: UNetDice | None, what: str = "",
) -> pd.DataFrame:  # fmt: skip
    """calibration.csv's rows for one set; one feature pass per perturbed set."""
    rows = _rows(NONE, 0, calibrator.reference_scores(), _dice(unet, images, masks, masks))
    names = usable(suite.perturbations, masks is not None)
    for name in progress(names, desc=f"calibrate {what}".strip(), unit="perturbation"):
        perturbed = [perturb_set(images, masks, name, s, suite.severities, suite.seed)
                     for s in range(1, suite.severities + 1)]  # fmt: skip
        scores = calibrator.score([(f"{name}/{s}", p[0]) for s, p in enumerate(perturbed, 1)])
        for s, ((pimages, pmasks), values) in enumerate(zip(perturbed, scores, strict=True), 1):
            rows += _rows(name, s, values, _dice(unet, pimages, pmasks, masks))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("value", "dice_perturbed_gt", "dice_original_gt"):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    return table
