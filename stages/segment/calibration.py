"""Calibration sets (calibrate/<task>/, `medtrans.shared.calibration`) scored as translators are:
the target-domain UNet's Dice on each set against the set's own masks (changed with the anatomy)
and against the original ground truth. The first says whether the UNet still sees the anatomy that
is there, the second how far the set is from the real anatomy. Also what `medtrans calibrate REAL
--unet` scores a folder by (`UNetDice`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medtrans.shared.calibration import CalibrationSets
from medtrans.shared.config.segment import SegmentConfig
from medtrans.shared.log import progress
from medtrans.shared.stage import StageInputError
from medtrans.stages.segment.model import build_unet, predict
from medtrans.stages.segment.scoring import score_images

TABLE = "calibration.csv"
COLUMNS = ("set", "perturbation", "family", "severity", "dice_perturbed_gt", "dice_original_gt")


class CheckpointError(ValueError):
    """A UNet checkpoint that cannot be used (names the file)."""


def mean_dice(labels: np.ndarray, masks: np.ndarray, n_structures: int) -> float:
    """Mean over images of the per-image mean Dice over structures (segment's `mean`)."""
    d, _ = score_images(labels, masks, n_structures, hd=False)
    return float(d.mean(axis=1).mean())


class UNetDice:
    """The UNet of one `segment/<task>/model.pt`, loaded once, on `device`."""

    def __init__(self, path: Path, device: torch.device, batch_size: int = 32):
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            cfg = SegmentConfig(**ckpt["config"])
            self.structures = tuple(ckpt["structures"])
            self.model = build_unet(cfg, len(self.structures))
            self.model.load_state_dict(ckpt["state_dict"])
        except (OSError, KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{path}: not a medtrans segment checkpoint ({err.__class__.__name__}: {err}); "
                "use segment/<task>/model.pt of a run (`medtrans segment`)"
            ) from None
        self.model.to(device)
        self.device, self.batch_size = device, batch_size

    def predict(self, images: np.ndarray) -> np.ndarray:
        return predict(self.model, images, self.device, self.batch_size)

    def dice(self, labels: np.ndarray, masks: np.ndarray) -> float:
        return mean_dice(labels, masks, len(self.structures))


def score_calibration(
    sets: CalibrationSets, model: torch.nn.Module, size: int, n_structures: int, device, batch_size: int
) -> pd.DataFrame:
    """One row per set (`none` first): Dice against its own and against the original masks."""
    images, original = sets.reference.read(size)
    if original.max(initial=0) > n_structures:
        raise StageInputError(
            f"{sets.folder}: label {int(original.max())} but the task has {n_structures} structure(s)"
        )
    labels = predict(model, images, device, batch_size)
    d0 = mean_dice(labels, original, n_structures)
    rows = [(sets.reference.name, sets.reference.perturbation, sets.reference.family, 0, d0, d0)]
    for s in progress(sets.perturbed, desc="segment calibration sets", unit="set"):
        pimages, pmasks = s.read(size)
        labels = predict(model, pimages, device, batch_size)
        rows.append((s.name, s.perturbation, s.family, s.severity, mean_dice(labels, pmasks, n_structures),
                     mean_dice(labels, original, n_structures)))  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))
