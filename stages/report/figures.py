"""The report's figures (matplotlib Agg), each written as PNG and SVG with fixed metadata so the
same run gives the same bytes."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from medtrans.shared.dataset import SliceIndex  # noqa: E402
from medtrans.shared.imageio import read_png  # noqa: E402
from medtrans.stages.report import correlate as C  # noqa: E402
from medtrans.stages.report.analysis import Analysis, main_metrics  # noqa: E402
from medtrans.stages.report.gather import TaskData  # noqa: E402
from medtrans.stages.report.tables import metric_label  # noqa: E402

# Applied with `style()` around the report's drawing only: a global rcParams change would
# leak into every later plot of the same process (the translators' and UNet's curves).
STYLE = {
    "svg.hashsalt": "medtrans",
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.titlesize": 10,
    "figure.dpi": 100,
}


def style():
    """Context manager: the report's matplotlib style, restored on exit."""
    return plt.rc_context(STYLE)


COLORS = plt.get_cmap("tab10").colors
STRUCTURE_COLORS = (
    ("#ffcc00", "yellow"),
    ("#00e5ff", "cyan"),
    ("#ff4da6", "pink"),
    ("#66ff66", "green"),
    ("#ff8c1a", "orange"),
    ("#b380ff", "violet"),
)


def save(fig, folder: Path, name: str) -> list[Path]:
    """Write `name`.png and `name`.svg into `folder`; close the figure."""
    folder.mkdir(parents=True, exist_ok=True)
    png, svg = folder / f"{name}.png", folder / f"{name}.svg"
    fig.savefig(png, dpi=110, metadata={"Software": None})
    fig.savefig(svg, metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return [png, svg]


def _err(value: float, lo: float, hi: float) -> list[list[float]] | None:
    """matplotlib's (below, above) bar lengths of an interval through its point; an interval
    that does not hold its point is refused (its bar would be drawn beside the point)."""
    if not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(value)):
        return None
    if not lo <= value <= hi:
        raise ValueError(f"interval [{lo}, {hi}] does not hold its point {value}")
    return [[value - lo], [hi - value]]


SCATTER_COLUMNS = 4  # panels per row of the scatter figure (8 metrics: two rows)


