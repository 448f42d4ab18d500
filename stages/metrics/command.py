"""`medtrans compare REAL FAKE [--source SOURCE]`: every metric between two image folders, like
`python -m pytorch_fid a b`, but reading PNG/JPEG, DICOM and NIfTI directly (volumes sliced and
windowed as in preprocess) and reporting every metric of the catalogue with its settings and
network hash. The pair metrics (NMI, MIND-SSC, NGF) compare each FAKE image with the SOURCE image
it was translated from (same file name, extension aside); without SOURCE they are skipped."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from medtrans.shared.bootstrap import subsample_indices
from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.device import resolve_device
from medtrans.shared.seeding import derive_seed
from medtrans.stages.metrics.extract import Network, locate_network
from medtrans.stages.metrics.frd import FRDError, extractor_settings
from medtrans.stages.metrics.images import (
    PLANES,
    FolderError,
    FolderImages,
    Windowing,
    load_folders,
    paired_sources,
)
from medtrans.stages.metrics.options import check_compare_options, uncomputed
from medtrans.stages.metrics.pairs import pair_metrics, pair_settings
from medtrans.stages.metrics.pipeline import FeatureSettings, ImageStack, extract_sets, score_sets
from medtrans.stages.metrics.results import MetricRow, format_table, write_rows
from medtrans.stages.metrics.scoring import ScoreSettings
from medtrans.stages.metrics.swd import SWDInputError, SWDParams
from medtrans.stages.metrics.weights import WeightsMismatch

CONVENTIONS = ("pytorch-fid", "torch-fidelity")
_PAIR_LABELS = ", ".join(catalogue.get(m).label for m in catalogue.using("pairs"))


def _parse_metrics(text: str) -> tuple[str, ...]:
    known = catalogue.names()
    names = tuple(dict.fromkeys(m.strip().lower() for m in text.split(",") if m.strip()))
    bad = [m for m in names if m not in known]
    if bad or not names:
        raise typer.BadParameter(f"unknown metric(s) {bad}; choose from {','.join(known)}")
    return names


@dataclass(frozen=True)
class CompareSettings:
    """Every knob of `medtrans compare` besides the two folders and the metrics."""

    weights: Path | None = None
    extractor: Path | None = None
    convention: str = "pytorch-fid"
    windowing: Windowing = Windowing()
    device: str = "auto"
    seed: int = 2020
    bootstrap: int = 0
    batch_size: int = 32
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    swd_channels: int = 3
    frd_workers: int = 0
    cache: Path | None = None
    skip_bad: bool = False


def compare(
    real: Path, fake: Path, metrics: tuple[str, ...] | None = None, source: Path | None = None, **options
) -> dict:
    """All requested metrics (default: every one in the catalogue, without the pair metrics when
    there is no `source`) of FAKE against REAL, and the pair metrics of each FAKE image against its
    SOURCE image; returns the JSON-ready result. `options`: the fields of `CompareSettings`."""
    if metrics is None:
        metrics = catalogue.names() if source is not None else without_pairs(catalogue.names())
    metrics = tuple(metrics)
    o = CompareSettings(**options)
    if o.convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {o.convention!r}; choose one of {', '.join(CONVENTIONS)}")
    if source is None and pair_metrics(metrics):
        raise ValueError(f"{', '.join(pair_metrics(metrics))}: pair metrics need a source folder (--source)")
    real_set, fake_set, source_set = _read_folders(real, fake, source, metrics, o.windowing, o.skip_bad)
    dev = resolve_device(o.device)
    needs_net = any(m in catalogue.needing_weights() for m in metrics)
    network = locate_network(o.weights, o.extractor) if needs_net else None
    params = SWDParams(channels=o.swd_channels)
    stacks = [
        ImageStack(name, s.names, s.images, derive_seed(o.seed, "swd", name))
        for name, s in (("real", real_set), ("fake", fake_set))
    ]
    if source_set is not None and pair_metrics(metrics):
        stacks[1].sources = paired_sources(fake_set, source_set)
    fs = FeatureSettings(o.convention, o.batch_size, dev, params, o.frd_workers, o.cache)
    feats, unavailable = extract_sets(stacks, metrics, network or Network(None, note="not requested"), fs)
    rows, _ = score_sets(
        feats[0], [("fake", feats[1])], _score_settings(o, metrics, params, dev), unavailable,
        lambda _name, n: _resamples(o, n), network.sha256 if network is not None else "",
        reference_resamples=_resamples(o, len(feats[0]), "reference"),
    )  # fmt: skip
    return {
        "real": _inputs(real_set),
        "fake": _inputs(fake_set),
        "source": _inputs(source_set) if source_set is not None else None,
        "image_size": list(real_set.images.shape[1:]),
        "network": network.describe() if network is not None else None,
        "settings": _settings_record(o, metrics, params),
        "rows": [r.as_dict() for r in rows],
    }


def _inputs(images: FolderImages) -> dict:
    """What was read from one folder, and what was skipped (bad) or ignored (not an image)."""
    return {
        "folder": str(images.folder), "n": len(images), "files": images.kinds,
        "skipped": [{"file": f, "reason": why} for f, why in images.skipped],
        "ignored": [{"file": f, "reason": why} for f, why in images.ignored],
    }  # fmt: skip


def without_pairs(metrics: tuple[str, ...]) -> tuple[str, ...]:
    pairs = set(pair_metrics(metrics))
    return tuple(m for m in metrics if m not in pairs)


def _read_folders(
    real: Path,
    fake: Path,
    source: Path | None,
    metrics: tuple[str, ...],
    windowing: Windowing,
    skip_bad: bool,
):
    """The folders' images (every bad file of all listed at once; SOURCE only for pair metrics),
    refused before any network runs where SWD would need one size."""
    use_source = source is not None and bool(pair_metrics(metrics))
    sets = load_folders((real, fake, source) if use_source else (real, fake), windowing, skip_bad)
    real_set, fake_set = sets[:2]
    source_set = sets[2] if use_source else None
    if "swd" in metrics and real_set.images.shape[1:] != fake_set.images.shape[1:]:
        raise FolderError(
            f"{fake}: images are {fake_set.images.shape[2]}x{fake_set.images.shape[1]} but {real} has "
            f"{real_set.images.shape[2]}x{real_set.images.shape[1]}; SWD needs one size (use --size)"
        )
    return real_set, fake_set, source_set


def _score_settings(o: CompareSettings, metrics: tuple[str, ...], params: SWDParams, dev) -> ScoreSettings:
    return ScoreSettings(
        metrics=metrics, kid_subsets=o.kid_subsets, kid_subset_size=o.kid_subset_size, kid_seed=o.seed,
        is_splits=o.is_splits, is_seed=o.seed, swd=params, swd_seed=derive_seed(o.seed, "swd", "directions"),
        device=str(dev),
    )  # fmt: skip


def _resamples(o: CompareSettings, n: int, role: str = "sets") -> np.ndarray | None:
    """Half-samples without replacement (`medtrans.shared.intervals`), from the compare seed."""
    if o.bootstrap <= 0:
        return None
    return subsample_indices(o.seed, "compare", n, o.bootstrap, role)


def _settings_record(o: CompareSettings, metrics: tuple[str, ...], params: SWDParams) -> dict:
    return {
        "metrics": list(metrics),
        "convention": o.convention,
        "windowing": asdict(o.windowing),
        "seed": o.seed,
        "bootstrap": o.bootstrap,
        "kid": {"subsets": o.kid_subsets, "subset_size": o.kid_subset_size},
        "is_splits": o.is_splits,
        "swd": asdict(params),
        "frd": extractor_settings() if "frd" in metrics else None,
        "pairs": pair_settings(metrics) or None,
    }


# The command's options, declared once each (help text with its option).
RealArg = Annotated[Path, typer.Argument(help="Folder of real (reference) images.")]
FakeArg = Annotated[Path, typer.Argument(help="Folder of generated / translated images.")]
SourceOpt = Annotated[
    Path | None,
    typer.Option(
        help="Folder of the images FAKE was translated from (same file names, any extension): "
        f"enables the pair metrics ({_PAIR_LABELS}), skipped without it."
    ),
]
MetricsOpt = Annotated[str, typer.Option(help=f"Comma-separated, from {','.join(catalogue.names())}.")]
OutOpt = Annotated[
    Path | None, typer.Option(help="Write the results as JSON here, and as CSV beside it (.csv).")
]
WeightsOpt = Annotated[
    Path | None, typer.Option(help="Folder with the standard Inception weights ($MEDTRANS_WEIGHTS).")
]
ExtractorOpt = Annotated[
    Path | None,
    typer.Option(help="Your own Inception weights file (FID layout); recorded as NOT the standard network."),
]
ConventionOpt = Annotated[str, typer.Option(help="Inception preprocessing: pytorch-fid or torch-fidelity.")]
PlaneOpt = Annotated[str, typer.Option(help="Slicing plane for volumes: axial, sagittal, coronal.")]
ModalityOpt = Annotated[str, typer.Option(help="Windowing of volumes: auto, MR (percentiles) or CT.")]
SizeOpt = Annotated[int | None, typer.Option(help="Resize every slice to SIZE x SIZE.")]
BootstrapOpt = Annotated[
    int, typer.Option(help="Half-sample replicates of both folders for 95% intervals (0: none).")
]
SeedOpt = Annotated[int, typer.Option(help="Seed of every random choice (KID/IS 2020 = torch-fidelity).")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
BatchOpt = Annotated[int, typer.Option(help="Inception batch size.")]
KidSubsetsOpt = Annotated[int, typer.Option(help="KID subsets.")]
KidSizeOpt = Annotated[int, typer.Option(help="KID subset size (capped at the set sizes).")]
IsSplitsOpt = Annotated[int, typer.Option(help="Inception Score splits.")]
SwdChannelsOpt = Annotated[int, typer.Option(help="SWD channels: 3 (reference, replicated) or 1.")]
FrdWorkersOpt = Annotated[int, typer.Option(help="FRD extraction processes (0: one per CPU).")]
CacheOpt = Annotated[Path | None, typer.Option(help="Folder caching FRD features by image sha256.")]
SkipBadOpt = Annotated[bool, typer.Option(help="Go on without unusable files (listed) instead of refusing.")]
INPUT_ERRORS = (FolderError, SWDInputError, FRDError, WeightsMismatch, FileNotFoundError, ValueError)


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_cmd(
        real: RealArg,
        fake: FakeArg,
        source: SourceOpt = None,
        metrics: MetricsOpt = ",".join(catalogue.names()),
        out: OutOpt = None,
        weights: WeightsOpt = None,
        extractor: ExtractorOpt = None,
        convention: ConventionOpt = "pytorch-fid",
        plane: PlaneOpt = "axial",
        modality: ModalityOpt = "auto",
        size: SizeOpt = None,
        bootstrap: BootstrapOpt = 0,
        seed: SeedOpt = 2020,
        device: DeviceOpt = "auto",
        batch_size: BatchOpt = 32,
        kid_subsets: KidSubsetsOpt = 100,
        kid_subset_size: KidSizeOpt = 1000,
        is_splits: IsSplitsOpt = 10,
        swd_channels: SwdChannelsOpt = 3,
        frd_workers: FrdWorkersOpt = 0,
        cache: CacheOpt = None,
        skip_bad: SkipBadOpt = False,
    ) -> None:
        """Compare two image folders (PNG/JPEG, DICOM, NIfTI) with every metric of the catalogue
        (the pair metrics with --source)."""
        settings = CompareSettings(
            weights=weights, extractor=extractor, convention=convention,
            windowing=Windowing(plane=plane, modality=modality, size=size), device=device, seed=seed,
            bootstrap=bootstrap, batch_size=batch_size, kid_subsets=kid_subsets,
            kid_subset_size=kid_subset_size, is_splits=is_splits, swd_channels=swd_channels,
            frd_workers=frd_workers, cache=cache, skip_bad=skip_bad,
        )  # fmt: skip
        try:
            names = _checked_names(metrics, source, settings)
            result = compare(real, fake, names, source, **vars(settings))
        except INPUT_ERRORS as err:
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            sys.exit(2)
        _show(result, real, fake, convention, out)
        missing = uncomputed(result["rows"], names)
        if missing:
            typer.secho(f"error: not computed: {'; '.join(missing)}", fg=typer.colors.RED, err=True)
            sys.exit(1)


def _checked_names(metrics: str, source: Path | None, o: CompareSettings) -> tuple[str, ...]:
    """The metrics to compute (pair metrics dropped, with a line, when there is no source), after
    every option has been checked, before any folder is read."""
    names = _parse_metrics(metrics)
    if source is None and pair_metrics(names):
        names = _skip_pairs(names)
    w = o.windowing
    if w.plane not in PLANES or w.modality not in ("auto", "MR", "CT") or o.swd_channels not in (1, 3):
        raise typer.BadParameter("plane: axial|sagittal|coronal; modality: auto|MR|CT; swd-channels: 1|3")
    check_compare_options(
        size=w.size, device=o.device, bootstrap=o.bootstrap, batch_size=o.batch_size,
        kid_subsets=o.kid_subsets, kid_subset_size=o.kid_subset_size, is_splits=o.is_splits,
        frd_workers=o.frd_workers, seed=o.seed, extractor=o.extractor,
    )  # fmt: skip
    return names


def _skip_pairs(names: tuple[str, ...]) -> tuple[str, ...]:
    """The metrics without the pair metrics, with one line saying so (no --source given)."""
    skipped = pair_metrics(names)
    labels = ", ".join(catalogue.get(m).label for m in skipped)
    typer.echo(f"skipped {labels}: pair metrics need --source DIR (the images FAKE was translated from)")
    rest = without_pairs(names)
    if not rest:
        raise typer.BadParameter(f"--metrics {','.join(names)}: only pair metrics, and no --source given")
    return rest


def _show(result: dict, real: Path, fake: Path, convention: str, out: Path | None) -> None:
    """The table on the terminal, and the JSON and CSV files where asked."""
    rows = [MetricRow(**r) for r in result["rows"]]
    net = result["network"]
    typer.echo(f"real: {real} ({result['real']['n']} images)   fake: {fake} ({result['fake']['n']} images)")
    if result["source"] is not None:
        typer.echo(
            f"source: {result['source']['folder']} ({result['source']['n']} images, paired by file name)"
        )
    if net and net.get("available"):
        kind = "standard" if net["standard"] else "CUSTOM, not the standard FID network"
        typer.echo(f"Inception: {net['file']} ({kind}) sha256 {net['sha256']}; convention {convention}")
    for side in ("real", "fake", "source"):
        for item in (result[side] or {}).get("skipped", []):
            typer.echo(f"skipped {item['file']}: {item['reason']}")
    typer.echo(format_table(rows, show_set=False))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        write_rows(out.with_suffix(".csv"), rows)
        typer.echo(f"wrote {out} and {out.with_suffix('.csv')}")
