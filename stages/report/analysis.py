"""From the gathered run data to the report's tables: the results per task, the correlations
(per task and pooled, with image-level intervals and translator-level uncertainty), the rank
agreement of each metric with Dice and whether the stated rule lets the report say it agrees.

Image-level replicates: replicate r of a set's mean Dice averages its per-image Dice (structure
`mean`, rows sorted by slice_id) over `subsample_indices(seed, task, n, R)[r]`, the same
half-sample the metrics stage used for replicate r of every metric. Every replicate is
recentred on its point estimate (`medtrans.shared.intervals.recentred`: the half-samples' own
bias removed, their spread scaled to size n), the correlation is recomputed per replicate, and
its percentile interval reflects the finite test set with the translators held fixed.
Translator-level uncertainty (`translators.py`): leave-one-translator-out ranges and exact
permutation p-values, and the rule for saying that a metric agrees with Dice.
"""

import functools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medtrans.shared.bootstrap import subsample_indices
from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.intervals import contain, half, percentile_interval, rate_scale, recentred
from medtrans.stages.report import correlate as C
from medtrans.stages.report import translators as TR
from medtrans.stages.report.gather import RunData, TaskData


def main_metrics() -> tuple[str, ...]:
    """The tables' perceptual columns, in order: every metric of the catalogue."""
    return catalogue.names()


ROLES = {
    "target": "upper bound: real target test (metrics: target train vs test)",
    "source": "lower bound: untranslated source (metrics: source vs target)",
}


def metric_order(names: list[str]) -> list[str]:
    """Main metrics first (paper order), then their variants (swd_<res>, frd_log, ...)."""
    main = [m for m in main_metrics() if m in names]
    return main + [m for m in names if m not in main]


def anatomy_quantities(task: TaskData) -> list[tuple[str, str]]:
    """(metric, structure) of the anatomy columns: Dice per structure and mean, then HD95."""
    structures = [*task.structures, "mean"]
    return [("dice", s) for s in structures] + [("hd95", s) for s in structures]


def results_table(task: TaskData) -> pd.DataFrame:
    """One row per translated set plus the two baselines; value and CI of every quantity (each
    interval holds its point: Dice's percentile bootstrap is widened in the rare case it does not)."""
    metric_names = metric_order(task.metrics.metric_names()) if task.metrics is not None else []
    rows = []
    sets = [(s, "translator") for s in task.rows()] + [(b, ROLES[b]) for b in ("target", "source")]
    for set_name, role in sets:
        row: dict = {"set": set_name, "role": role}
        for metric, structure in anatomy_quantities(task):
            key = f"{metric}_{structure}"
            p = task.segment.point(set_name, structure, metric) if task.segment is not None else None
            row[key] = p["mean"] if p else np.nan
            row[f"{key}_ci_low"], row[f"{key}_ci_high"] = (
                contain(p["ci_low"], p["ci_high"], p["mean"]) if p else (np.nan, np.nan)
            )
        metrics_set = "target_train" if set_name == "target" else set_name
        for metric in metric_names:
            v = task.metrics.value(metrics_set, metric) if task.metrics is not None else None
            row[metric] = v["value"] if v else np.nan
            row[f"{metric}_ci_low"] = v["ci_low"] if v else np.nan
            row[f"{metric}_ci_high"] = v["ci_high"] if v else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class Replicates:
    """Per-set bootstrap replicates of one task, paired by replicate index."""

    count: int
    dice: dict[str, np.ndarray] = field(default_factory=dict)
    hd95: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def task_replicates(task: TaskData, seed: int, wanted: int) -> Replicates:
    """Dice/HD95 replicate means of every translated set, on the metrics stage's resamples."""
    if task.segment is None or task.metrics is None:
        return Replicates(0)
    total = task.metrics.n_replicates()
    count = min(total, wanted)
    reps = Replicates(count)
    if count == 0:
        reps.notes.append(f"{task.name}: no bootstrap replicates (metrics bootstrap.csv empty or missing)")
        return reps
    for set_name in task.rows():
        for anatomy, store in (("dice", reps.dice), ("hd95", reps.hd95)):
            values = task.segment.per_image(set_name, anatomy)
            if values.size == 0:
                continue
            n_metrics = task.metrics.table[task.metrics.table["set"] == set_name]["n"].dropna()
            if anatomy == "dice" and len(n_metrics) and int(n_metrics.iloc[0]) != values.size:
                n_met = int(n_metrics.iloc[0])
                reps.notes.append(
                    f"{task.name}/{set_name}: {values.size} images in dice.csv but n={n_met} "
                    "in metrics.csv; replicates resample different image sets"
                )
            idx = subsample_indices(seed, task.name, values.size, total)[:count]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN replicate (no HD95) -> NaN
                means = np.nanmean(values[idx], axis=1)
                point = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            store[set_name] = recentred(point, means, rate_scale(values.size, idx.shape[1]))
    return reps


