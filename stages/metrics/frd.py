"""Frechet Radiomics Distance (FRD; Konz, Osuala et al., arXiv 2412.01496) through `frd-score`.

The features are frd-score's own: for every image its v1 extractor (PyRadiomics, provided by
`pyradiomics-bhklab`: Original + LoG sigma 2,3,4,5 + Wavelet images; firstorder, glcm, glrlm,
glszm, ngtdm; binWidth 5, normalize with scale 100, voxelArrayShift 300, force2D) runs through
frd-score's `process_image_mask_pair` on the image written as an 8-bit PNG, with its whole-image
mask (one corner pixel zeroed). What this module adds: extraction spread over all CPU cores in a
process pool (one ITK thread per worker), and a cache of per-image features keyed by the sha256
of the pixels and the extractor's versions, so an image is extracted once per machine.

The distance follows frd-score v1 step by step (`calculate_feature_statistics` and
`compute_frd`): images with a NaN feature dropped, features as float32, z-scored with the
statistics of the first (reference, real) set by frd-score's `z_score_normalize`, feature
columns with NaN/inf in either set dropped, then the squared Frechet distance of the two
Gaussians. frd-score reports log(d^2), which is -inf for identical sets; here both are kept:
`frd` = d^2 and `frd_log` = log(d^2), None where d^2 = 0 (the caller writes an empty value and
a note, never -inf); d^2 below 1e-10 of tr S1 + tr S2 is rounding noise and counts as 0
(identical sets). The Frechet term is the exact float64 one of `fid.py` instead of
frd-score's scipy.sqrtm (same value to about 1e-6 relative; exact also for singular covariances).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from medtrans.shared.hashing import digest, sha256_bytes
from medtrans.shared.log import get_logger, progress
from medtrans.stages.metrics.fid import fid_result

FRD_VERSION = "v1"
ZERO_TOLERANCE = 1e-10  # d^2 below this fraction of tr S1 + tr S2 is rounding noise
log = get_logger("medtrans.metrics.frd")


class FRDError(ValueError):
    """Features FRD cannot use (too few images, nothing extractable); the message says which."""


def extractor_settings() -> dict:
    """What the per-image features depend on (part of every cache key and config digest)."""
    return {
        "frd_version": FRD_VERSION,
        "frd-score": metadata.version("frd-score"),
        "pyradiomics": metadata.version("pyradiomics-bhklab"),
    }


def image_key(image: np.ndarray) -> str:
    """sha256 of an 8-bit image's shape and pixels."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    return sha256_bytes(f"{image.shape[0]}x{image.shape[1]}:".encode() + image.tobytes())


@dataclass
class RadiomicsFeatures:
    """Per-image radiomics features: `values` (N, F) float64 in the order of `names`."""

    names: list[str]
    values: np.ndarray

    def subset(self, idx) -> RadiomicsFeatures:
        return RadiomicsFeatures(self.names, self.values[np.asarray(idx)])


# ---------------------------------------------------------------------------------------------
# per-image extraction (runs in worker processes)

_WORKER: dict = {}


def _silence() -> None:
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    from radiomics import setVerbosity

    setVerbosity(60)


def _worker_init() -> None:
    import SimpleITK as sitk
    from frd_score import frd as frd_lib

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    _silence()
    _WORKER["extractor"] = frd_lib.get_feature_extractor(frd_version=FRD_VERSION, image_dim=2)
    _WORKER["tmp"] = tempfile.mkdtemp(prefix="medtrans-frd-")


