"""Result rows (`metrics.csv`, `bootstrap.csv`, compare's CSV/JSON): never NaN or inf in a file.

An undefined value is an empty cell with a note saying why.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

COLUMNS = ("set", "metric", "value", "ci_low", "ci_high", "n", "network_sha256", "note")
BOOTSTRAP_COLUMNS = ("set", "metric", "replicate", "value")


def finite(v) -> float | None:
    """A float, or None for None/NaN/inf."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


@dataclass
class MetricRow:
    set: str
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    network_sha256: str
    note: str

    def __post_init__(self) -> None:
        self.value, self.ci_low, self.ci_high = finite(self.value), finite(self.ci_low), finite(self.ci_high)
        if self.value is None and not self.note:
            self.note = "unavailable"

    def cells(self) -> list[str]:
        return [_cell(getattr(self, c)) for c in COLUMNS]

    def as_dict(self) -> dict:
        return asdict(self)


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def write_rows(path: str | Path, rows: list[MetricRow]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for row in rows:
            w.writerow(row.cells())


def write_bootstrap(path: str | Path, replicates: dict[str, dict[str, np.ndarray]]) -> None:
    """{set: {metric: (R,) values}} -> set, metric, replicate, value (empty where undefined)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(BOOTSTRAP_COLUMNS)
        for set_name, per_metric in replicates.items():
            for metric, values in per_metric.items():
                for r, v in enumerate(values):
                    w.writerow([set_name, metric, r, _cell(finite(v))])


def format_table(rows: list[MetricRow], show_set: bool = True) -> str:
    """A plain-text table for the terminal."""
    head = (["set"] if show_set else []) + ["metric", "value", "95% CI", "n", "note"]
    body = []
    for r in rows:
        value = "" if r.value is None else f"{r.value:.6g}"
        ci = "" if r.ci_low is None else f"[{r.ci_low:.4g}, {r.ci_high:.4g}]"
        body.append(([r.set] if show_set else []) + [r.metric, value, ci, str(r.n), r.note])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() for b in body]
    return "\n".join(lines)
