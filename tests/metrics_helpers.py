"""Helpers for the metrics tests: a tiny run folder in the run-folder formats (preprocess index +
slices, translated test sets with manifests, written through the real stage contract), and a
random-weight Inception file loaded through the explicit custom-extractor path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medtrans.shared.config import StudyConfig
from medtrans.shared.dataset import COLUMNS, INDEX
from medtrans.shared.imageio import write_png
from medtrans.shared.layout import RunLayout
from medtrans.shared.stage import Unit, execute


def phantoms(
    n: int, seed: int, size: int = 32, blobs: int = 5, noise: float = 0.0, blur: float = 0.0
) -> np.ndarray:
    """Phantom-like uint8 slices: an elliptical body with smooth bright blobs."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        body = ((xx - 0.5) / r.uniform(0.3, 0.45)) ** 2 + ((yy - 0.5) / r.uniform(0.3, 0.45)) ** 2 < 1
        img = 0.4 * body
        for _ in range(blobs):
            cx, cy, s, a = (
                r.uniform(0.2, 0.8),
                r.uniform(0.2, 0.8),
                r.uniform(0.03, 0.12),
                r.uniform(0.2, 0.8),
            )
            img = img + a * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s)) * body
        img = img + noise * r.standard_normal(img.shape)
        out.append(np.round(np.clip(img / 1.6, 0, 1) * 255).astype(np.uint8))
    return np.stack(out)


def random_inception_file(folder: Path) -> Path:
    """A calibrated random FIDInception state dict (see test_inception_parity) saved as a .pth."""
    from test_inception_parity import calibrated_inception

    path = Path(folder) / "random-inception.pth"
    if not path.is_file():
        torch.save(calibrated_inception().state_dict(), path)
    return path


def _write_unit(
    layout: RunLayout,
    stage: str,
    name: tuple[str, ...],
    out: Path,
    files: dict[str, np.ndarray],
    table: pd.DataFrame | None = None,
    inputs: list[Path] | None = None,
) -> None:
    def build(ctx):
        for rel, arr in files.items():
            write_png(ctx.work / rel, arr)
        if table is not None:
            table.to_csv(ctx.work / INDEX, index=False)

    execute(
        Unit(stage=stage, name=name, out=out, config={"test": True}, build=build, inputs=inputs or []), layout
    )


def make_run(
    root: Path, study: StudyConfig, models=("cyclegan",), n_test: int = 6, n_train: int = 10, translated=None
) -> RunLayout:
    """preprocess/<task>/ for every task of `study` and translate/<task>/<model>/ per model.

    `translated(model, source_images) -> images` makes a translator's output (default: a blurred
    copy of the source test slices)."""
    layout = RunLayout(Path(root))
    size = study.preprocess.image_size
    for t, (task, cfg) in enumerate(study.tasks.items()):
        rows, files, sets = [], {}, {}
        for k, (role, domain, blobs) in enumerate(
            (("source", cfg.source.name, 3), ("target", cfg.target.name, 6))
        ):
            for j, (split, n) in enumerate((("train", n_train), ("val", 2), ("test", n_test))):
                seed = 100 * t + 10 * k + j
                imgs = phantoms(n, seed, size, blobs=blobs)
                sets[(role, split)] = imgs
                for i, img in enumerate(imgs):
                    sid = f"{role[0]}{split}{i:03d}_{i:03d}"
                    rel = f"images/{sid}.png"
                    files[rel] = img
                    rows.append(
                        {
                            "slice_id": sid,
                            "patient": f"p{role}{split}",
                            "domain": domain,
                            "role": role,
                            "split": split,
                            "position": i,
                            "image": rel,
                            "mask": "",
                            "structures": "",
                        }
                    )
        table = pd.DataFrame(rows, columns=list(COLUMNS))
        _write_unit(layout, "preprocess", (task,), layout.preprocess(task), files, table)
        source_ids = sorted(r["slice_id"] for r in rows if r["role"] == "source" and r["split"] == "test")
        src = {r["slice_id"]: files[r["image"]] for r in rows}
        for model in models:
            imgs = np.stack([src[s] for s in source_ids])
            out = translated(model, imgs) if translated else _blur(imgs)
            _write_unit(
                layout,
                "translate",
                (task, model),
                layout.translate(task, model),
                {f"test/{sid}.png": img for sid, img in zip(source_ids, out, strict=True)},
                inputs=[layout.preprocess(task)],
            )
    return layout


def _blur(imgs: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return np.stack([np.round(ndimage.gaussian_filter(i.astype(float), 1.0)).astype(np.uint8) for i in imgs])


def with_metrics(study: StudyConfig, **changes) -> StudyConfig:
    """The study with its metrics section changed (validated)."""
    data = study.model_dump(mode="json")
    data["metrics"].update(changes)
    return StudyConfig.model_validate(data)