def _metric_matrix(task: TaskData, sets: list[str], metric: str, count: int) -> np.ndarray | None:
    """(count, sets) replicates of one metric, each set's recentred on its point estimate."""
    cols = []
    for s in sets:
        rep = task.metrics.replicates(s, metric)
        v = task.metrics.value(s, metric)
        if rep is None or rep.size < count or v is None or not np.isfinite(v["n"]):
            return None
        n = int(v["n"])
        cols.append(recentred(v["value"], rep[:count], rate_scale(n, half(n))))
    return np.stack(cols, axis=1) if cols else None


@dataclass
class TaskSeries:
    """The points of one task and metric: translators with both a metric value and anatomy."""

    task: str
    metric: str
    sets: list[str]
    x: np.ndarray  # metric values
    y: dict[str, np.ndarray]  # anatomy -> values
    x_rep: np.ndarray | None  # (R, n)
    y_rep: dict[str, np.ndarray | None]


def task_series(task: TaskData, metric: str, reps: Replicates) -> TaskSeries | None:
    if task.segment is None or task.metrics is None:
        return None
    sets, x, y = [], [], {a: [] for a in C.ANATOMY}
    for s in task.rows():
        v = task.metrics.value(s, metric)
        d = {a: task.segment.point(s, "mean", a) for a in C.ANATOMY}
        if (
            v is None
            or not np.isfinite(v["value"])
            or d["dice"] is None
            or not np.isfinite(d["dice"]["mean"])
        ):
            continue
        sets.append(s)
        x.append(v["value"])
        for a in C.ANATOMY:
            y[a].append(d[a]["mean"] if d[a] else np.nan)
    if not sets:
        return None
    x_rep = _metric_matrix(task, sets, metric, reps.count) if reps.count else None
    y_rep: dict[str, np.ndarray | None] = {}
    for a, store in (("dice", reps.dice), ("hd95", reps.hd95)):
        if x_rep is not None and all(s in store for s in sets):
            y_rep[a] = np.stack([store[s] for s in sets], axis=1)
        else:
            y_rep[a] = None
    return TaskSeries(
        task.name, metric, sets, np.array(x), {a: np.array(v) for a, v in y.items()}, x_rep, y_rep
    )


def _translator_level(x, y, method: str, sign: int, loo: np.ndarray, strata) -> dict:
    """The correlation with each translator left out (`loo`: range, values, whether every one
    keeps the expected sign) and the exact permutation p-value (Spearman, Kendall)."""
    p, how = TR.exact_permutation_p(x, y, method, strata) if method in TR.RANKS else (np.nan, "")
    ok = loo.size > 0 and bool(np.isfinite(loo).all())
    return {
        "p_exact": p,
        "p_exact_method": how,
        "loo_min": float(np.nanmin(loo)) if np.isfinite(loo).any() else np.nan,
        "loo_max": float(np.nanmax(loo)) if np.isfinite(loo).any() else np.nan,
        "loo_keeps_sign": "" if not ok else ("yes" if bool((sign * loo > 0).all()) else "no"),
        "loo": "|".join(f"{v:.6g}" for v in loo),
    }


def _pooled_loo(parts: list[TaskSeries], anatomy: str, how: str, method: str) -> np.ndarray:
    """The pooled correlation with one translator left out of every task (each task
    standardised again without it)."""
    models = list(dict.fromkeys(s for p in parts for s in p.sets))
    out = []
    for m in models:
        kept = []
        for p in parts:
            keep = np.array([s != m for s in p.sets])
            if keep.sum() >= 2:
                kept.append((p.x[keep], p.y[anatomy][keep]))
        x, y = C.pool(kept, how) if kept else (np.array([]), np.array([]))
        out.append(C.correlation(x, y, method)[0])
    return np.array(out)


