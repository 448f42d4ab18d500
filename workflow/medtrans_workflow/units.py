"""The study's units of the stage contract as workflow jobs: label, output manifest, upstream
units, the `medtrans` arguments that narrow a stage to the unit, and what the job asks for.

Pure functions of the study; the stage contract (in each job) still decides what is done.
"""

from dataclasses import dataclass

from medtrans.shared.catalogue import stages as catalogue
from medtrans.shared.catalogue.stages import stage_names, translator_names
from medtrans.shared.config import StudyConfig
from medtrans.shared.config.data import SpineSource
from medtrans.shared.config.resources import JobResources
from medtrans.shared.layout import MANIFEST, RunLayout

# from the catalogue (shared/catalogue/stages.py), the one list of stages and translators
STAGE_NAMES: tuple[str, ...] = stage_names()
TRANSLATORS: tuple[str, ...] = translator_names()


@dataclass(frozen=True)
class Job:
    """One unit as one job."""

    stage: str
    task: str | None = None
    model: str | None = None

    @property
    def label(self) -> str:
        return "/".join(p for p in (self.stage, self.task, self.model) if p)

    @property
    def image(self) -> str:
        """The compose service / image of the stage: one per translator."""
        return self.model if self.stage == "translate" else self.stage

    def stage_args(self) -> list[str]:
        """`medtrans` arguments after the program name, as the image's entry point has them
        (e.g. `translate cyclegan`), then the narrowing to this unit."""
        head = ["translate", self.model] if self.stage == "translate" else [self.stage]
        return head + self.narrow_args()

    def narrow_args(self) -> list[str]:
        return ["--task", self.task] if self.task else []

    def manifest(self, layout: RunLayout) -> str:
        if self.stage == "report":
            folder = layout.report()
        elif self.stage == "translate":
            folder = layout.translate(self.task, self.model)
        else:
            folder = getattr(layout, self.stage)(self.task)
        return str(folder / MANIFEST)


def parse_label(label: str) -> Job:
    """`translate/breast/cyclegan` -> Job; a clear error for anything else."""
    parts = label.split("/")
    stage = parts[0]
    if stage not in STAGE_NAMES:
        raise ValueError(f"unit {label!r}: unknown stage {stage!r} (stages: {', '.join(STAGE_NAMES)})")
    want = {"report": 1, "translate": 3}.get(stage, 2)
    if len(parts) != want:
        raise ValueError(f"unit {label!r}: {stage} units are named like {_example(stage)}")
    if stage == "translate" and parts[2] not in TRANSLATORS:
        raise ValueError(f"unit {label!r}: unknown translator {parts[2]!r} ({', '.join(TRANSLATORS)})")
    return Job(stage, *parts[1:])


def _example(stage: str) -> str:
    return {"report": "report", "translate": "translate/<task>/<model>"}.get(stage, f"{stage}/<task>")


def jobs(study: StudyConfig) -> list[Job]:
    """Every unit of the study, in the local runner's stage order."""
    out: list[Job] = []
    for stage in STAGE_NAMES:
        if stage == "report":
            out.append(Job("report"))
        elif stage == "translate":
            out += [Job(stage, t, m) for t in study.tasks for m in study.translate.models]
        elif stage == "calibrate" and not study.calibrate.enabled:
            continue  # the study switches calibration off: no units
        else:
            out += [Job(stage, t) for t in study.tasks]
    return out


def upstream(job: Job, study: StudyConfig) -> list[Job]:
    """The units whose manifests the unit reads: a translator and calibrate their task's preprocess;
    segment and metrics of a task every translator of that task, and its calibration sets when the
    study calibrates; the report every other unit."""
    if job.stage == "preprocess":
        return []
    if job.stage in ("translate", "calibrate"):
        return [Job("preprocess", job.task)]
    if job.stage in ("segment", "metrics"):
        calibration = [Job("calibrate", job.task)] if study.calibrate.enabled else []
        translated = [Job("translate", job.task, m) for m in study.translate.models]
        return [Job("preprocess", job.task), *translated, *calibration]
    return [j for j in jobs(study) if j.stage != "report"]


def uses_gpu(job: Job, study: StudyConfig) -> bool:
    """Whether the stage computes on a GPU when there is one (preprocess: TotalSegmentator)."""
    if job.stage == "preprocess":  # its image has a GPU for TotalSegmentator, used only where it runs
        data = study.tasks[job.task].data
        return isinstance(data, SpineSource) and data.totalsegmentator and data.ct_masks is None
    return catalogue.stage(job.stage).gpu


def resources(job: Job, study: StudyConfig) -> JobResources:
    """The study's `resources` for the job, with `gpus` resolved (see JobResources)."""
    chosen = study.resources.for_unit(job.stage, job.model)  # the local runner's choice too
    gpus = chosen.gpus
    if gpus is None:
        gpus = 1 if study.device == "cuda" and uses_gpu(job, study) else 0
    return chosen.model_copy(update={"gpus": gpus})
