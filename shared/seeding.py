"""Every random choice derives from the study seed; these helpers make that explicit."""

import random

import numpy as np
import torch

from medtrans.shared.hashing import digest


def derive_seed(seed: int, *names: object) -> int:
    """A stable 31-bit seed for one purpose (`derive_seed(study.seed, "split", task)`)."""
    return int(digest([seed, *[str(n) for n in names]])[:8], 16) & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def rng(seed: int, *names: object) -> np.random.Generator:
    """A NumPy generator for one purpose."""
    return np.random.default_rng(derive_seed(seed, *names))

