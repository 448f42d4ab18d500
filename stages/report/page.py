"""report.html: one self-contained page (inline CSS, figures as base64 data URIs, no script,
no external URL) that opens offline, and summary.md, the headline printed after `make all`."""

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from medtrans.stages.report import tables as T
from medtrans.stages.report.analysis import Analysis, main_metrics
from medtrans.stages.report.gather import RunData

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#1d1d1f;
background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:1.7em;margin:.2em 0}h2{border-bottom:2px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.6em}nav a{margin-right:1em}a{color:#0b5cad}
table{border-collapse:collapse;margin:.8em 0;font-size:.86em;background:#fff}
caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border-top:1px solid #d0d7de;border-bottom:1px solid #d0d7de;padding:.3em .6em;text-align:right;
vertical-align:top}
th:first-child{text-align:left}thead th{border-bottom:2px solid #555;border-top:2px solid #555}
tr.rule th,tr.rule td{border-top:2px solid #555}
.ci{display:block;color:#666;font-size:.8em;white-space:nowrap}
.note{color:#555;font-size:.85em;max-width:60em}figure{margin:1em 0}
figure img{max-width:100%;border:1px solid #e1e4e8;background:#fff}
figcaption{color:#555;font-size:.85em}.warn{background:#fff8e1;border-left:4px solid #f0b400;padding:.6em 1em}
.box{background:#fff;border:1px solid #d0d7de;padding:.6em 1em;border-radius:6px}
table.raw{font-size:.75em}table.raw td{text-align:left}details{margin:.6em 0}
summary{cursor:pointer;font-weight:600}code{background:#eef;padding:0 .2em}
"""


@dataclass
class Figure:
    path: Path  # the PNG
    caption: str


@dataclass
class Page:
    """What the page shows; built by the stage, rendered here."""

    title: str
    headline: list[str] = field(default_factory=list)  # html blocks
    sections: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (anchor, heading, blocks)


def figure_html(fig: Figure) -> str:
    data = base64.b64encode(fig.path.read_bytes()).decode("ascii")
    alt = html.escape(fig.caption, quote=True)
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>"
    )


def paragraph(text: str, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f"<p{c}>{html.escape(text)}</p>"


def details(title: str, inner: str) -> str:
    """A collapsed block (no script needed): long raw tables stay out of the way."""
    return f"<details><summary>{html.escape(title)}</summary>{inner}</details>"


def bullet_list(items: list[str]) -> str:
    if not items:
        return "<p>none</p>"
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def render(page: Page) -> str:
    nav = " ".join(f'<a href="#{a}">{html.escape(h)}</a>' for a, h, _ in page.sections)
    body = [f"<h1>{html.escape(page.title)}</h1>", f"<nav>{nav}</nav>", *page.headline]
    for anchor, heading, blocks in page.sections:
        body.append(f'<section id="{anchor}"><h2>{html.escape(heading)}</h2>{"".join(blocks)}</section>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(page.title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def headline_sentences(analysis: Analysis) -> list[str]:
    """Plain-language findings per scope: which metrics agree with Dice by the stated rule
    (`translators.RULE`: every correlation in the expected sign, under every leave-one-out, and
    the same best translator), which do not and why; then the image-level intervals."""
    corr, verdicts = analysis.correlations, analysis.verdicts
    sub = corr[(corr["anatomy"] == "dice") & (corr["method"] == "spearman")]
    out = []
    for scope in dict.fromkeys(sub["scope"]):
        s = sub[(sub["scope"] == scope) & sub["r"].notna()]
        if s.empty:
            out.append(f"{scope}: too few translators with both a metric and Dice to correlate (need 3).")
            continue
        v = verdicts[verdicts["scope"] == scope]
        agree = [T.metric_label(m) for m in v[v["agrees"] == "yes"]["metric"]]
        others = [f"{T.metric_label(r.metric)} ({r.reason})" for r in v[v["agrees"] == "no"].itertuples()]
        n = int(s["n"].max())
        unit = "points" if scope == "pooled" else "translators"
        line = (
            f"{scope} (translator level, n = {n} {unit}): agrees with Dice by the stated rule: "
            f"{', '.join(agree) or 'none'}; not shown to agree: {', '.join(others) or 'none'}."
        )
        if s["replicates"].max() > 0:
            firm = [T.metric_label(m) for m in s[s["ci_supports"] == "yes"]["metric"]]
            line += (
                " Image level (these translators fixed, other test images): the Spearman interval "
                f"excludes zero in the expected direction for {', '.join(firm) or 'none'}; this alone is not "
                "agreement."
            )
        out.append(line)
    if not out:
        out.append(
            "No correlation could be computed: no task has both Dice (segment) and perceptual metrics "
            "(metrics) for at least 3 translators yet; see 'Missing and unavailable'."
        )
    return out


def summary_markdown(
    study_name: str,
    study_digest: str,
    run: RunData,
    analysis: Analysis,
    results: dict[str, T.Table],
    caveat: str,
) -> str:
    """summary.md: headline tables and correlations (printed at the end of `make all`)."""
    lines = [f"# medtrans report: study `{study_name}`", "", f"study digest `{study_digest[:16]}`", ""]
    for name, table in results.items():
        lines += [f"## {name}", "", T.to_markdown(table)]
        corr = T.correlation_display(analysis.correlations, name, "dice", main_metrics())
        if corr.rows:
            lines += [T.to_markdown(corr)]
        ranks = T.rank_display(analysis.ranks, name, main_metrics())
        if ranks.rows:
            lines += [T.to_markdown(ranks)]
        verdict = T.verdict_display(analysis.verdicts, name, main_metrics())
        if verdict.rows:
            lines += [T.to_markdown(verdict)]
    pooled = T.correlation_display(analysis.correlations, "pooled", "dice", main_metrics())
    if pooled.rows:
        lines += [f"## pooled over tasks ({analysis.pooled} within task)", "", T.to_markdown(pooled)]
    lines += ["## In short", ""] + [f"- {s}" for s in headline_sentences(analysis)] + [""]
    lines += [f"> {caveat}", ""]
    if run.missing:
        lines += ["## Missing", ""] + [f"- {m}" for m in run.missing] + [""]
    lines += [
        "Every metric variant (per SWD level, FRD log), HD95 and the full bootstrap figures: "
        "`report/correlations.csv` and `report/report.html` (tables, figures, provenance, caveats)."
    ]
    return "\n".join(lines) + "\n"


def raw_metrics_frame(run: RunData, task: str) -> pd.DataFrame | None:
    t = run.tasks[task]
    if t.metrics is None:
        return None
    return t.metrics.strings
