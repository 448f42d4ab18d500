"""Read what the upstream stages left in the run folder, and say what is missing.

The report never fails for a missing translator, metric or task: every folder without a
complete manifest becomes a line in `RunData.missing`, and the rest is reported.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.config import StudyConfig
from medtrans.shared.layout import RunLayout
from medtrans.shared.manifest import Manifest, ManifestError, read_manifest
from medtrans.stages.report.calibration_analysis import long_table, summarise

BASELINES_SEGMENT = ("target", "source")  # upper bound, lower bound
BASELINES_METRICS = ("source", "target_train")  # domain gap, real-vs-real floor
CALIBRATION = "calibration.csv"  # segment's and metrics' scores of the calibration sets


def _complete(folder: Path) -> Manifest | None:
    """The folder's manifest when complete and readable; None otherwise (never raises)."""
    try:
        return read_manifest(folder)
    except ManifestError:
        return None


@dataclass
class SegmentData:
    """segment/<task>/: per-image scores, their summary, training curve."""

    folder: Path
    manifest: Manifest
    summary: pd.DataFrame
    dice: pd.DataFrame
    training: pd.DataFrame | None

    def __post_init__(self) -> None:
        # dict lookups: a boolean mask per lookup costs milliseconds on these tables
        self._points = {
            (r["set"], r["structure"], r["metric"]): {
                k: _float(r[k]) for k in ("mean", "ci_low", "ci_high", "n")
            }
            for r in self.summary.to_dict("records")
        }
        self._images = {
            key: grp.sort_values("slice_id") for key, grp in self.dice.groupby(["set", "structure"])
        }

    def sets(self) -> list[str]:
        return sorted(set(self.summary["set"]))

    def point(self, set_name: str, structure: str = "mean", metric: str = "dice") -> dict | None:
        """mean, ci_low, ci_high, n of one set/structure/metric, or None."""
        return self._points.get((set_name, structure, metric))

    def per_image(self, set_name: str, column: str = "dice", structure: str = "mean") -> np.ndarray:
        """Per-image scores of one set in slice_id order (positions of the shared bootstrap)."""
        rows = self._images.get((set_name, structure))
        if rows is None:
            return np.array([], dtype=np.float64)
        values = np.array(pd.to_numeric(rows[column], errors="coerce"), dtype=np.float64)
        values[~np.isfinite(values)] = np.nan
        return values


@dataclass
class MetricsData:
    """metrics/<task>/: one value per set and metric (raw strings kept for display)."""

    folder: Path
    manifest: Manifest
    table: pd.DataFrame  # set, metric, value (float or NaN), ci_low, ci_high, n, network_sha256, note, raw
    bootstrap: pd.DataFrame | None  # set, metric, replicate, value
    strings: pd.DataFrame | None = None  # metrics.csv exactly as written (every cell a string)

    def __post_init__(self) -> None:
        self._values = {
            (r["set"], r["metric"]): {
                "value": _float(r["value"]),
                "ci_low": _float(r["ci_low"]),
                "ci_high": _float(r["ci_high"]),
                "n": _float(r["n"]),
                "note": str(r["note"]),
                "raw": str(r["raw"]),
            }
            for r in self.table.to_dict("records")
        }
        self._reps: dict[tuple[str, str], np.ndarray] = {}
        if self.bootstrap is not None:
            for key, grp in self.bootstrap.groupby(["set", "metric"]):
                out = np.full(int(grp["replicate"].max()) + 1, np.nan)
                out[grp["replicate"].to_numpy(dtype=int)] = pd.to_numeric(grp["value"], errors="coerce")
                self._reps[key] = out

    def value(self, set_name: str, metric: str) -> dict | None:
        return self._values.get((set_name, metric))

    def metric_names(self) -> list[str]:
        return list(dict.fromkeys(self.table["metric"]))

    def replicates(self, set_name: str, metric: str) -> np.ndarray | None:
        """Bootstrap replicate values of one set and metric, indexed by replicate (NaN if absent)."""
        return self._reps.get((set_name, metric))

    def n_replicates(self) -> int:
        if self.bootstrap is None or self.bootstrap.empty:
            return 0
        return int(self.bootstrap["replicate"].max()) + 1


@dataclass
class CalibrationData:
    """The scores of a task's calibration sets: metrics/<task>/calibration.csv joined with
    segment/<task>/calibration.csv (`calibration_analysis.long_table`), and its per-metric summary."""

    table: pd.DataFrame
    summary: pd.DataFrame
    images: int | None  # calibrated slices (the metrics manifest records them)


