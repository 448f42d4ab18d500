"""The report's Calibration section: per task, the scores segment and metrics gave the calibration
sets (gather.CalibrationData), summarised per metric, and the response curves per family."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medtrans.stages.report import page as P
from medtrans.stages.report import tables as T
from medtrans.stages.report.calibration_analysis import responses
from medtrans.stages.report.calibration_figures import response_figures

SHOWN = {
    "label": "metric",
    "monotonicity_appearance": "monotonic (appearance)",
    "monotonicity_anatomy": "monotonic (anatomy)",
    "asi_severity": "ASI (severity)",
    "asi_dice": "ASI (Dice loss)",
}
EXPLAIN = (
    "Known ground truth: the real target test set perturbed at graded severities, in two families. "
    "Appearance perturbations (noise, blur, gamma, contrast, bias field, ghosting, spikes, motion, Gibbs "
    "ringing, scaling) leave the anatomy and its mask unchanged; anatomy perturbations (elastic and affine "
    "warps, a structure erased, moved or duplicated) change it, with the mask changed to match. Monotonic: "
    "Spearman's rho of the metric's response against severity, averaged over a family's perturbations (1: "
    "worse at every step). ASI, the anatomy-sensitivity index: (A - P) / (|A| + |P|) of the mean normalised "
    "response to anatomy (A) and appearance (P) changes, at matched severity or per unit of the UNet's Dice "
    "loss; +1 sees only anatomy, -1 only appearance. A metric to trust for anatomy has ASI well above 0."
)


def _display(summary: pd.DataFrame) -> pd.DataFrame:
    df = summary[list(SHOWN)].rename(columns=SHOWN)
    for col in list(SHOWN.values())[1:]:
        df[col] = [T.fmt(float(v), 3) if str(v) not in ("", "nan") else "–" for v in df[col]]
    return df


def calibration_section(tasks: dict, figures: Path, tables: Path) -> list[str]:
    """The section's blocks; the summary tables and figures are also written beside the report."""
    blocks = [P.paragraph(EXPLAIN)]
    for name, task in tasks.items():
        cal = getattr(task, "calibration", None)
        if cal is None:
            continue
        blocks.append(f"<h3>Task {name}</h3>")
        table = cal.table
        perturbations = [p for p in dict.fromkeys(table.perturbation) if p != "none"]
        metrics = ", ".join(dict.fromkeys(table.metric))
        blocks.append(P.paragraph(
            f"{cal.images if cal.images is not None else '?'} target test slices, {len(perturbations)} "
            f"perturbations x {int(table.severity.max())} severities; metrics: {metrics}."
        ))  # fmt: skip
        cal.summary.to_csv(tables / f"calibration_{name}.csv", index=False)
        table.to_csv(tables / f"calibration_{name}_scores.csv", index=False, float_format="%.10g")
        blocks.append(T.frame_to_html(_display(cal.summary), f"Calibration of the metrics on {name}"))
        for path in response_figures(responses(table), figures, f"{name}:", stem=f"calibration_{name}"):
            family = path.stem.rsplit("_", 1)[-1]
            caption = f"{name}: normalised response of each metric to {family} perturbations by severity."
            blocks.append(P.figure_html(P.Figure(path, caption)))
    if len(blocks) == 1:
        blocks.append("<p>No calibration in this run (switched off by the study, or not run yet).</p>")
    return blocks
