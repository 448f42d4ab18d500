"""One scorer class per metric of the catalogue (`medtrans.shared.catalogue.metrics`, which names
each class in its `scorer`): built once per real reference, it prepares that side (KID's kernel,
SWD's sorted projections) and then scores a set, or the set's images at `idx` (a bootstrap
resample), from per-image features alone.

The protocol: `__init__(real, settings)`; `score(fake, idx) -> {row: value}`; optionally
`notes(values, n) -> {row: note}` for the full set. Missing inputs or undefined values raise a
ValueError (the row then says "unavailable: <why>"), never NaN.

A pair metric's scorer (`PairScorer`) ignores the real reference: its set's features carry each
image's value against its source slice (`SetFeatures.pairs`, from its `describe` and `compare`),
and it averages them.
"""

from __future__ import annotations

import numpy as np

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.stages.metrics import mind, ngf, nmi
from medtrans.stages.metrics.fid import RECOMMENDED_N, fid_result
from medtrans.stages.metrics.frd import frd_from_features
from medtrans.stages.metrics.inception_score import inception_score
from medtrans.stages.metrics.kid import kid_from_kernels, polynomial_kernel
from medtrans.stages.metrics.pairs import mean_over_pairs
from medtrans.stages.metrics.scoring import NotApplicable, ScoreSettings, SetFeatures
from medtrans.stages.metrics.swd import SWDReference


def _inception(s: SetFeatures):
    if s.inception is None:
        raise ValueError("no Inception features")
    return s.inception


class FIDScorer:
    def __init__(self, real: SetFeatures, settings: ScoreSettings):
        self.real = real

    def score(self, fake: SetFeatures, idx: np.ndarray) -> dict[str, float | None]:
        real_pool, fake_pool = _inception(self.real).pool, _inception(fake).pool
        return {"fid": fid_result(real_pool, fake_pool[idx], warn=False).value}

    def notes(self, values: dict, n: int) -> dict[str, str]:
        n_real = len(self.real)
        if values.get("fid") is None or min(n, n_real) >= RECOMMENDED_N:
            return {}
        return {"fid": f"N={n} vs {n_real} < {RECOMMENDED_N}: biased upward, comparable only at equal N"}


class KIDScorer:
    """The real set's kernel once; the fake set's kernels once per set, reused by its replicates."""

    def __init__(self, real: SetFeatures, settings: ScoreSettings):
        self.real, self.settings = real, settings
        self._kxx = polynomial_kernel(real.inception.pool, real.inception.pool) if real.inception else None
        self._kernels: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _fake_kernels(self, fake: SetFeatures) -> tuple[np.ndarray, np.ndarray]:
        key = id(fake)
        if key not in self._kernels:
            x, y = _inception(self.real).pool, _inception(fake).pool
            self._kernels = {key: (polynomial_kernel(x, y), polynomial_kernel(y, y))}
        return self._kernels[key]

    def score(self, fake: SetFeatures, idx: np.ndarray) -> dict[str, float | None]:
        _inception(self.real), _inception(fake)
        s = self.settings
        kxy, kyy = self._fake_kernels(fake)
        mean, std = kid_from_kernels(
            self._kxx, kxy[:, idx], kyy[np.ix_(idx, idx)], s.kid_subsets, s.kid_subset_size, s.kid_seed
        )
        return {"kid": mean, "kid_std": std}


class ISScorer:
    def __init__(self, real: SetFeatures, settings: ScoreSettings):
        self.real, self.settings = real, settings

    def score(self, fake: SetFeatures, idx: np.ndarray) -> dict[str, float | None]:
        _inception(self.real)
        mean, std = inception_score(
            _inception(fake).logits[idx], self.settings.is_splits, self.settings.is_seed
        )
        return {"is": mean, "is_std": std}


class SWDScorer:
    """The real set's sorted projections once (`SWDReference`); an SWDInputError there makes
    the metric unavailable for every set."""

    def __init__(self, real: SetFeatures, settings: ScoreSettings):
        s = settings
        self.reference = None
        if real.swd is not None:
            self.reference = SWDReference(real.swd, s.swd, s.swd_seed, device=s.device)

    def score(self, fake: SetFeatures, idx: np.ndarray) -> dict[str, float | None]:
        if self.reference is None or fake.swd is None:
            raise ValueError("no SWD descriptors")
        res = self.reference.score(fake.swd, index=idx)
        return {"swd": res.average, **{f"swd_{r}": v for r, v in res.per_level.items()}}


class FRDScorer:
    def __init__(self, real: SetFeatures, settings: ScoreSettings):
        self.real = real

    def score(self, fake: SetFeatures, idx: np.ndarray) -> dict[str, float | None]:
        if self.real.radiomics is None or fake.radiomics is None:
            raise ValueError("no radiomics features")
        res = frd_from_features(self.real.radiomics, fake.radiomics.subset(idx))
        return {"frd": res.frd, "frd_log": res.frd_log}

    def notes(self, values: dict, n: int) -> dict[str, str]:
        if "frd_log" in values and values["frd_log"] is None:
            return {"frd_log": "undefined: log(0), the feature sets are identical"}
        return {}


class PairScorer:
    """Mean over a set's pairs of one pair metric (`name`; its two steps `describe`, one side ->
    what the metric needs of it, and `compare`, two described sides -> per-pair values; its
    constants `settings`)."""

    name: str
    describe = compare = None  # set by each subclass (see `medtrans.stages.metrics.pairs`)
    settings: dict = {}

    def __init__(self, real: SetFeatures, settings: ScoreSettings):
        self._undefined = 0

    def score(self, fake: SetFeatures, idx: np.ndarray) -> dict[str, float | None]:
        values = (fake.pairs or {}).get(self.name)
        if values is None:
            raise NotApplicable(
                f"{catalogue.NOT_APPLICABLE}: this set is not a translation of the source slices "
                "(pair metrics compare each source slice with its translation)"
            )
        self._undefined = int(np.sum(~np.isfinite(values[idx])))
        return {self.name: mean_over_pairs(values, idx)}

    def notes(self, values: dict, n: int) -> dict[str, str]:
        if not self._undefined:
            return {}
        return {self.name: f"{self._undefined} of {n} pairs undefined (constant images), not in the mean"}


class NMIScorer(PairScorer):
    name, settings = "nmi", nmi.SETTINGS
    describe, compare = staticmethod(nmi.describe), staticmethod(nmi.compare)


class MINDScorer(PairScorer):
    name, settings = "mind", mind.SETTINGS
    describe, compare = staticmethod(mind.describe), staticmethod(mind.compare)


class NGFScorer(PairScorer):
    name, settings = "ngf", ngf.SETTINGS
    describe, compare = staticmethod(ngf.describe), staticmethod(ngf.compare)
