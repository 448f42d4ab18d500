"""The local runner: every stage in dependency order, in this process, skipping what is done.

Stages are planned one at a time, right before they run, because a stage's inputs depend on
what upstream produced (segment and metrics pick up every translator with a complete manifest).
"""

import importlib
import time
from dataclasses import dataclass

from medtrans.shared.catalogue.stages import stage_names
from medtrans.shared.config import StudyConfig
from medtrans.shared.layout import RunLayout
from medtrans.shared.log import get_logger
from medtrans.shared.stage import State, Unit, execute, state

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


def study_status(study: StudyConfig, layout: RunLayout) -> list[tuple[str, State]]:
    """Each unit of each stage with its state (done / stale / missing / blocked) and why."""
    rows = []
    for stage in STAGES:
        for unit in plan_stage(stage, study, layout):
            rows.append((unit.label, state(unit, layout)))
    return rows
