"""Base class for every config object: strict, frozen, unknown keys rejected."""

from pydantic import BaseModel, ConfigDict


class Config(BaseModel):
    """Strict config object: typos in a study file are errors, not silently ignored keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
