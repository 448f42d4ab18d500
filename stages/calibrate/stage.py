"""The calibrate stage: per task, the real target test set perturbed with known effect on anatomy
(README, Calibration), written into the run folder like a translated set, with its own masks.
One unit per task, `calibrate/<task>/`: sets.csv and sets/<perturbation>-<severity>/ (the format
of `medtrans.shared.calibration`), manifest.json.

Input: preprocess/<task> only (the target test slices and their masks), so the unit runs beside
the translators. Segment and metrics score the sets as they score translators, and the report
reads their scores; this stage scores nothing. A study switches it off with
`calibrate: {enabled: false}` (no units, and segment and metrics score no calibration sets).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from medtrans.shared import calibration as sets_format
from medtrans.shared.catalogue import perturbations as catalogue
from medtrans.shared.config import StudyConfig
from medtrans.shared.dataset import IndexError_, SliceIndex
from medtrans.shared.imageio import ImageFormatError, read_png, write_png
from medtrans.shared.layout import RunLayout
from medtrans.shared.log import get_logger, progress
from medtrans.shared.seeding import derive_seed, rng
from medtrans.shared.stage import StageInputError, Unit, UnitContext
from medtrans.stages.calibrate.perturb import perturb_set

STAGE = "calibrate"
VERSION = "2"  # 2: perturbs only; segment and metrics score the sets
log = get_logger("medtrans.calibrate")


def plan(study: StudyConfig, layout: RunLayout, tasks: tuple[str, ...] | None = None) -> list[Unit]:
    """One unit per task; none when the study switches calibration off."""
    if not study.calibrate.enabled:
        return []
    cfg = study.calibrate
    return [
        Unit(
            stage=STAGE,
            name=(task,),
            out=layout.calibrate(task),
            config={
                "perturbations": list(cfg.perturbations),
                "severities": cfg.severities,
                "images": cfg.images,
                "seed": study.seed,
                "image_size": study.preprocess.image_size,
            },
            build=functools.partial(_build, study=study, task=task),
            inputs=[layout.preprocess(task)],
            version=VERSION,
            seeds={"study": study.seed, "calibrate": derive_seed(study.seed, STAGE, task)},
            hint="run `medtrans preprocess` first",
        )
        for task in study.tasks
        if tasks is None or task in tasks
    ]


def _read(path, size: int) -> np.ndarray:
    try:
        return read_png(path, size)
    except ImageFormatError as err:
        raise StageInputError(f"{err}; rerun `medtrans preprocess`") from None


def test_slices(study: StudyConfig, layout: RunLayout, task: str):
    """The seeded draw of `calibrate.images` target test slices with masks (all when 0): their
    ids, preprocess's image and mask paths, and the images and masks."""
    try:
        index = SliceIndex.for_task(layout, task)
    except IndexError_ as err:
        raise StageInputError(str(err)) from None
    rows = index.select("target", "test")
    rows = rows[rows["mask"] != ""].reset_index(drop=True)
    keep = np.arange(len(rows))
    n = study.calibrate.images
    if n and n < len(keep):
        keep = np.sort(rng(study.seed, STAGE, task, "images").choice(len(keep), n, replace=False))
    if len(keep) < 2:
        raise StageInputError(
            f"{index.folder / 'index.csv'}: {len(keep)} target test slice(s) with masks; calibration needs 2"
        )
    rows = rows.iloc[keep]
    size = study.preprocess.image_size
    images = np.stack([_read(index.path(p), size) for p in rows.image])
    masks = np.stack([_read(index.path(p), size) for p in rows["mask"]])
    return list(rows.slice_id), [index.path(p) for p in rows.image], [index.path(p) for p in rows["mask"]], \
        images, masks  # fmt: skip


def write_sets(
    work: Path, final: Path, ids: list[str], originals: tuple[list[Path], list[Path]], images: np.ndarray,
    masks: np.ndarray, perturbations: tuple[str, ...], severities: int, seed: int, what: str = "",
) -> int:  # fmt: skip
    """Every calibration set into `work` (the unit's partial folder; `final` where it lands, which
    the reference's relative paths start from) and sets.csv; `originals`: preprocess's image and
    mask paths of the slices. Returns the number of perturbed sets."""
    rel = [[os.path.relpath(p, final) for p in paths] for paths in originals]
    rows = sets_format.table_rows(sets_format.NONE, sets_format.NONE, sets_format.NONE, 0, ids, *rel)
    for name in progress(perturbations, desc=f"calibrate {what}".strip(), unit="perturbation"):
        family = catalogue.family(name)
        for severity in range(1, severities + 1):
            pimages, pmasks = perturb_set(images, masks, name, severity, severities, seed)
            set_name = sets_format.set_name(name, severity)
            rel_images, rel_masks = sets_format.set_paths(set_name, ids)
            for i in range(len(ids)):
                write_png(work / rel_images[i], pimages[i])
                write_png(work / rel_masks[i], pmasks[i])
            rows += sets_format.table_rows(set_name, name, family, severity, ids, rel_images, rel_masks)
    sets_format.write_table(work / sets_format.SETS, rows)
    return len(perturbations) * severities


def _build(ctx: UnitContext, study: StudyConfig, task: str) -> None:
    ids, image_paths, mask_paths, images, masks = test_slices(study, ctx.layout, task)
    cfg, seed = study.calibrate, derive_seed(study.seed, STAGE, task)
    write_sets(
        ctx.work, ctx.layout.calibrate(task), ids, (image_paths, mask_paths), images, masks,
        tuple(cfg.perturbations), cfg.severities, seed, task,
    )  # fmt: skip
    ctx.extra.update(
        {"images": len(ids), "perturbations": list(cfg.perturbations), "severities": cfg.severities}
    )
