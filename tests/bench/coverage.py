"""Coverage of the metrics' image-level intervals on synthetic features whose true value is known.

Every metric of the catalogue is scored by the metrics stage's own code (`Scorer`, `score_sets`)
on synthetic `SetFeatures`: Gaussian Inception pool features (FID, KID), logits made from them
(IS), clustered Gaussian neighbourhood descriptors (SWD: the image is the unit, as in the stage)
and Gaussian radiomics (FRD). The target of an interval is the metric's expected value at these
set sizes (README "Intervals"), known here to Monte-Carlo precision from `truth_draws`
independent draws of both sets; for FID the population value (closed form between the two
Gaussians) is reported beside it. A trial draws a reference and a set, builds the interval, and
counts whether it holds the target:

- `half`: the stage's interval (half-samples of both sets without replacement, reverse form);
- `percentile`: the construction it replaced (the set resampled with replacement, the reference
  fixed, percentile interval), to show what it did.

Deterministic from `seed` (the study seed). `make bench` runs `run_coverage()` (>= 200 trials);
tests/test_intervals.py a small version.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import linalg

from medtrans.shared.bootstrap import subsample_indices
from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.seeding import rng
from medtrans.stages.metrics.bootstrap import replicate_values
from medtrans.stages.metrics.features import Features
from medtrans.stages.metrics.frd import RadiomicsFeatures
from medtrans.stages.metrics.pipeline import score_sets
from medtrans.stages.metrics.scoring import Scorer, ScoreSettings, SetFeatures
from medtrans.stages.metrics.swd import SWDDescriptors, SWDParams

SWD = SWDParams(nhood_size=3, nhoods_per_image=8, dir_repeats=1, dirs_per_repeat=32, channels=1)


@dataclass(frozen=True)
class Scenario:
    """Two Gaussian populations: real N(0, I); fake shifted by `shift` along the first axis,
    with its first variance scaled by `spread`. `dim`: Inception feature width."""

    n: int = 40
    n_ref: int = 40
    dim: int = 8
    shift: float = 1.0
    spread: float = 1.5


def _fake_side(x: np.ndarray, s: Scenario) -> np.ndarray:
    x = x.copy()
    x[..., 0] = x[..., 0] * np.sqrt(s.spread) + s.shift
    return x


def draw_set(gen: np.random.Generator, n: int, s: Scenario, fake: bool) -> SetFeatures:
    """One synthetic set of n images with every metric's features."""
    side = (lambda a: _fake_side(a, s)) if fake else (lambda a: a)
    pool = side(gen.standard_normal((n, s.dim)))
    logits = 1.5 * pool[:, :5]
    k = SWD.nhood_size
    cluster = 0.6 * gen.standard_normal((n, 1, k * k))  # each image's own offset: images are the unit
    desc = side(cluster + gen.standard_normal((n, SWD.nhoods_per_image, k * k)))
    levels = [torch.from_numpy(desc.reshape(n, SWD.nhoods_per_image, 1, k, k).astype(np.float32))]
    radiomics = side(gen.standard_normal((n, 6)))
    return SetFeatures(
        [f"{i:04d}" for i in range(n)],
        Features(pool, logits),
        SWDDescriptors((16,), levels, SWD.channels),
        RadiomicsFeatures([f"f{j}" for j in range(6)], radiomics),
    )


def settings(metrics: tuple[str, ...]) -> ScoreSettings:
    """Every metric deterministic given the sets (one KID subset of all images, one IS split)."""
    return ScoreSettings(metrics=metrics, kid_subsets=1, kid_subset_size=10**6, is_splits=1, swd=SWD)


def population_fid(s: Scenario) -> float:
    """The closed form between N(0, I) and the fake Gaussian."""
    cov = np.eye(s.dim)
    cov[0, 0] = s.spread
    return float(s.shift**2 + np.trace(np.eye(s.dim) + cov - 2 * linalg.sqrtm(cov).real))


def expected_values(s: Scenario, metrics: tuple[str, ...], draws: int, seed: int) -> dict[str, float]:
    """Each metric's expected value at (n, n_ref), by Monte Carlo over independent draws."""
    gen = rng(seed, "coverage", "truth", s.n, s.dim)
    sums: dict[str, list[float]] = {m: [] for m in metrics}
    for _ in range(draws):
        real, fake = draw_set(gen, s.n_ref, s, False), draw_set(gen, s.n, s, True)
        values = Scorer(real, settings(metrics)).evaluate(fake).values
        for m in metrics:
            if values.get(m) is not None:
                sums[m].append(values[m])
    return {m: float(np.mean(v)) if v else float("nan") for m, v in sums.items()}


