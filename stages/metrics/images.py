"""Image folders for `medtrans compare`: PNG/JPEG, DICOM and NIfTI, all to 8-bit 2D slices.

2-D images are taken as they are (8-bit grayscale; RGB is converted to luminance; 16-bit PNGs
are windowed like MRI). Volumes are sliced and windowed as the preprocess stage does (its
reader is not imported: stages meet only in the run folder): reoriented to the closest RAS+
orientation, cut along the chosen plane in the radiological display orientation, scaled to
[0, 255] with the volume's own 0.5/99.5 percentiles (MRI) or a fixed Hounsfield window
(CT, level 400 width 1800), optionally resized (antialiased linear), rounded to uint8.

A DICOM series is every file with one SeriesInstanceUID, sorted along the slice normal, with
rescale slope/intercept applied; its modality comes from the Modality tag. A NIfTI volume is
CT when its minimum is at most -500 (air in Hounsfield units), MRI otherwise, unless the
caller says which. Blank slices of a volume (constant after windowing) are skipped; a blank
2-D image is an error, since the metrics are undefined on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from medtrans.shared.log import get_logger

log = get_logger("medtrans.metrics.images")

RASTER = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
NIFTI = (".nii", ".nii.gz")
PLANES = ("axial", "sagittal", "coronal")
MRI_PERCENTILES = (0.5, 99.5)
CT_WINDOW = (400.0, 1800.0)  # level, width (HU)
CT_MINIMUM = -500.0  # a volume reaching this is taken as CT when the modality is not given


class ImageSetError(ValueError):
    """A folder or file the metrics cannot use; the message names it and says why."""


@dataclass(frozen=True)
class Windowing:
    """How volumes become 8-bit slices (the preprocess stage's defaults)."""

    plane: str = "axial"
    modality: str = "auto"  # auto | MR | CT
    mri_percentiles: tuple[float, float] = MRI_PERCENTILES
    ct_window: tuple[float, float] = CT_WINDOW
    size: int | None = None  # resize every slice to size x size


@dataclass
class ImageSet:
    """The 8-bit slices of one folder (N, H, W), a name per slice (relative path, `#slice` for
    volumes) and how many files of each kind were read."""

    folder: Path
    names: list[str]
    images: np.ndarray
    kinds: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)


# ---------------------------------------------------------------------------------------------
# intensity and orientation (same rules as the preprocess stage)


