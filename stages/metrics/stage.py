"""The metrics stage: per task, every translated test set and two baselines against the real
target test set, with subsample intervals, from cached per-image features.

Sets (see the run-folder formats): each translator with a complete manifest (its translated
source test slices), `source` (the untranslated source test slices: how far apart the domains
are) and `target_train` (real target train slices: the real-vs-real floor; by default a seeded
draw of as many images as the translated sets have, since FID and KID depend on N). The
reference, `target_test`, is half-sampled per replicate like every set (its own draws; intervals:
`medtrans.shared.intervals`). The pair metrics (NMI, MIND-SSC, NGF) compare each translated slice
with its source slice (from the preprocess output, matched by slice id) instead: `source` scores
the identity, `target_train` has no pairs (rows "not applicable"). Outputs in `metrics/<task>/`:
metrics.csv, bootstrap.csv, features/<set>.npz (per-image Inception pool3 + logits, SWD
descriptors, radiomics, per-pair values), manifest.json. Radiomics are also cached by image sha256
in `<run>/.cache/frd/`.

The Inception weights come from $MEDTRANS_WEIGHTS (default ./weights) or the study's
`metrics.extractor` (a custom, explicitly non-standard file); the file's sha256 is part of
the unit's config, so other weights re-run the stage. Without weights FID, KID and IS rows say
"unavailable: weights missing (...)" and every other metric is still computed.

When the study calibrates (`calibrate.enabled`) and calibrate/<task> is complete at plan time
(found like the translators), it is an input too and the unit also scores its calibration sets
(calibration.csv; `calibration_unit`), from the same features.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medtrans.shared.bootstrap import subsample_indices
from medtrans.shared.calibration import calibration_input
from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.config import StudyConfig
from medtrans.shared.config.translate import MODELS
from medtrans.shared.dataset import IndexError_, SliceIndex
from medtrans.shared.device import resolve_device
from medtrans.shared.imageio import ImageFormatError, read_png
from medtrans.shared.layout import RunLayout
from medtrans.shared.log import get_logger
from medtrans.shared.seeding import derive_seed, rng
from medtrans.shared.stage import StageInputError, Unit, UnitContext, complete_translators
from medtrans.stages.metrics.calibration_unit import score_calibration, unit_config
from medtrans.stages.metrics.extract import Network, locate_network
from medtrans.stages.metrics.frd import extractor_settings
from medtrans.stages.metrics.pairs import pair_metrics, pair_settings
from medtrans.stages.metrics.pipeline import FeatureSettings, ImageStack, extract_sets, score_sets
from medtrans.stages.metrics.results import write_bootstrap, write_rows
from medtrans.stages.metrics.scoring import ScoreSettings, SetFeatures
from medtrans.stages.metrics.swd import SWDParams
from medtrans.stages.metrics.weights import WeightsMismatch, weights_dir

STAGE = "metrics"
VERSION = "2"  # 2: intervals by half-sampling without replacement
REFERENCE = "target_test"
TRANSLATED_DIR = "test"
log = get_logger("medtrans.metrics")


def translators(layout: RunLayout, task: str) -> list[str]:
    """Translator names whose `translate/<task>/<model>/` has a complete manifest."""
    return complete_translators(layout, task, MODELS, STAGE)


def network_for(study: StudyConfig) -> Network:
    """The Inception weights the study would use (located and hashed, not loaded)."""
    custom = Path(study.metrics.extractor) if study.metrics.extractor else None
    if custom is not None and not custom.is_file():
        raise StageInputError(f"{custom}: metrics.extractor weights file not found")
    try:
        return locate_network(weights_dir(), custom)
    except WeightsMismatch as err:  # a wrong file is refused, never used or skipped silently
        raise StageInputError(str(err)) from None


def swd_params(study: StudyConfig) -> SWDParams:
    return SWDParams(**study.metrics.swd.model_dump())


def plan(study: StudyConfig, layout: RunLayout, tasks: tuple[str, ...] | None = None) -> list[Unit]:
    """One unit per task: all translators found, both baselines, one metrics.csv."""
    calibrated = unit_config(study)
    metric_names = set(study.metrics.metrics) | set(calibrated["metrics"] if calibrated else ())
    needs_network = any(m in metric_names for m in catalogue.needing_weights())
    network = network_for(study) if needs_network else Network(None, note="not requested")
    units = []
    for task in study.tasks:
        if tasks is not None and task not in tasks:
            continue
        models = translators(layout, task)
        sets = calibration_input(study.calibrate.enabled, layout, task, STAGE)
        calibration = calibrated if sets else None
        units.append(
            Unit(
                stage=STAGE,
                name=(task,),
                out=layout.metrics(task),
                config={
                    "metrics": study.part("metrics"),
                    "seed": study.seed,
                    "image_size": study.preprocess.image_size,
                    "sets": [*models, "source", "target_train"],
                    "network_sha256": network.sha256 or None,
                    "network_standard": network.file.standard if network.file is not None else None,
                    "frd": extractor_settings() if "frd" in study.metrics.metrics else None,
                    "pairs": pair_settings(pair_metrics(study.metrics.metrics)) or None,
                    **({"calibration": calibration} if calibration else {}),  # absent: the digest as before
                },
                build=functools.partial(
                    _build, study=study, task=task, models=models, network=network, calibrate=bool(sets)
                ),
                inputs=[layout.preprocess(task)]
                + [layout.translate(task, m) for m in models]
                + ([sets] if sets else []),
                version=VERSION,
                seeds={"study": study.seed, "swd": derive_seed(study.seed, STAGE, task, "swd")},
                hint="run `medtrans preprocess` and the translators first",
            )
        )
    return units


@dataclass
class ImageSetSpec:
    name: str
    ids: list[str]
    paths: list[Path]


def _read_set(spec: ImageSetSpec, size: int) -> np.ndarray:
    if len(spec.ids) < 2:
        raise StageInputError(f"set {spec.name}: {len(spec.ids)} image(s); the metrics need at least 2")
    images = []
    for path in spec.paths:
        if not path.is_file():
            raise StageInputError(f"{path}: missing ({spec.name} must have every source test slice id)")
        try:
            images.append(read_png(path, size))
        except ImageFormatError as err:
            raise StageInputError(str(err)) from None
    return np.stack(images)


def _specs(study: StudyConfig, layout: RunLayout, task: str, models: list[str]) -> list[ImageSetSpec]:
    """The reference first, then the translators, `source` and `target_train`."""
    try:
        index = SliceIndex.for_task(layout, task)
    except IndexError_ as err:
        raise StageInputError(str(err)) from None

    def split(role: str, split_: str, name: str) -> ImageSetSpec:
        rows = index.select(role, split_)
        return ImageSetSpec(name, list(rows.slice_id), [index.path(p) for p in rows.image])

    reference = split("target", "test", REFERENCE)
    source = split("source", "test", "source")
    specs = [reference]
    for model in models:
        folder = layout.translate(task, model) / TRANSLATED_DIR
        specs.append(ImageSetSpec(model, list(source.ids), [folder / f"{sid}.png" for sid in source.ids]))
    specs.append(source)
    floor = split("target", "train", "target_train")
    if study.metrics.floor == "match" and len(floor.ids) > len(source.ids):
        keep = np.sort(
            rng(study.seed, STAGE, task, "floor").choice(len(floor.ids), len(source.ids), replace=False)
        )
        floor = ImageSetSpec(floor.name, [floor.ids[i] for i in keep], [floor.paths[i] for i in keep])
    specs.append(floor)
    return specs


def _build(
    ctx: UnitContext, study: StudyConfig, task: str, models: list[str], network: Network,
    calibrate: bool = False,
) -> None:  # fmt: skip
    cfg = study.metrics
    metrics = tuple(cfg.metrics)
    specs = _specs(study, ctx.layout, task, models)
    size = study.preprocess.image_size
    swd_seed = derive_seed(study.seed, STAGE, task, "swd")
    stacks = [  # read and checked before any network runs
        ImageStack(
            s.name, s.ids, _read_set(s, size), derive_seed(swd_seed, "centres", s.name), f"{task}/{s.name}"
        )
        for s in specs
    ]
    _pair_sources(stacks, models)
    device = resolve_device(study.device)
    fs = FeatureSettings(
        cfg.convention, cfg.batch_size, device, swd_params(study), cfg.frd_workers, ctx.layout.cache("frd"),
        frd_failure_is_note=True,
    )  # fmt: skip
    features, unavailable = extract_sets(stacks, metrics, network, fs)
    feat_dir = ctx.work / "features"
    feat_dir.mkdir(exist_ok=True)
    for spec, feats in zip(specs, features, strict=True):
        feats.save(feat_dir / f"{spec.name}.npz")

    def resamples(name: str, n: int) -> np.ndarray | None:  # the draws the report uses for Dice
        return subsample_indices(study.seed, task, n, cfg.bootstrap) if cfg.bootstrap > 0 else None

    ref = subsample_indices(study.seed, task, len(specs[0].ids), cfg.bootstrap, "reference")
    rows, boot = score_sets(
        features[0], [(s.name, f) for s, f in zip(specs[1:], features[1:], strict=True)],
        _score_settings(study, task, fs.swd, swd_seed, device), unavailable, resamples, network.sha256,
        label=f"{task}/", reference_resamples=ref if cfg.bootstrap > 0 else None,
    )  # fmt: skip
    write_rows(ctx.work / "metrics.csv", rows)
    write_bootstrap(ctx.work / "bootstrap.csv", boot)
    if calibrate:  # the cached target_test features, read back as any consumer would
        reference = SetFeatures.load(feat_dir / f"{REFERENCE}.npz")
        extra = score_calibration(study, ctx.layout, task, ctx.work, reference, network, fs)
        ctx.extra["calibration"] = extra
    ctx.extra.update(
        {
            "network": network.describe(),
            "convention": cfg.convention,
            "reference": {"set": REFERENCE, "n": len(specs[0].ids)},
            "sets": {s.name: len(s.ids) for s in specs[1:]},
            "bootstrap": cfg.bootstrap,
            "frd": extractor_settings() if "frd" in metrics else None,
            "pairs": pair_settings(pair_metrics(metrics)) or None,
        }
    )


def _pair_sources(stacks: list[ImageStack], models: list[str]) -> None:
    """Pair each translated slice with its source slice (same slice id, same position: the
    translated sets carry the source ids); `source` is paired with itself (the identity
    translation: the pair metrics' optimum), the real target sets with nothing."""
    source = next(s for s in stacks if s.name == "source")
    for stack in stacks:
        if stack.name in models or stack is source:
            stack.sources = source.images


def _score_settings(study: StudyConfig, task: str, params: SWDParams, swd_seed: int, device) -> ScoreSettings:
    """The metrics' seeds derive from the study seed and the task."""
    cfg = study.metrics
    return ScoreSettings(
        metrics=tuple(cfg.metrics),
        kid_subsets=cfg.kid_subsets,
        kid_subset_size=cfg.kid_subset_size,
        kid_seed=derive_seed(study.seed, STAGE, task, "kid"),
        is_splits=cfg.is_splits,
        is_seed=derive_seed(study.seed, STAGE, task, "is"),
        swd=params,
        swd_seed=derive_seed(swd_seed, "directions"),
        device=str(device),
    )