def _corr_rows(
    scope: str, metric: str, anatomy: str, x, y, x_rep, y_rep, level: float, sets: list[str],
    loo=None, strata: list[str] | None = None,
) -> list[dict]:  # fmt: skip
    """One row per method; `loo(method)` gives the leave-one-translator-out correlations
    (default: each point left out), `strata` the task of each point (pooled)."""
    rows = []
    sign = C.expected_sign(metric, anatomy)
    for method in C.METHODS:
        r, p = C.correlation(x, y, method)
        if x_rep is not None and y_rep is not None:
            boot = C.correlation_rows(x_rep, y_rep, method)
            lo, hi = percentile_interval(boot, r, level)
            used = int(np.isfinite(boot).sum())
        else:
            lo = hi = float("nan")
            used = 0
        oriented_lo, oriented_hi = sorted((sign * lo, sign * hi))
        rows.append(
            {
                "scope": scope,
                "metric": metric,
                "anatomy": anatomy,
                "method": method,
                "n": int(np.sum(np.isfinite(x) & np.isfinite(y))),
                "r": r,
                "p": p,
                "ci_low": lo,
                "ci_high": hi,
                "replicates": used,
                "expected_sign": "+" if sign > 0 else "-",
                "oriented_r": sign * r if np.isfinite(r) else np.nan,
                "agrees": "" if not np.isfinite(r) else ("yes" if sign * r > 0 else "no"),
                "ci_supports": ""
                if not np.isfinite(lo)
                else ("yes" if oriented_lo > 0 else ("against" if oriented_hi < 0 else "no")),
                **_translator_level(
                    x, y, method, sign, loo(method) if loo else TR.leave_one_out(x, y, method), strata
                ),
                "sets": "|".join(sets),
            }
        )
    return rows


@dataclass
class Analysis:
    results: dict[str, pd.DataFrame]  # task -> results table
    correlations: pd.DataFrame
    ranks: pd.DataFrame
    series: dict[str, dict[str, TaskSeries]]  # task -> metric -> points
    metrics: list[str]  # reportable metrics, ordered
    notes: list[str]
    pooled: str
    verdicts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=VERDICT_COLUMNS))


def analyse(run: RunData, seed: int, bootstrap: int, pooled: str, level: float) -> Analysis:
    """Every number of the report, from the gathered run data."""
    results, series, notes = {}, {}, []
    names: list[str] = []
    for name, task in run.tasks.items():
        results[name] = results_table(task)
        if task.metrics is not None:
            names += [m for m in task.metrics.metric_names() if C.is_reportable(m) and m not in names]
    metrics = metric_order(names)
    corr_rows, rank_rows = [], []
    for name, task in run.tasks.items():
        reps = task_replicates(task, seed, bootstrap)
        notes += reps.notes
        series[name] = {}
        for metric in metrics:
            ts = task_series(task, metric, reps)
            if ts is None:
                continue
            series[name][metric] = ts
            for anatomy in C.ANATOMY:
                corr_rows += _corr_rows(
                    name,
                    metric,
                    anatomy,
                    ts.x,
                    ts.y[anatomy],
                    ts.x_rep,
                    ts.y_rep[anatomy],
                    level,
                    ts.sets,
                )
            rank_rows.append(_rank_row(name, metric, ts, level))
    for metric in metrics:
        parts = [
            series[t][metric] for t in series if metric in series[t] and len(series[t][metric].sets) >= 2
        ]
        if not parts:
            continue
        sets = [f"{p.task}:{s}" for p in parts for s in p.sets]
        strata = [p.task for p in parts for _ in p.sets]
        for anatomy in C.ANATOMY:
            x, y = C.pool([(p.x, p.y[anatomy]) for p in parts], pooled)
            x_rep = y_rep = None
            if all(p.x_rep is not None and p.y_rep[anatomy] is not None for p in parts):
                count = min(p.x_rep.shape[0] for p in parts)
                x_rep, y_rep = C.pool([(p.x_rep[:count], p.y_rep[anatomy][:count]) for p in parts], pooled)
            loo = functools.partial(_pooled_loo, parts, anatomy, pooled)
            corr_rows += _corr_rows("pooled", metric, anatomy, x, y, x_rep, y_rep, level, sets, loo, strata)
    corr = pd.DataFrame(corr_rows, columns=CORR_COLUMNS)
    ranks = pd.DataFrame(rank_rows, columns=RANK_COLUMNS)
    return Analysis(results, corr, ranks, series, metrics, notes, pooled, verdicts(corr, ranks))


