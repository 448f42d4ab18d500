"""The MONAI pieces of the segmentation model: UNet, loss, optimizer, LR schedule, transforms."""

import math

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    RandAffined,
    ScaleIntensityRange,
    ScaleIntensityRanged,
)
from monai.utils import convert_to_tensor

from medtrans.shared.config.segment import SegmentConfig

IMAGE, LABEL = "image", "label"
_NORM = {"batch": "batch", "instance": "instance", "none": None}


def check_size(cfg: SegmentConfig, image_size: int) -> str | None:
    """Why `image_size` cannot pass through the UNet's down-sampling, or None if it can."""
    factor = math.prod(cfg.strides)
    if image_size % factor:
        return f"image size {image_size} is not divisible by the product of segment.strides ({factor})"
    return None


def build_unet(cfg: SegmentConfig, n_structures: int) -> UNet:
    """2D UNet, one input channel, K+1 output classes (background + the task's structures)."""
    return UNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=n_structures + 1,
        channels=cfg.channels,
        strides=cfg.strides,
        num_res_units=cfg.num_res_units,
        norm=_NORM[cfg.norm],
    )


def build_loss() -> DiceCELoss:
    """Dice + cross-entropy on softmax outputs against one-hot labels (the lab's loss)."""
    return DiceCELoss(to_onehot_y=True, softmax=True)


def build_optimizer(cfg: SegmentConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(cfg: SegmentConfig, optimizer: torch.optim.Optimizer):
    """None (constant LR, the lab's setup) or cosine annealing to 0 over max_epochs."""
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.max_epochs)
    return None


def train_transforms(augment: bool) -> Compose:
    """Dict transforms for the train split: channel-first, [0,255] -> [0,1], and with
    `augment` a light random affine (rotation +-10 deg, scale +-10%, shift +-5%; nearest
    neighbour for the labels). No flips or intensity changes: the translated images keep
    the source orientation, and the model must not learn to shrug off a domain's contrast."""
    steps = [
        EnsureChannelFirstd(keys=[IMAGE, LABEL], channel_dim="no_channel"),
        ScaleIntensityRanged(keys=IMAGE, a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True),
        EnsureTyped(keys=[IMAGE, LABEL], data_type="tensor", dtype=torch.float32, track_meta=False),
    ]
    if augment:
        steps.append(
            RandAffined(
                keys=[IMAGE, LABEL],
                prob=0.5,
                rotate_range=math.radians(10),
                scale_range=0.1,
                translate_range=0.05,
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            )
        )
    return Compose(steps)


_SCALE = ScaleIntensityRange(a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0, clip=True)


def to_input(images: np.ndarray) -> torch.Tensor:
    """(N,H,W) uint8 -> (N,1,H,W) float in [0,1], the same scaling as the train transforms."""
    t = torch.as_tensor(images.astype(np.float32))[:, None]
    return convert_to_tensor(_SCALE(t), track_meta=False)  # a plain tensor: MetaTensor is slow


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, device: torch.device, batch_size: int) -> np.ndarray:
    """Label maps (N,H,W uint8) predicted for (N,H,W uint8) images, in eval mode."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = to_input(images[start : start + batch_size]).to(device)
        out.append(model(x).argmax(1).to("cpu", torch.uint8).numpy())
    h, w = images.shape[1:] if images.ndim == 3 else (0, 0)
    return np.concatenate(out) if out else np.zeros((0, h, w), np.uint8)
