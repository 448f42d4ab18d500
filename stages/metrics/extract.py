"""Per-image features of image sets for every requested metric: the one place networks and
extractors run (stage and `medtrans compare` alike); everything after works from features."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.log import get_logger
from medtrans.stages.metrics.features import extract_features
from medtrans.stages.metrics.frd import extract_radiomics
from medtrans.stages.metrics.pairs import pair_metrics, pair_values_many
from medtrans.stages.metrics.scoring import SetFeatures
from medtrans.stages.metrics.swd import SWDParams, describe
from medtrans.stages.metrics.weights import VerifiedFile, WeightsMissing, locate_inception

log = get_logger("medtrans.metrics")


def missing_note(expected: Path) -> str:
    return f"unavailable: weights missing (expected {expected}; run `make weights`)"


@dataclass
class Network:
    """The Inception network, or why there is none (`note`)."""

    file: VerifiedFile | None
    model: torch.nn.Module | None = None
    note: str = ""

    @property
    def sha256(self) -> str:
        return self.file.sha256 if self.file is not None else ""

    def describe(self) -> dict:
        if self.file is None:
            return {"available": False, "note": self.note}
        return {
            "available": True,
            "file": str(self.file.path),
            "sha256": self.file.sha256,
            "standard": self.file.standard,
        }


def locate_network(weights_dir: Path | None, custom: Path | None) -> Network:
    """The verified weights file (not loaded yet), or a Network with the missing-weights note.
    A file whose hash is wrong is an error (WeightsMismatch), never silently skipped."""
    try:
        return Network(locate_inception(weights_dir=weights_dir, custom=custom))
    except WeightsMissing as err:
        return Network(None, note=missing_note(err.expected))


def load_network(network: Network, device: torch.device) -> Network:
    from medtrans.stages.metrics.inception import load_inception

    if network.file is not None and network.model is None:
        network.model = load_inception(network.file, device)
    return network


def set_features(
    images: np.ndarray,
    ids: list[str],
    metrics: tuple[str, ...],
    network: Network,
    *,
    convention: str,
    batch_size: int,
    device: torch.device,
    swd_params: SWDParams,
    swd_seed: int,
    what: str = "set",
) -> SetFeatures:
    """Inception and SWD features of one (N, H, W) uint8 set (radiomics: `add_radiomics`)."""
    out = SetFeatures(list(ids))
    if any(m in metrics for m in catalogue.needing_weights()) and network.model is not None:
        log.info("%s: Inception features of %d images (%s)", what, len(images), convention)
        out.inception = extract_features(network.model, images, convention, batch_size, device)
    if "swd" in metrics:
        out.swd = describe(images, swd_params, swd_seed, device=device)
    return out


def add_radiomics(
    sets: list[SetFeatures], stacks: list[np.ndarray], workers: int, cache_dir: Path | None
) -> None:
    """Radiomics of all sets in one process pool (images shared between sets extracted once)."""
    images = np.concatenate(stacks)
    names = [i for s in sets for i in s.ids]
    feats = extract_radiomics(images, workers=workers, cache_dir=cache_dir, names=names)
    start = 0
    for s in sets:
        s.radiomics = feats.subset(np.arange(start, start + len(s)))
        start += len(s)


def add_pairs(
    sets: list[SetFeatures], stacks: list[tuple[np.ndarray, np.ndarray | None]], metrics: tuple[str, ...]
) -> None:
    """Each image's value against its source slice for every requested pair metric, per set of
    (images, sources) in `stacks`; sets sharing one sources array have them described once. A
    set without sources (no translation) gets none."""
    names = pair_metrics(metrics)
    groups: dict[int, list[int]] = {}
    for i, (_, sources) in enumerate(stacks):
        if names and sources is not None:
            groups.setdefault(id(sources), []).append(i)
    for members in groups.values():
        sources = stacks[members[0]][1]
        log.info("%s of %d source slices against %d set(s)", ", ".join(names), len(sources), len(members))
        values = pair_values_many(names, sources, {str(i): stacks[i][0] for i in members})
        for i in members:
            sets[i].pairs = values[str(i)]
