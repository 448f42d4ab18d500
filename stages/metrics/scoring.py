"""Every metric of a set against one real reference, computed from per-image features only.

The features of a set (`SetFeatures`: Inception pool3 + logits, SWD neighbourhood descriptors,
radiomics) are extracted once and cached; `Scorer` then scores a set, or any subsample of its
images and of the reference's (the interval replicates), without running a network again,
through the scorer class the metric catalogue (`medtrans.shared.catalogue.metrics`) names for
each metric (`scorers.py`). Each scorer prepares the real reference's side once (KID kernel,
SWD sorted projections), so scoring many sets against it costs only their side.

A metric that cannot be computed gives None values and a note saying why (weights missing, too
few images for the IS splits, ...), never NaN.
"""

from __future__ import annotations

import importlib
import inspect
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.stages.metrics.features import Features
from medtrans.stages.metrics.frd import RadiomicsFeatures
from medtrans.stages.metrics.swd import SWDDescriptors, SWDParams

# What a metric raises when it cannot be computed (missing inputs, degenerate sets): the row
# then holds no value and a note with the reason.
SCORING_ERRORS = (ValueError, np.linalg.LinAlgError)


class NotApplicable(ValueError):
    """A metric that has no meaning for a set (a pair metric of a set that is no translation of
    the source slices, e.g. the real-vs-real floor): its rows hold no value and this message as
    the note, verbatim ("not applicable: ..."), and the report does not count it as unavailable."""


def _save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """`np.savez` with fixed zip member times: the cached features are outputs listed with their
    sha256 in the manifest, and np.savez stamps each member with the time of writing, so the same
    features written a second later (or in a container) would otherwise get another digest.
    Members are written whole (`writestr`): zip64 headers are then used only when a member needs
    them, since Python patch releases differ in the headers a streamed, forced-zip64 member gets."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


PAIR_PREFIX = "pair_"  # features/<set>.npz: pair_<metric> = the per-pair values


@dataclass
class SetFeatures:
    """What every metric needs from one image set, per image (in `ids` order). `pairs`: per pair
    metric, each image's value against its source slice (None: the set is no translation of the
    source slices). `images` (the (N, H, W) uint8 pixels, for a metric of pixels without a cached
    descriptor) is kept in memory only, never saved."""

    ids: list[str]
    inception: Features | None = None
    swd: SWDDescriptors | None = None
    radiomics: RadiomicsFeatures | None = None
    pairs: dict[str, np.ndarray] | None = None
    images: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def save(self, path: str | Path) -> None:
        arrays: dict[str, np.ndarray] = {"ids": np.asarray(self.ids)}
        if self.inception is not None:
            arrays["pool"] = self.inception.pool
            arrays["logits"] = self.inception.logits
        if self.swd is not None:
            arrays.update(self.swd.to_numpy())
            arrays["swd_channels"] = np.asarray(self.swd.channels)
        if self.radiomics is not None:
            arrays["frd_names"] = np.asarray(self.radiomics.names)
            arrays["frd_values"] = self.radiomics.values
        for name, values in (self.pairs or {}).items():
            arrays[f"{PAIR_PREFIX}{name}"] = values
        _save_npz(path, arrays)

    @classmethod
    def load(cls, path: str | Path) -> SetFeatures:
        with np.load(path) as z:
            data = {k: z[k] for k in z.files}
        inception = Features(data["pool"], data["logits"]) if "pool" in data else None
        swd = SWDDescriptors.from_numpy(data, int(data["swd_channels"])) if "swd_channels" in data else None
        rad = (
            RadiomicsFeatures([str(n) for n in data["frd_names"]], data["frd_values"])
            if "frd_names" in data
            else None
        )
        pairs = {k[len(PAIR_PREFIX) :]: v for k, v in data.items() if k.startswith(PAIR_PREFIX)}
        return cls([str(i) for i in data["ids"]], inception, swd, rad, pairs or None)


@dataclass
class Scores:
    """Values (None: not computed) and notes per CSV row name."""

    values: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreSettings:
    metrics: tuple[str, ...] = field(default_factory=catalogue.names)
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    kid_seed: int = 2020
    is_splits: int = 10
    is_seed: int = 2020
    swd: SWDParams = SWDParams()
    swd_seed: int = 0
    device: str = "cpu"  # where SWD projections are sorted (CUDA: fast bootstrap)


def scorer_class(spec: catalogue.MetricSpec) -> type:
    """The class a catalogue entry names in `scorer` ("module:Class")."""
    module, _, name = spec.scorer.partition(":")
    return getattr(importlib.import_module(module), name)


class Scorer:
    """Scores sets against one real reference from features; `unavailable` maps a metric to the
    note that explains why it cannot be computed at all (e.g. Inception weights missing)."""

    def __init__(self, real: SetFeatures, settings: ScoreSettings, unavailable: dict[str, str] | None = None):
        self.real, self.settings = real, settings
        self.specs = [catalogue.get(m) for m in settings.metrics]
        self.unavailable = dict(unavailable or {})
        self.swd_resolutions: tuple[int, ...] = real.swd.resolutions if real.swd is not None else ()
        self._scorers = {}
        for spec in self.specs:
            if spec.name in self.unavailable:
                continue
            try:
                self._scorers[spec.name] = scorer_class(spec)(real, settings)
            except SCORING_ERRORS as err:
                self.unavailable[spec.name] = f"unavailable: real set: {err}"
        # scorers whose `score` takes the reference's positions (`ref`); one that does not (a
        # metric of the translated set alone or of image pairs) is scored against all of it
        self._takes_ref = {
            name for name, s in self._scorers.items() if len(inspect.signature(s.score).parameters) >= 3
        }

    def rows(self) -> list[str]:
        return [row for spec in self.specs for row in spec.rows(self.swd_resolutions)]

    def evaluate(
        self, fake: SetFeatures, index: np.ndarray | None = None, ref_index: np.ndarray | None = None
    ) -> Scores:
        """Every requested metric of `fake` (its images at `index`, if given) vs the reference (its
        images at `ref_index`, if given: a subsample replicate); the whole set (no index) also gets
        each metric's notes (FID's N, FRD's log(0))."""
        out = Scores()
        idx = np.arange(len(fake)) if index is None else np.asarray(index)
        ref = None if ref_index is None else np.asarray(ref_index)
        for spec in self.specs:
            reason = self.unavailable.get(spec.name)
            if reason is None:
                scorer = self._scorers[spec.name]
                try:
                    args = (fake, idx, ref) if spec.name in self._takes_ref else (fake, idx)
                    out.values.update(scorer.score(*args))
                except SCORING_ERRORS as err:
                    reason = str(err) if isinstance(err, NotApplicable) else f"unavailable: {err}"
                else:
                    if index is None and hasattr(scorer, "notes"):
                        out.notes.update(scorer.notes(out.values, len(fake)))
                    continue
            for row in spec.rows(self.swd_resolutions):
                out.values[row] = None
                out.notes[row] = reason
        return out
