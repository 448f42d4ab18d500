"""Per metric, from the calibration long table (`long_table`: metrics/<task>/calibration.csv joined
with segment/<task>/calibration.csv on the set, or what `medtrans calibrate REAL` scored): how
monotonic it is in severity within each family, and how
much more it responds to anatomy changes than to appearance changes (README, Calibration).

Response r(p, s) of a metric to perturbation p at severity s: its change from the unperturbed
value (severity 0) towards "less realistic" (up for a lower-is-better metric, down for IS),
divided by the largest absolute change the metric shows over all perturbations, so r lies in
[-1, 1] and metrics of any scale compare.

- monotonicity_<family>: Spearman's rho of r against severity 1..S, per perturbation, averaged
  over the family's perturbations (1: worse at every step; 0: no order; -1: better).
- asi_severity: (A - P) / (|A| + |P|), A and P the mean response over the anatomy and the
  appearance family on the same severity grid (each perturbation from mild to its strongest):
  +1 responds to anatomy only, -1 to appearance only, 0 equally.
- asi_dice: the same contrast at matched Dice loss: per family the least-squares slope (through
  the origin) of r against the UNet's Dice loss (unperturbed Dice minus Dice against the original
  masks); (k_A - k_P) / (|k_A| + |k_P|). Empty where a family has no Dice loss.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.catalogue.perturbations import FAMILIES

COLUMNS = (
    "perturbation", "family", "severity", "metric", "value", "dice_perturbed_gt", "dice_original_gt", "note",
)  # fmt: skip
SUMMARY_COLUMNS = (
    "metric", "label", "direction", "monotonicity_appearance", "monotonicity_anatomy", "response_appearance",
    "response_anatomy", "asi_severity", "slope_appearance", "slope_anatomy", "asi_dice", "note",
)  # fmt: skip


def long_table(scores: pd.DataFrame, dice: pd.DataFrame | None) -> pd.DataFrame:
    """One row per set and metric (COLUMNS): the metric scores of each calibration set (columns set,
    perturbation, family, severity, metric, value, note) with the Dice of the same set (set,
    dice_perturbed_gt, dice_original_gt; None: no Dice, the columns empty)."""
    table = scores.copy()
    if dice is not None:
        table = table.merge(dice[["set", "dice_perturbed_gt", "dice_original_gt"]], on="set", how="left")
    else:
        table["dice_perturbed_gt"] = table["dice_original_gt"] = np.nan
    table["note"] = table["note"].fillna("").astype(str)
    for col in ("value", "dice_perturbed_gt", "dice_original_gt"):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    table["severity"] = table["severity"].astype(int)
    return table[list(COLUMNS)].reset_index(drop=True)


def responses(table: pd.DataFrame) -> pd.DataFrame:
    """The perturbed rows with `response` (normalised, worse is positive) and `dice_loss`."""
    out = []
    for metric, rows in table.groupby("metric", sort=False):
        base = rows[rows.severity == 0]
        pert = rows[rows.severity > 0].copy()
        v0 = float(base.value.iloc[0]) if len(base) else np.nan
        d0 = float(base.dice_original_gt.iloc[0]) if len(base) else np.nan
        change = -catalogue.direction(str(metric)) * (pert.value - v0)
        scale = float(np.nanmax(np.abs(change))) if change.notna().any() else np.nan
        pert["response"] = change / scale if scale and np.isfinite(scale) else np.nan
        pert["dice_loss"] = d0 - pert.dice_original_gt
        out.append(pert)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def _spearman(severity: np.ndarray, r: np.ndarray) -> float:
    ok = np.isfinite(r)
    if ok.sum() < 3 or np.ptp(r[ok]) == 0:
        return np.nan
    return float(stats.spearmanr(severity[ok], r[ok]).statistic)


def _contrast(a: float, p: float) -> float:
    if not (np.isfinite(a) and np.isfinite(p)) or abs(a) + abs(p) == 0:
        return np.nan
    return (a - p) / (abs(a) + abs(p))


def _slope(rows: pd.DataFrame) -> float:
    ok = rows.response.notna() & rows.dice_loss.notna()
    x, y = rows.dice_loss[ok].to_numpy(float), rows.response[ok].to_numpy(float)
    denom = float(np.sum(x * x))
    return float(np.sum(x * y) / denom) if denom > 1e-12 else np.nan


def _family_stats(rows: pd.DataFrame) -> tuple[float, float, float]:
    """Mean monotonicity, mean response and Dice-loss slope of one metric over one family."""
    if rows.empty:
        return np.nan, np.nan, np.nan
    rhos = [
        _spearman(g.severity.to_numpy(float), g.response.to_numpy(float))
        for _, g in rows.groupby("perturbation")
    ]
    rhos = [r for r in rhos if np.isfinite(r)]
    mono = float(np.mean(rhos)) if rhos else np.nan
    mean = float(rows.response.mean()) if rows.response.notna().any() else np.nan
    return mono, mean, _slope(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """One row per metric (SUMMARY_COLUMNS), in the table's metric order."""
    resp = responses(table)
    out = []
    for metric in dict.fromkeys(table.metric):
        rows = resp[resp.metric == metric]
        fam = {f: _family_stats(rows[rows.family == f]) for f in FAMILIES}
        (ma, ra, ka), (mn, rn, kn) = fam["appearance"], fam["anatomy"]
        notes = table[(table.metric == metric) & table.value.isna()].note
        note = str(notes.iloc[0]) if len(notes) else ""
        out.append((
            metric, catalogue.label(str(metric)), catalogue.family(str(metric)).direction,
            ma, mn, ra, rn, _contrast(rn, ra), ka, kn, _contrast(kn, ka), note,
        ))  # fmt: skip
    return pd.DataFrame(out, columns=list(SUMMARY_COLUMNS))
