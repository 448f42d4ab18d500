"""The local runner: every stage in dependency order, in this process, skipping what is done.

Stages are planned one at a time, right before they run, because a stage's inputs depend on
what upstream produced (segment and metrics pick up every translator with a complete manifest).
"""

import importlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from medtrans.shared.catalogue import stages as catalogue
from medtrans.shared.catalogue.stages import stage_names
from medtrans.shared.config import StudyConfig
from medtrans.shared.device import resolve_device
from medtrans.shared.layout import RunLayout
from medtrans.shared.log import get_logger
from medtrans.shared.stage import State, Unit, execute, state
from medtrans.stages import parallel

STAGES: tuple[str, ...] = stage_names()  # run order, from the catalogue
log = get_logger("medtrans.runner")


def plan_stage(stage: str, study: StudyConfig, layout: RunLayout, **filters) -> list[Unit]:
    """The units of one stage (each stage module `medtrans.stages.<stage>.stage` has `plan`)."""
    module = importlib.import_module(f"medtrans.stages.{stage}.stage")
    return module.plan(study, layout, **filters)


@dataclass
class Outcome:
    unit: str
    result: str  # ran | skipped
    seconds: float


def narrow(units: list[Unit], tasks: tuple[str, ...] | None) -> list[Unit]:
    """The units of the given tasks only (a unit's first name part is its task); None: all.
    A workflow job or a container runs one unit this way (`medtrans segment --task spine`)."""
    return units if tasks is None else [u for u in units if u.name[:1] and u.name[0] in tasks]


def run_stage(
    stage: str,
    study: StudyConfig,
    layout: RunLayout,
    force: bool = False,
    tasks: tuple[str, ...] | None = None,
    **filters,
) -> list[Outcome]:
    outcomes = []
    for unit in narrow(plan_stage(stage, study, layout, **filters), tasks):
        t0 = time.perf_counter()
        result = execute(unit, layout, force=force)
        outcomes.append(Outcome(unit.label, result, time.perf_counter() - t0))
    return outcomes


def run_study(study: StudyConfig, layout: RunLayout, force: bool = False) -> list[Outcome]:
    """Run all stages in order; stops at the first failing unit (the exception propagates)."""
    outcomes: list[Outcome] = []
    for i, stage in enumerate(STAGES, 1):
        log.info("[%d/%d] stage %s", i, len(STAGES), stage)
        outcomes += run_stage(stage, study, layout, force=force)
    return outcomes


class UnitsFailed(RuntimeError):
    """Units of a batch failed (the others ran to their end); the message lists each and its log."""


def waves() -> list[tuple[str, ...]]:
    """The catalogue's stages in batches: a stage joins the batch after the last of the stages it
    reads (`after`), so independent stages (segment and metrics) run side by side."""
    level: dict[str, int] = {}
    for s in catalogue.STAGES:
        level[s.name] = 1 + max((level[up] for up in s.after), default=-1)
    return [tuple(n for n in STAGES if level[n] == k) for k in range(max(level.values(), default=-1) + 1)]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_study_jobs(
    study: StudyConfig,
    layout: RunLayout,
    study_file: Path,
    jobs: int,
    force: bool = False,
    cores: int | None = None,
) -> list[Outcome]:
    """Every stage with its units as `medtrans <stage> --task T [model]` processes, `jobs` at a
    time (see `parallel`); stages that read only earlier batches run side by side. A failing
    unit stops nothing in its batch; then `UnitsFailed` names every failed unit."""
    gpu = resolve_device(study.device).type == "cuda"
    pool = parallel.Pool(
        jobs=jobs, cores=cores or usable_cores(), logs=layout.root / parallel.LOGS,
        gpus=parallel.gpu_budgets() if gpu else {},
    )  # fmt: skip
    outcomes: list[Outcome] = []
    for i, batch in enumerate(waves(), 1):
        log.info("[%d/%d] %s (%d at a time)", i, len(waves()), " + ".join(batch), jobs)
        todo = []
        for stage in batch:
            for unit in plan_stage(stage, study, layout):
                if not force and state(unit, layout).status == "done":
                    outcomes.append(Outcome(unit.label, "skipped", 0.0))
                else:
                    todo.append(unit)
        run = parallel.jobs_for(todo, study.resources, study_file, layout.root, force, gpu)
        finished = pool.run(run)
        outcomes += [Outcome(f.label, "ran" if f.code == 0 else "failed", f.seconds) for f in finished]
        failed = [f for f in finished if f.code != 0]
        if failed:
            lines = [f"{f.label}: exit {f.code}, log {f.log}" for f in failed]
            raise UnitsFailed(f"{len(failed)} unit(s) failed ({', '.join(batch)}):\n  " + "\n  ".join(lines))
    return outcomes


def study_status(study: StudyConfig, layout: RunLayout) -> list[tuple[str, State]]:
    """Each unit of each stage with its state (done / stale / missing / blocked) and why."""
    rows = []
    for stage in STAGES:
        for unit in plan_stage(stage, study, layout):
            rows.append((unit.label, state(unit, layout)))
    return rows
