"""The calibration suite of the demo study's two tasks against its budget (3 minutes on 2 cores).

The demo's own settings (studies/demo.yaml: perturbations, severities, slice draw, metrics, SWD
sizes) on phantom-like 64 x 64 slices of the demo's target test sizes (breast 47, spine 35) with
masks, and a UNet of the demo's architecture (random weights: its Dice means nothing here, its
cost is the real one). The pipeline's path, through the units' own functions on a run folder:
the calibrate stage writes the sets (`write_sets`), segment scores them with its UNet
(`segment.calibration.score_calibration`), metrics scores them from the reference's features
(`metrics.calibration_unit.score_calibration`). The reference's features are the metrics stage's
target_test features, which it computes for the translators anyway; the bench extracts them once
(the calibrated metrics only) and reports that time apart (`reference_s`, not in the total). One
process, the tasks one after the other: the time of the runner's sequential order.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[2]
BUDGET_S = 180.0
DEMO_TEST = {"breast": (47, 2), "spine": (35, 1)}  # target test slices, structures


def phantom_set(n: int, size: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Textured discs (k nested structures) on a dark background, like the phantom's slices."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for _ in range(n):
        cy, cx = size / 2 + g.uniform(-4, 4, 2)
        mask = np.zeros((size, size), np.uint8)
        for label in range(1, k + 1):
            r = size * (0.35 / label) * g.uniform(0.8, 1.1)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = label
        img = 15 + 90 * (mask > 0) + 60 * (mask > 1) + g.normal(0, 8, (size, size))
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        masks.append(mask)
    return np.stack(images), np.stack(masks)


def _unet(study, k: int):
    from medtrans.stages.segment.model import build_unet

    torch.manual_seed(0)
    return build_unet(study.segment, k)


def _reference_folder(layout, task: str, images: np.ndarray, masks: np.ndarray):
    """The unperturbed slices as preprocess would leave them (PNG images and masks)."""
    from medtrans.shared.imageio import write_png

    folder = layout.preprocess(task)
    ids = [f"s{i:03d}" for i in range(len(images))]
    paths = ([folder / "images" / f"{i}.png" for i in ids], [folder / "masks" / f"{i}.png" for i in ids])
    for im, m, pi, pm in zip(images, masks, *paths, strict=True):
        write_png(pi, im)
        write_png(pm, m)
    return ids, paths


def _task(study, layout, task: str, n: int, k: int, perturbations, severities: int, quick: bool) -> dict:
    """One task's three steps; (cpu seconds, wall seconds) per step and the rows written."""
    from medtrans.shared.calibration import CalibrationSets
    from medtrans.shared.seeding import derive_seed
    from medtrans.stages.calibrate.stage import write_sets
    from medtrans.stages.metrics.calibration_unit import calibrated_metrics, score_calibration
    from medtrans.stages.metrics.pipeline import FeatureSettings, ImageStack, extract_sets
    from medtrans.stages.metrics.stage import swd_params
    from medtrans.stages.segment.calibration import score_calibration as segment_calibration

    cfg = study.calibrate
    images, masks = phantom_set(n, study.preprocess.image_size, k, seed=len(task))
    keep = np.arange(min(n, cfg.images or n, 4 if quick else n))
    images, masks = images[keep], masks[keep]
    ids, paths = _reference_folder(layout, task, images, masks)
    out, times = layout.calibrate(task), {}
    cpu = torch.device("cpu")
    fs = FeatureSettings("pytorch-fid", study.metrics.batch_size, cpu, swd_params(study), 1)
    network = _network(calibrated_metrics(study))

    clock = _Clock()
    seed = derive_seed(study.seed, "calibrate", task)
    write_sets(out, out, ids, paths, images, masks, perturbations, severities, seed)
    times["perturb"] = clock.lap()
    sets = CalibrationSets.read(layout, task)
    size, batch = study.preprocess.image_size, study.segment.batch_size
    table = segment_calibration(sets, _unet(study, k), size, k, cpu, batch)
    times["segment"] = clock.lap()
    stack = ImageStack("target_test", ids, images, derive_seed(study.seed, "metrics", task, "swd", "centres"))
    (reference,), _ = extract_sets([stack], calibrated_metrics(study), network, fs)
    times["reference"] = clock.lap()
    work = layout.root / "metrics" / task
    work.mkdir(parents=True, exist_ok=True)
    score_calibration(study, layout, task, work, reference, network, fs)
    times["metrics"] = clock.lap()
    scores = pd.read_csv(work / "calibration.csv")
    return {"times": times, "rows": len(scores), "sets": len(table)}


class _Clock:
    def __init__(self):
        self.t, self.c = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        out = (c - self.c, t - self.t)
        self.t, self.c = t, c
        return out


def bench_calibration(tmp: Path, quick: bool = False) -> dict:
    """CPU seconds (process time: the machine may be loaded) and wall seconds of both tasks."""
    from medtrans.shared.config import load_study
    from medtrans.shared.layout import RunLayout
    from medtrans.stages.metrics.calibration_unit import calibrated_metrics

    study = load_study(ROOT / "studies" / "demo.yaml")
    cfg = study.calibrate
    perturbations = tuple(cfg.perturbations[:2] if quick else cfg.perturbations)
    severities = 3 if quick else cfg.severities
    layout = RunLayout(tmp / "run")
    steps: dict[str, list[float]] = {}
    rows = 0
    for task, (n, k) in DEMO_TEST.items():
        result = _task(study, layout, task, n, k, perturbations, severities, quick)
        rows += result["rows"]
        for step, (c, w) in result["times"].items():
            steps.setdefault(step, [0.0, 0.0])
            steps[step][0] += c
            steps[step][1] += w
    counted = [s for s in steps if s != "reference"]
    cpu, wall = sum(steps[s][0] for s in counted), sum(steps[s][1] for s in counted)
    return {
        "name": "calibration", "tasks": len(DEMO_TEST), "images": cfg.images,
        "perturbations": len(perturbations), "severities": severities,
        "metrics": list(calibrated_metrics(study)), "rows": rows,
        "steps_cpu_s": {s: round(v[0], 2) for s, v in steps.items()},
        "steps_wall_s": {s: round(v[1], 2) for s, v in steps.items()},
        "reference_s": steps["reference"][0],
        "ours_s": wall, "cpu_s": cpu, "budget_s": BUDGET_S, "ratio": BUDGET_S / cpu,
    }  # fmt: skip


def _network(metrics):
    from medtrans.shared.catalogue import metrics as catalogue
    from medtrans.stages.metrics.extract import Network, locate_network
    from medtrans.stages.metrics.weights import weights_dir

    if any(m in catalogue.needing_weights() for m in metrics):
        return locate_network(weights_dir(), None)
    return Network(None, note="not requested")
