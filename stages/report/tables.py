"""The paper-style tables: one cell model rendered as CSV, Markdown, LaTeX (booktabs) and HTML.

Layout of the results table (as in the paper): rows are translators, columns Dice per
structure, then each perceptual metric; the best translator per column is bold. The two
baselines follow below a rule, for context, and are never marked best.
"""

import html
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.stages.report import correlate as C
from medtrans.stages.report import translators as TR
from medtrans.stages.report.analysis import main_metrics


def fmt(value: float, digits: int = 4) -> str:
    """A number for people: 4 significant digits, an en dash for missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.{digits}g}"


def fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


@dataclass
class Cell:
    text: str
    ci: str = ""
    best: bool = False


@dataclass
class Table:
    """Headers, a header row of arrows, body rows (label, cells), and where the rule goes."""

    title: str
    headers: list[str]
    rows: list[tuple[str, list[Cell]]]
    rule_after: int | None = None  # index of the last row above a midrule
    note: str = ""


def metric_label(metric: str) -> str:
    return catalogue.label(metric)


def _arrow(higher_better: bool) -> str:
    return "↑" if higher_better else "↓"


def results_display(task, results: pd.DataFrame) -> Table:
    """The headline table of one task: Dice per structure, HD95 (mean), main perceptual metrics."""
    columns: list[tuple[str, str, bool]] = []  # (column key, header, higher is better)
    shown = (*task.structures, "mean") if len(task.structures) > 1 else task.structures  # mean = the one
    for s in shown:
        columns.append((f"dice_{s}", f"Dice {s} ↑", True))
    columns.append(("hd95_mean", "HD95 mean ↓", False))
    for m in main_metrics():
        if m in results.columns and results[m].notna().any():
            higher = C.metric_direction(m) > 0
            columns.append((m, f"{metric_label(m)} {_arrow(higher)}", higher))
    translators = results[results["role"] == "translator"]
    best: dict[str, set[str]] = {}
    for key, _, higher in columns:
        vals = translators[key].to_numpy(dtype=float) if key in translators else np.array([])
        if vals.size and np.isfinite(vals).any():
            target = np.nanmax(vals) if higher else np.nanmin(vals)
            best[key] = set(translators["set"][vals == target])
    rows = []
    for _, r in results.iterrows():
        cells = []
        for key, _, _ in columns:
            v = r.get(key, np.nan)
            lo, hi = r.get(f"{key}_ci_low", np.nan), r.get(f"{key}_ci_high", np.nan)
            ci = f"[{fmt(lo, 3)}, {fmt(hi, 3)}]" if np.isfinite(lo) and np.isfinite(hi) else ""
            cells.append(Cell(fmt(v), ci, r["role"] == "translator" and r["set"] in best.get(key, set())))
        rows.append((r["set"], cells))
    n_trans = len(translators)
    return Table(
        title=f"{task.name}: {task.source_domain} → {task.target_domain}",
        headers=["set"] + [h for _, h, _ in columns],
        rows=rows,
        rule_after=n_trans - 1 if n_trans else None,
        note="Best translator per column in bold. Below the rule: target = real target test set "
        "(Dice upper bound; metrics of the target train set vs the target test set, the real-vs-real "
        "floor); source = untranslated source test set (Dice lower bound; metrics of source vs target). "
        + _pairs_note(columns)
        + "Brackets: 95% interval over test images (metrics: half-samples without replacement, README "
        "'Intervals'; Dice: bootstrap of the mean); each holds its point estimate.",
    )


def _pairs_note(columns: list[tuple[str, str, bool]]) -> str:
    """What the pair metrics' columns mean, where the table has any."""
    shown = [metric_label(key) for key, _, _ in columns if key in catalogue.using("pairs")]
    if not shown:
        return ""
    return (
        f"{', '.join(shown)} compare each source test slice with its translation (structure kept, no "
        "labels or weights): source scores the identity, their optimum; target has no pairs (–). "
    )


def _interval(lo: float, hi: float, digits: int = 2) -> str:
    return f"[{fmt(lo, digits)}, {fmt(hi, digits)}]" if np.isfinite(lo) and np.isfinite(hi) else ""


