"""`medtrans plan`: every training unit of a study with its iterations and the compute it
needs, before anything runs (also before the data is in place).

Iterations come from the schedules and the train image counts: those of
`preprocess/<task>/index.csv` when preprocess has run, else the study's `preprocess.sample`
counts (the paper's image counts). Seconds per iteration come from a file (JSON
{"cyclegan": s, ..., "unet": s}, the format `make bench-gpu` writes to
bench-results/step-times.json) or from a short warm-up on this device at the study's settings.
Hours = iterations x seconds per iteration / 3600. Preprocess, metrics and report are not
iteration-based and are not costed here."""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medtrans.shared.config import StudyConfig
from medtrans.shared.dataset import INDEX, SliceIndex
from medtrans.shared.layout import RunLayout
from medtrans.shared.stage import StageInputError
from medtrans.stages.translate import stage as translate_stage
from medtrans.stages.translate.registry import get_model
from medtrans.stages.translate.settings import task_settings

UNET = "unet"


@dataclass(frozen=True)
class TrainCounts:
    """Train images of a task's two domains, and where the numbers come from."""

    source: int
    target: int
    origin: str  # "index" | "sample"


@dataclass(frozen=True)
class PlannedUnit:
    unit: str  # e.g. translate/breast/cyclegan
    key: str  # the step-time key: a translator name or "unet"
    iterations: int | None  # None: unknown (no counts)
    note: str = ""

    def hours(self, seconds: float | None) -> float | None:
        if self.iterations is None or seconds is None:
            return None
        return self.iterations * seconds / 3600.0


def train_counts(study: StudyConfig, layout: RunLayout, task: str) -> TrainCounts | None:
    """From the preprocess index when it exists, else from `preprocess.sample` (train)."""
    folder = layout.preprocess(task)
    if (folder / INDEX).is_file():
        table = SliceIndex.load(folder).table
        n = {r: int(((table.role == r) & (table.split == "train")).sum()) for r in ("source", "target")}
        return TrainCounts(n["source"], n["target"], "index")
    sample = study.preprocess.sample.get(task)
    if sample is not None and sample.train is not None:
        return TrainCounts(sample.train, sample.train, "sample")
    return None


def translator_iterations(
    study: StudyConfig, task: str, model: str, counts: TrainCounts | None
) -> int | None:
    """(n_epochs + n_epochs_decay) x iterations per epoch, as the training loop counts them."""
    schedule = task_settings(study, task, model).schedule
    epochs = schedule.n_epochs + schedule.n_epochs_decay
    if schedule.iters_per_epoch:
        return epochs * schedule.iters_per_epoch
    if counts is None:
        return None
    over = get_model(model).epoch_over
    n = counts.target if over == "target" else max(counts.source, counts.target)
    return epochs * math.ceil(n / schedule.batch_size)


def unet_iterations(study: StudyConfig, counts: TrainCounts | None) -> int | None:
    """At most max_epochs x batches of the target train split (early stopping may end sooner)."""
    if counts is None:
        return None
    return study.segment.max_epochs * math.ceil(counts.target / study.segment.batch_size)


def plan_units(study: StudyConfig, layout: RunLayout) -> list[PlannedUnit]:
    """Every translate unit (the stage's own planner, without its preflight checks) and every
    segment unit, with their iterations."""
    out = []
    counts = {task: train_counts(study, layout, task) for task in study.tasks}
    for unit in translate_stage.plan(study, layout, preflight=False):
        task, model = unit.name
        out.append(PlannedUnit(unit.label, model, translator_iterations(study, task, model, counts[task])))
    for task in study.tasks:
        out.append(PlannedUnit(f"segment/{task}", UNET, unet_iterations(study, counts[task]), "at most"))
    return out


def read_step_times(path: Path) -> dict[str, float]:
    """{key: seconds per iteration} from a JSON file; refuses anything else, naming the file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise StageInputError(f"{path}: cannot read step times ({err.__class__.__name__}: {err})") from None
    bad = ([] if isinstance(data, dict) else ["(not an object)"]) or [
        k for k, v in data.items() if not isinstance(v, int | float) or isinstance(v, bool) or v <= 0
    ]
    if bad:
        raise StageInputError(
            f"{path}: step times must be a JSON object of positive seconds per iteration, e.g. "
            f'{{"cyclegan": 0.21, "unet": 0.03}}; bad entries: {", ".join(map(str, bad))}'
        )
    return {k: float(v) for k, v in data.items()}


def step_times(
    study: StudyConfig, keys: list[str], given: dict[str, float], measure: Callable[[str], float]
) -> dict[str, tuple[float, str]]:
    """(seconds, "given" | "measured") per key: the file's value, else a warm-up."""
    return {k: (given[k], "given") if k in given else (measure(k), "measured") for k in dict.fromkeys(keys)}


def warmup(study: StudyConfig, device) -> Callable[[str], float]:
    """A measuring function for `step_times` (imports torch and the networks only when called)."""
    import torch

    task = next(iter(study.tasks))

    def measure(key: str) -> float:
        device_ = torch.device(device)
        if key == UNET:
            from medtrans.stages.segment.warmup import unet_step_seconds

            return unet_step_seconds(study, task, device_)
        from medtrans.stages.translate.warmup import translator_step_seconds

        return translator_step_seconds(study, task, key, device_)

    return measure


def table(units: list[PlannedUnit], times: dict[str, tuple[float, str]]) -> list[str]:
    """The lines `medtrans plan` prints: one per unit, then the total."""
    rows = [f"{'unit':<28} {'iterations':>12} {'s/iter':>9} {'source':<9} {'hours':>9}"]
    total, unknown = 0.0, 0
    for u in units:
        seconds, origin = times[u.key]
        hours = u.hours(seconds)
        its = "unknown" if u.iterations is None else f"{u.iterations:,}"
        if u.note and u.iterations is not None:
            its = f"<= {its}"
        shown = "-" if hours is None else f"{hours:.2f}"
        rows.append(f"{u.unit:<28} {its:>12} {seconds:>9.4f} {origin:<9} {shown:>9}")
        if hours is None:
            unknown += 1
        else:
            total += hours
    rows.append(f"{'total':<28} {'':>12} {'':>9} {'':<9} {total:>9.2f}")
    if unknown:
        rows.append(
            f"{unknown} unit(s) without train image counts: run `medtrans preprocess`, or give "
            "preprocess.sample.<task>.train in the study"
        )
    return rows
