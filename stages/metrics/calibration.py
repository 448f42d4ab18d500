"""Calibration sets (calibrate/<task>/, `medtrans.shared.calibration`) scored as translators are:
every calibrated metric of each perturbed set against the unperturbed one, through the one
scoring pipeline (features, then `Scorer`). Also what `medtrans calibrate REAL` scores a folder by.

The unperturbed set's features are given (the metrics unit passes its own target_test features
from features/target_test.npz, rows of the calibrated slices), so none is computed twice; only
what that cache lacks (a metric calibrated but not in the study's metrics, SWD at the other
neighbourhood sizes) is extracted, once. Rows per set: each calibrated catalogue metric's own rows
(its name and variants; not its spread nor SWD's per-level rows), then `swd_nhood<k>` for each SWD
neighbourhood size k of the seed paper's check (the study's own size reuses the swd features).
Each set draws its own SWD neighbourhood centres, as every set of the metrics stage does, so a
value includes the metric's sampling noise. Metrics of pairs (each original image against its
perturbed copy) go through `pairs.score_pairs`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.seeding import derive_seed
from medtrans.stages.metrics.extract import Network
from medtrans.stages.metrics.pipeline import FeatureSettings, ImageStack, extract_sets
from medtrans.stages.metrics.scoring import Scorer, ScoreSettings, SetFeatures
from medtrans.stages.metrics.swd import SWDDescriptors

REFERENCE = "unperturbed"
TABLE = "calibration.csv"
COLUMNS = ("set", "perturbation", "family", "severity", "metric", "value", "note")
Value = tuple[float | None, str]  # value (None: not computed) and the note that says why


def nhood_row(k: int) -> str:
    return f"swd_nhood{k}"


@dataclass(frozen=True)
class CalibrationSettings:
    features: FeatureSettings
    scores: ScoreSettings  # its metrics are the ones calibrated
    nhood_sizes: tuple[int, ...]
    seed: int  # of the SWD centres of each set


def subset(feats: SetFeatures, idx: np.ndarray) -> SetFeatures:
    """The rows `idx` of a set's per-image features (no network runs)."""
    swd = None
    if feats.swd is not None:
        levels = [lvl[idx] for lvl in feats.swd.levels]
        swd = SWDDescriptors(feats.swd.resolutions, levels, feats.swd.channels)
    return SetFeatures(
        [feats.ids[i] for i in idx], feats.inception.subset(idx) if feats.inception is not None else None,
        swd,
        feats.radiomics.subset(idx) if feats.radiomics is not None else None,
    )  # fmt: skip


