"""`medtrans compare` option checks: every value refused with one line naming the option (or the
file), before any image is read, instead of a traceback from deep inside torch or numpy."""

import re
import zipfile
from pathlib import Path

import typer

MIN_SIZE, MAX_SIZE = 16, 4096  # SWD's pyramid needs 16 px; past 4096 one slice is 16 Mpx
DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _bad(option: str, value: object, allowed: str) -> typer.BadParameter:
    return typer.BadParameter(f"{option} {value}: {allowed}")


def check_device(device: str) -> None:
    """auto, cpu, cuda or cuda:N, and a CUDA device must be visible."""
    if not DEVICE.match(device):
        raise _bad("--device", device, "choose auto, cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise _bad("--device", device, "no CUDA GPU is visible on this machine; use --device cpu")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise _bad("--device", device, f"only {torch.cuda.device_count()} CUDA device(s) visible")


def check_extractor(path: Path | None) -> None:
    """A custom Inception weights file must exist and load as a torch file (weights only)."""
    if path is None:
        return
    if not path.is_file():
        raise typer.BadParameter(f"--extractor {path}: no such file")
    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear line
        raise typer.BadParameter(
            f"--extractor {path}: not a readable torch weights file ({err.__class__.__name__}); "
            "give the .pth of an FID Inception-v3 state dict"
        ) from None


def check_compare_options(
    *,
    size: int | None,
    device: str,
    bootstrap: int,
    batch_size: int,
    kid_subsets: int,
    kid_subset_size: int,
    is_splits: int,
    frd_workers: int,
    seed: int,
    extractor: Path | None,
) -> None:
    """Refuse any option value the metrics cannot use (typer.BadParameter: exit 2)."""
    if size is not None and not MIN_SIZE <= size <= MAX_SIZE:
        raise _bad("--size", size, f"must be between {MIN_SIZE} and {MAX_SIZE} pixels")
    if not 0 <= bootstrap <= 100_000:
        raise _bad("--bootstrap", bootstrap, "must be 0 (no intervals) to 100000 resamples")
    for option, value, low in (
        ("--batch-size", batch_size, 1),
        ("--kid-subsets", kid_subsets, 1),
        ("--kid-subset-size", kid_subset_size, 2),
        ("--is-splits", is_splits, 1),
        ("--frd-workers", frd_workers, 0),
        ("--seed", seed, 0),
    ):
        if value < low:
            raise _bad(option, value, f"must be at least {low}")
    check_device(device)
    check_extractor(extractor)


def uncomputed(rows: list[dict], requested: tuple[str, ...]) -> list[str]:
    """'metric: why' for each requested metric that has no value (weights missing, ...)."""
    missing = []
    for name in requested:
        own = [r for r in rows if r["metric"] == name or r["metric"].startswith(name + "_")]
        if not own or all(r["value"] is None for r in own):
            why = next((r["note"] for r in own if r.get("note")), "no value")
            missing.append(f"{name}: {why}")
    return missing
