"""Training-time augmentation: the references' `resize_and_crop` with random horizontal flips
(junyanz `data/base_dataset.py` `get_transform`, the same in CUT/UNSB and SPADE's custom
dataset): each image is resized to `load` (bicubic; label and foreground masks nearest) and a
random `size` x `size` window is cropped, then flipped with probability 1/2.

The draws for one epoch are a pure function of (seed, epoch, domain), one per (iteration,
sample), like the pairing: a resumed run sees the same crops without saved sampler state.
A domain's image, label mask and foreground mask share one draw (SPADE's label map and image
stay aligned; MaskGAN's foreground follows its image); the two domains draw independently.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from medtrans.shared.config.translate import Augment
from medtrans.shared.seeding import derive_seed


def load_size(image_size: int, ratio: float) -> int:
    """The resize before the crop: round(image_size * 286 / 256) by default (286 at 256 px)."""
    return max(image_size, int(round(image_size * ratio)))


@dataclass(frozen=True)
class Draws:
    """(iters, batch) crop offsets and flips of one domain for one epoch."""

    top: np.ndarray
    left: np.ndarray
    flip: np.ndarray


def epoch_draws(
    config: Augment, image_size: int, seed: int, epoch: int, domain: str, iters: int, batch: int
) -> Draws:
    """The crops and flips of one epoch, a pure function of its arguments."""
    rng = np.random.default_rng(derive_seed(seed, "augment", domain, epoch))
    span = load_size(image_size, config.load_ratio) - image_size + 1 if config.crop else 1
    top = rng.integers(0, span, size=(iters, batch))
    left = rng.integers(0, span, size=(iters, batch))
    flip = rng.random((iters, batch)) < 0.5 if config.flip else np.zeros((iters, batch), bool)
    return Draws(top, left, flip)


def active(config: Augment) -> bool:
    return config.crop or config.flip


def _resize(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    if mode == "bicubic":
        return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)
    return F.interpolate(x.float(), size=(size, size), mode="nearest-exact").to(x.dtype)


def apply(
    images: torch.Tensor,
    masks: torch.Tensor,
    fg: torch.Tensor,
    config: Augment,
    top: np.ndarray,
    left: np.ndarray,
    flip: np.ndarray,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One domain's batch (B,1,H,W), (B,H,W), (B,H,W), each sample with its own draw."""
    size = images.shape[-1]
    load = load_size(size, config.load_ratio) if config.crop else size
    img = _resize(images, load, "bicubic")
    lab = _resize(masks[:, None], load, "nearest")[:, 0]
    fgm = _resize(fg[:, None], load, "nearest")[:, 0]
    outs: tuple[list, list, list] = ([], [], [])
    for k in range(images.shape[0]):
        y, x = int(top[k]), int(left[k])
        for out, t in zip(outs, (img[k, 0], lab[k], fgm[k]), strict=True):
            t = t[y : y + size, x : x + size]
            out.append(t.flip(-1) if flip[k] else t)
    return torch.stack(outs[0])[:, None], torch.stack(outs[1]), torch.stack(outs[2])


def augment_batch(
    batch: dict[str, torch.Tensor], config: Augment, draws: tuple[Draws, Draws], i: int
) -> dict[str, torch.Tensor]:
    """The batch of iteration i with both domains augmented by their epoch's draws."""
    out = dict(batch)
    for (img, mask, fg), d in zip((("a", "mask_a", "fg_a"), ("b", "mask_b", "fg_b")), draws, strict=True):
        out[img], out[mask], out[fg] = apply(
            batch[img], batch[mask], batch[fg], config, d.top[i], d.left[i], d.flip[i]
        )
    return out