def _corr_cell(r: pd.Series) -> Cell:
    """r (p), p exact by enumeration for the rank correlations; image-level CI and LOO range."""
    exact = r["method"] in TR.RANKS and r["p_exact_method"] == "enumeration"
    p = r["p_exact"] if r["method"] in TR.RANKS else r["p"]
    text = f"{fmt(r['r'], 3)} ({'exact ' if exact else ''}p {fmt_p(p)})"
    parts = []
    if np.isfinite(r["ci_low"]):
        parts.append(f"img {_interval(r['ci_low'], r['ci_high'])}")
    if np.isfinite(r["loo_min"]):
        parts.append(f"LOO {_interval(r['loo_min'], r['loo_max'])}")
    return Cell(text, " · ".join(parts), r["agrees"] == "yes")


CORRELATION_NOTE = (
    "Bold: the sign agrees with the expected one (a better metric value goes with better anatomy). "
    "img [..]: image-level 95% interval (the correlation recomputed on half-samples of the test images, "
    "translators fixed): would other test images move it? LOO [..]: the range of the correlation with "
    "each translator left out in turn: does it survive another set of translators? Spearman and Kendall "
    "p: exact permutation p-values, all n! pairings of the n translators enumerated (pooled: within "
    "task); Pearson p: scipy's t-test."
)


def correlation_display(corr: pd.DataFrame, scope: str, anatomy: str, only: tuple[str, ...] = ()) -> Table:
    """One scope's correlations with one anatomy metric: r (p) [image CI, LOO range] per method,
    per metric (`only`: restrict to these metrics)."""
    sub = corr[(corr["scope"] == scope) & (corr["anatomy"] == anatomy)]
    if only:
        sub = sub[sub["metric"].isin(only)]
    rows = []
    for metric in dict.fromkeys(sub["metric"]):
        m = sub[sub["metric"] == metric].set_index("method", drop=False)
        cells = [Cell(m["expected_sign"].iloc[0]), Cell(str(int(m["n"].iloc[0])))]
        cells += [_corr_cell(m.loc[method]) for method in C.METHODS]
        rows.append((metric_label(metric), cells))
    return Table(
        title=f"{scope}: correlation with {'Dice' if anatomy == 'dice' else 'HD95'} (mean over structures)",
        headers=["metric", "expected sign", "n", "Pearson r", "Spearman ρ", "Kendall τ"],
        rows=rows,
        note=CORRELATION_NOTE,
    )


def verdict_display(verdicts: pd.DataFrame, scope: str, only: tuple[str, ...] = ()) -> Table:
    """Per metric: may the report say that it agrees with Dice (`translators.RULE`), and why not."""
    sub = verdicts[verdicts["scope"] == scope]
    if only:
        sub = sub[sub["metric"].isin(only)]
    rows = [
        (metric_label(r["metric"]), [Cell(r["agrees"], best=r["agrees"] == "yes"), Cell(r["reason"])])
        for _, r in sub.iterrows()
    ]
    return Table(
        title=f"{scope}: does the metric agree with Dice (the stated rule)?",
        headers=["metric", "agrees", "reason"],
        rows=rows,
        note=TR.RULE,
    )


def rank_display(ranks: pd.DataFrame, task: str, only: tuple[str, ...] = ()) -> Table:
    sub = ranks[ranks["task"] == task]
    if only:
        sub = sub[sub["metric"].isin(only)]
    rows = []
    for _, r in sub.iterrows():
        lo, hi = r["tau_ci_low"], r["tau_ci_high"]
        ci = f"[{fmt(lo, 2)}, {fmt(hi, 2)}]" if np.isfinite(lo) else ""
        rows.append(
            (
                metric_label(r["metric"]),
                [
                    Cell(r["metric_order"]),
                    Cell(fmt(r["tau"], 3), ci, bool(np.isfinite(r["tau"]) and r["tau"] > 0)),
                    Cell(r["top1"], best=r["top1"] == "yes"),
                    Cell(_pct(r["metric_order_kept"])),
                    Cell(_pct(r["top1_kept"])),
                    Cell(_pct(r["pairs_agree"])),
                ],
            )
        )
    dice_order = sub["dice_order"].iloc[0] if len(sub) else ""
    return Table(
        title=f"{task}: each metric's ranking of the translators vs Dice's ranking",
        headers=[
            "metric",
            "order (best first)",
            "Kendall τ vs Dice",
            "same best",
            "order kept",
            "same best (boot)",
            "pairs agree (boot)",
        ],
        rows=rows,
        note=f"Dice order: {dice_order}. order kept: fraction of bootstrap replicates with the metric's full "
        "order unchanged; same best (boot): fraction where the metric's best translator is Dice's best; "
        "pairs agree: fraction of (replicate, translator pair) ordered the same way by the metric and by "
        "Dice.",
    )


