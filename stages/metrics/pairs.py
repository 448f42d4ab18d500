"""Structure-preservation metrics of image pairs: each source slice against its translation (or
any image against a changed copy of it), no labels and no pretrained weights.

The metrics are the catalogue's entries with `inputs="pairs"` (NMI, MIND-SSC, NGF: `nmi.py`,
`mind.py`, `ngf.py`); each scorer class names its per-pair function in `pair_values`, so adding
one is a module, a scorer and one registration. A set's value is the mean over its pairs; its
bootstrap replicate r is the mean over the pairs at the shared resample positions, like Dice.
Every function here is deterministic: no random choice, hence no seed.

    pair_values(names, sources, others) -> {metric: (N,) per-pair values}
    score_pairs(names, sources, others) -> {metric: mean over pairs}

`sources` and `others` are (N, H, W) stacks (uint8 or float) of one shape, image i of one paired
with image i of the other. A pair whose value is undefined (NaN: both images constant for NMI,
either constant for NGF) is left out of the mean; a set without any defined pair is a ValueError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.stages.metrics.scoring import scorer_class


def pair_metrics(names: Iterable[str]) -> tuple[str, ...]:
    """The names among `names` that are pair metrics (catalogue `inputs="pairs"`), in order."""
    return tuple(n for n in names if catalogue.get(n).inputs == "pairs")


def pair_function(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The per-pair function of one pair metric: (sources, others) -> (N,) values."""
    spec = catalogue.get(name)
    if spec.inputs != "pairs":
        known = ", ".join(catalogue.using("pairs"))
        raise ValueError(f"metric {name!r} is not a pair metric; pair metrics: {known}")
    return scorer_class(spec).pair_values


def pair_settings(names: Iterable[str]) -> dict[str, dict]:
    """{metric: its constants} (NMI's bins, MIND-SSC's radius and dilation, ...), recorded with
    the results and in the metrics unit's config, so a change of constant re-runs the stage."""
    return {name: dict(scorer_class(catalogue.get(name)).settings) for name in pair_metrics(names)}


def pair_values(names: Iterable[str], sources: np.ndarray, others: np.ndarray) -> dict[str, np.ndarray]:
    """{metric: (N,) float64 value of each pair}, NaN where a pair's value is undefined."""
    return {name: np.asarray(pair_function(name)(sources, others), dtype=np.float64) for name in names}


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
