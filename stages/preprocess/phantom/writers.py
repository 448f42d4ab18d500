"""Write a (slices, rows, cols) volume as a DICOM series, a NIfTI or an NRRD file with one
consistent patient geometry (LPS, as DICOM defines it), so the readers can be checked."""

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Grid:
    """Where voxel (s, r, c) sits in the patient (LPS, millimetres)."""

    rowdir: tuple[float, float, float]  # direction of increasing column index
    coldir: tuple[float, float, float]  # direction of increasing row index
    spacing: tuple[float, float, float]  # slice, row, col (mm)
    origin: tuple[float, float, float]  # centre of voxel (0, 0, 0)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.rowdir, self.coldir)

    def lps_axes(self) -> np.ndarray:
        """3x3: columns are the steps of the (col, row, slice) indices, i.e. array (c, r, s)."""
        ds, dr, dc = self.spacing
        return np.stack(
            [np.asarray(self.rowdir) * dc, np.asarray(self.coldir) * dr, self.normal * ds], axis=1
        )

    def ras_affine(self) -> np.ndarray:
        """The NIfTI affine of the array `volume.transpose(2, 1, 0)`."""
        aff = np.eye(4)
        aff[:3, :3] = LPS_TO_RAS @ self.lps_axes()
        aff[:3, 3] = LPS_TO_RAS @ np.asarray(self.origin)
        return aff

    def position(self, s: int) -> np.ndarray:
        return np.asarray(self.origin) + s * self.spacing[0] * self.normal


def centred_grid(shape: tuple[int, int, int], spacing: tuple[float, float, float], rowdir, coldir) -> Grid:
    """A grid whose centre is the scanner's isocentre."""
    g = Grid(tuple(rowdir), tuple(coldir), tuple(spacing), (0.0, 0.0, 0.0))
    half = g.lps_axes() @ (np.array([shape[2], shape[1], shape[0]], float) - 1) / 2
    return Grid(g.rowdir, g.coldir, g.spacing, tuple(float(x) for x in -half))


def write_nifti(
    path: Path, volume: np.ndarray, grid: Grid, dtype=np.int16, slope: float = 1.0, inter: float = 0.0
) -> None:
    """`volume` (s, r, c) stored as (c, r, s) with its affine; values = stored * slope + inter."""
    stored = np.rint((volume - inter) / slope).astype(dtype)
    img = nib.Nifti1Image(stored.transpose(2, 1, 0), grid.ras_affine())
    img.header.set_slope_inter(slope, inter) if (slope, inter) != (1.0, 0.0) else None
    img.header.set_qform(grid.ras_affine(), code=1)
    img.header.set_sform(grid.ras_affine(), code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def write_nrrd(path: Path, labels: np.ndarray, grid: Grid) -> None:
    """A label volume (s, r, c) as an NRRD with LPS space directions (as 3D Slicer writes)."""
    header = {
        "space": "left-posterior-superior",
        "space directions": grid.lps_axes().T,  # one row per array axis
        "space origin": np.asarray(grid.origin, float),
        "kinds": ["domain", "domain", "domain"],
        "encoding": "gzip",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nrrd.write(str(path), np.ascontiguousarray(labels.transpose(2, 1, 0)).astype(np.uint8), header)


@dataclass(frozen=True)
class Identity:
    """The fake identifying tags of one synthetic patient (the privacy tests grep for them)."""

    name: str
    patient_id: str
    birth_date: str
    accession: str
    institution: str
    physician: str

    def values(self) -> list[str]:
        return [self.name, self.patient_id, self.birth_date, self.accession, self.institution, self.physician]


def write_dicom_series(
    folder: Path,
    volume: np.ndarray,
    grid: Grid,
    who: Identity,
    *,
    modality: str,
    manufacturer: str,
    model: str,
    description: str,
    series_number: int,
    uid_seed: str,
    slope: float = 1.0,
    inter: float = 0.0,
    shuffle: np.random.Generator | None = None,
) -> list[Path]:
    """One file per slice with geometry and identifying tags; file names do not follow slice
    order (readers must sort by geometry). Values stored as uint16 = (value - inter) / slope."""
    folder.mkdir(parents=True, exist_ok=True)
    stored = np.clip(np.rint((volume - inter) / slope), 0, 65535).astype(np.uint16)
    study_uid = generate_uid(entropy_srcs=[uid_seed, "study"])
    series_uid = generate_uid(entropy_srcs=[uid_seed, "series", description])
    frame_uid = generate_uid(entropy_srcs=[uid_seed, "frame"])
    order = np.arange(volume.shape[0])
    if shuffle is not None:
        order = shuffle.permutation(order)
    paths = []
    for n, s in enumerate(order):
        sop_uid = generate_uid(entropy_srcs=[uid_seed, description, str(s)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MR_STORAGE if modality == "MR" else CT_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.Modality = modality
        ds.Manufacturer = manufacturer
        ds.ManufacturerModelName = model
        ds.SeriesDescription = description
        ds.SeriesNumber = series_number
        ds.InstanceNumber = int(s) + 1
        _identity_tags(ds, who)
        _geometry_tags(ds, grid, int(s), volume.shape[1:])
        _pixel_tags(ds, stored[s], slope, inter)
        path = folder / f"1-{n + 1:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _identity_tags(ds: Dataset, who: Identity) -> None:
    """The identifying tags preprocessing must remove (the phantom carries them so it can check)."""
    ds.PatientName = who.name
    ds.PatientID = who.patient_id
    ds.PatientBirthDate = who.birth_date
    ds.AccessionNumber = who.accession
    ds.InstitutionName = who.institution
    ds.ReferringPhysicianName = who.physician
    ds.StudyDate = "20200101"


def _geometry_tags(ds: Dataset, grid: Grid, index: int, rows_cols: tuple[int, int]) -> None:
    """Position, orientation and spacing of slice `index`: readers order slices by these alone."""
    ds_mm, dr, dc = grid.spacing
    ds.ImagePositionPatient = [round(float(x), 4) for x in grid.position(index)]
    ds.ImageOrientationPatient = [float(x) for x in (*grid.rowdir, *grid.coldir)]
    ds.PixelSpacing = [round(dr, 6), round(dc, 6)]
    ds.SliceThickness = round(ds_mm, 6)
    ds.Rows, ds.Columns = int(rows_cols[0]), int(rows_cols[1])


def _pixel_tags(ds: Dataset, stored: np.ndarray, slope: float, inter: float) -> None:
    """16-bit unsigned monochrome pixels with their rescale (value = stored * slope + inter)."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = inter
    ds.PixelData = stored.tobytes()
