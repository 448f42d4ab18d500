"""The translator framework: pairing, schedule, data loading, foreground masks, the loop's
exact resume and determinism, and the translate stage end to end on a synthetic task.

`known_mapping_run` builds a small preprocess folder (the index.csv contract) whose target
domain is a KNOWN function of the source domain (`target_of`: intensity inversion inside
the body, background kept at 0), so translators can be checked against the right answer.
The model-specific learning tests (test_cyclegan.py, test_maskgan.py) reuse it.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medtrans.shared.config import parse_study
from medtrans.shared.dataset import COLUMNS, SliceIndex
from medtrans.shared.imageio import read_png, write_png
from medtrans.shared.layout import RunLayout
from medtrans.shared.stage import Unit, execute

STRUCTURES = ("tissue", "core")


def phantom_slice(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A source-domain slice: dark background 0, body ~90 with texture, a bright core ~200.
    Returns (uint8 image, uint8 labels: 1 body outside the core, 2 core)."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    cy, cx = rng.uniform(-0.15, 0.15, 2)
    ry, rx = rng.uniform(0.55, 0.85, 2)
    body = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    ky, kx = cy + rng.uniform(-0.2, 0.2), cx + rng.uniform(-0.2, 0.2)
    r = rng.uniform(0.15, 0.3)
    core = (((yy - ky) / r) ** 2 + ((xx - kx) / (r * rng.uniform(0.7, 1.3))) ** 2 <= 1) & body
    texture = 8 * np.sin(3 * yy + rng.uniform(0, 6)) * np.cos(4 * xx + rng.uniform(0, 6))
    img = np.where(body, 90 + texture, 0.0)
    img = np.where(core, 200 + texture / 2, img)
    labels = np.where(core, 2, np.where(body, 1, 0)).astype(np.uint8)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), labels


def target_of(image: np.ndarray) -> np.ndarray:
    """The known source -> target mapping: inside the body v -> 280 - v, background stays 0."""
    v = image.astype(np.int32)
    return np.where(v > 0, np.clip(280 - v, 0, 255), 0).astype(np.uint8)


def _write_index(folder: Path, size: int, patients: int, slices: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    splits = ["train"] * (patients - 2) + ["val", "test"]
    for role, domain in (("source", "srcdom"), ("target", "tgtdom")):
        for p in range(patients):
            pid = f"{role[0]}{p:02d}"
            for s in range(slices):
                img, lab = phantom_slice(rng, size)
                if role == "target":
                    img = target_of(img)
                sid = f"{pid}_{s:03d}"
                write_png(folder / "images" / f"{sid}.png", img)
                write_png(folder / "masks" / f"{sid}.png", lab)
                present = "|".join(n for k, n in enumerate(STRUCTURES, 1) if (lab == k).any())
                rows.append([sid, pid, domain, role, splits[p], s, f"images/{sid}.png", f"masks/{sid}.png", present])
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(folder / "index.csv", index=False)


def study_dict(size: int, models: dict[str, dict], seed: int = 3) -> dict:
    return {
        "name": "tsynth",
        "seed": seed,
        "profile": "demo",
        "device": "cpu",
        "tasks": {
            "synth": {
                "source": {"name": "srcdom", "modality": "MR"},
                "target": {"name": "tgtdom", "modality": "MR"},
                "structures": list(STRUCTURES),
                "data": {"kind": "phantom", "patients_per_domain": 4, "shape": [4, size, size]},
            }
        },
        "preprocess": {"image_size": size},
        "translate": {"models": list(models), **models, "sample_grid": 4, "log_every": 2},
    }


def known_mapping_run(root: Path, size: int = 32, patients: int = 6, slices: int = 6, seed: int = 0) -> RunLayout:
    """A run folder whose `preprocess/synth/` is complete (manifest included), made by a
    one-off unit that writes the synthetic slices."""
    layout = RunLayout(Path(root))
    unit = Unit(
        stage="preprocess",
        name=("synth",),
        out=layout.preprocess("synth"),
        config={"synthetic": [size, patients, slices, seed]},
        build=lambda ctx: _write_index(ctx.work, size, patients, slices, seed),
    )
    execute(unit, layout)
    return layout


def tiny(**schedule) -> dict:
    return {"ngf": 8, "ndf": 8, "n_blocks": 2, "schedule": {"n_epochs": 1, "n_epochs_decay": 1, "iters_per_epoch": 3, **schedule}}