def read_calibration(
    segment: SegmentData | None, metrics: MetricsData | None, missing: list[str], label: str
) -> CalibrationData | None:
    """The calibration scores of one task when metrics scored its calibration sets, else None and a
    line in `missing`; without segment's Dice the Dice columns stay empty."""
    scores = _read_csv(metrics.folder / CALIBRATION, dtype={"set": str}) if metrics is not None else None
    if scores is None:
        missing.append(f"{label}: no metrics/{label.split('/')[-1]}/{CALIBRATION}; no calibration for this "
                       "task (run `medtrans calibrate` and `medtrans metrics`)")  # fmt: skip
        return None
    dice = _read_csv(segment.folder / CALIBRATION, dtype={"set": str}) if segment is not None else None
    if dice is None:
        missing.append(f"{label}: no segment/{label.split('/')[-1]}/{CALIBRATION}; calibration without Dice")
    table = long_table(scores, dice)
    images = (metrics.manifest.extra.get("calibration") or {}).get("images")
    return CalibrationData(table, summarise(table), images)


@dataclass
class TaskData:
    """Everything complete for one task, and what is not."""

    name: str
    structures: tuple[str, ...]
    source_domain: str
    target_domain: str
    expected: tuple[str, ...]
    translators: dict[str, Path] = field(default_factory=dict)  # complete translate folders
    translate_manifests: dict[str, Manifest] = field(default_factory=dict)
    preprocess: Path | None = None
    preprocess_manifest: Manifest | None = None
    segment: SegmentData | None = None
    metrics: MetricsData | None = None
    calibration: CalibrationData | None = None
    calibrate: Path | None = None  # the calibration sets' folder: scored upstream, named for provenance
    calibrate_manifest: Manifest | None = None

    def rows(self) -> list[str]:
        """Translated sets to report, in the study's model order (any with results anywhere)."""
        seen = set(self.translators)
        if self.segment is not None:
            seen |= set(self.segment.sets()) - set(BASELINES_SEGMENT)
        if self.metrics is not None:
            seen |= set(self.metrics.table["set"]) - set(BASELINES_METRICS)
        ordered = [m for m in self.expected if m in seen]
        return ordered + sorted(seen - set(ordered))


@dataclass
class RunData:
    tasks: dict[str, TaskData]
    missing: list[str]  # human-readable lines

    def input_folders(self) -> list[Path]:
        """Every upstream folder with a complete manifest (the unit's inputs)."""
        folders: list[Path] = []
        for t in self.tasks.values():
            if t.preprocess is not None:
                folders.append(t.preprocess)
            folders += [t.translators[m] for m in t.translators]
            if t.segment is not None:
                folders.append(t.segment.folder)
            if t.metrics is not None:
                folders.append(t.metrics.folder)
            if t.calibrate is not None:
                folders.append(t.calibrate)
        return folders

    def manifests(self) -> list[tuple[str, Path, Manifest]]:
        """(label, folder, manifest) of every input, for provenance."""
        out: list[tuple[str, Path, Manifest]] = []
        for name, t in self.tasks.items():
            if t.preprocess is not None and t.preprocess_manifest is not None:
                out.append((f"preprocess/{name}", t.preprocess, t.preprocess_manifest))
            out += [
                (f"translate/{name}/{m}", t.translators[m], man) for m, man in t.translate_manifests.items()
            ]
            if t.segment is not None:
                out.append((f"segment/{name}", t.segment.folder, t.segment.manifest))
            if t.metrics is not None:
                out.append((f"metrics/{name}", t.metrics.folder, t.metrics.manifest))
            if t.calibrate is not None and t.calibrate_manifest is not None:
                out.append((f"calibrate/{name}", t.calibrate, t.calibrate_manifest))
        return out


