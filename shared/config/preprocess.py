"""Settings of the preprocess stage: slicing, intensity scaling, splits."""

from typing import Literal

from pydantic import Field, model_validator

from medtrans.shared.config.base import Config


class PreprocessConfig(Config):
    """How volumes become 8-bit slices and patient-level splits."""

    image_size: int = Field(64, ge=16)
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train, val, test, by patient
    mri_percentiles: tuple[float, float] = (0.5, 99.5)
    ct_window: tuple[float, float] = (400.0, 1800.0)  # level, width (HU)
    # skip slices whose masks cover less than this fraction of the slice ("no anatomy")
    min_anatomy_fraction: float = Field(0.01, ge=0.0, le=1.0)
    skip_rule: Literal["mask", "none"] = "mask"
    min_slices_per_split: int = Field(4, ge=1)
    workers: int = Field(0, ge=0)  # 0: one per CPU

    @model_validator(mode="after")
    def _split_sums_to_one(self) -> "PreprocessConfig":
        if abs(sum(self.split) - 1.0) > 1e-6 or min(self.split) <= 0:
            raise ValueError("split must be three positive fractions summing to 1")
        return self
