"""Settings of the perceptual metrics (stage `metrics`; `medtrans compare` has the same knobs as flags)."""

from typing import Literal

from pydantic import Field, field_validator

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.config.base import Config


class SWDConfig(Config):
    """Karras et al. (Progressive GAN) sliced Wasserstein distance constants."""

    nhood_size: int = 7
    nhoods_per_image: int = 128
    dir_repeats: int = 4
    dirs_per_repeat: int = 128
    min_resolution: int = 16
    channels: Literal[1, 3] = 3


class MetricsConfig(Config):
    """Which metrics, which feature convention, how many resamples."""

    metrics: tuple[str, ...] = catalogue.names()  # the catalogue's metrics, in its order
    convention: Literal["pytorch-fid", "torch-fidelity"] = "pytorch-fid"
    kid_subsets: int = Field(100, ge=1)
    kid_subset_size: int = Field(1000, ge=2)
    is_splits: int = Field(10, ge=1)
    swd: SWDConfig = SWDConfig()
    frd_workers: int = Field(0, ge=0)  # 0: one per CPU
    bootstrap: int = Field(200, ge=0)
    batch_size: int = Field(32, ge=1)
    # The real-vs-real floor (target train vs target test): "match" draws (seeded) as many
    # target-train images as the translated sets have, since FID and KID depend on N; "all"
    # uses the whole train split.
    floor: Literal["match", "all"] = "match"
    # A user's own Inception weights file (e.g. a RadImageNet Inception in the FID layout),
    # explicitly not the standard network: its sha256 is recorded, results are marked custom.
    extractor: str | None = None

    @field_validator("metrics")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        """Every name must be in the metric catalogue (`medtrans.shared.catalogue.metrics`)."""
        for name in names:
            catalogue.get(name)  # ValueError naming the known metrics
        return names