def half_interval(real, fake, cfg: ScoreSettings, replicates: int, seed: int) -> dict[str, tuple]:
    """The metrics stage's rows for one trial: {metric: (value, lo, hi)}."""
    rows, _ = score_sets(
        real, [("fake", fake)], cfg, {}, lambda _name, n: subsample_indices(seed, "coverage", n, replicates),
        "", reference_resamples=subsample_indices(seed, "coverage", len(real), replicates, "reference"),
    )  # fmt: skip
    return {r.metric: (r.value, r.ci_low, r.ci_high) for r in rows}


def percentile_interval_old(real, fake, cfg: ScoreSettings, replicates: int, seed: int) -> dict[str, tuple]:
    """The replaced construction: fake resampled with replacement, reference fixed, percentiles."""
    scorer = Scorer(real, cfg)
    point = scorer.evaluate(fake).values
    idx = rng(seed, "coverage", "with-replacement").integers(0, len(fake), (replicates, len(fake)))
    reps = replicate_values(scorer, [("fake", fake, idx)])["fake"]
    out = {}
    for m, v in point.items():
        lo, hi = np.percentile(reps[m][np.isfinite(reps[m])], [2.5, 97.5]) if v is not None else (None,) * 2
        out[m] = (v, lo, hi)
    return out


METHODS = {"half": half_interval, "percentile": percentile_interval_old}


def trial_intervals(
    s: Scenario, metrics: tuple[str, ...], trials: int, replicates: int, seed: int, method: str = "half"
) -> dict[str, np.ndarray]:
    """Per metric, a (trials, 3) array of (point, low, high), NaN where undefined; each trial
    draws a fresh reference and set."""
    build, cfg = METHODS[method], settings(metrics)
    gen = rng(seed, "coverage", "trials", s.n, s.dim)  # both methods see the same draws
    out = {m: np.full((trials, 3), np.nan) for m in metrics}
    for t in range(trials):
        real, fake = draw_set(gen, s.n_ref, s, False), draw_set(gen, s.n, s, True)
        rows = build(real, fake, cfg, replicates, seed + t)
        for m in metrics:
            out[m][t] = [np.nan if v is None else v for v in rows.get(m, (None, None, None))]
    return out


def coverage(intervals: np.ndarray, truth: float) -> dict:
    """The share of trials whose interval holds `truth`, and whether each held its own point."""
    ok = np.isfinite(intervals).all(axis=1)
    v, lo, hi = intervals[ok].T
    if not ok.any() or not np.isfinite(truth):
        return {"coverage": float("nan"), "trials": int(ok.sum()), "holds_point": float("nan")}
    return {
        "coverage": float(np.mean((lo <= truth) & (truth <= hi))),
        "trials": int(ok.sum()),
        "holds_point": float(np.mean((lo <= v) & (v <= hi))),
        "mean_width": float(np.mean(hi - lo)),
    }


def simulated_metrics() -> tuple[str, ...]:
    """The catalogue's metrics this simulation has features for (every one read from features or
    pixel neighbourhoods; a metric of image pairs would need images)."""
    return tuple(n for n in catalogue.names() if catalogue.get(n).inputs in ("features", "pixels"))


def run_coverage(trials: int = 200, replicates: int = 200, truth_draws: int = 2000, seed: int = 1338) -> dict:
    """The full simulation for `make bench`: coverage of both constructions, every metric."""
    s, metrics = Scenario(), simulated_metrics()
    truth = expected_values(s, metrics, truth_draws, seed)
    result = {"name": "coverage", "scenario": s.__dict__, "trials": trials, "replicates": replicates,
              "truth_draws": truth_draws, "seed": seed, "expected_values": truth,
              "population_fid": population_fid(s)}  # fmt: skip
    for method in METHODS:
        rows = trial_intervals(s, metrics, trials, replicates, seed, method)
        result[method] = {m: coverage(rows[m], truth[m]) for m in metrics}
        if "fid" in metrics:
            result[method]["fid_population"] = coverage(rows["fid"], population_fid(s))
    return result
