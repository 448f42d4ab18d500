"""A case: one scan of one patient to turn into slices, as the adapters describe it and the
worker processes it (plain data, picklable for the process pool)."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MaskRef:
    """A mask file and how its values become the task's labels: `labels` maps a raw value
    (as a string) or '*' (any non-zero value) to a label 1..K; later masks override earlier."""

    path: str
    labels: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Case:
    """One scan. `domain` None: the worker decides from the DICOM Manufacturer (DBC)."""

    key: str  # the case's name in the source (folder or file stem); may be an identifier
    image: str  # DICOM folder, NIfTI or NRRD file
    kind: str  # dicom | file
    domain: str | None
    modality: str | None
    masks: tuple[MaskRef, ...] = ()
    series_pattern: str | None = None  # DICOM: choose the series by SeriesDescription
    manufacturers: tuple[tuple[str, str], ...] = ()  # (substring, domain) for DBC
    patient: str | None = None  # from a CSV; else the DICOM PatientID or the key
    totalseg: bool = False  # compute the masks with TotalSegmentator (CT)
    mask_required: bool = True


@dataclass
class Sliced:
    """What the worker returns for a case (patient ids stay in memory, never written)."""

    key: str
    patient: str
    domain: str | None
    slices: list[tuple[int, object, object, object, tuple[str, ...]]] = field(
        default_factory=list
    )  # position, img, mask, foreground, structures
    rejected: list[tuple[str, str]] = field(default_factory=list)
    read: int = 0  # slices read from the volume
    constant: int = 0  # slices skipped because they were constant once windowed
