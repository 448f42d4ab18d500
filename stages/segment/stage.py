"""The segment stage: a UNet trained on the real target domain, then Dice and HD95 on the
real target test set (upper bound), the untranslated source test set (lower bound) and
every translator's translated test set (scored against the masks of the source slices).

One unit per task, output `segment/<task>/`. The translators are found at plan time (each
`translate/<task>/<model>/` with a complete manifest) and are inputs of the unit, so a new
or retrained translator makes the unit stale and it re-runs. When the study calibrates
(`calibrate.enabled`), calibrate/<task> is an input too and the unit also scores its calibration
sets with the same UNet (calibration.csv; `calibration`), found at plan time like translators.
"""

import functools
import shutil
from pathlib import Path

import pandas as pd
import torch

from medtrans.shared.calibration import CalibrationSets, calibration_input
from medtrans.shared.config import StudyConfig, StudyError
from medtrans.shared.config.translate import MODELS
from medtrans.shared.dataset import IndexError_, SliceIndex
from medtrans.shared.device import resolve_device
from medtrans.shared.imageio import write_png
from medtrans.shared.layout import RunLayout
from medtrans.shared.log import get_logger
from medtrans.shared.seeding import derive_seed, seed_everything
from medtrans.shared.stage import StageInputError, Unit, UnitContext, complete_translators
from medtrans.stages.segment import calibration
from medtrans.stages.segment.data import ImageSet, check_translated, load_split, load_translated
from medtrans.stages.segment.model import build_unet, check_size, predict
from medtrans.stages.segment.plots import plot_training
from medtrans.stages.segment.scoring import MEAN, per_image_table, score_images, summarize
from medtrans.stages.segment.train import CHECKPOINT, HISTORY_COLUMNS, train

STAGE = "segment"
VERSION = "1"
FLOAT = "%.6f"
log = get_logger("medtrans.segment")


def translators(layout: RunLayout, task: str) -> list[str]:
    """Translator names whose `translate/<task>/<model>/` has a complete manifest."""
    return complete_translators(layout, task, MODELS, STAGE)


def plan(study: StudyConfig, layout: RunLayout, tasks: tuple[str, ...] | None = None) -> list[Unit]:
    """One unit per task (or per task in `tasks`)."""
    problem = check_size(study.segment, study.preprocess.image_size)
    if problem:
        raise StudyError(f"segment.strides: {problem}")
    units = []
    for task in study.tasks:
        if tasks is not None and task not in tasks:
            continue
        models = translators(layout, task)
        inputs = [layout.preprocess(task)] + [layout.translate(task, m) for m in models]
        cal_sets = calibration_input(study.calibrate.enabled, layout, task, STAGE)
        inputs += [cal_sets] if cal_sets else []
        seed = derive_seed(study.seed, STAGE, task)
        units.append(
            Unit(
                stage=STAGE,
                name=(task,),
                out=layout.segment(task),
                config={
                    "segment": study.part("segment"),
                    "structures": list(study.tasks[task].structures),
                    "image_size": study.preprocess.image_size,
                    "seed": study.seed,
                    # absent without calibration: the config digest as before calibration existed
                    **({"calibration": True} if cal_sets else {}),
                },
                build=functools.partial(_build, study=study, task=task, models=models, cal_sets=cal_sets),
                inputs=inputs,
                version=VERSION,
                seeds={"study": study.seed, "segment": seed},
                hint="run `medtrans preprocess` (and the translators) first",
                resumable=True,
            )
        )
    return units


def _eval_sets(index: SliceIndex, layout: RunLayout, task: str, models: list[str], size: int, k: int):
    """The scored sets, all read and checked before training so a bad input fails fast."""
    sets = [load_split(index, "target", "test", size, k, "target")]
    for model in models:  # refuse an incomplete translated set even where it cannot be scored
        check_translated(index, layout.translate(task, model), size)
    if not (index.select("source", "test")["mask"] != "").any():
        log.warning("segment/%s: the source test slices have no masks; only the target set is scored", task)
        return sets
    sets.append(load_split(index, "source", "test", size, k, "source"))
    for model in models:
        sets.append(load_translated(index, layout.translate(task, model), size, k, model))
    return sets


