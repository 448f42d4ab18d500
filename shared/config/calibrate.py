"""Settings of the calibration stage (`calibrate`): which perturbations, how many severities,
how many test slices and which metrics; `medtrans calibrate` has the same knobs as flags."""

from pydantic import Field, field_validator

from medtrans.shared.catalogue import metrics as metric_catalogue
from medtrans.shared.catalogue import perturbations as catalogue
from medtrans.shared.config.base import Config


class CalibrateConfig(Config):
    """Perturbations of the real target test set with known effect on anatomy (README, Calibration)."""

    enabled: bool = True
    perturbations: tuple[str, ...] = catalogue.names()  # the catalogue's, in its order
    # graded severities per perturbation (the issue asks for 5 or more; fewer only for tests)
    severities: int = Field(5, ge=3, le=20)
    images: int = Field(0, ge=0)  # a seeded draw of this many target test slices; 0: all of them
    # None: the study's metrics (metrics.metrics); a subset where a metric's per-image cost is
    # too high for the run's budget (FRD's radiomics: about 0.5 s per image on one CPU core)
    metrics: tuple[str, ...] | None = None
    nhood_sizes: tuple[int, ...] = (3, 5, 7, 9, 11)  # SWD neighbourhood sizes, the seed paper's check

    @field_validator("perturbations")
    @classmethod
    def _known_perturbations(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            catalogue.get(name)  # ValueError naming the known perturbations
        if len(set(names)) != len(names):
            raise ValueError("a perturbation is listed twice")
        return names

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, names: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for name in names or ():
            metric_catalogue.get(name)
        return names

    @field_validator("nhood_sizes")
    @classmethod
    def _odd(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        bad = [k for k in sizes if k < 3 or k % 2 == 0 or k > 15]
        if bad:
            raise ValueError(f"SWD neighbourhood sizes must be odd, 3 to 15 (got {bad})")
        return sizes
