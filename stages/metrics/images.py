"""Image folders for `medtrans compare`: PNG/JPEG/TIFF, DICOM and NIfTI, all to 8-bit 2D slices.

Files are read by the shared readers (`medtrans.shared.volumes`) and volumes are windowed and
sliced by the shared policy, exactly as preprocess does: reoriented to the closest RAS+
orientation, cut along the chosen plane in the radiological display orientation, scaled to
[0, 255] with the volume's own 0.5/99.5 percentiles (MRI) or a fixed Hounsfield window (CT,
level 400 width 1800), optionally resized (antialiased linear), rounded to uint8. A volume
slice that is constant once windowed is skipped with a log line.

2-D images are taken as they are (8-bit grayscale; colour converted to luminance; 16-bit PNGs
windowed like MRI). A DICOM series is every file with one SeriesInstanceUID; files without
slice geometry (or a lone single-frame file) are 2-D images windowed by their Modality tag. A
NIfTI volume is CT when its minimum is at most -500 (air in HU), MRI otherwise, unless the
caller says which.

Every file that cannot be used (unreadable, over the pixel limit, NaN, a constant 2-D image, a
size other than the first image's, a broken series) is collected; a folder with any is refused
with the whole list, unless `skip_bad` is set, in which case they are skipped and recorded.
Files that are not images (notes, DICOM without pixels) are ignored and recorded as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medtrans.shared.log import get_logger
from medtrans.shared.volumes.dicom import (
    Series,
    group_series,
    is_dicom_file,
    read_dicom_image,
    read_dicom_series,
)
from medtrans.shared.volumes.errors import VolumeError
from medtrans.shared.volumes.files import NIFTI_SUFFIXES, is_nifti, load_nifti
from medtrans.shared.volumes.raster import RASTER_SUFFIXES, is_raster, read_raster
from medtrans.shared.volumes.volume import Volume, require_finite
from medtrans.shared.volumes.walk import files_under
from medtrans.shared.volumes.windowing import (
    CT_WINDOW,
    MRI_PERCENTILES,
    PLANE_AXIS,
    PLANES,
    guess_modality,
    intensity_range,
    is_constant,
    resize_image,
    to_display,
    to_uint8,
)

log = get_logger("medtrans.metrics.images")

__all__ = [
    "PLANES", "FolderError", "FolderImages", "Windowing", "load_folder", "load_folders",
    "pair_key", "paired_sources",
]  # fmt: skip

Problems = list[tuple[str, str]]  # (file, reason)
Named = list[tuple[str, str, np.ndarray]]  # (file, slice name, 8-bit image)


class FolderError(ValueError):
    """A folder or file the metrics cannot use; the message names each one and says why."""


@dataclass(frozen=True)
class Windowing:
    """How volumes become 8-bit slices (the preprocess stage's defaults)."""

    plane: str = "axial"
    modality: str = "auto"  # auto | MR | CT
    mri_percentiles: tuple[float, float] = MRI_PERCENTILES
    ct_window: tuple[float, float] = CT_WINDOW
    size: int | None = None  # resize every slice to size x size


@dataclass
class FolderImages:
    """The 8-bit slices of one folder (N, H, W), a name per slice (relative path, `#slice` for
    volumes), how many files of each kind were read, and the files skipped or ignored."""

    folder: Path
    names: list[str]
    images: np.ndarray
    kinds: dict[str, int] = field(default_factory=dict)
    skipped: Problems = field(default_factory=list)
    ignored: Problems = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class _Reading:
    """What reading a folder collects before the checks."""

    folder: Path
    w: Windowing
    slices: Named = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    problems: Problems = field(default_factory=list)
    ignored: Problems = field(default_factory=list)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.folder).as_posix()


# ---------------------------------------------------------------------------------------------
# finding files


def _kind(path: Path) -> str | None:
    """raster | nifti | dicom, or None for a file that is not an image."""
    if is_nifti(path):
        return "nifti"
    if is_raster(path):
        return "raster"
    if not path.suffix:
        with open(path, "rb"):  # an unreadable file is a problem, not a non-image
            pass
    return "dicom" if is_dicom_file(path) else None


# ---------------------------------------------------------------------------------------------
# windowing


def _modality(values: np.ndarray, w: Windowing, tag: str | None = None) -> str:
    return w.modality if w.modality in ("MR", "CT") else guess_modality(values, tag)


