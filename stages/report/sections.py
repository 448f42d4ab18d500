"""The report's HTML sections (and the tables/figures written beside them), one function each."""

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.config import StudyConfig
from medtrans.shared.provenance import code_version
from medtrans.stages.report import figures as F
from medtrans.stages.report import page as P
from medtrans.stages.report import provenance as V
from medtrans.stages.report import tables as T
from medtrans.stages.report.analysis import Analysis
from medtrans.stages.report.gather import RunData, TaskData

FLOAT = "%.10g"


@dataclass(frozen=True)
class Out:
    tables: Path
    figures: Path


def _write_table(out: Out, stem: str, table: T.Table) -> None:
    (out.tables / f"{stem}.md").write_text(T.to_markdown(table), encoding="utf-8")
    (out.tables / f"{stem}.tex").write_text(T.to_latex(table, f"tab:{stem}"), encoding="utf-8")


def _figure(paths: list[Path] | None, caption: str) -> list[str]:
    return [P.figure_html(P.Figure(paths[0], caption))] if paths else []


def few_points(n: int) -> str:
    """Why a correlation over n translators is fragile, with the numbers for this n."""
    text = (
        f"Few points, fragile correlations: each task has at most {n} translators, so each per-task "
        f"correlation rests on {n} points."
    )
    if n >= 3:
        t = stats.t.ppf(0.975, n - 2)
        r_crit = t / math.sqrt(n - 2 + t * t)
        p_min = 2 / math.factorial(n)  # exact two-sided p of a perfect rank correlation
        text += (
            f" With {n} points Pearson needs |r| > {r_crit:.3f} for p < 0.05, and a perfect Spearman or "
            f"Kendall correlation has an exact two-sided p of 2/{n}! = {p_min:.3g}"
            + (" (it cannot reach p < 0.05)." if p_min >= 0.05 else ".")
            + " The Spearman and Kendall p-values shown are exact: every one of the n! pairings enumerated."
        )
    return text + (
        " One translator moving can change the coefficient completely: read the leave-one-out ranges and "
        "the stated rule before any p-value."
    )


def uncertainty_note(task: TaskData, analysis: Analysis) -> str:
    """Which question each kind of uncertainty answers, and on how many points it rests."""
    series = analysis.series.get(task.name, {})
    n_trans = max((len(ts.sets) for ts in series.values()), default=0)
    reps = max((ts.x_rep.shape[0] for ts in series.values() if ts.x_rep is not None), default=0)
    images = "?"
    if task.metrics is not None and len(task.metrics.table):
        sizes = task.metrics.table[task.metrics.table["set"].isin(task.rows())]["n"].dropna()
        images = str(int(sizes.max())) if len(sizes) else "?"
    return (
        f"Two uncertainties, two questions. Image level (brackets 'img' and every interval in the results "
        f"table): with these {n_trans} translators fixed, how much would the numbers move with other test "
        f"images? It rests on {images} test images ({reps} half-sample replicates). Translator level "
        f"('LOO' ranges, exact p-values, the rule below): would the conclusion survive another set of "
        f"translators? It rests on {n_trans} translators, so it is the weaker and the one that decides "
        "whether a metric agrees with anatomy."
    )


