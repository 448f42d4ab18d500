"""The perceptual metrics, each declared once: what it is called, which rows it writes, which way
is better, what it reads. Config validation, scoring, `medtrans compare` and the report read this
list; no torch and no metric code here, so the report can know a metric without importing it.

Adding a metric: a module whose scorer class follows `medtrans.stages.metrics.scorers` (it
prepares the real set once and scores a set, or a resample of it, from per-image features), and
one `register(MetricSpec(...))` naming that class in `scorer`. A pair metric (`inputs="pairs"`)
compares each source slice with its translation instead of a set with the real reference: its
scorer names its per-pair function (`medtrans.stages.metrics.pairs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["lower", "higher"]
# What a metric is computed from: per-image network or radiomics features; pixel neighbourhoods
# of the images; or each source image paired with its translation.
Inputs = Literal["features", "pixels", "pairs"]
# How the note of a metric with no meaning for a set begins (a pair metric of the real-vs-real
# floor, which is no translation): no value, and the report does not list it as unavailable.
NOT_APPLICABLE = "not applicable"


@dataclass(frozen=True)
class MetricSpec:
    """One metric. Its rows in metrics.csv: `name`, then `spread` (its own spread, e.g. kid_std,
    never correlated with anatomy), then `variants`, then `name_<side>` per SWD pyramid level
    where `per_level`."""

    name: str
    label: str  # in the report's tables and figures
    direction: Direction  # which values mean a more realistic translation
    inputs: Inputs
    needs_weights: bool  # reads the FID Inception network (missing weights: rows say so)
    scorer: str  # "module:Class" computing it (imported by the metrics stage only)
    spread: str | None = None
    variants: tuple[str, ...] = ()
    per_level: bool = False
    summary: str = ""  # one line for `medtrans compare --help`

    def rows(self, levels: tuple[int, ...] = ()) -> list[str]:
        """The CSV rows it writes (`levels`: the SWD pyramid sides, where `per_level`)."""
        extra = [self.spread] if self.spread else []
        sides = [f"{self.name}_{side}" for side in levels] if self.per_level else []
        return [self.name, *extra, *self.variants, *sides]


_REGISTRY: dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> MetricSpec:
    """Add a metric (the name must be new: one declaration per metric)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"metric {spec.name!r} is registered twice")
    if not spec.name.isidentifier() or spec.name != spec.name.lower():
        raise ValueError(f"metric name {spec.name!r}: use a lower-case identifier")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a metric (for tests that register a toy one)."""
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """Every registered metric, in declaration order (the report's column order)."""
    return tuple(_REGISTRY)


def get(name: str) -> MetricSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(_REGISTRY)}") from None


def needing_weights() -> tuple[str, ...]:
    return tuple(n for n, s in _REGISTRY.items() if s.needs_weights)


def using(inputs: Inputs) -> tuple[str, ...]:
    """The metrics computed from one kind of input ("pairs": source slice and translation)."""
    return tuple(n for n, s in _REGISTRY.items() if s.inputs == inputs)


def family(row: str) -> MetricSpec | None:
    """The metric a CSV row belongs to (swd_32 -> swd, frd_log -> frd), None if unregistered."""
    if row in _REGISTRY:
        return _REGISTRY[row]
    owners = [s for n, s in _REGISTRY.items() if row.startswith(n + "_")]
    return max(owners, key=lambda s: len(s.name)) if owners else None


def direction(row: str) -> int:
    """+1 where higher values of the row mean a better translation, -1 where lower values do."""
    spec = family(row)
    return 1 if spec is not None and spec.direction == "higher" else -1


def is_spread(row: str) -> bool:
    """Whether the row is a metric's own spread (kid_std, is_std), not a measure of realism."""
    spec = family(row)
    return spec is not None and row == spec.spread


def label(row: str) -> str:
    """FID, KID, ..., with the variant after it (SWD 32, FRD log); an unregistered row's first
    word in capitals."""
    spec = family(row)
    name = spec.name if spec is not None else row.split("_", 1)[0]
    rest = row[len(name) :].lstrip("_")
    head = spec.label if spec is not None else name.upper()
    return f"{head} {rest}" if rest else head


_SCORERS = "medtrans.stages.metrics.scorers"
register(
    MetricSpec(
        "fid", "FID", "lower", "features", True, f"{_SCORERS}:FIDScorer",
        summary="Frechet distance of Inception pool3 features",
    )
)  # fmt: skip
register(
    MetricSpec(
        "kid", "KID", "lower", "features", True, f"{_SCORERS}:KIDScorer", spread="kid_std",
        summary="unbiased MMD^2 of Inception pool3 features, cubic kernel",
    )
)  # fmt: skip
register(
    MetricSpec(
        "is", "IS", "higher", "features", True, f"{_SCORERS}:ISScorer", spread="is_std",
        summary="Inception Score of the translated set alone",
    )
)  # fmt: skip
register(
    MetricSpec(
        "swd", "SWD", "lower", "pixels", False, f"{_SCORERS}:SWDScorer", per_level=True,
        summary="sliced Wasserstein distance of Laplacian-pyramid neighbourhoods",
    )
)  # fmt: skip
register(
    MetricSpec(
        "frd", "FRD", "lower", "features", False, f"{_SCORERS}:FRDScorer", variants=("frd_log",),
        summary="Frechet distance of radiomics features",
    )
)  # fmt: skip
register(
    MetricSpec(
        "nmi", "NMI", "higher", "pairs", False, f"{_SCORERS}:NMIScorer",
        summary="normalised mutual information of each source image and its translation",
    )
)  # fmt: skip
register(
    MetricSpec(
        "mind", "MIND-SSC", "lower", "pairs", False, f"{_SCORERS}:MINDScorer",
        summary="MIND-SSC descriptor distance of each source image and its translation",
    )
)  # fmt: skip
register(
    MetricSpec(
        "ngf", "NGF", "higher", "pairs", False, f"{_SCORERS}:NGFScorer",
        summary="normalised gradient fields: edges of each source image kept in its translation",
    )
)  # fmt: skip
