"""Single-file volumes: NIfTI (nibabel, scl_slope/inter applied), NRRD (pynrrd, space
directions, LPS or RAS space) and MetaImage .mha/.mhd (SimpleITK, LPS geometry). Each checks
the size in its header against the pixel limit before reading the data."""

from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np

from medtrans.shared.volumes.dicom import Rejected, read_dicom_series, scan_dicom
from medtrans.shared.volumes.errors import VolumeError, why
from medtrans.shared.volumes.limits import check_pixels
from medtrans.shared.volumes.volume import LPS_TO_RAS, Volume

NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
META_SUFFIXES = (".mha", ".mhd")  # MetaImage (e.g. the SPIDER lumbar spine MRI), via SimpleITK


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def is_nrrd(path: Path) -> bool:
    return path.name.lower().endswith(NRRD_SUFFIXES)


def is_meta(path: Path) -> bool:
    return path.name.lower().endswith(META_SUFFIXES)


def is_volume_file(path: Path) -> bool:
    return is_nifti(path) or is_nrrd(path) or is_meta(path)


def load_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The NIfTI array (any dimensionality, scaling applied, float32) and its affine."""
    try:
        img = nib.load(str(path))
        shape = img.shape
    except Exception as err:  # noqa: BLE001 - nibabel raises many kinds for broken files
        raise VolumeError(path, f"unreadable NIfTI ({why(err, path)})") from None
    check_pixels(path, shape)
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as err:  # noqa: BLE001 - truncated data, bad scaling
        raise VolumeError(path, f"unreadable NIfTI ({why(err, path)})") from None
    return data, img.affine.astype(float)


def read_nifti(path: Path) -> Volume:
    """A 3D NIfTI volume; a 4D file with one volume is squeezed."""
    data, affine = load_nifti(path)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise VolumeError(path, f"expected a 3D volume, got shape {data.shape}")
    return Volume(data, affine)


def _nrrd_labels(data: np.ndarray, header: dict) -> tuple[np.ndarray, list]:
    """A multi-segment seg.nrrd (one layer per segment) as one label map and its 3 directions."""
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
    return labels, dirs


def read_nrrd(path: Path) -> Volume:
    """An NRRD volume (3D Slicer segmentations: LPS or RAS space, space directions, origin)."""
    try:
        sizes = nrrd.read_header(str(path)).get("sizes", ())
    except Exception as err:  # noqa: BLE001
        raise VolumeError(path, f"unreadable NRRD ({why(err, path)})") from None
    check_pixels(path, tuple(sizes))
    try:
        data, header = nrrd.read(str(path))
    except Exception as err:  # noqa: BLE001
        raise VolumeError(path, f"unreadable NRRD ({why(err, path)})") from None
    if data.ndim == 4:
        data, dirs = _nrrd_labels(data, header)
    else:
        dirs = header.get("space directions")
    if data.ndim != 3 or dirs is None:
        raise VolumeError(path, f"expected a 3D volume with space directions, got shape {data.shape}")
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(dirs, float).T
    aff[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), float)
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space in ("left-posterior-superior", "lps"):
        aff = LPS_TO_RAS @ aff
    elif space not in ("right-anterior-superior", "ras"):
        raise VolumeError(path, f"unsupported NRRD space {space!r}")
    return Volume(data.astype(np.float32), aff)


def read_sitk(path: Path) -> Volume:
    """Any format SimpleITK reads (MetaImage .mha/.mhd); its geometry is LPS."""
    import SimpleITK as sitk

    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = reader.GetSize()
    except Exception as err:  # noqa: BLE001
        raise VolumeError(path, f"unreadable image ({why(err, path)})") from None
    check_pixels(path, (*size, reader.GetNumberOfComponents()))
    try:
        img = reader.Execute()
        data = sitk.GetArrayFromImage(img).astype(np.float32)  # (z, y, x)
    except Exception as err:  # noqa: BLE001
        raise VolumeError(path, f"unreadable image ({why(err, path)})") from None
    if data.ndim != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeError(path, f"expected a 3D scalar volume, got shape {data.shape}")
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
    raise VolumeError(path, "unsupported file type (expected DICOM folder, .nii, .nii.gz, .nrrd or .mha)")


def read_volume(path: Path) -> Volume:
    """A volume file by its suffix; a folder is read as one DICOM series (exactly one)."""
    path = Path(path)
    if path.is_dir():
        rejected: Rejected = []
        series = [s for s in scan_dicom(path, rejected) if s.has_pixels]
        if len(series) != 1:
            raise VolumeError(path, f"expected one image series, found {len(series)}")
        return read_dicom_series(series[0], rejected)
    return read_file(path)
