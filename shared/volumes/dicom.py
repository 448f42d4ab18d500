"""DICOM: files grouped into series by SeriesInstanceUID, a series stacked into a volume sorted
by position along the slice normal (rescale slope/intercept applied, LPS geometry to RAS), and
single 2-D images for files without geometry.

Problems with one file go to a `rejected` list of (file, reason) and the rest of the series is
still used; a series that cannot form one volume (no readable slice, mixed geometry, duplicate
or missing positions, over the pixel limit) is a `VolumeError`."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from medtrans.shared.volumes import jpeg12
from medtrans.shared.volumes.errors import VolumeError, why
from medtrans.shared.volumes.limits import check_pixels
from medtrans.shared.volumes.volume import LPS_TO_RAS, Volume
from medtrans.shared.volumes.walk import files_under

jpeg12.register()

Rejected = list[tuple[str, str]]
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, Pillow's RGB -> L
DUPLICATE_MM = 1e-4  # two slices closer than this along the normal are one position


@dataclass
class Series:
    """The headers of one DICOM series: what choosing it needs, and its claimed size."""

    uid: str
    description: str
    manufacturer: str
    modality: str
    patient_id: str
    number: int
    files: list[Path] = field(default_factory=list)
    has_pixels: bool = True
    geometry: bool = True  # every file has ImageOrientationPatient and ImagePositionPatient
    frames: int = 1  # NumberOfFrames, Rows and Columns of the first file
    rows: int = 0
    columns: int = 0


def is_dicom_file(path: Path) -> bool:
    """A .dcm/.dicom file, or a file without suffix carrying the DICM preamble."""
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


def _count(ds, keyword: str, path: Path, default: int = 1) -> int:
    """An integer tag (NumberOfFrames, Rows, ...) or a `VolumeError` naming its bad value."""
    value = getattr(ds, keyword, None)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        raise VolumeError(path, f"invalid {keyword} {str(value)[:40]!r} (not a number)") from None


def _has_pixels(ds) -> bool:
    return "PixelData" in ds or "FloatPixelData" in ds


def _header(path: Path, rejected: Rejected):
    """The header of one file (large values such as pixels read on demand), or None if rejected."""
    try:
        ds = pydicom.dcmread(path, defer_size=256)
        str(ds.SeriesInstanceUID)
    except (InvalidDicomError, AttributeError) as err:
        kind = (
            "not a DICOM file"
            if isinstance(err, InvalidDicomError)
            else "DICOM file without SeriesInstanceUID"
        )
        rejected.append((str(path), f"unsupported or unreadable file ({kind})"))
        return None
    except Exception as err:  # noqa: BLE001 - truncated files raise many kinds of errors
        rejected.append((str(path), f"corrupt DICOM ({type(err).__name__})"))
        return None
    if _has_pixels(ds) and ("Rows" not in ds or "Columns" not in ds):
        rejected.append((str(path), "DICOM image without Rows/Columns (0028,0010)/(0028,0011)"))
        return None
    try:
        for keyword in ("NumberOfFrames", "Rows", "Columns", "SeriesNumber"):
            _count(ds, keyword, path, 0)
    except VolumeError as err:
        rejected.append((err.file, err.reason))
        return None
    return ds


def group_series(files: list[Path], rejected: Rejected) -> list[Series]:
    """The DICOM series among `files` (headers only), ordered by series number and UID."""
    groups: dict[str, Series] = {}
    for path in files:
        ds = _header(path, rejected)
        if ds is None:
            continue
        uid = str(ds.SeriesInstanceUID)
        if uid not in groups:
            groups[uid] = Series(
                uid=uid,
                description=str(getattr(ds, "SeriesDescription", "")),
                manufacturer=str(getattr(ds, "Manufacturer", "")),
                modality=str(getattr(ds, "Modality", "")),
                patient_id=str(getattr(ds, "PatientID", "")),
                number=_count(ds, "SeriesNumber", path, 0),
                frames=_count(ds, "NumberOfFrames", path) or 1,
                rows=_count(ds, "Rows", path, 0),
                columns=_count(ds, "Columns", path, 0),
            )
        series = groups[uid]
        series.files.append(path)
        series.has_pixels &= _has_pixels(ds)
        series.geometry &= "ImageOrientationPatient" in ds and "ImagePositionPatient" in ds
    return sorted(groups.values(), key=lambda s: (s.number, s.uid))


def scan_dicom(folder: Path, rejected: Rejected) -> list[Series]:
    """Every DICOM series under `folder` (hidden files skipped); other files and unreadable
    sub-folders go to `rejected`."""
    return group_series(files_under(Path(folder), rejected), rejected)


def _pixels(ds, path: Path) -> np.ndarray:
    """The stored values with rescale slope/intercept applied, after the size check."""
    if not _has_pixels(ds):
        raise VolumeError(path, "no pixel data")
    frames = _count(ds, "NumberOfFrames", path) or 1
    check_pixels(path, (frames, _count(ds, "Rows", path, 0), _count(ds, "Columns", path, 0)))
    try:
        arr = ds.pixel_array.astype(np.float32)
    except Exception as err:  # noqa: BLE001 - missing decoders, truncated pixel data
        raise VolumeError(path, f"unreadable DICOM slice ({why(err, path)})") from None
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    inter = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    return arr * slope + inter


def read_dicom_image(path: Path) -> tuple[np.ndarray, str]:
    """A 2-D DICOM image (no geometry needed; colour as luminance) and its Modality tag."""
    try:
        ds = pydicom.dcmread(path)
    except Exception as err:  # noqa: BLE001
        raise VolumeError(path, f"unreadable DICOM ({why(err, path)})") from None
    if _has_pixels(ds) and ("Rows" not in ds or "Columns" not in ds):
        raise VolumeError(path, "DICOM image without Rows/Columns (0028,0010)/(0028,0011)")
    arr = _pixels(ds, path)
    if arr.ndim == 3 and arr.shape[-1] == 3 and _count(ds, "SamplesPerPixel", path) == 3:
        arr = arr @ LUMA  # colour (pydicom gives RGB) to luminance, as Pillow converts to "L"
    if arr.ndim != 2:
        raise VolumeError(
            path, f"a DICOM without slice geometry must be one 2-D image, got shape {arr.shape}"
        )
    return arr, str(getattr(ds, "Modality", "") or "")


def _read_slice(path: Path):
    """(path, pixels, orientation, position, spacing) of one single-frame slice."""
    ds = pydicom.dcmread(path)
    arr = _pixels(ds, path)
    iop = np.array([float(x) for x in ds.ImageOrientationPatient])
    ipp = np.array([float(x) for x in ds.ImagePositionPatient])
    spacing = tuple(float(x) for x in ds.PixelSpacing)
    return path, arr, iop, ipp, spacing


def _read_slices(series: Series, rejected: Rejected) -> list:
    slices = []
    for path in series.files:
        try:
            item = _read_slice(path)
        except VolumeError as err:
            rejected.append((err.file, err.reason))
            continue
        except Exception as err:  # noqa: BLE001 - truncated files, missing geometry tags
            rejected.append((str(path), f"unreadable DICOM slice ({type(err).__name__})"))
            continue
        if item[1].ndim != 2:
            rejected.append((str(path), f"not a single-frame image (shape {item[1].shape})"))
            continue
        slices.append(item)
    return slices


def _check_geometry(slices: list, first: Path) -> None:
    shapes = {s[1].shape for s in slices}
    iops = {tuple(np.round(s[2], 4)) for s in slices}
    spacings = {tuple(np.round(s[4], 4)) for s in slices}
    if len(shapes) > 1 or len(iops) > 1 or len(spacings) > 1:
        raise VolumeError(
            first, f"mixed geometry in one series ({len(shapes)} sizes, {len(iops)} orientations)"
        )


def _slice_step(slices: list, pos: np.ndarray, first: Path) -> float:
    """The spacing along the normal; duplicates and gaps are refused (they cannot form a grid)."""
    if len(slices) == 1:
        return 1.0
    steps = np.diff(pos)
    dup = np.flatnonzero(steps <= DUPLICATE_MM)
    if dup.size:
        a, b = (slices[i][0] for i in (dup[0], dup[0] + 1))
        a, b = (p.name if p.parent == first else str(p) for p in (a, b))
        raise VolumeError(
            first,
            f"slices at one position ({a} and {b} at {pos[dup[0]]:.3f} mm along the normal; {dup.size} "
            f"duplicate(s) in all): the same file twice, or two series sharing one SeriesInstanceUID; "
            f"remove the duplicate",
        )
    step = float(np.median(steps))
    if np.max(np.abs(steps - step)) > 0.1 * step:
        raise VolumeError(first, "non-uniform slice spacing (missing slices?)")
    return step


def _multiframe(series: Series) -> Volume:
    """One multi-frame file with one orientation: frames stacked along the normal."""
    path = series.files[0]
    ds = pydicom.dcmread(path)
    frames = _pixels(ds, path)  # (frames, rows, cols)
    iop = np.array([float(x) for x in ds.ImageOrientationPatient])
    rowdir, coldir = iop[:3], iop[3:]
    normal = np.cross(rowdir, coldir)
    step = float(getattr(ds, "SpacingBetweenSlices", None) or getattr(ds, "SliceThickness", None) or 1.0)
    dr, dc = (float(x) for x in getattr(ds, "PixelSpacing", (1.0, 1.0)))
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = rowdir * dc, coldir * dr, normal * step
    lps[:3, 3] = [float(x) for x in ds.ImagePositionPatient]
    return Volume(np.ascontiguousarray(frames.transpose(2, 1, 0)), LPS_TO_RAS @ lps)


def read_dicom_series(series: Series, rejected: Rejected) -> Volume:
    """Stack one series into a volume. Unreadable slices are rejected file by file; a series
    whose remaining slices are inconsistent (mixed geometry, duplicates, gaps) is a `VolumeError`."""
    first = series.files[0].parent if series.files else "?"
    check_pixels(first, (len(series.files), series.frames, series.rows, series.columns))
    if series.files and series.frames > 1 and len(series.files) == 1:
        return _multiframe(series)
    slices = _read_slices(series, rejected)
    if not slices:
        raise VolumeError(first, "series has no readable image slices")
    _check_geometry(slices, first)
    iop = slices[0][2]
    rowdir, coldir = iop[:3], iop[3:]
    normal = np.cross(rowdir, coldir)
    slices.sort(key=lambda s: float(np.dot(s[3], normal)))
    pos = np.array([float(np.dot(s[3], normal)) for s in slices])
    step = _slice_step(slices, pos, first)
    dr, dc = slices[0][4]
    stack = np.stack([s[1] for s in slices])  # (s, r, c)
    lps = np.eye(4)
    lps[:3, 0] = rowdir * dc
    lps[:3, 1] = coldir * dr
    lps[:3, 2] = normal * step
    lps[:3, 3] = slices[0][3]
    return Volume(np.ascontiguousarray(stack.transpose(2, 1, 0)), LPS_TO_RAS @ lps)