def _float(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f if np.isfinite(f) else float("nan")


def _read_csv(path: Path, **kw) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    return pd.read_csv(path, keep_default_na=False, **kw)


def _segment(folder: Path, missing: list[str], label: str, complete=_complete) -> SegmentData | None:
    manifest = complete(folder)
    if manifest is None:
        missing.append(f"{label}: no complete manifest; no Dice/HD95 for this task (run `medtrans segment`)")
        return None
    summary = _read_csv(folder / "summary.csv", dtype={"set": str, "structure": str, "metric": str})
    dice = _read_csv(folder / "dice.csv", dtype={"set": str, "slice_id": str, "structure": str})
    if summary is None or dice is None:
        missing.append(f"{label}: summary.csv or dice.csv missing although the manifest is complete")
        return None
    training = _read_csv(folder / "training.csv")
    return SegmentData(folder, manifest, summary, dice, training)


def _metrics(folder: Path, missing: list[str], label: str, complete=_complete) -> MetricsData | None:
    manifest = complete(folder)
    if manifest is None:
        missing.append(
            f"{label}: no complete manifest; no perceptual metrics for this task (run `medtrans metrics`)"
        )
        return None
    raw = _read_csv(folder / "metrics.csv", dtype=str)
    if raw is None:
        missing.append(f"{label}: metrics.csv missing although the manifest is complete")
        return None
    table = raw.copy()
    table["raw"] = raw["value"]
    for col in ("value", "ci_low", "ci_high", "n"):
        table[col] = pd.to_numeric(raw[col], errors="coerce")
    boot = _read_csv(folder / "bootstrap.csv", dtype={"set": str, "metric": str})
    if boot is not None and not boot.empty:
        boot["replicate"] = pd.to_numeric(boot["replicate"], errors="coerce").astype(int)
        boot["value"] = pd.to_numeric(boot["value"], errors="coerce")
    elif boot is None:
        missing.append(f"{label}/bootstrap.csv: missing; correlation CIs not available")
    return MetricsData(folder, manifest, table, boot if boot is not None and not boot.empty else None, raw)


def gather(study: StudyConfig, layout: RunLayout, only: list[Path] | None = None) -> RunData:
    """Scan the run folder for every task of the study; never raises for a missing piece.

    `only`: the folders the unit was planned with; anything else counts as missing, so the
    report never shows an output its manifest does not list as an input."""
    allowed = None if only is None else {Path(p).resolve() for p in only}

    def complete_manifest(folder: Path) -> Manifest | None:
        if allowed is not None and Path(folder).resolve() not in allowed:
            return None
        return _complete(folder)

    missing: list[str] = []
    tasks: dict[str, TaskData] = {}
    models = tuple(study.translate.models)
    for name, task in study.tasks.items():
        t = TaskData(
            name=name,
            structures=tuple(task.structures),
            source_domain=task.source.name,
            target_domain=task.target.name,
            expected=models,
        )
        pre = layout.preprocess(name)
        t.preprocess_manifest = complete_manifest(pre)
        if t.preprocess_manifest is not None:
            t.preprocess = pre
        else:
            missing.append(f"preprocess/{name}: no complete manifest; no image grid for this task")
        for model in models:
            folder = layout.translate(name, model)
            man = complete_manifest(folder)
            if man is None:
                missing.append(f"translate/{name}/{model}: no complete manifest; translator missing")
            else:
                t.translators[model] = folder
                t.translate_manifests[model] = man
        t.segment = _segment(layout.segment(name), missing, f"segment/{name}", complete_manifest)
        t.metrics = _metrics(layout.metrics(name), missing, f"metrics/{name}", complete_manifest)
        if study.calibrate.enabled:
            t.calibration = read_calibration(t.segment, t.metrics, missing, f"calibration/{name}")
            t.calibrate_manifest = complete_manifest(layout.calibrate(name))
            if t.calibrate_manifest is not None:
                t.calibrate = layout.calibrate(name)
        for model in t.translators:
            if t.segment is not None and model not in t.segment.sets():
                missing.append(f"segment/{name}: no Dice for {model} (segment ran before it finished; rerun)")
            if t.metrics is not None and model not in set(t.metrics.table["set"]):
                missing.append(
                    f"metrics/{name}: no metrics for {model} (metrics ran before it finished; rerun)"
                )
        tasks[name] = t
    return RunData(tasks, missing)


def unavailable_metrics(run: RunData) -> list[dict]:
    """Metrics that could not be computed (empty value) with the note that says why; not those
    that have no meaning for a set (a pair metric of the real-vs-real floor: "not applicable")."""
    out = []
    for name, t in run.tasks.items():
        if t.metrics is None:
            continue
        table = t.metrics.table
        applicable = ~table["note"].astype(str).str.startswith(catalogue.NOT_APPLICABLE)
        rows = table[table["value"].isna() & applicable]
        for _, row in rows.iterrows():
            out.append({"task": name, "set": row["set"], "metric": row["metric"], "note": row["note"]})
    return out
