"""Structure-preservation metrics of image pairs: each source slice against its translation (or
any image against a changed copy of it), no labels and no pretrained weights.

The metrics are the catalogue's entries with `inputs="pairs"` (NMI, MIND-SSC, NGF: `nmi.py`,
`mind.py`, `ngf.py`); each scorer class names its metric's two steps, `describe` (what the metric
needs of one side: bin indices, descriptors, normalised gradients) and `compare` (two sides ->
per-pair values), so adding one is a module, a scorer and one registration. A set's value is the
mean over its pairs; its bootstrap replicate r is the mean over the pairs at the shared resample
positions, like Dice. Every function here is deterministic: no random choice, hence no seed.

    pair_values(names, sources, others) -> {metric: (N,) per-pair values}
    score_pairs(names, sources, others) -> {metric: mean over pairs}
    pair_values_many(names, sources, {set: others}) -> {set: {metric: values}}: the sources are
        described once (per block of `CHUNK` images) for every set paired with them

`sources` and `others` are (N, H, W) stacks (uint8 or float) of one shape, image i of one paired
with image i of the other. A pair whose value is undefined (NaN: both images constant for NMI,
either constant for NGF) is left out of the mean; a set without any defined pair is a ValueError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.stages.metrics._checks import as_pair_stacks
from medtrans.stages.metrics.scoring import scorer_class

CHUNK = 32  # images per block: bounds the memory of the described sides (MIND: 4 floats a pixel)


def pair_metrics(names: Iterable[str]) -> tuple[str, ...]:
    """The names among `names` that are pair metrics (catalogue `inputs="pairs"`), in order."""
    return tuple(n for n in names if catalogue.get(n).inputs == "pairs")


def _steps(name: str) -> tuple[Callable, Callable]:
    """(describe, compare) of one pair metric."""
    spec = catalogue.get(name)
    if spec.inputs != "pairs":
        known = ", ".join(catalogue.using("pairs"))
        raise ValueError(f"metric {name!r} is not a pair metric; pair metrics: {known}")
    cls = scorer_class(spec)
    return cls.describe, cls.compare


def _stack(images) -> np.ndarray:
    a = np.asarray(images)
    return a[None] if a.ndim == 2 else a


def pair_values_many(
    names: Iterable[str], sources: np.ndarray, others: dict[str, np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
    """{set: {metric: (N,) value of each pair}} of several stacks paired with one `sources`."""
    steps = {name: _steps(name) for name in names}
    if not others:
        return {}
    identity = {key for key, o in others.items() if o is sources}  # described once, not twice
    sources = _stack(sources)
    others = {key: _stack(o) for key, o in others.items()}
    for key, other in others.items():
        if other.shape != sources.shape:
            raise ValueError(
                f"{key or 'pairs'}: expected two (N, H, W) image stacks of one shape, got "
                f"{sources.shape} and {other.shape}"
            )
    out = {key: {name: np.empty(len(sources)) for name in steps} for key in others}
    for start in range(0, len(sources), CHUNK):
        part = slice(start, start + CHUNK)
        chunks = {key: as_pair_stacks(sources[part], o[part], key or "pairs") for key, o in others.items()}
        src = next(iter(chunks.values()))[0]
        for name, (describe, compare) in steps.items():
            described = describe(src)
            for key, (_, other) in chunks.items():
                out[key][name][part] = compare(described, described if key in identity else describe(other))
    return out


def pair_settings(names: Iterable[str]) -> dict[str, dict]:
    """{metric: its constants} (NMI's bins, MIND-SSC's radius and dilation, ...), recorded with
    the results and in the metrics unit's config, so a change of constant re-runs the stage."""
    return {name: dict(scorer_class(catalogue.get(name)).settings) for name in pair_metrics(names)}


def pair_values(names: Iterable[str], sources: np.ndarray, others: np.ndarray) -> dict[str, np.ndarray]:
    """{metric: (N,) float64 value of each pair}, NaN where a pair's value is undefined."""
    return pair_values_many(names, sources, {"": others})[""]


def mean_over_pairs(values: np.ndarray, index: np.ndarray | None = None) -> float:
    """The mean of the defined per-pair values (at `index`, a bootstrap resample, if given)."""
    v = np.asarray(values, dtype=np.float64)
    if index is not None:
        v = v[np.asarray(index)]
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("undefined for every pair (constant images)")
    return float(v.mean())


def score_pairs(names: Iterable[str], sources: np.ndarray, others: np.ndarray) -> dict[str, float]:
    """{metric: mean over the pairs} of each named pair metric, e.g. every original image against
    its perturbed copy: `score_pairs(pair_metrics(catalogue.names()), originals, perturbed)`."""
    return {name: mean_over_pairs(v) for name, v in pair_values(names, sources, others).items()}
