"""Image preprocessing conventions and batched Inception feature extraction.

Two conventions, because the reference libraries differ and their numbers differ with them
(about 3-5% in FID at 256 px): the convention is part of every result.

- `pytorch-fid` (default; the paper's lab used a pytorch-fid-based library): pixels to [0, 1]
  (uint8 / 255), `F.interpolate(bilinear, align_corners=False)` to 299x299 without antialias,
  then 2x - 1.
- `torch-fidelity`: uint8 pixels as float, TensorFlow 1.x bilinear resize to 299x299 (source
  coordinate = output index * in/out, no half-pixel offset, edge-clamped), then (x - 128) / 128.
  Float input is first quantised to uint8 (round(255 x)), since torch-fidelity only takes uint8.

Grayscale is replicated to 3 channels after the resize (bit-identical to resizing 3 copies).
Float input must lie in [0, 1]; uint8 input is [0, 255].
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medtrans.shared.log import progress

CONVENTIONS = ("pytorch-fid", "torch-fidelity")
SIZE = 299
# On a CPU the network runs this many images at a time, whatever `batch_size` loads: the
# features came out bit-identical at every batch size tried (1-32; tested on each machine the
# tests run on), and 4 images' activations stay in cache where 16 or 32 do not. Measured on a
# 2-vCPU Xeon, 32 images of 256 px: 1.9 s at 4, 1.9 at 8, 2.1 at 16, 2.3 at 32, 2.0 at 2, 2.4 at 1.
CPU_MICRO_BATCH = 4


@dataclass(frozen=True)
class Features:
    """Per-image Inception features in float64: pool3 (N, 2048) and unbiased logits (N, 1008)."""

    pool: np.ndarray
    logits: np.ndarray

    def __len__(self) -> int:
        return len(self.pool)

    def subset(self, idx: np.ndarray | Sequence[int]) -> Features:
        """Rows `idx` (e.g. a bootstrap resample) without re-running the network."""
        idx = np.asarray(idx)
        return Features(self.pool[idx], self.logits[idx])

    def save(self, path: str | Path) -> None:
        np.savez(path, pool=self.pool, logits=self.logits)

    @classmethod
    def load(cls, path: str | Path) -> Features:
        with np.load(path) as z:
            return cls(z["pool"].astype(np.float64), z["logits"].astype(np.float64))


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown preprocessing convention {convention!r}; choose one of {CONVENTIONS}")


def _as_nchw(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N,H,W) or (N,C,H,W) with C in {1,3}, uint8 or float, as a torch tensor (no copy if possible)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N,H,W) or (N,C,H,W) with C 1 or 3, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("no images")
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise ValueError(f"images must be uint8 in [0,255] or float in [0,1], got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"float images must lie in [0, 1], found [{lo:.4g}, {hi:.4g}] (pass uint8 for 0..255)"
        )
    return x


def resize_tf1_bilinear(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """TensorFlow 1.x `resize_bilinear(align_corners=False)` on float32 (N,C,H,W).

    Same arithmetic, step for step, as torch-fidelity's `interpolate_bilinear_2d_like_tensorflow1x`
    ('slow', bit-exact on CPU), written with index_select instead of double fancy indexing."""
    n, c, h, w = x.shape

    def axis(n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = torch.arange(0, size, 1, dtype=x.dtype, device=x.device) * torch.tensor(
            n_in / size, dtype=torch.float32
        )
        lo = pos.long()
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, pos - lo.float()

    ylo, yhi, dy = axis(h)
    xlo, xhi, dx = axis(w)
    top, bottom = x.index_select(2, ylo), x.index_select(2, yhi)
    dx = dx.view(1, 1, 1, size)
    t0, t1 = top.index_select(3, xlo), top.index_select(3, xhi)
    b0, b1 = bottom.index_select(3, xlo), bottom.index_select(3, xhi)
    row0 = t0 + (t1 - t0) * dx
    row1 = b0 + (b1 - b0) * dx
    return row0 + (row1 - row0) * dy.view(1, 1, size, 1)


def preprocess_batch(images: np.ndarray | torch.Tensor, convention: str = "pytorch-fid") -> torch.Tensor:
    """Images -> the network's input (N, 3, 299, 299) float32 in the convention's range.

    Runs on the images' device, so pass a CUDA tensor to resize on the GPU."""
    _check_convention(convention)
    x = _as_nchw(images)
    if convention == "pytorch-fid":
        x = x.to(torch.float32) / 255 if x.dtype == torch.uint8 else x.to(torch.float32)
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
    else:
        if x.dtype != torch.uint8:
            x = torch.round(x.to(torch.float32) * 255)
        x = resize_tf1_bilinear(x.to(torch.float32))
        x = (x - 128) / 128
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x


def _as_batchable(images) -> np.ndarray | torch.Tensor:
    """An array/tensor stays as is; a list of same-shaped 2-D/3-D images is stacked."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        return images
    images = list(images)
    if not images:
        raise ValueError("no images")
    shapes = {np.shape(im) for im in images}
    if len(shapes) != 1:
        raise ValueError(f"images differ in size: {sorted(shapes)[:4]}; resize them to one size first")
    return np.stack([np.asarray(im) for im in images])


@torch.inference_mode()
def extract_features(
    model: torch.nn.Module,
    images,
    convention: str = "pytorch-fid",
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Features:
    """Run the FID Inception over images in batches; one pass gives pool3 and logits (float64).

    `batch_size` images are loaded and moved to the device at a time; on a CPU the network then
    takes them `CPU_MICRO_BATCH` at a time (faster, same features)."""
    _check_convention(convention)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    images = _as_batchable(images)
    n = len(images)
    if n == 0:
        raise ValueError("no images")
    device = torch.device(device)
    pools, logits = [], []
    starts = range(0, n, batch_size)
    with full_fp32(device):
        for i in _progress(starts, "inception features", len(starts), progress):
            batch = images[i : i + batch_size]
            batch = (
                batch.to(device)
                if isinstance(batch, torch.Tensor)
                else torch.from_numpy(np.ascontiguousarray(batch)).to(device)
            )
            step = CPU_MICRO_BATCH if device.type == "cpu" else len(batch)
            for j in range(0, len(batch), step):
                p, lg = model(preprocess_batch(batch[j : j + step], convention))
                pools.append(p.double().cpu().numpy())
                logits.append(lg.double().cpu().numpy())
    return Features(np.concatenate(pools), np.concatenate(logits))


@contextlib.contextmanager
def full_fp32(device: torch.device):
    """TF32 off for the Inception pass: cuDNN convolutions default to TF32 on Ampere and later,
    which moves features by ~1e-3 relative; the metrics must equal the CPU's and the references'."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _progress(items, desc: str, total: int, show: bool):
    return progress(items, desc, total=total) if show else items
