"""Settings of the report stage."""

from typing import Literal

from pydantic import Field

from medtrans.shared.config.base import Config


class ReportConfig(Config):
    """How many bootstrap replicates the correlation CIs use, how tasks are pooled, and
    how many test slices the image grid shows.

    `bootstrap` is capped by the replicates the metrics stage wrote (bootstrap.csv): replicate
    r of Dice and of every metric use the same resampled test images, so the report cannot
    invent more. `pooled` = "zscore" standardises every metric and Dice within each task before
    pooling the tasks (keeps the spacing between translators, removes each task's scale);
    "rank" replaces them by within-task ranks (robust to outliers, discards the spacing).
    """

    bootstrap: int = Field(200, ge=0)
    grid_slices: int = Field(4, ge=1)
    pooled: Literal["zscore", "rank"] = "zscore"
    ci_level: float = Field(0.95, gt=0.0, lt=1.0)
