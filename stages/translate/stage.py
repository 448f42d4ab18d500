"""The translate stage: one unit per task x enabled translator, `translate/<task>/<model>/`
from `preprocess/<task>/` (see framework.py for the pieces)."""

from functools import partial

import torch

from medtrans.shared.config import StudyConfig
from medtrans.shared.config.study import StudyError
from medtrans.shared.dataset import SliceIndex
from medtrans.shared.device import resolve_device
from medtrans.shared.layout import RunLayout
from medtrans.shared.log import get_logger
from medtrans.shared.seeding import derive_seed, seed_everything
from medtrans.shared.stage import Unit, UnitContext
from medtrans.stages.translate import infer, loop
from medtrans.stages.translate.data import DEFAULT_FG_THRESHOLD, TrainData, load_split
from medtrans.stages.translate.labels import check_source_masks
from medtrans.stages.translate.registry import get_model
from medtrans.stages.translate.settings import task_settings

VERSION = "1"
log = get_logger("medtrans.translate")


def unit_config(study: StudyConfig, task: str, model: str) -> dict:
    """The part of the study a translator's output depends on (digested into its manifest)."""
    return {
        "model": model,
        "settings": task_settings(study, task, model).model_dump(mode="json"),
        "sample_grid": study.translate.sample_grid,
        "log_every": study.translate.log_every,
        "foreground_threshold": study.part("translate", "foreground_threshold"),
        "modalities": [study.tasks[task].source.modality, study.tasks[task].target.modality],
        "image_size": study.preprocess.image_size,
        "structures": list(study.tasks[task].structures),
        "seed": study.seed,
    }


def plan(
    study: StudyConfig,
    layout: RunLayout,
    models: tuple[str, ...] | None = None,
    preflight: bool = True,
    **_filters,
) -> list[Unit]:
    """The units; with `preflight` (the default) refuses, before any training, units that
    could not train properly here (blank source label maps, missing weights). A caller that
    only lists or costs the units may pass preflight=False."""
    chosen = [m for m in study.translate.models if models is None or m in models]
    check_task_names(study)
    units = []
    for task in study.tasks:
        for model in chosen:
            if preflight:
                check_source_masks(study, task, model, layout)
                get_model(model).preflight(task_settings(study, task, model))
            seed = derive_seed(study.seed, "translate", task, model)
            units.append(
                Unit(
                    stage="translate",
                    name=(task, model),
                    out=layout.translate(task, model),
                    config=unit_config(study, task, model),
                    build=partial(build, study, task, model, seed),
                    inputs=[layout.preprocess(task)],
                    version=VERSION,
                    seeds={"translate": seed},
                    hint="run `medtrans preprocess` first",
                    resumable=True,
                )
            )
    return units


def check_task_names(study: StudyConfig) -> None:
    """Per-task translate settings must name tasks of the study."""
    named = {"translate.no_flip": study.translate.no_flip}
    named["translate.spade.label_source_tasks"] = tuple(study.translate.spade.label_source_tasks)
    for key, tasks in named.items():
        unknown = [t for t in tasks if t not in study.tasks]
        if unknown:
            raise StudyError(
                f"{key}: unknown task(s) {', '.join(unknown)}; the study's tasks are {', '.join(study.tasks)}"
            )


def foreground_thresholds(study: StudyConfig, task: str, settings) -> tuple[float, float]:
    """Source and target thresholds of the automatic foreground masks."""
    override = getattr(settings, "mask_threshold", None)
    t = study.tasks[task]
    table = study.translate.foreground_threshold
    if override is not None:
        return override, override
    return table.get(t.source.modality, DEFAULT_FG_THRESHOLD), table.get(
        t.target.modality, DEFAULT_FG_THRESHOLD
    )


def build(study: StudyConfig, task: str, name: str, seed: int, ctx: UnitContext) -> None:
    settings = task_settings(study, task, name)
    check_source_masks(study, task, name, ctx.layout)  # the index is there now: refuse before training
    size = study.preprocess.image_size
    n_classes = len(study.tasks[task].structures) + 1
    device = resolve_device(study.device)
    fg_src, fg_tgt = foreground_thresholds(study, task, settings)
    index = SliceIndex.for_task(ctx.layout, task)
    data = TrainData(
        source=load_split(index, "source", "train", size, n_classes, fg_src),
        target=load_split(index, "target", "train", size, n_classes, fg_tgt),
    )
    test = load_split(index, "source", "test", size, n_classes, fg_src)

    # Import the model (and MONAI, whose import draws from Python's `random`) before seeding,
    # so the RNG state saved in checkpoints does not depend on what this process imported before.
    model_cls = get_model(name)
    seed_everything(seed)
    model = model_cls(settings, n_classes=n_classes, image_size=size, device=device, seed=seed)
    result = loop.train(
        model,
        data,
        settings.schedule,
        ctx.work,
        seed,
        accel=settings.accel,
        augment=getattr(settings, "augment", None),  # a translator without one: unaugmented
        log_every=study.translate.log_every,
        resume=ctx.resumed,
        desc=f"{task}/{name}",
    )

    translated = infer.translate_split(model, test)
    infer.write_test(ctx.work, test.ids, translated)
    infer.write_samples(ctx.work, infer.samples_grid(model, test, translated, study.translate.sample_grid))
    ctx.extra.update(_extra(result, device, data, len(test)))
    log.info(
        "%s/%s: %d iterations, %s s/iteration",
        task,
        name,
        result.iterations,
        ctx.extra["seconds_per_iteration"],
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _extra(result: loop.LoopResult, device: torch.device, data: TrainData, n_test: int) -> dict:
    """The manifest's `extra`: the schedule's size, the speed, the final losses."""
    return {
        "iterations": result.iterations,
        "epochs": result.epochs,
        "seconds_per_iteration": _rounded(result.seconds_per_iteration),
        "cpu_seconds_per_iteration": _rounded(result.cpu_seconds_per_iteration),
        "torch_threads": torch.get_num_threads(),
        "resumed_from_iteration": result.resumed_from_iteration,
        "final_losses": {k: round(v, 6) for k, v in result.final_losses.items()},
        "device": str(device),
        "n_train": {"source": len(data.source), "target": len(data.target)},
        "n_test": n_test,
    }
