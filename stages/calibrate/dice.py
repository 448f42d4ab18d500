"""Dice of the target-domain UNet (the segment stage's checkpoint) on perturbed images, against
the perturbed masks and against the original ones: the first says whether the UNet still sees
the anatomy that is there, the second how far the perturbed set is from the real anatomy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medtrans.shared.config.segment import SegmentConfig
from medtrans.stages.segment.model import build_unet, predict
from medtrans.stages.segment.scoring import score_images


class CheckpointError(ValueError):
    """A UNet checkpoint that cannot be used (names the file)."""


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
        """Mean over images of the per-image mean Dice over structures (segment's `mean`)."""
        d, _ = score_images(labels, masks, len(self.structures), hd=False)
        return float(d.mean(axis=1).mean())
