"""Settings of the report stage."""

from pydantic import Field

from medtrans.shared.config.base import Config


class ReportConfig(Config):
    """Bootstrap size of the correlation CIs and how many slices the image grid shows."""

    bootstrap: int = Field(200, ge=0)
    grid_slices: int = Field(4, ge=1)