def _extract(image: np.ndarray) -> tuple[list[str], list[float]] | str:
    """frd-score's own per-image v1 extraction of one 8-bit image (written as a PNG, as frd-score
    would read it from a folder). A failure (PyRadiomics cannot bin a constant image) comes back
    as its message: that image gets NaN features, which frd-score v1 drops."""
    from frd_score import frd as frd_lib
    from PIL import Image

    if "extractor" not in _WORKER:
        _worker_init()
    path = os.path.join(_WORKER["tmp"], f"{os.getpid()}.png")
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="L").save(path)
    try:
        result = frd_lib.process_image_mask_pair(
            (path, None), feature_extractor=_WORKER["extractor"], frd_version=FRD_VERSION
        )
    except Exception as err:  # noqa: BLE001 - PyRadiomics raises many kinds
        return f"{type(err).__name__}: {err}"
    if result is None:
        return "no features (mask of <= 1 pixel)"
    values, named, _ = result
    return list(named.keys()), [float(v) for v in values]


class FeatureCache:
    """Per-image features on disk, one .npz per (image sha256, extractor versions)."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder is not None else None
        self.salt = digest(extractor_settings())

    def _path(self, key: str) -> Path:
        full = sha256_bytes((self.salt + key).encode())
        return self.folder / full[:2] / f"{full}.npz"

    def get(self, key: str) -> tuple[list[str], np.ndarray] | None:
        if self.folder is None:
            return None
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                return [str(n) for n in z["names"]], z["values"].astype(np.float64)
        except (OSError, ValueError, KeyError):
            return None  # a damaged cache entry is recomputed

    def put(self, key: str, names: list[str], values) -> None:
        if self.folder is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
        np.savez(tmp, names=np.asarray(names), values=np.asarray(values, dtype=np.float64))
        os.replace(tmp, path)


def default_workers(workers: int = 0) -> int:
    """0 means one worker per CPU this process may use."""
    if workers > 0:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _context():
    # fork: workers inherit the imported PyRadiomics (seconds saved per worker); they use no torch
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def extract_radiomics(
    images: np.ndarray,
    workers: int = 0,
    cache_dir: str | Path | None = None,
    names: list[str] | None = None,
    show_progress: bool = True,
) -> RadiomicsFeatures:
    """frd-score v1 features of every (H, W) uint8 image in `images`, over `workers` processes.

    `names` (e.g. file names) only label errors. Cached images are not extracted again."""
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise FRDError(f"expected (N, H, W) uint8 images, got {images.dtype} {images.shape}")
    labels = names or [f"image {i}" for i in range(len(images))]
    cache = FeatureCache(cache_dir)
    keys = [image_key(img) for img in images]
    found, todo = _cached(cache, keys)
    failed: dict[str, str] = {}
    if todo:
        _extract_missing(images, todo, workers, cache, found, failed, show_progress)
    if not found:
        first_key = next(iter(failed))
        raise FRDError(f"{labels[keys.index(first_key)]}: radiomics extraction failed ({failed[first_key]})")
    for key, message in failed.items():
        log.warning(
            "FRD: %s: radiomics extraction failed (%s); its features are NaN",
            labels[keys.index(key)],
            message,
        )
    return _feature_table(keys, labels, found, failed)


def _cached(
    cache: FeatureCache, keys: list[str]
) -> tuple[dict[str, tuple[list[str], np.ndarray]], dict[str, int]]:
    """(features found in the cache by key, {key: first image position} still to extract)."""
    found: dict[str, tuple[list[str], np.ndarray]] = {}
    todo: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key in found or key in todo:
            continue
        hit = cache.get(key)
        if hit is not None:
            found[key] = hit
        else:
            todo[key] = i
    return found, todo


def _extract_missing(images, todo, workers, cache, found, failed, show_progress) -> None:
    """Extract the images of `todo` in a process pool, into `found` (and the cache) or `failed`."""
    n = default_workers(workers)
    log.info(
        "FRD: extracting radiomics of %d image(s) with %d worker(s) (%d cached)", len(todo), n, len(found)
    )
    items = list(todo.items())
    _silence()
    from frd_score import frd as _preload  # noqa: F401 - imported before the fork

    with ProcessPoolExecutor(max_workers=n, mp_context=_context(), initializer=_worker_init) as pool:
        results = pool.map(_extract, [images[i] for _, i in items], chunksize=1)
        pairs = zip(items, results, strict=True)
        for (key, _), result in (
            progress(pairs, "FRD radiomics", total=len(items)) if show_progress else pairs
        ):
            if isinstance(result, str):
                failed[key] = result
                continue
            cache.put(key, *result)
            found[key] = (result[0], np.asarray(result[1], dtype=np.float64))


def _feature_table(keys, labels, found, failed) -> RadiomicsFeatures:
    """One row per image (NaN where extraction failed); every image must give the same features."""
    ref_key = next(k for k in keys if k in found)
    first = found[ref_key][0]
    rows = []
    for key, label in zip(keys, labels, strict=True):
        if key in failed:
            rows.append(np.full(len(first), np.nan))
            continue
        fnames, values = found[key]
        if fnames != first:
            raise FRDError(
                f"{label}: its radiomics features differ from those of {labels[keys.index(ref_key)]} "
                "(images of different sizes?)"
            )
        rows.append(values)
    return RadiomicsFeatures(first, np.stack(rows))


# ---------------------------------------------------------------------------------------------
# the distance


@dataclass(frozen=True)
class FRDResult:
    frd: float  # squared Frechet distance of the z-scored radiomics
    frd_log: float | None  # frd-score v1's reported value log(d^2); None when d^2 = 0
    n_real: int
    n_fake: int
    n_features: int  # feature columns used (after dropping NaN/inf columns)
    dropped_images: tuple[int, int]  # images with a NaN feature, dropped per set

    @property
    def note(self) -> str:
        parts = []
        if self.frd_log is None:
            parts.append("frd_log undefined: log(0) for identical feature sets")
        if any(self.dropped_images):
            parts.append(
                f"dropped images with NaN radiomics: {self.dropped_images[0]} real, "
                f"{self.dropped_images[1]} fake"
            )
        return "; ".join(parts)


def _clean(values: np.ndarray, what: str) -> tuple[np.ndarray, int]:
    bad = np.isnan(values).any(axis=1)
    kept = values[~bad].astype(np.float32)
    if len(kept) < 2:
        raise FRDError(
            f"FRD needs at least 2 images with finite radiomics in the {what} set, got {len(kept)}"
        )
    return kept, int(bad.sum())


def frd_from_features(real, fake) -> FRDResult:
    """FRD between radiomics of a reference (real) set and another set, as frd-score v1."""
    from frd_score.frd import z_score_normalize

    real = real.values if isinstance(real, RadiomicsFeatures) else np.asarray(real, dtype=np.float64)
    fake = fake.values if isinstance(fake, RadiomicsFeatures) else np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise FRDError(f"radiomics feature shapes do not match: {real.shape} vs {fake.shape}")
    r, r_drop = _clean(real, "real")
    f, f_drop = _clean(fake, "fake")
    with np.errstate(divide="ignore", invalid="ignore"):
        nr = z_score_normalize(r, 0.0, 1.0, replace_nan=False, base_distribution=r, handle_std_zero=False)
        nf = z_score_normalize(f, 0.0, 1.0, replace_nan=False, base_distribution=r, handle_std_zero=False)
    keep = np.isfinite(nr).all(axis=0) & np.isfinite(nf).all(axis=0)
    if not keep.any():
        raise FRDError("no radiomics feature varies across the real set: FRD is undefined (constant images?)")
    a, b = nr[:, keep].astype(np.float64), nf[:, keep].astype(np.float64)
    value = fid_result(a, b, warn=False).value
    # identical sets give d^2 = 0 up to rounding (frd-score: -inf after the log); call it 0
    if value <= ZERO_TOLERANCE * (a.var(axis=0, ddof=1).sum() + b.var(axis=0, ddof=1).sum()):
        value = 0.0
    return FRDResult(
        frd=value,
        frd_log=float(np.log(value)) if value > 0 else None,
        n_real=len(r),
        n_fake=len(f),
        n_features=int(keep.sum()),
        dropped_images=(r_drop, f_drop),
    )