def _image(arr: np.ndarray, modality: str, w: Windowing) -> np.ndarray:
    lo, hi = intensity_range(arr, modality, w.mri_percentiles, w.ct_window)
    return resize_image(to_uint8(arr, lo, hi), w.size)


def _volume_slices(r: _Reading, volume: Volume, tag: str | None, file: Path, name: str) -> None:
    """The slices of a canonical volume; those constant once windowed are skipped and logged."""
    data, w = volume.data, r.w
    lo, hi = intensity_range(data, _modality(data, w, tag), w.mri_percentiles, w.ct_window)
    constant = 0
    for k in range(data.shape[PLANE_AXIS[w.plane]]):
        img = resize_image(to_uint8(to_display(data, w.plane, k), lo, hi), w.size)
        if is_constant(img):
            constant += 1
            continue
        r.slices.append((str(file), f"{name}#{k:04d}", img))
    if constant:
        log.info("%s: skipped %d %s slice(s) constant after windowing", name, constant, w.plane)


# ---------------------------------------------------------------------------------------------
# readers (each raises VolumeError for its file)


def _raster(r: _Reading, path: Path) -> None:
    arr, high_depth = read_raster(path)
    if high_depth:
        require_finite(path, arr, "pixels")
        img = _image(arr, "MR", r.w)
    else:
        img = resize_image(arr, r.w.size) if r.w.size is not None else arr
    r.slices.append((str(path), r.rel(path), img))


def _nifti(r: _Reading, path: Path) -> None:
    data, affine = load_nifti(path)
    require_finite(path, data)
    data = np.squeeze(data)
    if data.ndim == 2:
        r.slices.append((str(path), r.rel(path), _image(data.T[::-1], _modality(data, r.w), r.w)))
        return
    if data.ndim != 3:
        raise VolumeError(path, f"expected a 2-D or 3-D image, got shape {data.shape}")
    _volume_slices(r, Volume(data, affine).canonical(), None, path, r.rel(path))


def _dicom(r: _Reading, series: Series) -> None:
    """A series with geometry as a volume; files without geometry (or a lone 2-D file) as images."""
    first = series.files[0]
    if not series.has_pixels:
        r.ignored.append((str(first), f"DICOM series without pixel data ({len(series.files)} file(s))"))
        return
    if not series.geometry or (len(series.files) == 1 and series.frames == 1):
        for path in series.files:
            try:
                arr, tag = read_dicom_image(path)
                require_finite(path, arr, "pixels")
            except VolumeError as err:
                r.problems.append((err.file, err.reason))
                continue
            r.slices.append((str(path), r.rel(path), _image(arr, _modality(arr, r.w, tag), r.w)))
        return
    volume = read_dicom_series(series, r.problems)
    require_finite(first.parent, volume.data)
    name = (r.rel(first.parent) + f"/series-{series.number or ''}").lstrip("./")
    _volume_slices(r, volume.canonical(), series.modality, first.parent, name)


def _read(folder: Path, w: Windowing) -> _Reading:
    r = _Reading(folder, w)
    dicoms: list[Path] = []
    for path in files_under(folder, r.problems):
        try:
            kind = _kind(path)
            if kind is None:
                r.ignored.append((str(path), "not an image (PNG, JPEG, TIFF, DICOM or NIfTI)"))
                continue
            r.kinds[kind] = r.kinds.get(kind, 0) + 1
            if kind == "dicom":
                dicoms.append(path)
            else:
                (_raster if kind == "raster" else _nifti)(r, path)
        except VolumeError as err:
            r.problems.append((err.file, err.reason))
        except OSError as err:
            r.problems.append((str(path), f"unreadable file ({err.strerror or err})"))
    for series in sorted(group_series(dicoms, r.problems), key=lambda s: s.files[0]):
        try:
            _dicom(r, series)
        except VolumeError as err:
            r.problems.append((err.file, err.reason))
    return r


# ---------------------------------------------------------------------------------------------
# checks


def _bad_images(slices: Named) -> Problems:
    """2-D images the metrics cannot use: constant, or of another size than the first."""
    bad: Problems = []
    if not slices:
        return bad
    first_name, shape = slices[0][1], slices[0][2].shape
    resize = "all images must have one size (resize them, e.g. --size)"
    for file, _name, img in slices:
        if img.ndim != 2:
            bad.append((file, f"expected a 2-D image, got shape {img.shape}"))
        elif img.shape != shape:
            size = f"{img.shape[1]}x{img.shape[0]}"
            bad.append((file, f"size {size} differs from {first_name} ({shape[1]}x{shape[0]}); {resize}"))
        elif is_constant(img):
            bad.append((file, f"constant image (every pixel {int(img.min())}); metrics are undefined"))
    return bad