def scatter(task: TaskData, analysis: Analysis, folder: Path) -> list[Path] | None:
    """Each main perceptual metric against mean Dice, one point per translator, CI bars."""
    res = analysis.results[task.name]
    metrics = [m for m in main_metrics() if m in analysis.series.get(task.name, {})]
    if not metrics:
        return None
    cols = min(len(metrics), SCATTER_COLUMNS)
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    corr = analysis.correlations
    for ax, metric in zip(axes.flat, metrics, strict=False):
        ts = analysis.series[task.name][metric]
        for i, s in enumerate(ts.sets):
            r = res[res["set"] == s].iloc[0]
            x, y = r[metric], r["dice_mean"]
            ax.errorbar(
                x,
                y,
                xerr=_err(x, r[f"{metric}_ci_low"], r[f"{metric}_ci_high"]),
                yerr=_err(y, r["dice_mean_ci_low"], r["dice_mean_ci_high"]),
                fmt="o",
                color=COLORS[i % 10],
                capsize=3,
                ms=6,
            )
            ax.annotate(s, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        sel = corr[
            (corr["scope"] == task.name)
            & (corr["metric"] == metric)
            & (corr["anatomy"] == "dice")
            & (corr["method"] == "spearman")
        ]
        rho = sel["r"].iloc[0] if len(sel) else np.nan
        arrow = "↑" if C.metric_direction(metric) > 0 else "↓"
        sign = "+" if C.expected_sign(metric, "dice") > 0 else "−"
        ax.set_title(
            f"{metric_label(metric)} {arrow}: ρ = {rho:+.2f} (expect {sign})"
            if np.isfinite(rho)
            else f"{metric_label(metric)} {arrow}"
        )
        ax.set_xlabel(metric_label(metric))
        ax.set_ylabel("mean Dice")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{task.name}: perceptual metrics vs Dice of the target-domain UNet")
    fig.tight_layout()
    return save(fig, folder, f"scatter_{task.name}")


def dice_bars(task: TaskData, analysis: Analysis, folder: Path) -> list[Path] | None:
    """Dice per translator and structure, with the target (upper) and source (lower) bounds."""
    res = analysis.results[task.name]
    trans = res[res["role"] == "translator"]
    if task.segment is None or trans["dice_mean"].isna().all():
        return None
    structures = [*task.structures, "mean"] if len(task.structures) > 1 else list(task.structures)
    fig, axes = plt.subplots(1, len(structures), figsize=(3.0 * len(structures) + 0.8, 3.2), squeeze=False)
    bounds = {b: res[res["set"] == b].iloc[0] for b in ("target", "source")}
    for ax, s in zip(axes[0], structures, strict=True):
        key = f"dice_{s}"
        vals = trans[key].to_numpy(dtype=float)
        lo = vals - trans[f"{key}_ci_low"].to_numpy(dtype=float)
        hi = trans[f"{key}_ci_high"].to_numpy(dtype=float) - vals
        yerr = np.nan_to_num(np.vstack([lo, hi]).clip(min=0))
        ax.bar(
            range(len(trans)),
            np.nan_to_num(vals),
            yerr=yerr,
            capsize=3,
            color=[COLORS[i % 10] for i in range(len(trans))],
        )
        for b, style in (("target", "-"), ("source", "--")):
            v = bounds[b][key]
            if np.isfinite(v):
                ax.axhline(v, color="black", ls=style, lw=1.2, label=f"{b} ({v:.3f})")
        ax.set_xticks(range(len(trans)), trans["set"], rotation=30)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"Dice {s}")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][-1].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles,
            ["real target (upper bound)", "untranslated source (lower bound)"][: len(handles)],
            loc="lower center",
            ncol=2,
            fontsize=8,
            frameon=False,
        )
    fig.suptitle(f"{task.name}: Dice per translator")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return save(fig, folder, f"dice_{task.name}")


def grid_ids(index: SliceIndex, count: int) -> list[str]:
    """`count` source test slices spread evenly over the sorted ids (deterministic)."""
    ids = list(index.select("source", "test")["slice_id"])
    if not ids:
        return []
    pos = np.unique(np.linspace(0, len(ids) - 1, min(count, len(ids))).round().astype(int))
    return [ids[i] for i in pos]


def _contours(ax, mask: np.ndarray | None, n_labels: int, style: str) -> None:
    if mask is None:
        return
    for k in range(1, n_labels + 1):
        if (mask == k).any() and not (mask == k).all():
            ax.contour(
                mask == k,
                levels=[0.5],
                colors=[STRUCTURE_COLORS[(k - 1) % 6][0]],
                linewidths=1.0 if style == "-" else 0.8,
                linestyles=style,
            )