def _build(
    ctx: UnitContext, study: StudyConfig, task: str, models: list[str], cal_sets: Path | None = None
) -> None:
    structures = tuple(study.tasks[task].structures)
    k, size = len(structures), study.preprocess.image_size
    try:
        index = SliceIndex.for_task(ctx.layout, task)
    except IndexError_ as err:
        raise StageInputError(str(err)) from None
    eval_sets = _eval_sets(index, ctx.layout, task, models, size, k)
    train_set = load_split(index, "target", "train", size, k, "target train")
    val_set = load_split(index, "target", "val", size, k, "target val")
    device = resolve_device(study.device)
    log.info(
        "segment/%s: UNet %s on %s, %d train / %d val slices, sets: %s",
        task,
        list(study.segment.channels),
        device,
        len(train_set),
        len(val_set),
        ", ".join(s.name for s in eval_sets),
    )
    model, result = _train_unet(ctx, study, task, train_set, val_set, device)
    summary = _score_sets(ctx, study, task, model, eval_sets, device)
    if cal_sets is not None:
        sets = CalibrationSets.read(ctx.layout, task)
        table = calibration.score_calibration(sets, model, size, k, device, study.segment.batch_size)
        table.to_csv(ctx.work / calibration.TABLE, index=False, float_format=FLOAT)
        ctx.extra["calibration_sets"] = len(sets.perturbed)
    shutil.rmtree(ctx.work / CHECKPOINT.parent, ignore_errors=True)  # model.pt holds the best weights
    means = summary[(summary.structure == MEAN) & (summary.metric == "dice")]
    ctx.extra.update(
        device=str(device),
        best_epoch=result.best_epoch,
        best_val_dice=round(result.best_dice, 6),
        epochs=result.epochs,
        stopped_early=result.stopped_early,
        resumed=ctx.resumed,
        sets={s.name: len(s) for s in eval_sets},
        mean_dice={row.set: round(row.mean, 6) for row in means.itertuples()},
    )
    scores = ", ".join(f"{name}={value:.3f}" for name, value in ctx.extra["mean_dice"].items())
    log.info("segment/%s: mean Dice %s", task, scores)


def _train_unet(
    ctx: UnitContext, study: StudyConfig, task: str, train_set: ImageSet, val_set: ImageSet, device
):
    """Train (or resume) the UNet; write model.pt (the best weights), training.csv and .png."""
    cfg, structures = study.segment, list(study.tasks[task].structures)
    seed = derive_seed(study.seed, STAGE, task)
    seed_everything(seed)
    model = build_unet(cfg, len(structures)).to(device)
    result = train(
        model,
        train_set,
        val_set,
        cfg,
        len(structures),
        device,
        seed,
        ctx.work,
        ctx.resumed,
        desc=f"segment {task}",
    )
    model.load_state_dict(result.best_state)
    torch.save(
        {
            "state_dict": model.state_dict(),
            "epoch": result.best_epoch,
            "val_dice": result.best_dice,
            "structures": structures,
            "config": study.part("segment"),
        },
        ctx.work / "model.pt",
    )
    history = pd.DataFrame(result.history, columns=list(HISTORY_COLUMNS))
    history.to_csv(ctx.work / "training.csv", index=False, float_format="%.8g")
    plot_training(history, ctx.work / "training.png", f"segment/{task}", result.best_epoch)
    return model, result


def _score_sets(ctx: UnitContext, study: StudyConfig, task: str, model, eval_sets: list[ImageSet], device):
    """dice.csv (per image and structure) and summary.csv (bootstrap means) over every set."""
    cfg, structures = study.segment, tuple(study.tasks[task].structures)
    tables = [
        _score_set(model, s, ctx.work, structures, device, cfg.batch_size, cfg.hd_percentile)
        for s in eval_sets
    ]
    dice = pd.concat(tables, ignore_index=True)
    dice.to_csv(ctx.work / "dice.csv", index=False, float_format=FLOAT)
    summary = summarize(dice, study.seed, task, cfg.bootstrap)
    summary.to_csv(ctx.work / "summary.csv", index=False, float_format=FLOAT)
    return summary


def _score_set(model, data: ImageSet, work: Path, structures, device, batch_size: int, percentile: float):
    """Predict one set, save the label maps, and score them per image and structure."""
    pred = predict(model, data.images, device, batch_size)
    for sid, label in zip(data.slice_ids, pred, strict=True):
        write_png(work / "predictions" / data.name / f"{sid}.png", label)
    dice, hd95 = score_images(pred, data.masks, len(structures), percentile)
    return per_image_table(data.name, data.slice_ids, structures, dice, hd95)
