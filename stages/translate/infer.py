"""Inference: translate the source test split into `test/<slice_id>.png`, and the sample grid."""

from pathlib import Path

import numpy as np
import torch

from medtrans.shared.imageio import from_unit, write_png
from medtrans.stages.translate.base import Translator
from medtrans.stages.translate.data import Split

TEST_DIR = "test"
SAMPLES = "samples.png"


@torch.no_grad()
def translate_split(model: Translator, split: Split, batch_size: int = 16) -> np.ndarray:
    """(N,H,W) uint8 translations of every slice of `split`, in its order."""
    model.set_train(False)
    out = []
    for start in range(0, len(split), batch_size):
        idx = np.arange(start, min(start + batch_size, len(split)))
        a, mask_a, fg_a = split.tensors(idx, model.device)
        with model.autocast():
            fake = model.translate(a, mask_a, fg_a)
        out.append(from_unit(fake.float().clamp(-1, 1)[:, 0].cpu().numpy()))
    return np.concatenate(out)


def write_test(work: Path, ids: list[str], images: np.ndarray) -> None:
    folder = work / TEST_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for sid, img in zip(ids, images, strict=True):
        write_png(folder / f"{sid}.png", img)


def sample_rows(n_test: int, n_rows: int) -> np.ndarray:
    """Indices spread evenly over the test split (it is sorted by slice id, i.e. patient)."""
    return np.unique(np.linspace(0, n_test - 1, min(n_rows, n_test)).round().astype(int))


@torch.no_grad()
def samples_grid(
    model: Translator, split: Split, translated: np.ndarray, n_rows: int, gap: int = 2
) -> np.ndarray:
    """uint8 grid: one row per sample; columns source, translation, then the mask (label maps
    scaled to [0,255]) or foreground for models that use them, then the model's panels."""
    idx = sample_rows(len(split), n_rows)
    a, mask_a, fg_a = split.tensors(idx, model.device)
    cols = [from_unit(split.images[idx]), translated[idx]]
    if model.uses_masks:
        k = max(int(split.masks.max()), 1)
        cols.append((split.masks[idx] * (255 // k)).clip(0, 255).astype(np.uint8))
    if model.uses_foreground:
        cols.append((split.fg[idx] * 255).astype(np.uint8))
    model.set_train(False)
    with model.autocast():
        panels = model.panels(a, mask_a, fg_a)
    for t in panels.values():
        cols.append(from_unit(t.float().clamp(-1, 1)[:, 0].cpu().numpy()))
    n, h, w = cols[0].shape
    grid = np.full((n * (h + gap) - gap, len(cols) * (w + gap) - gap), 255, np.uint8)
    for c, col in enumerate(cols):
        for r in range(n):
            grid[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = col[r]
    return grid


def write_samples(work: Path, grid: np.ndarray) -> None:
    write_png(work / SAMPLES, grid)
