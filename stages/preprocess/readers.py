"""Read scans into one canonical form: a float32 volume in RAS+ voxel order with its affine.

DICOM series (pydicom: grouped by SeriesInstanceUID, sorted by position along the slice
normal, rescale slope/intercept applied), NIfTI (nibabel, scl_slope/inter applied), NRRD
(pynrrd, LPS space directions). Everything is reoriented to the closest canonical (RAS+)
orientation; masks are resampled with nearest neighbour onto the image grid. A problem is a
`CaseError` naming the file and the reason; the stage records it and goes on.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from scipy import ndimage

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
META_SUFFIXES = (".mha", ".mhd")  # MetaImage (e.g. the SPIDER lumbar spine MRI), via SimpleITK


class CaseError(ValueError):
    """A file or case that cannot be used; `file` is the offending path."""

    def __init__(self, file: Path | str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = str(file)
        self.reason = reason


@dataclass
class Volume:
    """A scan on a voxel grid: data indexed (i, j, k), `affine` maps indices to RAS mm."""

    data: np.ndarray
    affine: np.ndarray

    def canonical(self) -> "Volume":
        """The same scan reordered/flipped to the closest RAS+ orientation."""
        img = nib.Nifti1Image(self.data, self.affine)
        can = nib.as_closest_canonical(img)
        return Volume(np.asarray(can.dataobj), can.affine)


@dataclass
class Series:
    """The headers of one DICOM series found in a folder."""

    uid: str
    description: str
    manufacturer: str
    modality: str
    patient_id: str
    number: int
    files: list[Path] = field(default_factory=list)
    has_pixels: bool = True


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def is_nrrd(path: Path) -> bool:
    return path.name.lower().endswith(NRRD_SUFFIXES)


def is_meta(path: Path) -> bool:
    return path.name.lower().endswith(META_SUFFIXES)


def is_volume_file(path: Path) -> bool:
    return is_nifti(path) or is_nrrd(path) or is_meta(path)


def scan_dicom(folder: Path, rejected: list[tuple[str, str]]) -> list[Series]:
    """Every DICOM series under `folder` (headers only). Files that are not DICOM or cannot be
    parsed go to `rejected` (file, reason); the rest are grouped by SeriesInstanceUID."""
    groups: dict[str, Series] = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        if path.name.startswith("."):
            continue
        try:
            ds = pydicom.dcmread(path, defer_size=256)  # large values (pixels) read on demand
            uid = str(ds.SeriesInstanceUID)
        except (InvalidDicomError, AttributeError) as err:
            kind = (
                "not a DICOM file"
                if isinstance(err, InvalidDicomError)
                else "DICOM file without SeriesInstanceUID"
            )
            rejected.append((str(path), f"unsupported or unreadable file ({kind})"))
            continue
        except Exception as err:  # noqa: BLE001 - truncated files raise many kinds of errors
            rejected.append((str(path), f"corrupt DICOM ({type(err).__name__})"))
            continue
        if uid not in groups:
            groups[uid] = Series(
                uid=uid,
                description=str(getattr(ds, "SeriesDescription", "")),
                manufacturer=str(getattr(ds, "Manufacturer", "")),
                modality=str(getattr(ds, "Modality", "")),
                patient_id=str(getattr(ds, "PatientID", "")),
                number=int(getattr(ds, "SeriesNumber", 0) or 0),
            )
        groups[uid].files.append(path)
        if "PixelData" not in ds and "FloatPixelData" not in ds:
            groups[uid].has_pixels = False
    return sorted(groups.values(), key=lambda s: (s.number, s.uid))


def read_dicom_series(series: Series, rejected: list[tuple[str, str]]) -> Volume:
    """Stack one series into a volume. Unreadable slices are rejected file by file; a series
    whose remaining slices are inconsistent (mixed geometry, gaps) is a `CaseError`."""
    slices = []
    for path in series.files:
        try:
            ds = pydicom.dcmread(path)
            if "PixelData" not in ds and "FloatPixelData" not in ds:
                raise CaseError(path, "no pixel data")
            arr = ds.pixel_array.astype(np.float32)
            slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
            inter = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
            iop = np.array([float(x) for x in ds.ImageOrientationPatient])
            ipp = np.array([float(x) for x in ds.ImagePositionPatient])
            spacing = tuple(float(x) for x in ds.PixelSpacing)
        except CaseError as err:
            rejected.append((err.file, err.reason))
            continue
        except Exception as err:  # noqa: BLE001 - truncated pixel data, missing geometry tags
            rejected.append((str(path), f"unreadable DICOM slice ({type(err).__name__})"))
            continue
        if arr.ndim != 2:
            rejected.append((str(path), f"not a single-frame image (shape {arr.shape})"))
            continue
        slices.append((path, arr * slope + inter, iop, ipp, spacing))
    first = series.files[0].parent if series.files else "?"
    if not slices:
        raise CaseError(first, "series has no readable image slices")
    shapes = {s[1].shape for s in slices}
    iops = {tuple(np.round(s[2], 4)) for s in slices}
    spacings = {tuple(np.round(s[4], 4)) for s in slices}
    if len(shapes) > 1 or len(iops) > 1 or len(spacings) > 1:
        raise CaseError(
            first, f"mixed geometry in one series ({len(shapes)} sizes, {len(iops)} orientations)"
        )
    iop = slices[0][2]
    rowdir, coldir = iop[:3], iop[3:]
    normal = np.cross(rowdir, coldir)
    slices.sort(key=lambda s: float(np.dot(s[3], normal)))
    pos = np.array([float(np.dot(s[3], normal)) for s in slices])
    if len(slices) > 1:
        steps = np.diff(pos)
        step = float(np.median(steps))
        if step <= 1e-6:
            raise CaseError(first, "slices share one position (duplicate or mixed series)")
        if np.max(np.abs(steps - step)) > 0.1 * step:
            raise CaseError(first, "non-uniform slice spacing (missing slices?)")
    else:
        step = 1.0
    dr, dc = slices[0][4]
    stack = np.stack([s[1] for s in slices])  # (s, r, c)
    lps = np.eye(4)
    lps[:3, 0] = rowdir * dc
    lps[:3, 1] = coldir * dr
    lps[:3, 2] = normal * step
    lps[:3, 3] = slices[0][3]
    return Volume(np.ascontiguousarray(stack.transpose(2, 1, 0)), LPS_TO_RAS @ lps)


def read_nifti(path: Path) -> Volume:
    """A NIfTI volume with its scaling applied; a 4D file with one volume is squeezed."""
    try:
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as err:  # noqa: BLE001 - nibabel raises many kinds for broken files
        raise CaseError(path, f"unreadable NIfTI ({type(err).__name__})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise CaseError(path, f"expected a 3D volume, got shape {data.shape}")
    return Volume(data, img.affine.astype(float))


def read_nrrd(path: Path) -> Volume:
    """An NRRD volume (3D Slicer segmentations: LPS or RAS space, space directions, origin)."""
    try:
        data, header = nrrd.read(str(path))
    except Exception as err:  # noqa: BLE001
        raise CaseError(path, f"unreadable NRRD ({type(err).__name__})") from None
    if data.ndim == 4:  # a multi-segment seg.nrrd: one layer per segment -> label map
        axis = int(np.argmin(data.shape))
        data = np.moveaxis(data, axis, 0)
        labels = np.zeros(data.shape[1:], np.float32)
        for i, layer in enumerate(data, 1):
            labels[layer > 0] = i
        dirs = [
            d
            for d in header.get("space directions")
            if d is not None and not np.isnan(np.asarray(d, float)).all()
        ]
        data = labels
    else:
        dirs = header.get("space directions")
    if data.ndim != 3 or dirs is None:
        raise CaseError(path, f"expected a 3D volume with space directions, got shape {data.shape}")
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(dirs, float).T
    aff[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), float)
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space in ("left-posterior-superior", "lps"):
        aff = LPS_TO_RAS @ aff
    elif space not in ("right-anterior-superior", "ras"):
        raise CaseError(path, f"unsupported NRRD space {space!r}")
    return Volume(data.astype(np.float32), aff)


def read_sitk(path: Path) -> Volume:
    """Any format SimpleITK reads (MetaImage .mha/.mhd); its geometry is LPS."""
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
        data = sitk.GetArrayFromImage(img).astype(np.float32)  # (z, y, x)
    except Exception as err:  # noqa: BLE001
        raise CaseError(path, f"unreadable image ({type(err).__name__})") from None
    if data.ndim != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise CaseError(path, f"expected a 3D scalar volume, got shape {data.shape}")
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(img.GetDirection(), float).reshape(3, 3) * np.asarray(img.GetSpacing(), float)
    aff[:3, 3] = img.GetOrigin()
    return Volume(np.ascontiguousarray(data.transpose(2, 1, 0)), LPS_TO_RAS @ aff)


def read_file(path: Path) -> Volume:
    """A single-file volume by its suffix: NIfTI, NRRD or MetaImage."""
    path = Path(path)
    if is_nifti(path):
        return read_nifti(path)
    if is_nrrd(path):
        return read_nrrd(path)
    if is_meta(path):
        return read_sitk(path)
    raise CaseError(path, "unsupported file type (expected DICOM folder, .nii, .nii.gz, .nrrd or .mha)")


def read_volume(path: Path) -> Volume:
    """A volume file by its suffix; a folder is read as one DICOM series (exactly one)."""
    path = Path(path)
    if path.is_dir():
        rejected: list[tuple[str, str]] = []
        series = [s for s in scan_dicom(path, rejected) if s.has_pixels]
        if len(series) != 1:
            raise CaseError(path, f"expected one image series, found {len(series)}")
        return read_dicom_series(series[0], rejected)
    return read_file(path)


def resample_nearest(mask: Volume, image: Volume, path: Path | str, tol: float = 0.5) -> np.ndarray:
    """`mask` on the image grid, nearest neighbour. Both canonical. A mask whose field of
    view does not cover the image's (other shape or geometry) is a `CaseError`."""
    if mask.data.shape == image.data.shape and np.allclose(mask.affine, image.affine, atol=1e-3):
        return mask.data
    to_mask = np.linalg.inv(mask.affine) @ image.affine
    corners = np.array(
        [
            [i, j, k, 1]
            for i in (0, image.data.shape[0] - 1)
            for j in (0, image.data.shape[1] - 1)
            for k in (0, image.data.shape[2] - 1)
        ],
        float,
    )
    idx = (to_mask @ corners.T)[:3].T
    hi = np.array(mask.data.shape) - 1
    if (idx < -tol).any() or (idx > hi + tol).any():
        raise CaseError(
            path,
            f"mask grid {tuple(mask.data.shape)} does not match image grid "
            f"{tuple(image.data.shape)} (geometry mismatch)",
        )
    return ndimage.affine_transform(
        mask.data,
        to_mask[:3, :3],
        offset=to_mask[:3, 3],
        output_shape=image.data.shape,
        order=0,
        mode="nearest",
    )


def case_key_pattern(key: str) -> re.Pattern:
    """Matches a case key as a whole token inside a file name (Breast_MRI_001 != Breast_MRI_0011)."""
    return re.compile(rf"(^|[_/.\-\s]){re.escape(key)}($|[_.\-\s])")
