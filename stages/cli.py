"""The `medtrans` command line: one sub-command per stage, plus run, status and verify."""

import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from medtrans.shared.audit import RunUnreadable, audit_run
from medtrans.shared.cli import ForceOpt, RunOpt, StudyOpt, UserError, friendly, open_study
from medtrans.shared.config import StudyConfig, StudyError
from medtrans.shared.config.paths import check_data_paths
from medtrans.shared.config.translate import MODELS
from medtrans.shared.layout import RunLayout
from medtrans.shared.signing import SigningKeyError, signing_key
from medtrans.stages import runner

app = typer.Typer(
    name="medtrans",
    help=(
        "Judge medical image translators honestly: preprocess scans, train translators, "
        "segment the translations with a target-domain UNet, compute perceptual metrics, "
        "and correlate the two. Every stage reads and writes a run folder of manifests."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Extra commands that live with their stage (e.g. `medtrans compare` with the metrics).
# Each module's commands and the pyproject extra they need: a stage image installs only its own
# extra, so there a command of another stage's extra is replaced by one that says how to get it.
EXTRA_COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "medtrans.stages.metrics.command": (("compare",), "metrics"),
    "medtrans.stages.preprocess.command": (("phantom",), "preprocess"),
    "medtrans.stages.calibration": (("calibrate",), "calibrate"),
}


TaskOpt = Annotated[
    list[str] | None,
    typer.Option("--task", "-t", help="Only this task (repeatable). Default: every task of the study."),
]


def _tasks(cfg, study: Path, chosen: list[str] | None) -> tuple[str, ...] | None:
    """The --task choice, checked against the study (a workflow job runs one task's unit)."""
    if not chosen:
        return None
    unknown = [t for t in chosen if t not in cfg.tasks]
    if unknown:
        raise UserError(f"{study}: no task {unknown[0]!r}; the study's tasks are {', '.join(cfg.tasks)}")
    return tuple(chosen)


def _report(outcomes: list[runner.Outcome]) -> None:
    for o in outcomes:
        typer.echo(f"{o.result:8s} {o.unit} ({o.seconds:.1f}s)")


@app.command("run")
@friendly
def run_cmd(
    study: Annotated[Path, typer.Argument(help="Study file, e.g. studies/demo.yaml.")],
    run: RunOpt = None,
    force: ForceOpt = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs", "-j", min=1,
            help="Units at once, each its own `medtrans <stage> --task T` process with its stage's "
            "resources threads (default: the study's resources.jobs; unset: one after the other "
            "in this process).",
        ),
    ] = None,
) -> None:  # fmt: skip
    """Run every stage of STUDY in order (the local runner), skipping up-to-date outputs."""
    cfg, layout = open_study(study, run)
    jobs = jobs if jobs is not None else cfg.resources.jobs
    typer.echo(f"medtrans run: study {cfg.name} ({cfg.profile}) -> {layout.root}")
    if jobs is None:
        _report(runner.run_study(cfg, layout, force=force))
    else:
        try:
            _report(runner.run_study_jobs(cfg, layout, study.resolve(), jobs, force=force))
        except runner.UnitsFailed as err:
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            sys.exit(1)
    summary = layout.report() / "summary.md"
    if summary.is_file():
        typer.echo("\n" + summary.read_text())


@app.command("status")
@friendly
def status_cmd(
    study: Annotated[Path, typer.Argument(help="Study file.")],
    run: RunOpt = None,
) -> None:
    """Show each stage/task/model of STUDY as done, stale, corrupt, missing or blocked, and why.
    Exit 2 when the study (or one of its data paths) is unusable, 1 when a unit is corrupt."""
    cfg, layout = open_study(study, run)
    check_data_paths(cfg, str(study))
    rows = runner.study_status(cfg, layout)
    width = max((len(label) for label, _ in rows), default=10)
    for label, st in rows:
        typer.echo(f"{label:<{width}}  {st.status:<8} {st.reason}")
    sys.exit(1 if any(st.status == "corrupt" for _, st in rows) else 0)


