"""The metrics unit's calibration part: when the study calibrates, every calibration set of
calibrate/<task>/ scored against its unperturbed set, into metrics/<task>/calibration.csv (columns
`calibration.COLUMNS`). The unperturbed set's features are the unit's own target_test features
(features/target_test.npz, the rows of the calibrated slices): not extracted again."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medtrans.shared.calibration import NONE, CalibrationSets
from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.config import StudyConfig
from medtrans.shared.layout import RunLayout
from medtrans.shared.log import progress
from medtrans.shared.seeding import derive_seed
from medtrans.shared.stage import StageInputError
from medtrans.stages.metrics.calibration import (
    TABLE,
    CalibrationSettings,
    Calibrator,
    as_table,
    rows_of,
    subset,
)  # fmt: skip
from medtrans.stages.metrics.extract import Network
from medtrans.stages.metrics.pipeline import FeatureSettings
from medtrans.stages.metrics.scoring import ScoreSettings, SetFeatures

FLOAT = "%.10g"
SEED = "calibrate"  # the calibration seeds derive from (study seed, "calibrate", task), as before the split


def calibrated_metrics(study: StudyConfig) -> tuple[str, ...]:
    """calibrate.metrics, else the study's metrics, in the catalogue's order."""
    chosen = study.calibrate.metrics if study.calibrate.metrics is not None else study.metrics.metrics
    return tuple(m for m in catalogue.names() if m in chosen)


def unit_config(study: StudyConfig) -> dict | None:
    """What of the study the calibration part reads (None when the study does not calibrate)."""
    if not study.calibrate.enabled:
        return None
    return {"metrics": list(calibrated_metrics(study)), "nhood_sizes": list(study.calibrate.nhood_sizes)}


def settings_for(study: StudyConfig, task: str, fs: FeatureSettings) -> CalibrationSettings:
    cfg, seed = study.metrics, derive_seed(study.seed, SEED, task)
    scores = ScoreSettings(
        metrics=calibrated_metrics(study), kid_subsets=cfg.kid_subsets, kid_subset_size=cfg.kid_subset_size,
        kid_seed=derive_seed(seed, "kid"), is_splits=cfg.is_splits, is_seed=derive_seed(seed, "is"),
        swd=fs.swd, swd_seed=derive_seed(seed, "swd", "directions"), device=str(fs.device),
    )  # fmt: skip
    return CalibrationSettings(fs, scores, tuple(study.calibrate.nhood_sizes), seed)


def score_calibration(
    study: StudyConfig, layout: RunLayout, task: str, work: Path, reference: SetFeatures,
    network: Network, fs: FeatureSettings,
) -> dict:  # fmt: skip
    """Write work/calibration.csv; `reference`: the target_test features (all its slices). Returns
    what the manifest records (sets, images, metrics)."""
    sets = CalibrationSets.read(layout, task)
    position = {sid: i for i, sid in enumerate(reference.ids)}
    missing = [s for s in sets.reference.slice_ids if s not in position]
    if missing:
        raise StageInputError(f"{sets.folder}: slice {missing[0]} is no target test slice of this run; "
                              "rerun `medtrans calibrate --study <study> --force`")  # fmt: skip
    idx = np.array([position[s] for s in sets.reference.slice_ids])
    size = study.preprocess.image_size
    images, _ = sets.reference.read(size)
    cal = Calibrator(images, list(sets.reference.slice_ids), settings_for(study, task, fs), network,
                     subset(reference, idx))  # fmt: skip
    rows = rows_of(NONE, NONE, NONE, 0, cal.reference_scores())
    groups: dict[str, list] = {}
    for s in sets.perturbed:  # one feature pass per perturbation (all its severities)
        groups.setdefault(s.perturbation, []).append(s)
    for group in progress(list(groups.values()), desc=f"calibration sets {task}", unit="perturbation"):
        scores = cal.score([(s.name, s.read(size)[0]) for s in group])
        for s, values in zip(group, scores, strict=True):
            rows += rows_of(s.name, s.perturbation, s.family, s.severity, values)
    as_table(rows).to_csv(work / TABLE, index=False, float_format=FLOAT)
    return {"sets": len(sets.perturbed), "images": len(idx), "metrics": list(calibrated_metrics(study))}
