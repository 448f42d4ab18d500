"""What a calibration writes into its folder: calibration.csv, summary.csv and figures/."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medtrans.stages.calibrate.analysis import responses, summarise
from medtrans.stages.calibrate.figures import response_figures

FLOAT = "%.10g"
TABLE, SUMMARY, FIGURES = "calibration.csv", "summary.csv", "figures"


def write_outputs(table: pd.DataFrame, folder: Path, title: str = "") -> pd.DataFrame:
    """The three outputs of one calibrated set; returns the summary."""
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / TABLE, index=False, float_format=FLOAT)
    summary = summarise(table)
    summary.to_csv(folder / SUMMARY, index=False, float_format=FLOAT)
    response_figures(responses(table), folder / FIGURES, title)
    return summary
