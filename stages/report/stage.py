"""The report stage: one unit (`report/`) that reads every complete upstream output and writes
the correlation study: correlations.csv, tables/, figures/, report.html and summary.md.

Its inputs are whatever is complete when it is planned; a missing translator, metric or whole
task is listed in the report instead of failing it, and becomes an input (so the report is
rebuilt) as soon as it exists.
"""

import shutil
from functools import partial

import pandas as pd

from medtrans.shared.config import StudyConfig
from medtrans.shared.hashing import digest
from medtrans.shared.layout import RunLayout
from medtrans.shared.log import get_logger
from medtrans.shared.provenance import code_version
from medtrans.shared.stage import Unit, UnitContext
from medtrans.stages.report import figures as F
from medtrans.stages.report import page as P
from medtrans.stages.report import provenance as V
from medtrans.stages.report import tables as T
from medtrans.stages.report.analysis import analyse
from medtrans.stages.report.gather import RunData, gather, unavailable_metrics

VERSION = "1"
log = get_logger("medtrans.report")
FLOAT = "%.10g"


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


def caveats(study: StudyConfig, run: RunData, pooled: str) -> list[str]:
    counts = sorted({len(t.rows()) for t in run.tasks.values()})
    n = counts[-1] if counts else 0
    out = [
        f"Few points: each task has at most {n} translators, so each per-task correlation rests on "
        f"{n} points. With 4 points Pearson needs |r| > 0.95 for p < 0.05, and Spearman and Kendall cannot "
        "reach p < 0.05 at all (smallest two-sided exact p = 1/12 = 0.083). One translator moving changes "
        "the coefficient completely: read the rank agreement and its bootstrap stability, not the p-values.",
        "The bootstrap resamples the test images (replicate r uses the same images for Dice and for every "
        "metric); it does not capture training randomness: each translator and the UNet were trained once.",
        f"Pooled correlations standardise within task ({pooled}: "
        + (
            "each metric and Dice z-scored over the translators of a task, which keeps their spacing and "
            "removes the task's own scale, e.g. FID of MRI→CT vs MRI→MRI"
            if pooled == "zscore"
            else "per-task ranks, which keep only each task's ordering"
        )
        + "); the pooled points are not independent, so pooled p-values are descriptive only.",
        "FID and KID are biased for small sample sizes (FID's covariance is singular below 2048 images): "
        "compare values only at equal n (the n column of metrics.csv) and with the same feature convention.",
        "Dice and HD95 come from one UNet trained on the real target domain; a translator can score well by "
        "producing what that UNet expects rather than faithful anatomy.",
    ]
    if study.profile == "demo":
        out.insert(
            0,
            "Demo profile: tiny networks trained for minutes on a procedural phantom. These "
            "numbers demonstrate the pipeline; they are not the paper's results.",
        )
    return out


