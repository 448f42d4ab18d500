"""Where a task's scans come from: the embedded phantom, DBC, lumbar spine, or a folder + CSV."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from medtrans.shared.config.base import Config


class PhantomSource(Config):
    """The procedural phantom that ships with the code (deterministic from the study seed)."""

    kind: Literal["phantom"] = "phantom"
    patients_per_domain: int = Field(12, ge=3)
    # (slices, rows, cols) of each synthetic volume, slices along the task's plane
    shape: tuple[int, int, int] = (16, 96, 96)
    # which anatomy: breast (DBC-like) or spine (MRI + CT); auto = from the task's structures
    anatomy: Literal["auto", "breast", "spine"] = "auto"


class DBCSource(Config):
    """Duke-Breast-Cancer-MRI: DICOM series split into domains by the Manufacturer tag."""

    kind: Literal["dbc"] = "dbc"
    root: Path
    masks: Path
    series_pattern: str = "(?i)^(ax )?(dyn )?pre"
    # which segmentation NRRD is which (file name patterns, DBC 3D segmentation release)
    breast_mask_pattern: str = r"(?i)_breast\.seg\.nrrd$"
    dense_mask_pattern: str = r"(?i)dense"
    source_manufacturer: str = "GE"
    target_manufacturer: str = "SIEMENS"


class SpineSource(Config):
    """Lumbar spine MRI and CT (DICOM folder, NIfTI, NRRD or MetaImage per case); masks given
    (named after the case) or, for CT, from TotalSegmentator."""

    kind: Literal["spine"] = "spine"
    mri: Path
    ct: Path
    mri_masks: Path | None = None
    ct_masks: Path | None = None
    totalsegmentator: bool = True
    # raw mask values to keep (e.g. VerSe L1..L5 = 20..24); None: every non-zero value
    mask_values: tuple[int, ...] | None = None
    rois: tuple[str, ...] = (
        "vertebrae_L1",
        "vertebrae_L2",
        "vertebrae_L3",
        "vertebrae_L4",
        "vertebrae_L5",
    )


class FolderSource(Config):
    """Any data set described by a CSV: patient, domain, image path, mask path (optional)."""

    kind: Literal["folder"] = "folder"
    root: Path
    csv: Path


DataSource = Annotated[
    PhantomSource | DBCSource | SpineSource | FolderSource, Field(discriminator="kind")
]
