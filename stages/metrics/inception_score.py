"""Inception Score from the unbiased logits (torch-fidelity's 'logits_unbiased'), float64.

The images are shuffled with NumPy RandomState(seed).permutation(N) (torch-fidelity's
`samples_shuffle`), cut into `splits` consecutive chunks [i N // splits, (i + 1) N // splits),
and each chunk scores exp(mean_i KL(p_i || mean_j p_j)). Result: mean and (population) std
over chunks. Terms with p = 0 count as 0 (torch-fidelity would give NaN there).
"""

from __future__ import annotations

import numpy as np
import torch

from medtrans.stages.metrics._checks import as_feature_matrix

TORCH_FIDELITY_SEED = 2020


def inception_score(
    logits, splits: int = 10, seed: int = TORCH_FIDELITY_SEED, shuffle: bool = True
) -> tuple[float, float]:
    """IS (mean, std) of (N, classes) logits (an array or a `Features`, whose logits are used)."""
    if hasattr(logits, "logits") and not isinstance(logits, np.ndarray):
        logits = logits.logits
    x = as_feature_matrix(logits, "logits")
    n = len(x)
    if splits < 1 or n < splits:
        raise ValueError(f"IS with {splits} splits needs at least {splits} images, got {n}")
    if shuffle:
        x = x[np.random.RandomState(seed).permutation(n)]
    t = torch.from_numpy(x)
    log_p = t.log_softmax(dim=1)
    p = log_p.exp()
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        pc, lpc = p[lo:hi], log_p[lo:hi]
        log_q = pc.mean(dim=0, keepdim=True).log()
        kl = torch.where(pc > 0, pc * (lpc - log_q), torch.zeros_like(pc)).sum(dim=1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))
