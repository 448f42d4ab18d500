"""Settings of the target-domain UNet (MONAI) and the anatomy metrics."""

from pydantic import Field

from medtrans.shared.config.base import Config


class SegmentConfig(Config):
    """Defaults follow the lab's framework (mazurowski-lab/medical-image-similarity-metrics)."""

    channels: tuple[int, ...] = (32, 64, 128, 256, 512)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 0
    norm: str = "batch"
    batch_size: int = Field(8, ge=1)
    lr: float = 0.01
    weight_decay: float = 1e-4
    max_epochs: int = Field(100, ge=1)
    patience: int = Field(5, ge=1)
    augment: bool = True
    hd_percentile: float = 95.0
    bootstrap: int = Field(1000, ge=0)
    num_workers: int = Field(0, ge=0)
