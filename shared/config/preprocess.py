"""Settings of the preprocess stage: slicing, intensity scaling, splits, sampling, foreground."""

from typing import Literal

from pydantic import Field, model_validator

from medtrans.shared.config.base import Config


class SliceCounts(Config):
    """How many slices each domain of a task keeps per split: a seeded draw across the split's
    patients (after the patient-level split). None: every slice of that split."""

    train: int | None = Field(None, ge=1)
    val: int | None = Field(None, ge=1)
    test: int | None = Field(None, ge=1)


class ForegroundConfig(Config):
    """MaskGAN's foreground masks as its `preprocess/main.py` (`get_3d_mask`) computes them, per
    volume: MRI scaled by 255 / its maximum (clipped at 0), CT clipped to `ct_range` and scaled
    to [0, 255], both truncated to 8 bits; voxels above the threshold; a binary opening with the
    radius-1 cross; holes smaller than hole_width^3 voxels of 1 mm^3 filled; the largest 3-D
    connected component. The reference's values (th_mri 10, th_ct 50, width 10 and 2)."""

    mr_threshold: int = Field(10, ge=0, le=254)
    ct_threshold: int = Field(50, ge=0, le=254)
    ct_range: tuple[float, float] = (-800.0, 2000.0)  # HU clipped and scaled to [0, 255]
    mr_hole_width: float = Field(10.0, ge=0)  # mm: holes under width^3 mm^3 are filled
    ct_hole_width: float = Field(2.0, ge=0)

    @model_validator(mode="after")
    def _range_increases(self) -> "ForegroundConfig":
        if self.ct_range[1] <= self.ct_range[0]:
            raise ValueError("ct_range must be (low, high) with high > low")
        return self


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
    # per task: slices kept per domain and split (the paper's image counts); a task not named
    # keeps every slice
    sample: dict[str, SliceCounts] = {}
    foreground: ForegroundConfig = ForegroundConfig()

    @model_validator(mode="after")
    def _split_sums_to_one(self) -> "PreprocessConfig":
        if abs(sum(self.split) - 1.0) > 1e-6 or min(self.split) <= 0:
            raise ValueError("split must be three positive fractions summing to 1")
        return self
