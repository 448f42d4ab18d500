"""The report stage: one unit (`report/`) that reads every complete upstream output and writes
the correlation study: correlations.csv, tables/, figures/, report.html and summary.md.

Its inputs are whatever is complete when it is planned; a missing translator, metric or whole
task is listed in the report instead of failing it, and becomes an input (so the report is
rebuilt) as soon as it exists.
"""

import shutil
from functools import partial
from pathlib import Path

import pandas as pd

from medtrans.shared.config import StudyConfig
from medtrans.shared.hashing import digest
from medtrans.shared.layout import RunLayout
from medtrans.shared.log import get_logger
from medtrans.shared.stage import Unit, UnitContext
from medtrans.stages.report import figures as F
from medtrans.stages.report import page as P
from medtrans.stages.report import sections as S
from medtrans.stages.report.analysis import analyse
from medtrans.stages.report.calibration import calibration_section
from medtrans.stages.report.gather import gather, unavailable_metrics

VERSION = "2"  # 2: half-sample intervals, translator-level uncertainty, the agreement rule
log = get_logger("medtrans.report")


def study_digest(study: StudyConfig) -> str:
    return digest(study.part())


def plan(study: StudyConfig, layout: RunLayout, **filters) -> list[Unit]:
    """One unit; inputs = every upstream folder that has a complete manifest now."""
    run = gather(study, layout)
    config = {
        "report": study.part("report"),
        "study": study.name,
        "study_digest": study_digest(study),
        "seed": study.seed,
    }
    return [
        Unit(
            stage="report",
            name=(),
            out=layout.report(),
            config=config,
            build=partial(build, study),
            inputs=run.input_folders(),
            version=VERSION,
            seeds={"bootstrap": study.seed},
            hint="run the earlier stages (`medtrans run`)",
        )
    ]


def _clean(work) -> None:
    """Start from an empty folder (a resumed partial may hold files of an older attempt)."""
    for p in work.iterdir():
        if p.name.startswith("."):
            continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def build(study: StudyConfig, ctx: UnitContext) -> None:
    with F.style():
        _build(study, ctx)


def _build(study: StudyConfig, ctx: UnitContext) -> None:
    cfg = study.report
    work = ctx.work
    _clean(work)
    run = gather(study, ctx.layout, only=ctx.unit.inputs)
    analysis = analyse(run, study.seed, cfg.bootstrap, cfg.pooled, cfg.ci_level)
    out = S.Out(work / "tables", work / "figures")
    out.tables.mkdir()
    out.figures.mkdir()
    unavailable = _write_tables(work, out, run, analysis)
    notes = S.caveats(study, run, cfg.pooled)
    digest_ = study_digest(study)
    page, display = _page(study, run, analysis, out, notes, unavailable, digest_)
    (work / "report.html").write_text(P.render(page), encoding="utf-8")
    first = _first_notes(study, notes)
    summary = P.summary_markdown(study.name, digest_, run, analysis, display, " ".join(first))
    (work / "summary.md").write_text(summary, encoding="utf-8")
    ctx.extra.update(
        {
            "tasks": {n: t.rows() for n, t in run.tasks.items()},
            "missing": run.missing,
            "unavailable_metrics": len(unavailable),
            "pooled": cfg.pooled,
            "study_digest": digest_,
        }
    )
    log.info(
        "report: %d task(s), %d missing item(s) -> %s",
        len(run.tasks),
        len(run.missing),
        ctx.layout.report() / "report.html",
    )


def _write_tables(work: Path, out: S.Out, run, analysis) -> pd.DataFrame:
    """The report's CSV tables; returns the metrics that could not be computed (also a table)."""
    analysis.correlations.to_csv(work / "correlations.csv", index=False, float_format=S.FLOAT)
    analysis.correlations.to_csv(out.tables / "correlations.csv", index=False, float_format=S.FLOAT)
    analysis.ranks.to_csv(out.tables / "rank_agreement.csv", index=False, float_format=S.FLOAT)
    analysis.verdicts.to_csv(out.tables / "agreement.csv", index=False)
    unavailable = pd.DataFrame(unavailable_metrics(run), columns=["task", "set", "metric", "note"])
    unavailable.to_csv(out.tables / "unavailable_metrics.csv", index=False)
    return unavailable


def _first_notes(study: StudyConfig, notes: list[str]) -> list[str]:
    """The caveats the headline repeats: the demo warning and the few-points caveat."""
    return notes[: 2 if study.profile == "demo" else 1]


def _page(
    study: StudyConfig, run, analysis, out: S.Out, notes: list[str], unavailable: pd.DataFrame, digest_: str
) -> tuple[P.Page, dict]:
    """The HTML page (a section per task, then the cross-task ones) and each task's display names."""
    page = P.Page(title=f"medtrans report: {study.name}")
    display = {}
    for name, task in run.tasks.items():
        display[name], blocks = S.task_section(task, run, analysis, out, study.report.grid_slices)
        page.sections.append(
            (f"task-{name}", f"Task {name}: {task.source_domain} → {task.target_domain}", blocks)
        )
    page.sections += [
        ("pooled", "Across tasks", S.pooled_section(analysis, out)),
        ("calibration", "Calibration", calibration_section(run.tasks, out.figures, out.tables)),
        ("caveats", "Caveats", [P.bullet_list(notes)]),
        ("missing", "Missing and unavailable", S.missing_section(run, analysis, unavailable)),
        ("provenance", "Provenance", S.provenance_section(study, run, digest_)),
        ("appendix", "Appendix: all numbers", S.appendix_section(run, analysis)),
    ]
    page.headline = [
        '<div class="box"><b>In short.</b>' + P.bullet_list(P.headline_sentences(analysis)) + "</div>",
        *(P.paragraph(n, "warn") for n in _first_notes(study, notes)),
    ]
    if run.missing:
        page.headline.append(
            P.paragraph(
                f"Partial run: {len(run.missing)} upstream output(s) missing; see 'Missing and unavailable'.",
                "warn",
            )
        )
    return page, display