def _pct(v: float) -> str:
    return "–" if not np.isfinite(v) else f"{100 * v:.0f}%"


# ---- renderers -------------------------------------------------------------------------


def to_markdown(t: Table) -> str:
    def cell(c: Cell) -> str:
        text = f"**{c.text}**" if c.best and c.text != "–" else c.text
        return f"{text} {c.ci}".strip().replace("|", "\\|")

    lines = [f"**{t.title}**", "", "| " + " | ".join(t.headers) + " |", "|" + "---|" * len(t.headers)]
    for label, cells in t.rows:
        lines.append("| " + " | ".join([label.replace("|", "\\|")] + [cell(c) for c in cells]) + " |")
    if t.note:
        lines += ["", f"_{t.note}_"]
    return "\n".join(lines) + "\n"


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "→": r"$\rightarrow$",
    "–": "--",
    "ρ": r"$\rho$",
    "τ": r"$\tau$",
    "·": r"$\cdot$",
    ">": r"$>$",
    "<": r"$<$",
}


def tex_escape(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def to_latex(t: Table, label: str) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""

    def cell(c: Cell) -> str:
        text = tex_escape(c.text)
        if c.best and c.text != "–":
            text = rf"\textbf{{{text}}}"
        return text + (rf" {{\scriptsize {tex_escape(c.ci)}}}" if c.ci else "")

    spec = "l" + "c" * (len(t.headers) - 1)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{tex_escape(t.title)}. {tex_escape(t.note)}}}",
        rf"\label{{{label}}}",
        r"\resizebox{\linewidth}{!}{%",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(tex_escape(h) for h in t.headers) + r" \\",
        r"\midrule",
    ]
    for i, (lab, cells) in enumerate(t.rows):
        lines.append(" & ".join([tex_escape(lab)] + [cell(c) for c in cells]) + r" \\")
        if t.rule_after is not None and i == t.rule_after and i < len(t.rows) - 1:
            lines.append(r"\midrule")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_html(t: Table) -> str:
    e = html.escape
    out = [f"<table><caption>{e(t.title)}</caption><thead><tr>"]
    out += [f"<th>{e(h)}</th>" for h in t.headers]
    out.append("</tr></thead><tbody>")
    for i, (label, cells) in enumerate(t.rows):
        cls = ' class="rule"' if t.rule_after is not None and i == t.rule_after + 1 else ""
        out.append(f"<tr{cls}><th>{e(label)}</th>")
        for c in cells:
            text = f"<b>{e(c.text)}</b>" if c.best and c.text != "–" else e(c.text)
            ci = f' <span class="ci">{e(c.ci)}</span>' if c.ci else ""
            out.append(f"<td>{text}{ci}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    if t.note:
        out.append(f'<p class="note">{e(t.note)}</p>')
    return "".join(out)


def frame_to_html(df: pd.DataFrame, caption: str = "") -> str:
    """A plain HTML table of a data frame with every value as written (strings kept verbatim)."""
    e = html.escape
    out = [f'<table class="raw"><caption>{e(caption)}</caption><thead><tr>']
    out += [f"<th>{e(str(c))}</th>" for c in df.columns]
    out.append("</tr></thead><tbody>")
    for _, row in df.iterrows():
        out.append("<tr>" + "".join(f"<td>{e(_raw(v))}</td>" for v in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _raw(v) -> str:
    if isinstance(v, float):
        return fmt(v, 6)
    return str(v)
