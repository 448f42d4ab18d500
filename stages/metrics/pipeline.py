"""The one scoring pipeline of the metrics stage and `medtrans compare`: per-image features of
every set, then every metric of each set against the real reference (first), its bootstrap
subsample replicates and intervals, and the result rows.

    features (extract.py) -> statistics and metrics (Scorer, scorers.py) -> subsample intervals -> rows

The pair metrics (`pairs.py`) take their per-image values against each image's source slice
(`ImageStack.sources`) as features and average them, so they go through the same bootstrap.

The callers only choose the sets, the seeds and where the rows go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.stages.metrics.bootstrap import intervals, replicate_values
from medtrans.stages.metrics.extract import Network, add_pairs, add_radiomics, load_network, set_features
from medtrans.stages.metrics.frd import FRDError
from medtrans.stages.metrics.results import MetricRow
from medtrans.stages.metrics.scoring import Scorer, Scores, ScoreSettings, SetFeatures
from medtrans.stages.metrics.swd import SWDParams


@dataclass(frozen=True)
class FeatureSettings:
    """How the per-image features are extracted (the same for every set of one run)."""

    convention: str
    batch_size: int
    device: torch.device
    swd: SWDParams
    frd_workers: int = 0
    frd_cache: Path | None = None
    frd_failure_is_note: bool = False  # True: an FRDError makes FRD unavailable; False: it raises


@dataclass
class ImageStack:
    """One set's (N, H, W) uint8 images, their ids, the seed of its SWD centres, and `sources`:
    the source slice of each image, for the pair metrics (None: the set is no translation)."""

    name: str
    ids: list[str]
    images: np.ndarray
    swd_seed: int
    what: str = ""  # for the log: which set of which task
    sources: np.ndarray | None = None


def extract_sets(
    stacks: list[ImageStack], metrics: tuple[str, ...], network: Network, fs: FeatureSettings
) -> tuple[list[SetFeatures], dict[str, str]]:
    """The features of every set (with its per-pair values where it has sources), and {metric:
    note} for metrics that cannot be computed at all (Inception weights missing; FRD failing
    where `frd_failure_is_note`)."""
    weighted = catalogue.needing_weights()
    if any(m in weighted for m in metrics):
        load_network(network, fs.device)
    features = []
    for s in stacks:
        feats = set_features(
            s.images, s.ids, metrics, network, convention=fs.convention, batch_size=fs.batch_size,
            device=fs.device, swd_params=fs.swd, swd_seed=s.swd_seed, what=s.what or s.name,
        )  # fmt: skip
        feats.images = s.images
        features.append(feats)
    add_pairs(features, [(s.images, s.sources) for s in stacks], metrics)
    unavailable = {m: network.note for m in weighted if network.model is None}
    if "frd" in metrics:
        try:
            add_radiomics(features, [s.images for s in stacks], fs.frd_workers, fs.frd_cache)
        except FRDError as err:
            if not fs.frd_failure_is_note:
                raise
            unavailable["frd"] = f"unavailable: {err}"
    return features, unavailable


def result_rows(
    set_name: str, rows: list[str], point: Scores, ci: dict, n: int, network_sha256: str
) -> list[MetricRow]:
    """The CSV rows of one set; the network's sha256 on the rows of metrics that read it."""
    out = []
    for row in rows:
        lo, hi = ci.get(row, (None, None))
        spec = catalogue.family(row)
        sha = network_sha256 if spec is not None and spec.needs_weights else ""
        out.append(MetricRow(set_name, row, point.values.get(row), lo, hi, n, sha, point.notes.get(row, "")))
    return out


def score_sets(
    reference: SetFeatures,
    sets: list[tuple[str, SetFeatures]],
    settings: ScoreSettings,
    unavailable: dict[str, str],
    resamples: Callable[[str, int], np.ndarray | None],
    network_sha256: str,
    label: str = "",
    reference_resamples: np.ndarray | None = None,
) -> tuple[list[MetricRow], dict[str, dict[str, np.ndarray]]]:
    """Rows of every (name, features) set against `reference`, and the interval replicates per
    set: `resamples(name, n)` gives the (R, b) image positions of its replicates, or None (no
    interval); `reference_resamples` the reference's (R, b_ref) positions (None: kept whole)."""
    scorer = Scorer(reference, settings, unavailable)
    points = {name: scorer.evaluate(feats) for name, feats in sets}
    draws = [(name, feats, resamples(name, len(feats))) for name, feats in sets]
    drawn = [(name, feats, idx) for name, feats, idx in draws if idx is not None]
    boot = replicate_values(scorer, drawn, reference_resamples, desc=f"intervals {label}".strip())
    rows: list[MetricRow] = []
    for name, feats, idx in draws:
        ci = {} if idx is None else intervals(points[name], boot[name], len(feats), idx.shape[1])
        rows += result_rows(name, scorer.rows(), points[name], ci, len(feats), network_sha256)
    return rows, boot