def caveats(study: StudyConfig, run: RunData, pooled: str) -> list[str]:
    counts = sorted({len(t.rows()) for t in run.tasks.values()})
    n = counts[-1] if counts else 0
    out = [
        few_points(n),
        "The image-level intervals half-sample the test images without replacement (replicate r uses the "
        "same images for Dice and for every metric, and its own half of the reference); they hold the "
        "translators fixed and do not capture training randomness: each translator and the UNet were "
        "trained once. The translator-level checks (leave one translator out, exact permutation p) do.",
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
    pairs = [catalogue.label(m) for m in study.metrics.metrics if m in catalogue.using("pairs")]
    if pairs:
        out.append(
            f"{', '.join(pairs)} compare each translation with its own source slice: they measure how much "
            "structure is kept, not realism, and the untranslated source scores their optimum (a translator "
            "that changes nothing would win); read them beside a realism metric."
        )
    if study.profile == "demo":
        out.insert(
            0,
            "Demo profile: tiny networks trained for minutes on a procedural phantom. These "
            "numbers demonstrate the pipeline; they are not the paper's results.",
        )
    return out


def task_section(
    task: TaskData, run: RunData, analysis: Analysis, out: Out, grid_slices: int
) -> tuple[T.Table, list[str]]:
    """One task: results table, Dice bars, scatter, correlations, rank agreement, grid, curves."""
    name = task.name
    res = analysis.results[name]
    res.to_csv(out.tables / f"results_{name}.csv", index=False, float_format=FLOAT)
    table = T.results_display(task, res)
    _write_table(out, f"results_{name}", table)
    blocks = [T.to_html(table)]
    missing_here = [m for m in run.missing if m.split(":")[0].split("/")[1:2] == [name]]
    if missing_here:
        blocks.append(
            '<div class="warn"><b>Missing for this task:</b>' + P.bullet_list(missing_here) + "</div>"
        )
    blocks += _figure(
        F.dice_bars(task, analysis, out.figures),
        "Dice per translator and structure with 95% CI; solid line: real target test set (upper bound), "
        "dashed: untranslated source (lower bound).",
    )
    blocks += _figure(
        F.scatter(task, analysis, out.figures),
        "Each perceptual metric against mean Dice; bars: 95% image-level intervals over test images "
        "(metrics: half-samples; Dice: bootstrap of the mean), each through its point.",
    )
    blocks.append(P.paragraph(uncertainty_note(task, analysis), "note"))
    for anatomy in ("dice", "hd95"):
        corr = T.correlation_display(analysis.correlations, name, anatomy)
        if corr.rows:
            blocks.append(T.to_html(corr))
            _write_table(out, f"correlations_{name}_{anatomy}", corr)
    ranks = T.rank_display(analysis.ranks, name)
    if ranks.rows:
        blocks.append(T.to_html(ranks))
        _write_table(out, f"ranks_{name}", ranks)
    verdict = T.verdict_display(analysis.verdicts, name)
    if verdict.rows:
        blocks.append(T.to_html(verdict))
        _write_table(out, f"agreement_{name}", verdict)
    blocks += _figure(
        F.image_grid(task, analysis, out.figures, grid_slices),
        "The same source test slices through every translator; contours: UNet prediction (solid) and "
        "ground truth (dashed).",
    )
    blocks += _figure(
        F.training_curves(task, out.figures),
        "Training curves: translator losses (moving average) and the UNet's loss and validation Dice.",
    )
    return table, blocks


def pooled_section(analysis: Analysis, out: Out) -> list[str]:
    blocks = [
        P.paragraph(
            f"Tasks pooled after standardising within each task ({analysis.pooled}); see the caveats."
        )
    ]
    for anatomy in ("dice", "hd95"):
        corr = T.correlation_display(analysis.correlations, "pooled", anatomy)
        if corr.rows:
            blocks.append(T.to_html(corr))
            _write_table(out, f"correlations_pooled_{anatomy}", corr)
    verdict = T.verdict_display(analysis.verdicts, "pooled")
    if verdict.rows:
        blocks.append(T.to_html(verdict))
        _write_table(out, "agreement_pooled", verdict)
    blocks += _figure(
        F.correlation_heatmap(analysis, out.figures),
        "Oriented Spearman correlation with Dice per task and pooled: +1 = the metric ranks translators "
        "exactly as Dice does.",
    )
    return blocks


def missing_section(run: RunData, analysis: Analysis, unavailable: pd.DataFrame) -> list[str]:
    blocks = ["<h3>Missing outputs</h3>", P.bullet_list(run.missing), "<h3>Unavailable metrics</h3>"]
    if len(unavailable):
        blocks.append(T.frame_to_html(unavailable))
    else:
        blocks.append("<p>none: every configured metric was computed.</p>")
    if analysis.notes:
        blocks += ["<h3>Notes</h3>", P.bullet_list(analysis.notes)]
    return blocks


def provenance_section(study: StudyConfig, run: RunData, study_digest: str) -> list[str]:
    cfg = study.report
    facts = [
        f"study: {study.name} (profile {study.profile}, seed {study.seed})",
        f"study digest (sha256 of the validated study): {study_digest}",
        f"report code version: {code_version()}",
        f"bootstrap replicates requested: {cfg.bootstrap}; CI level {cfg.ci_level:.0%}",
    ]
    return [
        '<div class="box">' + P.bullet_list(facts) + "</div>",
        "<h3>Upstream outputs</h3>",
        T.frame_to_html(V.inputs_frame(run)),
        "<h3>Environment</h3>",
        T.frame_to_html(V.environment_frame(run)),
        "<h3>Package versions</h3>",
        T.frame_to_html(V.packages_frame(run)),
        "<h3>Weights and network digests</h3>",
        T.frame_to_html(V.weights_frame(run)),
    ]


def appendix_section(run: RunData, analysis: Analysis) -> list[str]:
    blocks = [P.paragraph("Every metric exactly as metrics.csv holds it; correlations.csv in full.")]
    for name in run.tasks:
        raw = P.raw_metrics_frame(run, name)
        if raw is not None:
            blocks.append(P.details(f"metrics/{name}/metrics.csv", T.frame_to_html(raw)))
    blocks.append(
        P.details("correlations.csv", T.frame_to_html(analysis.correlations.drop(columns=["sets"])))
    )
    blocks.append(P.details("rank_agreement.csv", T.frame_to_html(analysis.ranks)))
    blocks.append(P.details("agreement.csv (the stated rule)", T.frame_to_html(analysis.verdicts)))
    return blocks
