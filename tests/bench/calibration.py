"""The calibration suite of the demo study's two tasks against its budget (3 minutes on 2 cores).

The demo's own settings (studies/demo.yaml: perturbations, severities, slice draw, metrics, SWD
sizes) on phantom-like 64 x 64 slices of the demo's target test sizes (breast 47, spine 35) with
masks, and a UNet of the demo's architecture (random weights: its Dice means nothing here, its
cost is the real one). One process, the tasks one after the other: the time of the runner's
sequential order; with units side by side on two cores the wall time is about half.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
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


def _unet(study, k: int, path: Path) -> Path:
    from medtrans.stages.segment.model import build_unet

    torch.manual_seed(0)
    model = build_unet(study.segment, k)
    torch.save({"state_dict": model.state_dict(), "structures": [f"s{i}" for i in range(k)],
                "config": study.part("segment")}, path)  # fmt: skip
    return path


def bench_calibration(tmp: Path, quick: bool = False) -> dict:
    from medtrans.shared.config import load_study
    from medtrans.stages.calibrate.dice import UNetDice
    from medtrans.stages.calibrate.score import Calibrator
    from medtrans.stages.calibrate.stage import settings_for
    from medtrans.stages.calibrate.suite import Suite, run_suite

    study = load_study(ROOT / "studies" / "demo.yaml")
    cfg = study.calibrate
    perturbations = tuple(cfg.perturbations[:2] if quick else cfg.perturbations)
    severities = 3 if quick else cfg.severities
    t, c = time.perf_counter(), time.process_time()
    rows = 0
    for task, (n, k) in DEMO_TEST.items():
        images, masks = phantom_set(n, study.preprocess.image_size, k, seed=len(task))
        keep = np.arange(min(n, cfg.images or n, 4 if quick else n))
        images, masks = images[keep], masks[keep]
        settings = settings_for(study, task, torch.device("cpu"))
        unet = UNetDice(_unet(study, k, tmp / f"{task}.pt"), torch.device("cpu"))
        calibrator = Calibrator(images, [str(i) for i in keep], settings, _network(settings))
        rows += len(
            run_suite(Suite(perturbations, severities, settings.seed), images, masks, calibrator, unet)
        )
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {
        "name": "calibration", "tasks": len(DEMO_TEST), "images": cfg.images,
        "perturbations": len(perturbations),
        "severities": severities, "metrics": list(settings.scores.metrics), "rows": rows,
        "ours_s": wall, "cpu_s": cpu, "budget_s": BUDGET_S, "ratio": BUDGET_S / wall,
    }  # fmt: skip


def _network(settings):
    from medtrans.shared.catalogue import metrics as catalogue
    from medtrans.stages.metrics.extract import Network, locate_network
    from medtrans.stages.metrics.weights import weights_dir

    if any(m in catalogue.needing_weights() for m in settings.scores.metrics):
        return locate_network(weights_dir(), None)
    return Network(None, note="not requested")
