"""Dice and HD95 per image and structure (MONAI metrics), with explicit empty-mask rules,
and their summary with bootstrap confidence intervals.

Empty masks (a structure absent from the reference, the prediction, or both) are where
metric libraries disagree, so the rules are fixed here and documented in the README:

- both empty: Dice 1, HD95 0 (the model correctly found nothing);
- exactly one empty: Dice 0, HD95 = the image diagonal in pixels (the largest distance
  possible on the grid), so that a missed or hallucinated structure is the worst score
  rather than a NaN that silently drops out of a mean.

HD95 is in pixels of the preprocessed image grid (image_size x image_size).
"""

import math
import warnings

import numpy as np
import pandas as pd
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance

from medtrans.shared.bootstrap import percentile_ci, resample_indices

MEAN = "mean"  # the structure name of the per-image mean over the task's structures


def _one_hot(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """(N,H,W) label maps -> (N,C,H,W) float one-hot, as MONAI metrics expect."""
    t = torch.as_tensor(labels.astype(np.int64))
    return torch.nn.functional.one_hot(t, n_classes).permute(0, 3, 1, 2).float()


def score_images(
    pred: np.ndarray, ref: np.ndarray, n_structures: int, percentile: float = 95.0, hd: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Dice and HD (at `percentile`) of each image and structure: two (N, K) float arrays.

    `pred` and `ref` are (N,H,W) label maps with values 0..K. With `hd=False` the HD array
    is NaN (used for the per-epoch validation, where only Dice selects the model).
    """
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    n, h, w = ref.shape
    k = n_structures
    p1 = _one_hot(pred, k + 1)
    r1 = _one_hot(ref, k + 1)
    p_any = p1[:, 1:].flatten(2).any(-1).numpy()  # (N, K)
    r_any = r1[:, 1:].flatten(2).any(-1).numpy()
    both = p_any & r_any
    dice = compute_dice(p1, r1, include_background=False, ignore_empty=False).numpy().astype(np.float64)
    dice = np.where(both, dice, np.where(~p_any & ~r_any, 1.0, 0.0))

    hd95 = np.full((n, k), np.nan)
    if hd:
        diagonal = math.hypot(h, w)
        hd95 = np.where(~p_any & ~r_any, 0.0, diagonal)
        for i, c in zip(*np.nonzero(both), strict=True):
            channels = [0, c + 1]  # background + this structure; background is excluded below
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = compute_hausdorff_distance(
                    p1[i : i + 1, channels], r1[i : i + 1, channels], include_background=False,
                    percentile=percentile,
                )
            hd95[i, c] = float(value.reshape(-1)[0])
    return dice, hd95


def per_image_table(
    set_name: str, slice_ids: tuple[str, ...], structures: tuple[str, ...], dice: np.ndarray, hd95: np.ndarray
) -> pd.DataFrame:
    """Rows of dice.csv for one set: one per image and structure, plus the per-image mean."""
    rows = []
    for i, sid in enumerate(slice_ids):
        for j, name in enumerate(structures):
            rows.append((set_name, sid, name, dice[i, j], hd95[i, j]))
        rows.append((set_name, sid, MEAN, float(dice[i].mean()), float(hd95[i].mean())))
    return pd.DataFrame(rows, columns=["set", "slice_id", "structure", "dice", "hd95"])


def summarize(table: pd.DataFrame, seed: int, task: str, replicates: int) -> pd.DataFrame:
    """summary.csv: mean, std (ddof 1), 95% percentile bootstrap CI and n per set, structure
    and metric. Replicate r resamples images with `resample_indices(seed, task, n, R)[r]`
    (positions into the set sorted by slice id), the same draws the metrics stage uses."""
    rows = []
    for set_name in dict.fromkeys(table["set"]):
        part = table[table["set"] == set_name]
        for structure in dict.fromkeys(part["structure"]):
            sub = part[part["structure"] == structure].sort_values("slice_id")
            n = len(sub)
            idx = resample_indices(seed, task, n, replicates) if replicates else None
            for metric in ("dice", "hd95"):
                values = sub[metric].to_numpy(np.float64)
                std = float(values.std(ddof=1)) if n > 1 else 0.0
                lo = hi = float("nan")
                if idx is not None:
                    lo, hi = percentile_ci(values[idx].mean(axis=1))
                rows.append((set_name, structure, metric, float(values.mean()), std, lo, hi, n))
    return pd.DataFrame(rows, columns=["set", "structure", "metric", "mean", "std", "ci_low", "ci_high", "n"])