class Calibrator:
    """The unperturbed set's scorers, prepared once from its features; `score` scores perturbed sets.
    `reference`: its features where known already (None: all extracted here)."""

    def __init__(
        self, images: np.ndarray, ids: list[str], settings: CalibrationSettings, network: Network,
        reference: SetFeatures | None = None,
    ):  # fmt: skip
        self.ids, self.network, self.images = list(ids), network, images
        self.pairs = tuple(m for m in settings.scores.metrics if catalogue.get(m).inputs == "pairs")
        metrics = tuple(m for m in settings.scores.metrics if m not in self.pairs)
        self.settings = settings = replace(settings, scores=replace(settings.scores, metrics=metrics))
        ref, unavailable = self._reference(reference, metrics)
        self.scorer = Scorer(ref, settings.scores, unavailable)
        self.reference_features = ref
        self.nhood: dict[int, tuple[FeatureSettings, Scorer]] = {}
        for k in settings.nhood_sizes:
            if "swd" in metrics and k == settings.features.swd.nhood_size:
                continue  # the main swd features are these
            fs = replace(settings.features, swd=replace(settings.features.swd, nhood_size=k))
            feats, _ = self._features([(REFERENCE, images)], ("swd",), fs, k)
            scores = replace(settings.scores, metrics=("swd",), swd=fs.swd)
            self.nhood[k] = (fs, Scorer(feats[0], scores))

    def _reference(self, given: SetFeatures | None, metrics: tuple[str, ...]):
        """The reference's features: `given` where it has them, the rest extracted now."""
        have = {"inception": None, "swd": None, "radiomics": None} if given is None else {
            "inception": given.inception, "swd": given.swd, "radiomics": given.radiomics}  # fmt: skip
        needs = {
            "inception": [m for m in metrics if catalogue.get(m).needs_weights],
            "swd": [m for m in metrics if m == "swd"],
            "radiomics": [m for m in metrics if m == "frd"],
        }
        missing = tuple(m for kind, names in needs.items() if have[kind] is None for m in names)
        other = tuple(m for m in metrics if not any(m in v for v in needs.values()))
        extract = missing + tuple(m for m in other if given is None)
        feats, unavailable = self._features([(REFERENCE, self.images)], extract, self.settings.features)
        ref = feats[0]
        for kind, value in have.items():
            if value is not None:
                setattr(ref, kind, value)
        ref.images = self.images
        if have["inception"] is not None:  # the network's features are known: not unavailable
            unavailable = {m: v for m, v in unavailable.items() if not catalogue.get(m).needs_weights}
        return ref, unavailable

    def _features(self, sets, metrics, fs: FeatureSettings, k: int | None = None):
        k = fs.swd.nhood_size if k is None else k
        stacks = [
            ImageStack(name, self.ids, images, derive_seed(self.settings.seed, "swd", "centres", name, k))
            for name, images in sets
        ]
        return extract_sets(stacks, metrics, self.network, fs)

    def reference_scores(self, name: str = "none") -> dict[str, Value]:
        """The unperturbed set against itself, as a set of its own: each metric's floor. Its network
        and radiomics features are the reference's (the same images: not computed again); its SWD
        neighbourhoods are drawn afresh like any set's, so SWD's floor is its sampling noise."""
        own = replace(self.reference_features, swd=None)
        if self.reference_features.swd is not None:
            own.swd = self._features([(name, self.images)], ("swd",), self.settings.features)[0][0].swd
        nhood = {
            k: scorer.evaluate(self._features([(name, self.images)], ("swd",), fs, k)[0][0])
            for k, (fs, scorer) in self.nhood.items()
        }
        return {**self._collect(self.scorer.evaluate(own), nhood), **self._pairs(self.images)}

    def _pairs(self, images: np.ndarray) -> dict[str, Value]:
        """The pair metrics of each original image with its counterpart in `images`."""
        if not self.pairs:
            return {}
        from medtrans.stages.metrics.pairs import score_pairs

        values = score_pairs(self.pairs, self.images, images)  # deterministic: no random choice
        rows = [r for name in self.pairs for r in (name, *catalogue.get(name).variants)]
        return {r: (values.get(r), "" if values.get(r) is not None else "not computed") for r in rows}

    def score(self, sets: list[tuple[str, np.ndarray]]) -> list[dict[str, Value]]:
        """The rows of each (name, (N, H, W) uint8 images) set: one feature pass per set and size."""
        feats, _ = self._features(sets, self.settings.scores.metrics, self.settings.features)
        by_size = {k: self._features(sets, ("swd",), fs, k)[0] for k, (fs, _) in self.nhood.items()}
        return [
            {
                **self._collect(
                    self.scorer.evaluate(f), {k: self.nhood[k][1].evaluate(by_size[k][i]) for k in self.nhood}
                ),
                **self._pairs(sets[i][1]),
            }
            for i, f in enumerate(feats)
        ]

    def _collect(self, main, nhood) -> dict[str, Value]:
        out: dict[str, Value] = {}
        for spec in self.scorer.specs:
            for row in (spec.name, *spec.variants):
                out[row] = (main.values.get(row), main.notes.get(row, ""))
        for k in self.settings.nhood_sizes:
            source = main if k not in nhood else nhood[k]
            if "swd" not in self.scorer.settings.metrics and k not in nhood:
                out[nhood_row(k)] = (None, "swd not requested")
                continue
            out[nhood_row(k)] = (source.values.get("swd"), source.notes.get("swd", ""))
        return out


def rows_of(name: str, perturbation: str, family: str, severity: int, values: dict[str, Value]) -> list:
    return [(name, perturbation, family, severity, m, v, note) for m, (v, note) in values.items()]


def as_table(rows: list[tuple]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["value"] = pd.to_numeric(table["value"], errors="coerce")
    return table
