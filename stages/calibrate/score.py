"""Every metric of perturbed sets against the unperturbed set, through the metrics stage's one
scoring pipeline (features, then `Scorer`), with the unperturbed set's features extracted once.

Rows per set: each requested catalogue metric's own rows (its name and variants, e.g. frd and
frd_log; not its spread nor SWD's per-level rows), then `swd_nhood<k>` for each SWD
neighbourhood size k of the seed paper's check (the study's own size reuses the swd features).
Each set draws its own SWD neighbourhood centres, as every set of the metrics stage does, so a
value includes the metric's sampling noise. Metrics of pairs (`inputs == "pairs"` in the
catalogue: each original image against its perturbed one) go through the metrics stage's
`pairs.score_pairs`, imported only when such a metric is calibrated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.seeding import derive_seed
from medtrans.stages.metrics.extract import Network
from medtrans.stages.metrics.pipeline import FeatureSettings, ImageStack, extract_sets
from medtrans.stages.metrics.scoring import Scorer, ScoreSettings

REFERENCE = "unperturbed"
Value = tuple[float | None, str]  # value (None: not computed) and the note that says why


def nhood_row(k: int) -> str:
    return f"swd_nhood{k}"


@dataclass(frozen=True)
class CalibrationSettings:
    features: FeatureSettings
    scores: ScoreSettings  # its metrics are the ones calibrated
    nhood_sizes: tuple[int, ...]
    seed: int  # of the SWD centres of each set


class Calibrator:
    """The unperturbed set's features and scorers, prepared once; `score` scores perturbed sets."""

    def __init__(self, images: np.ndarray, ids: list[str], settings: CalibrationSettings, network: Network):
        self.ids, self.settings, self.network, self.images = list(ids), settings, network, images
        self.pairs = tuple(m for m in settings.scores.metrics if catalogue.get(m).inputs == "pairs")
        metrics = tuple(m for m in settings.scores.metrics if m not in self.pairs)
        settings = replace(settings, scores=replace(settings.scores, metrics=metrics))
        self.settings = settings
        ref, unavailable = self._features([(REFERENCE, images)], metrics, settings.features)
        self.scorer = Scorer(ref[0], settings.scores, unavailable)
        self.reference_features = ref[0]
        self.nhood: dict[int, tuple[FeatureSettings, Scorer]] = {}
        for k in settings.nhood_sizes:
            if "swd" in metrics and k == settings.features.swd.nhood_size:
                continue  # the main swd features are these
            fs = replace(settings.features, swd=replace(settings.features.swd, nhood_size=k))
            feats, _ = self._features([(REFERENCE, images)], ("swd",), fs, k)
            scores = replace(settings.scores, metrics=("swd",), swd=fs.swd)
            self.nhood[k] = (fs, Scorer(feats[0], scores))

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
        from medtrans.stages.metrics.pairs import score_pairs  # only where such metrics exist

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
