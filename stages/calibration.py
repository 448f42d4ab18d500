"""`medtrans calibrate`: the calibration suite on any folder of real images (`medtrans calibrate
REAL [--masks MASKS] [--out DIR]`), or, with --study, the pipeline's stage (`calibrate/<task>`: the
calibration sets, which segment and metrics then score).

The command layer, so it may import every stage: a folder is perturbed by the calibrate stage's
functions, scored by the metrics stage's `Calibrator` and the segment stage's `UNetDice` (the
functions the pipeline's units score calibration sets with), and summarised by the report's."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from medtrans.shared.catalogue import metrics as metric_catalogue
from medtrans.shared.catalogue import perturbations as catalogue
from medtrans.shared.cli import ForceOpt, RunOpt, UserError, friendly, open_study
from medtrans.shared.device import resolve_device
from medtrans.shared.log import progress
from medtrans.shared.seeding import derive_seed, rng
from medtrans.stages.calibrate.perturb import NEEDS_MASK, perturb_set
from medtrans.stages.calibration_masks import read_masks
from medtrans.stages.metrics.calibration import CalibrationSettings, Calibrator
from medtrans.stages.metrics.extract import Network, locate_network
from medtrans.stages.metrics.images import PLANES, FolderError, Windowing, load_folder
from medtrans.stages.metrics.pipeline import FeatureSettings
from medtrans.stages.metrics.scoring import ScoreSettings
from medtrans.stages.metrics.swd import SWDParams
from medtrans.stages.metrics.weights import WeightsMismatch
from medtrans.stages.report.calibration_analysis import COLUMNS, responses, summarise
from medtrans.stages.report.calibration_figures import response_figures
from medtrans.stages.segment.calibration import CheckpointError, UNetDice

FLOAT = "%.10g"
TABLE, SUMMARY, FIGURES = "calibration.csv", "summary.csv", "figures"
NONE = "none"  # the perturbation name of the unperturbed rows


def _names(text: str, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise UserError(f"unknown {what} {bad}; choose from {','.join(known)}")
    return names


def calibrate_folder(real: Path, masks: Path | None, out: Path, unet: Path | None = None, **o) -> dict:
    """The suite on REAL's images; writes calibration.csv, summary.csv, figures/, settings.json."""
    images = load_folder(real, Windowing(plane=o["plane"], modality=o["modality"], size=o["size"]))
    if o["images"] and o["images"] < len(images):
        keep = np.sort(rng(o["seed"], "calibrate", "images").choice(len(images), o["images"], replace=False))
        images.names, images.images = [images.names[i] for i in keep], images.images[keep]
    labels = read_masks(masks, images, o["size"]) if masks is not None else None
    device = resolve_device(o["device"])
    model = UNetDice(unet, device) if unet is not None else None
    if model is not None and labels is not None and int(labels.max()) > len(model.structures):
        raise FolderError(f"{masks}: label {int(labels.max())} but {unet} segments {len(model.structures)}")
    metrics = o["metrics"]
    needs_net = any(m in metric_catalogue.needing_weights() for m in metrics)
    network = locate_network(o["weights"], None) if needs_net else Network(None, note="not requested")
    seed = derive_seed(o["seed"], "calibrate")
    params = SWDParams()
    settings = CalibrationSettings(
        FeatureSettings("pytorch-fid", 32, device, params, o["frd_workers"], o["cache"], True),
        ScoreSettings(metrics=metrics, kid_seed=o["seed"], is_seed=o["seed"], swd=params,
                      swd_seed=derive_seed(seed, "swd", "directions"), device=str(device)),
        o["nhood_sizes"], seed,
    )  # fmt: skip
    perturbations = usable(o["perturbations"], labels is not None)
    calibrator = Calibrator(images.images, images.names, settings, network)
    table = run_suite(
        perturbations, o["severities"], seed, images.images, labels, calibrator, model, real.name
    )
    summary = write_outputs(table, out, title=f"{real.name}:")
    record = {
        "real": str(real), "masks": str(masks) if masks else None, "unet": str(unet) if unet else None,
        "n": len(images), "names": images.names,
        "perturbations": list(perturbations), "severities": o["severities"], "metrics": list(metrics),
        "nhood_sizes": list(o["nhood_sizes"]),
        "seed": o["seed"], "network": network.describe(),
    }  # fmt: skip
    (out / "settings.json").write_text(json.dumps(record, indent=2) + "\n")
    return {"settings": record, "summary": summary}


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
    perturbations: tuple[str, ...], severities: int, seed: int, images: np.ndarray, masks: np.ndarray | None,
    calibrator: Calibrator, unet: UNetDice | None, what: str = "",
) -> pd.DataFrame:  # fmt: skip
    """The long table (report.calibration_analysis.COLUMNS) of one folder: every perturbation at
    every severity, one feature pass per perturbation."""
    rows = _rows(NONE, 0, calibrator.reference_scores(), _dice(unet, images, masks, masks))
    for name in progress(perturbations, desc=f"calibrate {what}".strip(), unit="perturbation"):
        perturbed = [perturb_set(images, masks, name, s, severities, seed) for s in range(1, severities + 1)]
        scores = calibrator.score([(f"{name}/{s}", p[0]) for s, p in enumerate(perturbed, 1)])
        for s, ((pimages, pmasks), values) in enumerate(zip(perturbed, scores, strict=True), 1):
            rows += _rows(name, s, values, _dice(unet, pimages, pmasks, masks))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("value", "dice_perturbed_gt", "dice_original_gt"):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    return table


