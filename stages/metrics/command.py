"""`medtrans compare REAL FAKE`: every metric between two image folders, like `python -m pytorch_fid
a b`, but reading PNG/JPEG, DICOM and NIfTI directly (volumes sliced and windowed as in
preprocess) and reporting FID, KID, IS, SWD and FRD with their settings and network hash."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from medtrans.shared.device import resolve_device
from medtrans.shared.seeding import derive_seed
from medtrans.stages.metrics.bootstrap import intervals, replicate_values
from medtrans.stages.metrics.extract import Network, add_radiomics, load_network, locate_network, set_features
from medtrans.stages.metrics.frd import FRDError, extractor_settings
from medtrans.stages.metrics.images import PLANES, ImageSetError, Windowing, load_folder
from medtrans.stages.metrics.options import check_compare_options, uncomputed
from medtrans.stages.metrics.results import MetricRow, format_table, write_rows
from medtrans.stages.metrics.scoring import INCEPTION_METRICS, METRICS, Scorer, ScoreSettings
from medtrans.stages.metrics.swd import SWDInputError, SWDParams
from medtrans.stages.metrics.weights import WeightsMismatch

CONVENTIONS = ("pytorch-fid", "torch-fidelity")


def _parse_metrics(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(m.strip().lower() for m in text.split(",") if m.strip()))
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise typer.BadParameter(f"unknown metric(s) {bad}; choose from {','.join(METRICS)}")
    return names


def compare(
    real: Path,
    fake: Path,
    metrics: tuple[str, ...] = METRICS,
    *,
    weights: Path | None = None,
    extractor: Path | None = None,
    convention: str = "pytorch-fid",
    windowing: Windowing = Windowing(),
    device: str = "auto",
    seed: int = 2020,
    bootstrap: int = 0,
    batch_size: int = 32,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    is_splits: int = 10,
    swd_channels: int = 3,
    frd_workers: int = 0,
    cache: Path | None = None,
) -> dict:
    """All requested metrics of FAKE against REAL; returns the JSON-ready result."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")
    real_set, fake_set = load_folder(real, windowing), load_folder(fake, windowing)
    if "swd" in metrics and real_set.images.shape[1:] != fake_set.images.shape[1:]:
        raise ImageSetError(
            f"{fake}: images are {fake_set.images.shape[2]}x{fake_set.images.shape[1]} but {real} has "
            f"{real_set.images.shape[2]}x{real_set.images.shape[1]}; SWD needs one size (use --size)"
        )
    dev = resolve_device(device)
    needs_net = any(m in metrics for m in INCEPTION_METRICS)
    network = locate_network(weights, extractor) if needs_net else None
    if network is not None:
        load_network(network, dev)
    params = SWDParams(channels=swd_channels)
    feats = []
    for name, s in (("real", real_set), ("fake", fake_set)):
        feats.append(
            set_features(
                s.images, s.names, metrics, network or Network(None, note="not requested"),
                convention=convention, batch_size=batch_size, device=dev, swd_params=params,
                swd_seed=derive_seed(seed, "swd", name), what=name,
            )
        )  # fmt: skip
    if "frd" in metrics:
        add_radiomics(feats, [real_set.images, fake_set.images], frd_workers, cache)
    unavailable = {
        m: network.note for m in INCEPTION_METRICS if network is not None and network.model is None
    }
    settings = ScoreSettings(
        metrics=metrics, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, kid_seed=seed,
        is_splits=is_splits, is_seed=seed, swd=params, swd_seed=derive_seed(seed, "swd", "directions"),
        device=str(dev),
    )  # fmt: skip
    scorer = Scorer(feats[0], settings, unavailable)
    point = scorer.evaluate(feats[1])
    ci = {}
    if bootstrap > 0:
        idx = np.random.default_rng(derive_seed(seed, "bootstrap")).integers(
            0, len(fake_set), (bootstrap, len(fake_set))
        )
        ci = intervals(replicate_values(scorer, feats[1], idx))
    sha = network.sha256 if network is not None else ""
    rows = [
        MetricRow(
            "fake", m, point.values.get(m), *ci.get(m, (None, None)), len(fake_set),
            sha if m.split("_")[0] in INCEPTION_METRICS else "", point.notes.get(m, ""),
        )
        for m in scorer.rows()
    ]  # fmt: skip
    return {
        "real": {"folder": str(real), "n": len(real_set), "files": real_set.kinds},
        "fake": {"folder": str(fake), "n": len(fake_set), "files": fake_set.kinds},
        "image_size": list(real_set.images.shape[1:]),
        "network": network.describe() if network is not None else None,
        "settings": {
            "metrics": list(metrics),
            "convention": convention,
            "windowing": asdict(windowing),
            "seed": seed,
            "bootstrap": bootstrap,
            "kid": {"subsets": kid_subsets, "subset_size": kid_subset_size},
            "is_splits": is_splits,
            "swd": asdict(params),
            "frd": extractor_settings() if "frd" in metrics else None,
        },
        "rows": [r.as_dict() for r in rows],
    }


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_cmd(
        real: Annotated[Path, typer.Argument(help="Folder of real (reference) images.")],
        fake: Annotated[Path, typer.Argument(help="Folder of generated / translated images.")],
        metrics: Annotated[str, typer.Option(help="Comma-separated: fid,kid,is,swd,frd.")] = ",".join(
            METRICS
        ),
        out: Annotated[
            Path | None, typer.Option(help="Write the results as JSON here, and as CSV beside it (.csv).")
        ] = None,
        weights: Annotated[
            Path | None, typer.Option(help="Folder with the standard Inception weights ($MEDTRANS_WEIGHTS).")
        ] = None,
        extractor: Annotated[
            Path | None,
            typer.Option(
                help="Your own Inception weights file (FID layout); recorded as NOT the standard network."
            ),
        ] = None,
        convention: Annotated[
            str, typer.Option(help="Inception preprocessing: pytorch-fid or torch-fidelity.")
        ] = ("pytorch-fid"),
        plane: Annotated[
            str, typer.Option(help="Slicing plane for volumes: axial, sagittal, coronal.")
        ] = "axial",
        modality: Annotated[
            str, typer.Option(help="Windowing of volumes: auto, MR (percentiles) or CT.")
        ] = "auto",
        size: Annotated[int | None, typer.Option(help="Resize every slice to SIZE x SIZE.")] = None,
        bootstrap: Annotated[
            int, typer.Option(help="Bootstrap resamples of FAKE for 95% intervals (0: none).")
        ] = 0,
        seed: Annotated[
            int, typer.Option(help="Seed of every random choice (KID/IS 2020 = torch-fidelity).")
        ] = 2020,
        device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
        batch_size: Annotated[int, typer.Option(help="Inception batch size.")] = 32,
        kid_subsets: Annotated[int, typer.Option(help="KID subsets.")] = 100,
        kid_subset_size: Annotated[
            int, typer.Option(help="KID subset size (capped at the set sizes).")
        ] = 1000,
        is_splits: Annotated[int, typer.Option(help="Inception Score splits.")] = 10,
        swd_channels: Annotated[int, typer.Option(help="SWD channels: 3 (reference, replicated) or 1.")] = 3,
        frd_workers: Annotated[int, typer.Option(help="FRD extraction processes (0: one per CPU).")] = 0,
        cache: Annotated[
            Path | None, typer.Option(help="Folder caching FRD features by image sha256.")
        ] = None,
    ) -> None:
        """Compare two image folders (PNG/JPEG, DICOM, NIfTI): FID, KID, IS, SWD, FRD."""
        try:
            names = _parse_metrics(metrics)
            if plane not in PLANES or modality not in ("auto", "MR", "CT") or swd_channels not in (1, 3):
                raise typer.BadParameter(
                    "plane: axial|sagittal|coronal; modality: auto|MR|CT; swd-channels: 1|3"
                )
            check_compare_options(
                size=size, device=device, bootstrap=bootstrap, batch_size=batch_size, kid_subsets=kid_subsets,
                kid_subset_size=kid_subset_size, is_splits=is_splits, frd_workers=frd_workers, seed=seed,
                extractor=extractor,
            )  # fmt: skip
            result = compare(
                real, fake, names, weights=weights, extractor=extractor, convention=convention,
                windowing=Windowing(plane=plane, modality=modality, size=size), device=device, seed=seed,
                bootstrap=bootstrap, batch_size=batch_size, kid_subsets=kid_subsets,
                kid_subset_size=kid_subset_size, is_splits=is_splits, swd_channels=swd_channels,
                frd_workers=frd_workers, cache=cache,
            )  # fmt: skip
        except (
            ImageSetError,
            SWDInputError,
            FRDError,
            WeightsMismatch,
            FileNotFoundError,
            ValueError,
        ) as err:
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            sys.exit(2)
        rows = [MetricRow(**r) for r in result["rows"]]
        net = result["network"]
        typer.echo(
            f"real: {real} ({result['real']['n']} images)   fake: {fake} ({result['fake']['n']} images)"
        )
        if net and net.get("available"):
            kind = "standard" if net["standard"] else "CUSTOM, not the standard FID network"
            typer.echo(f"Inception: {net['file']} ({kind}) sha256 {net['sha256']}; convention {convention}")
        typer.echo(format_table(rows, show_set=False))
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2) + "\n")
            write_rows(out.with_suffix(".csv"), rows)
            typer.echo(f"wrote {out} and {out.with_suffix('.csv')}")
        missing = uncomputed(result["rows"], names)
        if missing:
            typer.secho(f"error: not computed: {'; '.join(missing)}", fg=typer.colors.RED, err=True)
            sys.exit(1)
