"""Settings of the target-domain UNet (MONAI) and the anatomy metrics (Dice, HD95)."""

from typing import Literal

from pydantic import Field, model_validator

from medtrans.shared.config.base import Config


class SegmentConfig(Config):
    """Defaults are the paper profile, after the lab's framework
    (mazurowski-lab/medical-image-similarity-metrics): a 5-level 2D UNet with batch norm,
    Dice + cross-entropy, Adam lr 0.01, weight decay 1e-4, batch 8, up to 100 epochs,
    early stopping with patience 5 on the target validation Dice."""

    channels: tuple[int, ...] = Field((32, 64, 128, 256, 512), min_length=2)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = Field(0, ge=0)
    norm: Literal["batch", "instance", "none"] = "batch"
    batch_size: int = Field(8, ge=1)
    lr: float = Field(0.01, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    scheduler: Literal["none", "cosine"] = "none"  # cosine: to 0 over max_epochs
    max_epochs: int = Field(100, ge=1)
    patience: int = Field(5, ge=1)  # epochs without a better val Dice before stopping
    augment: bool = True  # small random affine (rotation, scale, shift) on the train split
    hd_percentile: float = Field(95.0, gt=0, le=100)
    bootstrap: int = Field(1000, ge=0)  # replicates for the summary CIs (0: no CIs)
    num_workers: int = Field(0, ge=0)  # data-loader worker processes

    @model_validator(mode="after")
    def _strides_match_channels(self) -> "SegmentConfig":
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError("strides needs one entry fewer than channels (one per down-sampling)")
        return self