def _listing(folder: Path, problems: Problems) -> str:
    lines = "\n".join(f"  {file}: {why}" for file, why in problems)
    return (
        f"{folder}: {len(problems)} bad file(s); fix or remove them, or pass --skip-bad to go on "
        f"without them (recorded in the results):\n{lines}"
    )


def _finish(r: _Reading, skip_bad: bool) -> FolderImages:
    problems = list(dict.fromkeys(r.problems + _bad_images(r.slices)))
    if problems and not skip_bad:
        raise FolderError(_listing(r.folder, problems))
    bad = {file for file, _ in problems}
    for file, why in problems:
        log.warning("skipped %s: %s", file, why)
    for file, why in r.ignored:
        log.info("ignored %s: %s", file, why)
    kept = [(name, img) for file, name, img in r.slices if file not in bad]
    if not kept:
        raise FolderError(f"{r.folder}: no usable images (PNG, JPEG, TIFF, DICOM or NIfTI) found")
    if len(kept) < 2:
        raise FolderError(f"{r.folder}: {len(kept)} image(s); the metrics need at least 2")
    names, arrays = [n for n, _ in kept], [a for _, a in kept]
    return FolderImages(r.folder, names, np.stack(arrays).astype(np.uint8), r.kinds, problems, r.ignored)


def load_folders(folders, windowing: Windowing = Windowing(), skip_bad: bool = False) -> list[FolderImages]:
    """Every readable image under each folder (recursively, hidden files skipped) as 8-bit
    slices. Without `skip_bad`, one `FolderError` lists every bad file of every folder."""
    if windowing.plane not in PLANES:
        raise FolderError(f"unknown plane {windowing.plane!r}; choose one of {', '.join(PLANES)}")
    out, errors = [], []
    for folder in map(Path, folders):
        if not folder.is_dir():
            errors.append(f"{folder}: not a folder")
            continue
        try:
            out.append(_finish(_read(folder, windowing), skip_bad))
        except FolderError as err:
            errors.append(str(err))
    if errors:
        raise FolderError("\n".join(errors))
    return out


def load_folder(
    folder: str | Path, windowing: Windowing = Windowing(), skip_bad: bool = False
) -> FolderImages:
    """One folder's images (see `load_folders`)."""
    return load_folders([folder], windowing, skip_bad)[0]


# ---------------------------------------------------------------------------------------------
# pairs: each image of a folder with the image of another folder it was made from

_PAIR_SUFFIXES = tuple(sorted({*NIFTI_SUFFIXES, *RASTER_SUFFIXES, ".dcm", ".dicom"}, key=len, reverse=True))


def pair_key(name: str) -> str:
    """A slice name without its image extension (`a/b.png` and `a/b.dcm` -> `a/b`; a volume's
    `#slice` kept): the name by which a translated image finds its source."""
    path, sep, k = name.partition("#")
    low = path.lower()
    suffix = next((s for s in _PAIR_SUFFIXES if low.endswith(s)), "")
    return path[: len(path) - len(suffix)] + sep + k


def paired_sources(images: FolderImages, sources: FolderImages) -> np.ndarray:
    """The source image of every image of `images`, in its order, matched by `pair_key`; a
    FolderError names the images without exactly one source, or says the sizes differ."""
    (h, w), (sh, sw) = images.images.shape[1:], sources.images.shape[1:]
    if (h, w) != (sh, sw):
        raise FolderError(
            f"{images.folder}: images are {w}x{h} but the sources in {sources.folder} are {sw}x{sh}; "
            "the pair metrics compare each image with its source pixel by pixel (use --size)"
        )
    by_key: dict[str, list[int]] = {}
    for i, name in enumerate(sources.names):
        by_key.setdefault(pair_key(name), []).append(i)
    problems: Problems = []
    picked = []
    for name in images.names:
        found = by_key.get(pair_key(name), [])
        if len(found) == 1:
            picked.append(found[0])
        else:
            why = "no source image of that name" if not found else "several source images of that name"
            problems.append((name, f"{why} in {sources.folder} (extension aside)"))
    if problems:
        lines = "\n".join(f"  {file}: {why}" for file, why in problems)
        raise FolderError(
            f"{images.folder}: {len(problems)} image(s) without one source image of the same name; the "
            f"pair metrics compare each image with the source it was made from:\n{lines}"
        )
    return sources.images[np.asarray(picked)]