def write_outputs(table: pd.DataFrame, folder: Path, title: str = "") -> pd.DataFrame:
    """calibration.csv, summary.csv and figures/ of one calibrated folder; returns the summary."""
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / TABLE, index=False, float_format=FLOAT)
    summary = summarise(table)
    summary.to_csv(folder / SUMMARY, index=False, float_format=FLOAT)
    response_figures(responses(table), folder / FIGURES, title)
    return summary


def _stage(study: Path, run: Path | None, force: bool, task: list[str] | None) -> None:
    from medtrans.stages import runner

    cfg, layout = open_study(study, run)
    unknown = [t for t in task or () if t not in cfg.tasks]
    if unknown:
        raise UserError(f"{study}: no task {unknown[0]!r}; the study's tasks are {', '.join(cfg.tasks)}")
    if not cfg.calibrate.enabled:
        typer.echo(f"calibrate: switched off in {study} (calibrate.enabled: false)")
    for o in runner.run_stage("calibrate", cfg, layout, force=force, tasks=tuple(task) if task else None):
        typer.echo(f"{o.result:8s} {o.unit} ({o.seconds:.1f}s)")


RealArg = Annotated[Path | None, typer.Argument(help="Folder of real target-domain images.")]
MasksOpt = Annotated[Path | None, typer.Option(help="Folder of label masks named like the images.")]
OutOpt = Annotated[Path, typer.Option(help="Output folder.")]
UnetOpt = Annotated[Path | None, typer.Option(help="A segment/<task>/model.pt, for Dice (needs --masks).")]
ListOpt = Annotated[str, typer.Option(help="Comma-separated.")]
SeveritiesOpt = Annotated[int, typer.Option(min=3, max=20, help="Graded severities each.")]
ImagesOpt = Annotated[int, typer.Option(min=0, help="A seeded draw of this many images (0: all).")]
NhoodOpt = Annotated[str, typer.Option(help="SWD neighbourhood sizes.")]
WeightsOpt = Annotated[Path | None, typer.Option(help="Folder with the Inception weights.")]
PlaneOpt = Annotated[str, typer.Option(help="Slicing plane for volumes.")]
ModalityOpt = Annotated[str, typer.Option(help="Windowing of volumes: auto, MR or CT.")]
SizeOpt = Annotated[int | None, typer.Option(help="Resize every slice to SIZE x SIZE.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of every random choice.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
CacheOpt = Annotated[Path | None, typer.Option(help="Folder caching FRD features by image sha256.")]
FrdWorkersOpt = Annotated[int, typer.Option(min=0, help="FRD processes (0: one per CPU).")]
StudyOpt = Annotated[Path | None, typer.Option("--study", "-s", help="Run the pipeline's stage instead.")]
TaskOpt = Annotated[list[str] | None, typer.Option("--task", "-t", help="With --study: only this task.")]


def register(app: typer.Typer) -> None:
    @app.command("calibrate")
    @friendly
    def calibrate_cmd(
        real: RealArg = None,
        masks: MasksOpt = None,
        out: OutOpt = Path("calibration"),
        unet: UnetOpt = None,
        perturbations: ListOpt = ",".join(catalogue.names()),
        severities: SeveritiesOpt = 5,
        images: ImagesOpt = 0,
        metrics: ListOpt = ",".join(metric_catalogue.names()),
        nhood_sizes: NhoodOpt = "3,5,7,9,11",
        weights: WeightsOpt = None,
        plane: PlaneOpt = "axial",
        modality: ModalityOpt = "auto",
        size: SizeOpt = None,
        seed: SeedOpt = 2020,
        device: DeviceOpt = "auto",
        cache: CacheOpt = None,
        frd_workers: FrdWorkersOpt = 0,
        study: StudyOpt = None,
        run: RunOpt = None,
        force: ForceOpt = False,
        task: TaskOpt = None,
    ) -> None:
        """Perturb real images with known effect on anatomy and score every metric (and a UNet's
        Dice) against the unperturbed set; with --study, the calibrate stage of a run (its
        calibration sets, which `medtrans segment` and `medtrans metrics` then score)."""
        if study is not None:
            return _stage(study, run, force, task)
        if real is None:
            raise UserError("give a folder of real images (REAL), or --study for the pipeline's stage")
        if unet is not None and masks is None:
            raise UserError("--unet needs --masks: Dice is computed against the masks")
        if plane not in PLANES or modality not in ("auto", "MR", "CT"):
            raise UserError(f"--plane: {'|'.join(PLANES)}; --modality: auto|MR|CT")
        sizes = _nhood_sizes(nhood_sizes)
        try:
            result = calibrate_folder(
                real, masks, out, unet, plane=plane, modality=modality, size=size, device=device, seed=seed,
                metrics=_names(metrics, metric_catalogue.names(), "metric(s)"), weights=weights, cache=cache,
                perturbations=_names(perturbations, catalogue.names(), "perturbation(s)"),
                severities=severities, nhood_sizes=sizes, images=images, frd_workers=frd_workers,
            )  # fmt: skip
        except (FolderError, CheckpointError, WeightsMismatch, ValueError) as err:
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            sys.exit(2)
        _show(result, out)


def _nhood_sizes(text: str) -> tuple[int, ...]:
    """--nhood-sizes as odd integers from 3 to 15, or a clear error."""
    try:
        sizes = tuple(int(k) for k in text.split(",") if k.strip())
    except ValueError:
        raise UserError(f"--nhood-sizes: odd integers, e.g. 3,5,7 (got {text!r})") from None
    if not sizes or any(k < 3 or k % 2 == 0 or k > 15 for k in sizes):
        raise UserError(f"--nhood-sizes: odd integers 3 to 15 (got {text!r})")
    return sizes


def _show(result: dict, out: Path) -> None:
    s = result["settings"]
    typer.echo(f"calibrated {s['real']} ({s['n']} images): {len(s['perturbations'])} perturbations x "
               f"{s['severities']} severities")  # fmt: skip
    cols = ["label", "monotonicity_appearance", "monotonicity_anatomy", "asi_severity", "asi_dice"]
    typer.echo(result["summary"][cols].to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))
    typer.echo(f"wrote {out}/calibration.csv, summary.csv, figures/, settings.json")
