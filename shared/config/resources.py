"""What one job of each stage asks a scheduler for (the Snakemake workflow in workflow/), and
how the local runner (`medtrans run --jobs N`) runs units side by side on one machine.

Resources say where and with what a unit runs, never what it computes: they are left out of
every config digest (`StudyConfig.part`), so changing them never makes a unit stale.
"""

from pydantic import Field, field_validator

from medtrans.shared.config.base import Config
from medtrans.shared.config.translate import MODELS


class JobResources(Config):
    """One job: CPU threads, memory, wall time and GPUs.

    `gpus` None means: one GPU when the study says `device: cuda` and the stage uses one
    (translators, segment, metrics; preprocess only where TotalSegmentator runs), else none.
    `device: auto` requests none: a job then uses a GPU only where one is visible anyway.
    """

    threads: int = Field(1, ge=1)
    mem_mb: int = Field(4000, ge=100)
    runtime: int = Field(60, ge=1)  # minutes of wall time
    gpus: int | None = Field(None, ge=0)
    # GPU memory one unit may take when the local runner puts several units on one GPU: a unit
    # starts only while the units already on that GPU leave this much of its memory free
    gpu_mem_mb: int = Field(10240, ge=0)


class ResourcesConfig(Config):
    """Per stage; `translators` overrides `translate` for single models (e.g. UNSB needs longer)."""

    preprocess: JobResources = JobResources(threads=2, mem_mb=8000, runtime=120)
    translate: JobResources = JobResources(threads=4, mem_mb=16000, runtime=1440)
    translators: dict[str, JobResources] = {}
    segment: JobResources = JobResources(threads=4, mem_mb=16000, runtime=480)
    metrics: JobResources = JobResources(threads=4, mem_mb=16000, runtime=240)
    calibrate: JobResources = JobResources(threads=4, mem_mb=16000, runtime=240)
    report: JobResources = JobResources(threads=1, mem_mb=4000, runtime=60, gpu_mem_mb=0)
    # the local runner: None runs the units one after the other in its own process (as always);
    # N >= 1 runs each unit as its own `medtrans <stage> --task T` process, N at a time, each with
    # its stage's `threads` (so a run's numbers do not depend on N), within the machine's cores
    jobs: int | None = Field(None, ge=1)

    def for_unit(self, stage: str, model: str | None = None) -> JobResources:
        """A unit's resources: its stage's (a translator's own where set); a stage without an
        entry here (a new catalogue stage) gets the defaults."""
        if stage == "translate" and model in self.translators:
            return self.translators[model]
        chosen = getattr(self, stage, None)
        return chosen if isinstance(chosen, JobResources) else JobResources()

    @field_validator("translators")
    @classmethod
    def _known_translators(cls, value: dict[str, JobResources]) -> dict[str, JobResources]:
        unknown = [m for m in value if m not in MODELS]
        if unknown:
            raise ValueError(f"unknown translator(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
        return value
