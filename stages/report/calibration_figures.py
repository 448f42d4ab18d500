"""Response curves: one figure per family, one panel per metric, one line per perturbation of the
normalised response (analysis.responses) against severity, from 0 (the unperturbed set)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from medtrans.shared.catalogue import metrics as catalogue  # noqa: E402
from medtrans.shared.catalogue.perturbations import FAMILIES  # noqa: E402


def figure_name(family: str, stem: str = "response") -> str:
    return f"{stem}_{family}.png"


def response_figures(resp: pd.DataFrame, folder: Path, title: str = "", stem: str = "response") -> list[Path]:
    """<stem>_<family>.png for each family with rows; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for family in FAMILIES:
        rows = resp[(resp.family == family) & resp.response.notna()] if not resp.empty else resp
        if rows.empty:
            continue
        metrics = list(dict.fromkeys(rows.metric))
        cols = min(4, len(metrics))
        nrows = math.ceil(len(metrics) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), squeeze=False, sharey=True)
        for ax, metric in zip(axes.flat, metrics, strict=False):
            for name, g in rows[rows.metric == metric].groupby("perturbation", sort=False):
                g = g.sort_values("severity")
                ax.plot([0, *g.severity], [0.0, *g.response], marker="o", ms=3, lw=1.2, label=name)
            ax.set_title(catalogue.label(str(metric)), fontsize=9)
            ax.axhline(0, color="0.6", lw=0.6)
            ax.set_xlabel("severity", fontsize=8)
        for ax in axes.flat[len(metrics) :]:
            ax.axis("off")
        axes[0, 0].set_ylabel("normalised response (worse +)", fontsize=8)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=7, frameon=False)
        fig.suptitle(f"{title} {family} perturbations".strip(), fontsize=10)
        fig.tight_layout(rect=(0, 0.08, 1, 0.95))
        path = folder / figure_name(family, stem)
        fig.savefig(path, dpi=100, metadata={"Software": None})
        plt.close(fig)
        paths.append(path)
    return paths
