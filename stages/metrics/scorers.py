"""One scorer class per metric of the catalogue (`medtrans.shared.catalogue.metrics`, which names
each class in its `scorer`): built once per real reference, it prepares that side (KID's kernel,
SWD's sorted projections) and then scores a set, or the set's images at `idx` against the
reference's images at `ref` (a subsample replicate; None: the whole reference), from per-image
features alone.

The protocol: `__init__(real, settings)`; `score(fake, idx, ref) -> {row: value}` (`ref` may be
left out of the signature by a metric that does not read the reference per replicate); optionally
`notes(values, n) -> {row: note}` for the full set. Missing inputs or undefined values raise a
ValueError (the row then says "unavailable: <why>"), never NaN.

A pair metric's scorer (`PairScorer`) ignores the real reference: its set's features carry each
image's value against its source slice (`SetFeatures.pairs`, from its `describe` and `compare`),
and it averages them.
"""

from __future__ import annotations

import numpy as np
import torch

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.stages.metrics import mind, ngf, nmi
from medtrans.stages.metrics.fid import RECOMMENDED_N, fid_result
from medtrans.stages.metrics.frd import frd_from_features
from medtrans.stages.metrics.inception_score import inception_score
from medtrans.stages.metrics.kid import kid_from_kernels, polynomial_kernel
from medtrans.stages.metrics.pairs import mean_over_pairs
from medtrans.stages.metrics.scoring import NotApplicable, ScoreSettings, SetFeatures
from medtrans.stages.metrics.swd import SWDDescriptors, SWDReference

Index = np.ndarray | None  # positions into the reference (a subsample replicate), None: all of it


def _inception(s: SetFeatures):
    if s.inception is None:
        raise ValueError("no Inception features")
    return s.inception


class FIDScorer:
    def __init__(self, real: SetFeatures, settings: ScoreSettings):
        self.real = real

    def score(self, fake: SetFeatures, idx: np.ndarray, ref: Index = None) -> dict[str, float | None]:
        real_pool, fake_pool = _inception(self.real).pool, _inception(fake).pool
        real_pool = real_pool if ref is None else real_pool[ref]
        return {"fid": fid_result(real_pool, fake_pool[idx], warn=False).value}

    def notes(self, values: dict, n: int) -> dict[str, str]:
        n_real = len(self.real)
        if values.get("fid") is None or min(n, n_real) >= RECOMMENDED_N:
            return {}
        return {"fid": f"N={n} vs {n_real} < {RECOMMENDED_N}: biased upward, comparable only at equal N"}


class KIDScorer:
    """The real set's kernel once; each fake set's kernels once, reused by all its replicates
    (replicates run set by set within each reference subsample)."""

    def __init__(self, real: SetFeatures, settings: ScoreSettings):
        self.real, self.settings = real, settings
        self._kxx = polynomial_kernel(real.inception.pool, real.inception.pool) if real.inception else None
        self._kernels: dict[int, tuple[SetFeatures, np.ndarray, np.ndarray]] = {}

    def _fake_kernels(self, fake: SetFeatures) -> tuple[np.ndarray, np.ndarray]:
        entry = self._kernels.get(id(fake))
        if entry is None or entry[0] is not fake:  # the set itself is kept, so its id is not reused
            x, y = _inception(self.real).pool, _inception(fake).pool
            entry = self._kernels[id(fake)] = (fake, polynomial_kernel(x, y), polynomial_kernel(y, y))
        return entry[1], entry[2]

    def score(self, fake: SetFeatures, idx: np.ndarray, ref: Index = None) -> dict[str, float | None]:
        _inception(self.real), _inception(fake)
        s = self.settings
        kxy, kyy = self._fake_kernels(fake)
        kxx = self._kxx
        if ref is not None:
            kxx, kxy = kxx[np.ix_(ref, ref)], kxy[ref]
        mean, std = kid_from_kernels(
            kxx, kxy[:, idx], kyy[np.ix_(idx, idx)], s.kid_subsets, s.kid_subset_size, s.kid_seed
        )
        return {"kid": mean, "kid_std": std}


class ISScorer:
    def __init__(self, real: SetFeatures, settings: ScoreSettings):
        self.real, self.settings = real, settings

    def score(self, fake: SetFeatures, idx: np.ndarray, ref: Index = None) -> dict[str, float | None]:
        _inception(self.real)  # IS reads the translated set alone: `ref` does not enter
        mean, std = inception_score(
            _inception(fake).logits[idx], self.settings.is_splits, self.settings.is_seed
        )
        return {"is": mean, "is_std": std}


class SWDScorer:
    """The real set's sorted projections once (`SWDReference`); an SWDInputError there makes
    the metric unavailable for every set. A reference subsample gets its own sorted projections
    (same directions), kept while consecutive calls use that subsample."""

    def __init__(self, real: SetFeatures, settings: ScoreSettings):
        s = settings
        self.real, self.settings, self.reference = real, settings, None
        self._sub: tuple[bytes, SWDReference] | None = None
        if real.swd is not None:
            self.reference = SWDReference(real.swd, s.swd, s.swd_seed, device=s.device)

    def _reference(self, ref: np.ndarray | None) -> SWDReference:
        if ref is None:
            return self.reference
        key = np.asarray(ref, dtype=np.int64).tobytes()
        if self._sub is None or self._sub[0] != key:
            picked = torch.as_tensor(np.asarray(ref), dtype=torch.long)
            real = self.real.swd
            sub = SWDDescriptors(real.resolutions, [lvl[picked] for lvl in real.levels], real.channels)
            directions = self.reference.directions
            s = self.settings
            self._sub = (key, SWDReference(sub, s.swd, directions=directions, device=s.device))
        return self._sub[1]

    def score(self, fake: SetFeatures, idx: np.ndarray, ref: Index = None) -> dict[str, float | None]:
        if self.reference is None or fake.swd is None:
            raise ValueError("no SWD descriptors")
        res = self._reference(ref).score(fake.swd, index=idx)
        return {"swd": res.average, **{f"swd_{r}": v for r, v in res.per_level.items()}}


class FRDScorer:
    def __init__(self, real: SetFeatures, settings: ScoreSettings):
        self.real = real

    def score(self, fake: SetFeatures, idx: np.ndarray, ref: Index = None) -> dict[str, float | None]:
        if self.real.radiomics is None or fake.radiomics is None:
            raise ValueError("no radiomics features")
        real = self.real.radiomics if ref is None else self.real.radiomics.subset(ref)
        res = frd_from_features(real, fake.radiomics.subset(idx))
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