def image_grid(task: TaskData, analysis: Analysis, folder: Path, count: int) -> list[Path] | None:
    """The same source test slices through every translator, UNet prediction as contours."""
    if task.preprocess is None:
        return None
    index = SliceIndex.load(task.preprocess)
    ids = grid_ids(index, count)
    if not ids:
        return None
    table = index.table.set_index("slice_id")
    columns = [("source", None)] + [(m, task.translators.get(m)) for m in task.rows()]
    pred_root = task.segment.folder / "predictions" if task.segment is not None else None
    k = len(task.structures)
    fig, axes = plt.subplots(
        len(ids), len(columns), figsize=(1.5 * len(columns), 1.5 * len(ids) + 0.6), squeeze=False
    )
    for r, sid in enumerate(ids):
        row = table.loc[sid]
        gt = read_png(index.path(row["mask"])) if row["mask"] else None
        for c, (name, tfolder) in enumerate(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            img_path = (
                index.path(row["image"])
                if name == "source"
                else (tfolder / "test" / f"{sid}.png" if tfolder else None)
            )
            if img_path is None or not img_path.is_file():
                ax.text(0.5, 0.5, "missing", ha="center", va="center", transform=ax.transAxes)
                ax.set_facecolor("#dddddd")
            else:
                ax.imshow(read_png(img_path), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                _contours(ax, gt, k, "--")
                pred = pred_root / name / f"{sid}.png" if pred_root is not None else None
                _contours(ax, read_png(pred) if pred is not None and pred.is_file() else None, k, "-")
            if r == 0:
                ax.set_title("source (input)" if name == "source" else name, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"test slice {r + 1}", fontsize=8)
    legend = ", ".join(f"{s} {STRUCTURE_COLORS[i % 6][1]}" for i, s in enumerate(task.structures))
    fig.suptitle(f"{task.name}: UNet segmentation (solid) vs ground truth (dashed); {legend}", fontsize=9)
    fig.tight_layout()
    return save(fig, folder, f"grid_{task.name}")


def _smooth(values: np.ndarray) -> np.ndarray:
    w = max(1, len(values) // 50)
    if w == 1:
        return values
    return pd.Series(values).rolling(w, min_periods=1).mean().to_numpy()


def training_curves(task: TaskData, folder: Path) -> list[Path] | None:
    """Each translator's losses over iterations and the UNet's loss and validation Dice."""
    panels = []
    for m, tfolder in task.translators.items():
        path = tfolder / "losses.csv"
        if path.is_file():
            panels.append((m, pd.read_csv(path)))
    seg = task.segment.training if task.segment is not None else None
    if not panels and seg is None:
        return None
    n = len(panels) + (seg is not None)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0), squeeze=False)
    for ax, (m, df) in zip(axes[0], panels, strict=False):
        x = df["iteration"] if "iteration" in df else np.arange(len(df))
        for col in [c for c in df.columns if c not in ("iteration", "epoch")]:
            y = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
            ax.plot(x, _smooth(y), lw=1, label=col, marker="o" if len(y) < 20 else None, ms=3)
        ax.set_title(f"{m} losses")
        ax.set_xlabel("iteration")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    if seg is not None:
        ax = axes[0][-1]
        loss = pd.to_numeric(seg["train_loss"], errors="coerce")
        ax.plot(seg["epoch"], loss, "o-", ms=3, label="train loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("train loss")
        ax2 = ax.twinx()
        ax2.plot(
            seg["epoch"],
            pd.to_numeric(seg["val_dice"], errors="coerce"),
            "s-",
            ms=3,
            color="tab:red",
            label="val Dice",
        )
        ax2.set_ylabel("val Dice")
        ax.set_title("UNet (segment)")
        ax.legend(loc="upper left", fontsize=6)
        ax2.legend(loc="upper right", fontsize=6)
    fig.suptitle(f"{task.name}: training curves")
    fig.tight_layout()
    return save(fig, folder, f"training_{task.name}")


def correlation_heatmap(analysis: Analysis, folder: Path) -> list[Path] | None:
    """Oriented Spearman correlation with Dice (+1 = the metric fully agrees) per metric and scope."""
    corr = analysis.correlations
    sub = corr[(corr["anatomy"] == "dice") & (corr["method"] == "spearman")]
    if sub.empty:
        return None
    scopes = list(dict.fromkeys(sub["scope"]))
    metrics = [m for m in analysis.metrics if m in set(sub["metric"])]
    grid = np.full((len(metrics), len(scopes)), np.nan)
    for _, r in sub.iterrows():
        grid[metrics.index(r["metric"]), scopes.index(r["scope"])] = r["oriented_r"]
    fig, ax = plt.subplots(figsize=(1.4 * len(scopes) + 2.2, 0.42 * len(metrics) + 1.4))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(scopes)), scopes)
    ax.set_yticks(range(len(metrics)), [metric_label(m) for m in metrics])
    for i in range(len(metrics)):
        for j in range(len(scopes)):
            v = grid[i, j]
            ax.text(
                j,
                i,
                "–" if not np.isfinite(v) else f"{v:+.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if np.isfinite(v) and abs(v) > 0.6 else "black",
            )
    fig.colorbar(im, ax=ax, label="agreement (oriented Spearman ρ)")
    ax.set_title("Agreement of each metric with Dice\n(+1: better metric always means higher Dice)")
    fig.tight_layout()
    return save(fig, folder, "agreement")