def _clean(work) -> None:
    """Start from an empty folder (a resumed partial may hold files of an older attempt)."""
    for p in work.iterdir():
        if p.name.startswith("."):
            continue
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def build(study: StudyConfig, ctx: UnitContext) -> None:
    cfg = study.report
    work = ctx.work
    _clean(work)
    run = gather(study, ctx.layout, only=ctx.unit.inputs)
    analysis = analyse(run, study.seed, cfg.bootstrap, cfg.pooled, cfg.ci_level)
    tables_dir, fig_dir = work / "tables", work / "figures"
    tables_dir.mkdir()
    fig_dir.mkdir()

    analysis.correlations.to_csv(work / "correlations.csv", index=False, float_format=FLOAT)
    analysis.correlations.to_csv(tables_dir / "correlations.csv", index=False, float_format=FLOAT)
    analysis.ranks.to_csv(tables_dir / "rank_agreement.csv", index=False, float_format=FLOAT)
    unavailable = unavailable_metrics(run)
    pd.DataFrame(unavailable, columns=["task", "set", "metric", "note"]).to_csv(
        tables_dir / "unavailable_metrics.csv", index=False
    )

    display: dict[str, T.Table] = {}
    sections: list[tuple[str, str, list[str]]] = []
    for name, task in run.tasks.items():
        res = analysis.results[name]
        res.to_csv(tables_dir / f"results_{name}.csv", index=False, float_format=FLOAT)
        table = T.results_display(task, res)
        display[name] = table
        (tables_dir / f"results_{name}.md").write_text(T.to_markdown(table))
        (tables_dir / f"results_{name}.tex").write_text(T.to_latex(table, f"tab:results-{name}"))
        blocks = [T.to_html(table)]
        missing_here = [m for m in run.missing if m.split(":")[0].split("/")[1:2] == [name]]
        if missing_here:
            blocks.append(
                '<div class="warn"><b>Missing for this task:</b>' + P.bullet_list(missing_here) + "</div>"
            )
        for fn, cap in (
            (
                F.dice_bars,
                "Dice per translator and structure with 95% CI; solid line: real target "
                "test set (upper bound), dashed: untranslated source (lower bound).",
            ),
            (
                F.scatter,
                "Each perceptual metric against mean Dice; bars: 95% bootstrap CIs over test images.",
            ),
        ):
            paths = fn(task, analysis, fig_dir)
            if paths:
                blocks.append(P.figure_html(P.Figure(paths[0], cap)))
        for anatomy in ("dice", "hd95"):
            corr = T.correlation_display(analysis.correlations, name, anatomy)
            if corr.rows:
                blocks.append(T.to_html(corr))
                stem = f"correlations_{name}_{anatomy}"
                (tables_dir / f"{stem}.md").write_text(T.to_markdown(corr))
                (tables_dir / f"{stem}.tex").write_text(T.to_latex(corr, f"tab:{stem}"))
        ranks = T.rank_display(analysis.ranks, name)
        if ranks.rows:
            blocks.append(T.to_html(ranks))
            (tables_dir / f"ranks_{name}.md").write_text(T.to_markdown(ranks))
            (tables_dir / f"ranks_{name}.tex").write_text(T.to_latex(ranks, f"tab:ranks-{name}"))
        grid = F.image_grid(task, analysis, fig_dir, cfg.grid_slices)
        if grid:
            cap = (
                "The same source test slices through every translator; contours: UNet prediction (solid) "
                "and ground truth (dashed)."
            )
            blocks.append(P.figure_html(P.Figure(grid[0], cap)))
        curves = F.training_curves(task, fig_dir)
        if curves:
            blocks.append(
                P.figure_html(
                    P.Figure(
                        curves[0],
                        "Training curves: translator losses (moving "
                        "average) and the UNet's loss and validation Dice.",
                    )
                )
            )
        sections.append((f"task-{name}", f"Task {name}: {task.source_domain} → {task.target_domain}", blocks))

    pooled_blocks = [
        P.paragraph(f"Tasks pooled after standardising within each task ({cfg.pooled}); see the caveats.")
    ]
    for anatomy in ("dice", "hd95"):
        corr = T.correlation_display(analysis.correlations, "pooled", anatomy)
        if corr.rows:
            pooled_blocks.append(T.to_html(corr))
            (tables_dir / f"correlations_pooled_{anatomy}.md").write_text(T.to_markdown(corr))
            (tables_dir / f"correlations_pooled_{anatomy}.tex").write_text(
                T.to_latex(corr, f"tab:correlations-pooled-{anatomy}")
            )
    heat = F.correlation_heatmap(analysis, fig_dir)
    if heat:
        pooled_blocks.append(
            P.figure_html(
                P.Figure(
                    heat[0],
                    "Oriented Spearman correlation with Dice per "
                    "task and pooled: +1 = the metric ranks translators "
                    "exactly as Dice does.",
                )
            )
        )
    sections.append(("pooled", "Across tasks", pooled_blocks))

    notes = caveats(study, run, cfg.pooled)
    digest_ = study_digest(study)
    sections.append(("caveats", "Caveats", [P.bullet_list(notes)]))
    sections.append(
        (
            "missing",
            "Missing and unavailable",
            [
                "<h3>Missing outputs</h3>",
                P.bullet_list(run.missing),
                "<h3>Unavailable metrics</h3>",
                T.frame_to_html(pd.DataFrame(unavailable, columns=["task", "set", "metric", "note"]))
                if unavailable
                else "<p>none: every configured metric was computed.</p>",
                *(["<h3>Notes</h3>", P.bullet_list(analysis.notes)] if analysis.notes else []),
            ],
        )
    )
    sections.append(
        (
            "provenance",
            "Provenance",
            [
                '<div class="box">'
                + P.bullet_list(
                    [
                        f"study: {study.name} (profile {study.profile}, seed {study.seed})",
                        f"study digest (sha256 of the validated study): {digest_}",
                        f"report code version: {code_version()}",
                        f"bootstrap replicates requested: {cfg.bootstrap}; CI level {cfg.ci_level:.0%}",
                    ]
                )
                + "</div>",
                "<h3>Upstream outputs</h3>",
                T.frame_to_html(V.inputs_frame(run)),
                "<h3>Environment</h3>",
                T.frame_to_html(V.environment_frame(run)),
                "<h3>Package versions</h3>",
                T.frame_to_html(V.packages_frame(run)),
                "<h3>Weights and network digests</h3>",
                T.frame_to_html(V.weights_frame(run)),
            ],
        )
    )
    appendix = [P.paragraph("Every metric exactly as metrics.csv holds it; correlations.csv in full.")]
    for name in run.tasks:
        raw = P.raw_metrics_frame(run, name)
        if raw is not None:
            appendix.append(P.details(f"metrics/{name}/metrics.csv", T.frame_to_html(raw)))
    appendix.append(
        P.details("correlations.csv", T.frame_to_html(analysis.correlations.drop(columns=["sets"])))
    )
    appendix.append(P.details("rank_agreement.csv", T.frame_to_html(analysis.ranks)))
    sections.append(("appendix", "Appendix: all numbers", appendix))

    page = P.Page(title=f"medtrans report: {study.name}")
    first = notes[: 2 if study.profile == "demo" else 1]  # the demo warning and the few-points caveat
    page.headline = [
        '<div class="box"><b>In short.</b>' + P.bullet_list(P.headline_sentences(analysis)) + "</div>",
        *(P.paragraph(n, "warn") for n in first),
    ]
    if run.missing:
        page.headline.append(
            P.paragraph(
                f"Partial run: {len(run.missing)} upstream output(s) missing; see 'Missing and unavailable'.",
                "warn",
            )
        )
    page.sections = sections
    (work / "report.html").write_text(P.render(page), encoding="utf-8")
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
