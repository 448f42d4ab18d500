"""Every metric of a set against one real reference, computed from per-image features only.

The features of a set (`SetFeatures`: Inception pool3 + logits, SWD neighbourhood descriptors,
radiomics) are extracted once and cached; `Scorer` then scores a set, or any resample of its
images (the bootstrap), without running a network again. The real reference's side is prepared
once (KID kernel, SWD sorted projections), so scoring many sets against it costs only their side.

A metric that cannot be computed gives None values and a note saying why (weights missing, too
few images for the IS splits, ...), never NaN.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medtrans.stages.metrics.features import Features
from medtrans.stages.metrics.fid import RECOMMENDED_N, fid_result
from medtrans.stages.metrics.frd import FRDError, RadiomicsFeatures, frd_from_features
from medtrans.stages.metrics.inception_score import inception_score
from medtrans.stages.metrics.kid import kid_from_kernels, polynomial_kernel
from medtrans.stages.metrics.swd import SWDDescriptors, SWDInputError, SWDParams, SWDReference

METRICS = ("fid", "kid", "is", "swd", "frd")
INCEPTION_METRICS = ("fid", "kid", "is")


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


def metric_rows(metric: str, swd_resolutions: tuple[int, ...] = ()) -> list[str]:
    """The CSV rows one requested metric produces."""
    return {
        "fid": ["fid"],
        "kid": ["kid", "kid_std"],
        "is": ["is", "is_std"],
        "swd": ["swd", *[f"swd_{r}" for r in swd_resolutions]],
        "frd": ["frd", "frd_log"],
    }[metric]


@dataclass
class SetFeatures:
    """What every metric needs from one image set, per image (in `ids` order)."""

    ids: list[str]
    inception: Features | None = None
    swd: SWDDescriptors | None = None
    radiomics: RadiomicsFeatures | None = None

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
        return cls([str(i) for i in data["ids"]], inception, swd, rad)


@dataclass
class Outcome:
    """Values (None: not computed) and notes per CSV row name."""

    values: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreSettings:
    metrics: tuple[str, ...] = METRICS
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    kid_seed: int = 2020
    is_splits: int = 10
    is_seed: int = 2020
    swd: SWDParams = SWDParams()
    swd_seed: int = 0
    device: str = "cpu"  # where SWD projections are sorted (CUDA: fast bootstrap)


class Scorer:
    """Scores sets against one real reference from features; `unavailable` maps a metric to the
    note that explains why it cannot be computed at all (e.g. Inception weights missing)."""

    def __init__(self, real: SetFeatures, settings: ScoreSettings, unavailable: dict[str, str] | None = None):
        self.real, self.settings = real, settings
        self.unavailable = dict(unavailable or {})
        self.swd_resolutions: tuple[int, ...] = real.swd.resolutions if real.swd is not None else ()
        self._swd_ref: SWDReference | None = None
        if "swd" in settings.metrics and real.swd is not None and "swd" not in self.unavailable:
            try:
                self._swd_ref = SWDReference(
                    real.swd, settings.swd, settings.swd_seed, device=settings.device
                )
            except SWDInputError as err:
                self.unavailable["swd"] = f"unavailable: real set: {err}"
        self._kxx = None
        if "kid" in settings.metrics and real.inception is not None:
            pool = real.inception.pool
            self._kxx = polynomial_kernel(pool, pool)
        self._kernels: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def rows(self) -> list[str]:
        return [row for m in self.settings.metrics for row in metric_rows(m, self.swd_resolutions)]

    def _fake_kernels(self, fake: SetFeatures) -> tuple[np.ndarray, np.ndarray]:
        key = id(fake)
        if key not in self._kernels:
            x, y = self.real.inception.pool, fake.inception.pool
            self._kernels = {key: (polynomial_kernel(x, y), polynomial_kernel(y, y))}
        return self._kernels[key]

    def evaluate(self, fake: SetFeatures, index: np.ndarray | None = None) -> Outcome:
        """Every requested metric of `fake` (its images at `index`, if given) vs the reference."""
        out = Outcome()
        idx = np.arange(len(fake)) if index is None else np.asarray(index)
        for metric in self.settings.metrics:
            rows = metric_rows(metric, self.swd_resolutions)
            reason = self.unavailable.get(metric)
            if reason is None:
                try:
                    out.values.update(self._metric(metric, fake, idx))
                    continue
                except (ValueError, SWDInputError, FRDError, np.linalg.LinAlgError) as err:
                    reason = f"unavailable: {err}"
            for row in rows:
                out.values[row] = None
                out.notes[row] = reason
        if index is None:
            self._annotate(out, len(fake))
        return out

    def _annotate(self, out: Outcome, n: int) -> None:
        if out.values.get("fid") is not None and min(n, len(self.real)) < RECOMMENDED_N:
            out.notes["fid"] = (
                f"N={n} vs {len(self.real)} < {RECOMMENDED_N}: biased upward, comparable only at equal N"
            )
        if "frd_log" in out.values and out.values["frd_log"] is None and "frd_log" not in out.notes:
            out.notes["frd_log"] = "undefined: log(0), the feature sets are identical"

    def _metric(self, metric: str, fake: SetFeatures, idx: np.ndarray) -> dict[str, float | None]:
        s = self.settings
        if metric in INCEPTION_METRICS and (self.real.inception is None or fake.inception is None):
            raise ValueError("no Inception features")
        if metric == "fid":
            return {"fid": fid_result(self.real.inception.pool, fake.inception.pool[idx], warn=False).value}
        if metric == "kid":
            kxy, kyy = self._fake_kernels(fake)
            mean, std = kid_from_kernels(
                self._kxx, kxy[:, idx], kyy[np.ix_(idx, idx)], s.kid_subsets, s.kid_subset_size, s.kid_seed
            )
            return {"kid": mean, "kid_std": std}
        if metric == "is":
            mean, std = inception_score(fake.inception.logits[idx], s.is_splits, s.is_seed)
            return {"is": mean, "is_std": std}
        if metric == "swd":
            if self._swd_ref is None or fake.swd is None:
                raise ValueError("no SWD descriptors")
            res = self._swd_ref.score(fake.swd, index=idx)
            return {"swd": res.average, **{f"swd_{r}": v for r, v in res.per_level.items()}}
        if metric == "frd":
            if self.real.radiomics is None or fake.radiomics is None:
                raise ValueError("no radiomics features")
            res = frd_from_features(self.real.radiomics, fake.radiomics.subset(idx))
            return {"frd": res.frd, "frd_log": res.frd_log}
        raise ValueError(f"unknown metric {metric!r}")
