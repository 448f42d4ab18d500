"""The calibrate stage: per task, controlled perturbations of the real target test set with known
effect on anatomy, scored by every metric against the unperturbed set and by the target-domain
UNet's Dice (README, Calibration). One unit per task, `calibrate/<task>/`: calibration.csv,
summary.csv, figures/response_<family>.png, manifest.json.

Inputs: preprocess/<task> (the target test slices and their masks) and segment/<task> (its
model.pt). A study switches the stage off with `calibrate: {enabled: false}` (no units).

The stage composes two others' libraries: the metrics stage's scoring pipeline (one pipeline for
every number of a metric) and the segment stage's UNet; it reads only the run folder's outputs.
"""

from __future__ import annotations

import functools

import numpy as np

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.config import StudyConfig
from medtrans.shared.dataset import IndexError_, SliceIndex
from medtrans.shared.device import resolve_device
from medtrans.shared.layout import RunLayout
from medtrans.shared.log import get_logger
from medtrans.shared.seeding import derive_seed, rng
from medtrans.shared.stage import StageInputError, Unit, UnitContext
from medtrans.stages.calibrate.dice import CheckpointError, UNetDice
from medtrans.stages.calibrate.outputs import write_outputs
from medtrans.stages.calibrate.score import CalibrationSettings, Calibrator
from medtrans.stages.calibrate.suite import Suite, run_suite, usable
from medtrans.stages.metrics.extract import Network
from medtrans.stages.metrics.frd import extractor_settings
from medtrans.stages.metrics.pipeline import FeatureSettings
from medtrans.stages.metrics.scoring import ScoreSettings
from medtrans.stages.metrics.stage import network_for, swd_params
from medtrans.stages.segment.data import load_split

STAGE = "calibrate"
VERSION = "1"
log = get_logger("medtrans.calibrate")


def metrics_of(study: StudyConfig) -> tuple[str, ...]:
    """The calibrated metrics: calibrate.metrics, else the study's, in the catalogue's order."""
    chosen = study.calibrate.metrics if study.calibrate.metrics is not None else study.metrics.metrics
    return tuple(m for m in catalogue.names() if m in chosen)


def plan(study: StudyConfig, layout: RunLayout, tasks: tuple[str, ...] | None = None) -> list[Unit]:
    """One unit per task; none when the study switches calibration off."""
    if not study.calibrate.enabled:
        return []
    metrics = metrics_of(study)
    needs_network = any(m in metrics for m in catalogue.needing_weights())
    network = network_for(study) if needs_network else Network(None, note="not requested")
    units = []
    for task in study.tasks:
        if tasks is not None and task not in tasks:
            continue
        units.append(
            Unit(
                stage=STAGE,
                name=(task,),
                out=layout.calibrate(task),
                config={
                    "calibrate": study.part("calibrate"),
                    "metrics": study.part("metrics"),
                    "calibrated_metrics": list(metrics),
                    "seed": study.seed,
                    "image_size": study.preprocess.image_size,
                    "network_sha256": network.sha256 or None,
                    "frd": extractor_settings() if "frd" in metrics else None,
                },
                build=functools.partial(_build, study=study, task=task, network=network),
                inputs=[layout.preprocess(task), layout.segment(task)],
                version=VERSION,
                seeds={"study": study.seed, "calibrate": derive_seed(study.seed, STAGE, task)},
                hint="run `medtrans preprocess` and `medtrans segment` first",
            )
        )
    return units


def settings_for(study: StudyConfig, task: str, device, frd_cache=None) -> CalibrationSettings:
    """The metrics stage's settings of this study, seeded for calibration of this task."""
    cfg, seed = study.metrics, derive_seed(study.seed, STAGE, task)
    params = swd_params(study)
    features = FeatureSettings(
        cfg.convention, cfg.batch_size, device, params, cfg.frd_workers, frd_cache, True
    )
    scores = ScoreSettings(
        metrics=metrics_of(study), kid_subsets=cfg.kid_subsets, kid_subset_size=cfg.kid_subset_size,
        kid_seed=derive_seed(seed, "kid"), is_splits=cfg.is_splits, is_seed=derive_seed(seed, "is"),
        swd=params, swd_seed=derive_seed(seed, "swd", "directions"), device=str(device),
    )  # fmt: skip
    return CalibrationSettings(features, scores, tuple(study.calibrate.nhood_sizes), seed)


def _test_set(study: StudyConfig, ctx: UnitContext, task: str):
    structures = study.tasks[task].structures
    try:
        index = SliceIndex.for_task(ctx.layout, task)
    except IndexError_ as err:
        raise StageInputError(str(err)) from None
    data = load_split(index, "target", "test", study.preprocess.image_size, len(structures), "target test")
    keep = np.arange(len(data))
    n = study.calibrate.images
    if n and n < len(keep):
        keep = np.sort(rng(study.seed, STAGE, task, "images").choice(len(keep), n, replace=False))
    if len(keep) < 2:
        raise StageInputError(
            f"{index.folder / 'index.csv'}: {len(keep)} target test slice(s); calibration needs 2"
        )
    return [data.slice_ids[i] for i in keep], data.images[keep], data.masks[keep]


def _build(ctx: UnitContext, study: StudyConfig, task: str, network: Network) -> None:
    ids, images, masks = _test_set(study, ctx, task)
    device = resolve_device(study.device)
    checkpoint = ctx.layout.segment(task) / "model.pt"
    try:
        unet = UNetDice(checkpoint, device, study.segment.batch_size)
    except CheckpointError as err:
        raise StageInputError(f"{err}; rerun `medtrans segment --task {task}`") from None
    settings = settings_for(study, task, device, ctx.layout.cache("frd"))
    calibrator = Calibrator(images, ids, settings, network)
    cfg = study.calibrate
    suite = Suite(tuple(cfg.perturbations), cfg.severities, settings.seed)
    table = run_suite(suite, images, masks, calibrator, unet, what=task)
    summary = write_outputs(table, ctx.work, title=f"calibrate/{task}:")
    ctx.extra.update(
        {
            "images": len(ids),
            "perturbations": list(usable(suite.perturbations, True)),
            "severities": cfg.severities,
            "metrics": list(settings.scores.metrics),
            "network": network.describe(),
            "asi_severity": {r.metric: _round(r.asi_severity) for r in summary.itertuples()},
        }
    )


def _round(v) -> float | None:
    return round(float(v), 6) if v is not None and np.isfinite(v) else None