def window_range(volume: np.ndarray, modality: str, w: Windowing) -> tuple[float, float]:
    if modality == "CT":
        level, width = w.ct_window
        return level - width / 2.0, level + width / 2.0
    lo, hi = np.percentile(volume, w.mri_percentiles)
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def to_uint8(image: np.ndarray, lo: float, hi: float, size: int | None) -> np.ndarray:
    scaled = np.clip((image.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0) * 255.0
    return _finish(scaled, size)


def _finish(image: np.ndarray, size: int | None) -> np.ndarray:
    if size is not None and image.shape != (size, size):
        from skimage.transform import resize

        image = resize(
            image.astype(np.float32),
            (size, size),
            order=1,
            anti_aliasing=True,
            preserve_range=True,
            mode="edge",
        )
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def display_slice(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """One slice of a RAS+ volume: patient's right on the image's left, anterior/superior up."""
    if plane == "axial":
        return volume[::-1, ::-1, index].T
    if plane == "sagittal":
        return volume[index, ::-1, ::-1].T
    return volume[::-1, index, ::-1].T


def _canonical(data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    import nibabel as nib

    return np.asarray(nib.as_closest_canonical(nib.Nifti1Image(data, affine)).dataobj, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# readers


def _check_finite(arr: np.ndarray, path: Path) -> None:
    if not np.isfinite(arr).all():
        raise ImageSetError(f"{path}: contains NaN or infinite values")


def _read_raster(path: Path, w: Windowing) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(im, dtype=np.float32)
                _check_finite(arr, path)
                return to_uint8(arr, *window_range(arr, "MR", w), w.size)
            arr = np.asarray(im.convert("L"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageSetError(f"{path}: unreadable image ({err})") from None
    return _finish(arr, w.size) if w.size is not None else arr


def _volume_slices(
    volume: np.ndarray, modality: str, w: Windowing, source: str
) -> list[tuple[str, np.ndarray]]:
    lo, hi = window_range(volume, modality, w)
    axis = {"sagittal": 0, "coronal": 1, "axial": 2}[w.plane]
    out, blank = [], 0
    for k in range(volume.shape[axis]):
        img = display_slice(volume, w.plane, k)
        if float(img.max()) == float(img.min()):
            blank += 1
            continue
        out.append((f"{source}#{k:04d}", to_uint8(img, lo, hi, w.size)))
    if blank:
        log.info("%s: skipped %d blank %s slice(s)", source, blank, w.plane)
    return out


def _modality(volume: np.ndarray, w: Windowing, tag: str | None = None) -> str:
    if w.modality in ("MR", "CT"):
        return w.modality
    if tag:
        return "CT" if tag.upper() == "CT" else "MR"
    return "CT" if float(volume.min()) <= CT_MINIMUM else "MR"


def _read_nifti(path: Path, w: Windowing, rel: str) -> list[tuple[str, np.ndarray]]:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as err:  # noqa: BLE001 - nibabel raises many kinds
        raise ImageSetError(f"{path}: unreadable NIfTI ({err})") from None
    _check_finite(data, path)
    data = np.squeeze(data)
    if data.ndim == 2:
        modality = _modality(data, w)
        return [(rel, to_uint8(data.T[::-1], *window_range(data, modality, w), w.size))]
    if data.ndim != 3:
        raise ImageSetError(f"{path}: expected a 2-D or 3-D image, got shape {data.shape}")
    volume = _canonical(data, img.affine)
    return _volume_slices(volume, _modality(volume, w), w, rel)


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _dicom_affine(ds, normal_step: np.ndarray) -> np.ndarray:
    """Voxel (row, column, slice) -> RAS mm for a series (DICOM geometry is LPS)."""
    iop = np.asarray(ds.ImageOrientationPatient, dtype=np.float64)
    row_dir, col_dir = iop[:3], iop[3:]  # along a row (column index), along a column (row index)
    dr, dc = (float(v) for v in getattr(ds, "PixelSpacing", (1.0, 1.0)))
    affine = np.eye(4)
    affine[:3, 0] = col_dir * dr
    affine[:3, 1] = row_dir * dc
    affine[:3, 2] = normal_step
    affine[:3, 3] = np.asarray(ds.ImagePositionPatient, dtype=np.float64)
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine


def _pixels(ds, path: Path) -> np.ndarray:
    try:
        arr = ds.pixel_array.astype(np.float32)
    except Exception as err:  # noqa: BLE001 - missing decoders, truncated files
        raise ImageSetError(f"{path}: cannot decode DICOM pixels ({err})") from None
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    arr = arr * slope + intercept
    _check_finite(arr, path)
    return arr


def _read_dicom_series(files: list[Path], w: Windowing, root: Path) -> list[tuple[str, np.ndarray]]:
    import pydicom

    datasets = []
    for path in files:
        try:
            datasets.append((path, pydicom.dcmread(path)))
        except Exception as err:  # noqa: BLE001
            raise ImageSetError(f"{path}: unreadable DICOM ({err})") from None
    first_path, first = datasets[0]
    tag = str(getattr(first, "Modality", "") or "")
    geometry = all(
        hasattr(ds, "ImageOrientationPatient") and hasattr(ds, "ImagePositionPatient") for _, ds in datasets
    )
    frames = int(getattr(first, "NumberOfFrames", 1) or 1)
    if len(datasets) == 1 and frames == 1 or not geometry:
        out = []  # independent 2-D images
        for path, ds in datasets:
            arr = _pixels(ds, path)
            if arr.ndim != 2:
                raise ImageSetError(f"{path}: DICOM without geometry must be 2-D, got shape {arr.shape}")
            modality = _modality(arr, w, tag)
            out.append(
                (path.relative_to(root).as_posix(), to_uint8(arr, *window_range(arr, modality, w), w.size))
            )
        return out
    iop = np.asarray(first.ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    if frames > 1:
        volume = _pixels(first, first_path)  # (frames, rows, cols)
        step = normal * float(
            getattr(first, "SpacingBetweenSlices", getattr(first, "SliceThickness", 1.0)) or 1.0
        )
        ref = first
    else:
        datasets.sort(key=lambda item: float(np.dot(normal, np.asarray(item[1].ImagePositionPatient, float))))
        shapes = {(int(ds.Rows), int(ds.Columns)) for _, ds in datasets}
        if len(shapes) > 1:
            raise ImageSetError(
                f"{files[0].parent}: one DICOM series with several image sizes {sorted(shapes)}"
            )
        volume = np.stack([_pixels(ds, p) for p, ds in datasets])
        ref = datasets[0][1]
        last = np.asarray(datasets[-1][1].ImagePositionPatient, float)
        step = (last - np.asarray(ref.ImagePositionPatient, float)) / (len(datasets) - 1)
    data = np.transpose(volume, (1, 2, 0))  # (row, column, slice)
    canonical = _canonical(data, _dicom_affine(ref, step))
    name = (
        Path(first_path).relative_to(root).parent.as_posix() + f"/series-{getattr(first, 'SeriesNumber', '')}"
    )
    return _volume_slices(canonical, _modality(canonical, w, tag), w, name.lstrip("./"))


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(NIFTI):
        return "nifti"
    if path.suffix.lower() in RASTER:
        return "raster"
    if _is_dicom(path):
        return "dicom"
    return None


def load_folder(folder: str | Path, windowing: Windowing = Windowing()) -> ImageSet:
    """Every readable image under `folder` (recursively, hidden files skipped) as 8-bit slices.

    Errors name the folder or file: no images, fewer than 2, a constant image, NaN, sizes that
    differ (pass a size to resize them)."""
    folder = Path(folder)
    if windowing.plane not in PLANES:
        raise ImageSetError(f"unknown plane {windowing.plane!r}; choose one of {', '.join(PLANES)}")
    if not folder.is_dir():
        raise ImageSetError(f"{folder}: not a folder")
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    slices: list[tuple[str, np.ndarray]] = []
    kinds: dict[str, int] = {}
    series: dict[str, list[Path]] = {}
    for path in files:
        kind = _kind(path)
        if kind is None:
            continue
        kinds[kind] = kinds.get(kind, 0) + 1
        rel = path.relative_to(folder).as_posix()
        if kind == "raster":
            slices.append((rel, _read_raster(path, windowing)))
        elif kind == "nifti":
            slices.extend(_read_nifti(path, windowing, rel))
        else:
            series.setdefault(_series_uid(path), []).append(path)
    for uid in sorted(series, key=lambda u: series[u][0]):
        slices.extend(_read_dicom_series(series[uid], windowing, folder))
    return _assemble(folder, slices, kinds)


def _series_uid(path: Path) -> str:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as err:  # noqa: BLE001
        raise ImageSetError(f"{path}: unreadable DICOM ({err})") from None
    return str(getattr(ds, "SeriesInstanceUID", "") or path.as_posix())


def _assemble(folder: Path, slices: list[tuple[str, np.ndarray]], kinds: dict[str, int]) -> ImageSet:
    if not slices:
        raise ImageSetError(f"{folder}: no images (PNG, JPEG, DICOM or NIfTI) found")
    return check_images(folder, [n for n, _ in slices], [a for _, a in slices], kinds)


def check_images(
    folder: Path, names: list[str], arrays: list[np.ndarray], kinds: dict[str, int] | None = None
) -> ImageSet:
    """Stack 2-D uint8 slices after the checks every metric needs (>= 2 images, one size, none
    constant); errors name the folder and the first offending image."""
    if len(arrays) < 2:
        raise ImageSetError(f"{folder}: {len(arrays)} image(s); the metrics need at least 2")
    shape = arrays[0].shape
    for name, arr in zip(names, arrays, strict=True):
        if arr.ndim != 2:
            raise ImageSetError(f"{folder}/{name}: expected a 2-D image, got shape {arr.shape}")
        if arr.shape != shape:
            raise ImageSetError(
                f"{folder}/{name}: size {arr.shape[1]}x{arr.shape[0]} differs from {names[0]} "
                f"({shape[1]}x{shape[0]}); all images must have one size (resize them, e.g. --size)"
            )
        if int(arr.max()) == int(arr.min()):
            raise ImageSetError(
                f"{folder}/{name}: constant image (every pixel {int(arr.min())}); metrics are undefined"
            )
    return ImageSet(Path(folder), list(names), np.stack(arrays).astype(np.uint8), dict(kinds or {}))