@app.command("verify")
def verify_cmd(
    run: Annotated[Path, typer.Argument(help="Run folder, e.g. runs/demo.")],
    study: Annotated[
        Path | None,
        typer.Option("--study", "-s", help="Also list the units this study plans that the run lacks."),
    ] = None,
) -> None:
    """Check the whole chain of RUN: every manifest parses (and holds its signature when a key is
    configured), every output has its sha256, no unlisted files, every input is the current
    upstream manifest; with --study, the units the study plans but the run lacks.
    Exit 0 clean, 1 problems (listed), 2 the run (or the study) cannot be read."""
    try:
        audit = audit_run(run, signing_key(run))
        cfg = open_study(study, run)[0] if study is not None else None
    except (RunUnreadable, SigningKeyError, StudyError) as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    problems = audit.problems + (_planned_but_absent(cfg, study, run) if cfg is not None else [])
    for line in problems:
        typer.echo(line)
    for line in audit.notes:
        typer.echo(f"note: {line}")
    typer.echo(f"verified {audit.manifests} manifests: {len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


def _planned_but_absent(cfg: StudyConfig, study: Path, run: Path) -> list[str]:
    """Units the study plans that the run lacks, or that were built under another config."""
    try:
        rows = runner.study_status(cfg, RunLayout(run))
    except Exception as err:  # noqa: BLE001 - verify reports, never crashes
        return [f"{study}: the study's units could not be planned on {run} ({err.__class__.__name__}: {err})"]
    lines = []
    for label, st in rows:
        if st.status == "missing":
            lines.append(f"{label}: planned by {study} but not in the run ({st.reason})")
        elif st.status == "stale" and "config" in st.reason:
            lines.append(f"{label}: built under another config than {study}")
    return lines


def _stage_command(stage: str, doc: str, per_task: bool = True) -> None:
    if per_task:

        @friendly
        def command(
            study: StudyOpt, run: RunOpt = None, force: ForceOpt = False, task: TaskOpt = None
        ) -> None:
            cfg, layout = open_study(study, run)
            _report(runner.run_stage(stage, cfg, layout, force=force, tasks=_tasks(cfg, study, task)))

    else:

        @friendly
        def command(study: StudyOpt, run: RunOpt = None, force: ForceOpt = False) -> None:
            cfg, layout = open_study(study, run)
            _report(runner.run_stage(stage, cfg, layout, force=force))

    command.__doc__ = doc
    app.command(stage)(command)


_stage_command("preprocess", "Read raw scans into slices, masks and a patient-level split index.")


@app.command("translate")
@friendly
def translate_cmd(
    model: Annotated[str, typer.Argument(help=f"Translator: {', '.join(MODELS)}, or 'all'.")],
    study: StudyOpt,
    run: RunOpt = None,
    force: ForceOpt = False,
    task: TaskOpt = None,
) -> None:
    """Train one translator per task and translate the source test split."""
    if model != "all" and model not in MODELS:
        typer.secho(f"error: unknown model {model!r}; choose one of {', '.join(MODELS)} or all", err=True)
        sys.exit(2)
    cfg, layout = open_study(study, run)
    models = None if model == "all" else (model,)
    tasks = _tasks(cfg, study, task)
    _report(runner.run_stage("translate", cfg, layout, force=force, models=models, tasks=tasks))


_stage_command("segment", "Train the target-domain UNet; Dice and HD95 on real and translated test sets.")
_stage_command("metrics", "Perceptual metrics of each translated set against the real target test set.")
_stage_command(
    "report", "Correlate perceptual metrics with Dice; tables, figures and report.html.", per_task=False
)


def _unavailable(name: str, extra: str, missing: str) -> None:
    def command() -> None:
        typer.secho(
            f"error: `medtrans {name}` needs the {extra} extra (no module {missing!r} here): "
            f"pip install 'medtrans[{extra}]', or run it in the medtrans/{extra} image",
            fg=typer.colors.RED, err=True,
        )  # fmt: skip
        sys.exit(2)

    command.__doc__ = f"(not installed here: needs medtrans[{extra}])"
    app.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)


for _module, (_names, _extra) in EXTRA_COMMANDS.items():
    try:
        _registered = importlib.import_module(_module)
    except ModuleNotFoundError as _err:
        if (_err.name or "").split(".")[0] == "medtrans":
            raise
        for _name in _names:
            _unavailable(_name, _extra, _err.name or "?")
    else:
        _registered.register(app)


@app.command("plan")
@friendly
def plan_cmd(
    study: Annotated[Path, typer.Argument(help="Study file, e.g. studies/paper.yaml.")],
    run: RunOpt = None,
    step_times: Annotated[
        Path | None,
        typer.Option(
            "--step-times",
            help='JSON {"cyclegan": s_per_iter, ..., "unet": s_per_iter} (bench-results/step-times.json '
            "from `make bench-gpu`); translators or the UNet it lacks are measured here.",
        ),
    ] = None,
    device: Annotated[
        str,
        typer.Option("--device", help="Where the warm-up measures: cpu or cuda. Default: the study's."),
    ] = "",
) -> None:
    """Show every training unit of STUDY with its iterations and the compute it needs, before
    anything runs. Iterations follow each schedule and the train image counts (from
    preprocess/<task>/index.csv when preprocess has run, else the study's preprocess.sample
    counts). Seconds per iteration come from --step-times or from a warm-up here: a few training
    steps of each translator and of the UNet at the study's settings on synthetic batches.
    Hours = iterations x s/iter / 3600, per unit and in total."""
    from medtrans.shared.device import resolve_device
    from medtrans.stages import plan

    cfg, layout = open_study(study, run)
    if device not in ("", "cpu", "cuda"):
        raise UserError(f"--device {device!r}: choose cpu or cuda")
    units = plan.plan_units(cfg, layout)
    given = plan.read_step_times(step_times) if step_times is not None else {}
    missing = [u.key for u in units if u.key not in given]
    try:
        dev = resolve_device(device or cfg.device) if missing else None
    except RuntimeError as err:  # device: cuda without a GPU
        raise UserError(f"{err}; or measure here with --device cpu, or give --step-times FILE") from None
    if missing:
        typer.echo(f"warm-up on {dev}: {', '.join(dict.fromkeys(missing))} (a few steps each)", err=True)
    times = plan.step_times(cfg, [u.key for u in units], given, plan.warmup(cfg, dev))
    where = f"measured on {dev}" if missing else f"from {step_times}"
    typer.echo(f"medtrans plan: study {cfg.name}, seconds per iteration {where}")
    for line in plan.table(units, times):
        typer.echo(line)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