VERDICT_COLUMNS = ["scope", "metric", "n", "agrees", "reason"]


def verdicts(corr: pd.DataFrame, ranks: pd.DataFrame) -> pd.DataFrame:
    """Per scope and metric, whether `translators.RULE` lets the report say it agrees with Dice."""
    rows = []
    sub = corr[corr["anatomy"] == "dice"]
    for (scope, metric), grp in sub.groupby(["scope", "metric"], sort=False):
        m = grp.set_index("method")
        oriented = {k: float(m.loc[k, "oriented_r"]) for k in C.METHODS if k in m.index}
        sign = 1 if m["expected_sign"].iloc[0] == "+" else -1
        loo = {
            k: sign * np.array([float(v) for v in str(m.loc[k, "loo"]).split("|") if v], dtype=np.float64)
            for k in C.METHODS
            if k in m.index
        }
        top1 = None
        if scope != "pooled":
            r = ranks[(ranks["task"] == scope) & (ranks["metric"] == metric)]
            top1 = bool(len(r)) and r["top1"].iloc[0] == "yes"
        ok, why = TR.verdict(oriented, loo, top1)
        n, agrees = int(m["n"].max()), "yes" if ok else "no"
        rows.append({"scope": scope, "metric": metric, "n": n, "agrees": agrees, "reason": why})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


CORR_COLUMNS = [
    "scope",
    "metric",
    "anatomy",
    "method",
    "n",
    "r",
    "p",
    "ci_low",
    "ci_high",
    "replicates",
    "expected_sign",
    "oriented_r",
    "agrees",
    "ci_supports",
    "p_exact",
    "p_exact_method",
    "loo_min",
    "loo_max",
    "loo_keeps_sign",
    "loo",
    "sets",
]
RANK_COLUMNS = [
    "task",
    "metric",
    "n",
    "metric_order",
    "dice_order",
    "tau",
    "p",
    "top1",
    "replicates",
    "metric_order_kept",
    "dice_order_kept",
    "top1_kept",
    "pairs_agree",
    "tau_ci_low",
    "tau_ci_high",
]


def _rank_row(task: str, metric: str, ts: TaskSeries, level: float) -> dict:
    good = C.orientation(ts.x, C.metric_direction(metric))
    dice = ts.y["dice"]
    agree = C.rank_agreement(good, dice)
    row = {
        "task": task,
        "metric": metric,
        "n": len(ts.sets),
        "metric_order": " > ".join(ts.sets[i] for i in C.order(good)),
        "dice_order": " > ".join(ts.sets[i] for i in C.order(dice)),
        "tau": agree["tau"],
        "p": agree["p"],
        "top1": "yes" if agree["top1"] else "no",
        "replicates": 0,
        "metric_order_kept": np.nan,
        "dice_order_kept": np.nan,
        "top1_kept": np.nan,
        "pairs_agree": np.nan,
        "tau_ci_low": np.nan,
        "tau_ci_high": np.nan,
    }
    if ts.x_rep is not None and ts.y_rep["dice"] is not None:
        boot = C.rank_bootstrap(
            good, dice, C.orientation(ts.x_rep, C.metric_direction(metric)), ts.y_rep["dice"]
        )
        reps = boot["tau_rep"]
        lo, hi = percentile_interval(reps, agree["tau"], level) if len(reps) else (np.nan, np.nan)
        row.update(
            {
                "replicates": boot["replicates"],
                "metric_order_kept": boot["metric_stable"],
                "dice_order_kept": boot["dice_stable"],
                "top1_kept": boot["top1"],
                "pairs_agree": boot["pairs"],
                "tau_ci_low": lo,
                "tau_ci_high": hi,
            }
        )
    return row
