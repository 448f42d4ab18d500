"""Data sources -> cases: the phantom (via the layouts below), DBC, lumbar spine, folder + CSV.

Adapters only list files (no pixel reads, so they are fast on big trees); anything they
cannot use goes to the rejected list with the reason.
"""

import re
from pathlib import Path

import pandas as pd

from medtrans.shared.config.data import DBCSource, FolderSource, SpineSource
from medtrans.shared.config.study import TaskConfig
from medtrans.shared.volumes.files import is_nrrd, is_volume_file
from medtrans.stages.preprocess.cases import Case, MaskRef

Rejected = list[tuple[str, str]]


class SourceError(ValueError):
    """A data source that cannot be read at all (missing folder, bad CSV): a config problem."""


def case_key_pattern(key: str) -> re.Pattern:
    """Matches a case key as a whole token inside a file name (Breast_MRI_001 != Breast_MRI_0011)."""
    return re.compile(rf"(^|[_/.\-\s]){re.escape(key)}($|[_.\-\s])")


def _label(task: TaskConfig, name: str) -> int | None:
    return task.structures.index(name) + 1 if name in task.structures else None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".seg.nrrd", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _need(path: Path, what: str) -> Path:
    if not Path(path).is_dir():
        raise SourceError(f"{path}: {what} folder not found (check the study's data paths)")
    return Path(path)


def dbc_cases(task: TaskConfig, src: DBCSource) -> tuple[list[Case], Rejected]:
    """Duke-Breast-Cancer-MRI: one folder per patient holding its DICOM studies; the domain
    comes from the Manufacturer tag; breast and FGT masks from NRRD files named with the
    patient's folder name (Segmentation_<patient>_Breast.seg.nrrd, ..._Dense_and_Vessels)."""
    root, masks_root = _need(src.root, "DBC image"), _need(src.masks, "DBC mask")
    rejected: Rejected = []
    mask_files = sorted(p for p in masks_root.rglob("*") if p.is_file() and is_nrrd(p))
    breast_re, dense_re = re.compile(src.breast_mask_pattern), re.compile(src.dense_mask_pattern)
    manufacturers = ((src.source_manufacturer, task.source.name), (src.target_manufacturer, task.target.name))
    cases = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            rejected.append((str(entry), "unsupported file (DBC expects one folder per patient)"))
            continue
        key = case_key_pattern(entry.name)
        mine = [p for p in mask_files if key.search(p.name) or key.search(p.parent.name)]
        refs = []
        for pattern, structure in ((breast_re, "breast"), (dense_re, "fgt")):
            label = _label(task, structure)
            found = [p for p in mine if pattern.search(p.name)]
            if label is not None and found:
                refs.append(MaskRef(str(found[0]), (("*", label),)))
        if not refs:
            rejected.append((str(entry), "no segmentation NRRD matches this patient"))
            continue
        cases.append(
            Case(
                key=entry.name,
                image=str(entry),
                kind="dicom",
                domain=None,
                modality="MR",
                masks=tuple(refs),
                series_pattern=src.series_pattern,
                manufacturers=manufacturers,
            )
        )
    return cases, rejected


def _spine_labels(task: TaskConfig, values: tuple[int, ...] | None) -> tuple[tuple[str, int], ...]:
    """Raw mask values -> task labels. `values` (e.g. VerSe L1..L5 = 20..24) keeps only those
    values: all as label 1 with one structure, the i-th as label i+1 with several. Without
    `values`: one structure takes every non-zero value; several take raw value k as label k."""
    k = len(task.structures)
    if values:
        return tuple((str(v), 1 if k == 1 else min(i + 1, k)) for i, v in enumerate(values))
    if k == 1:
        return (("*", 1),)
    return tuple((str(v), v) for v in range(1, k + 1))


def _find_mask(key: str, masks: dict[str, Path]) -> Path | None:
    """The mask of a case: same name, else a file naming the case (or the case name without
    its last `_part`, e.g. sub-verse004_ct -> sub-verse004_seg-vert_msk) as a whole token."""
    if key in masks:
        return masks[key]
    for name in (key, key.rsplit("_", 1)[0] if "_" in key else None):
        if not name:
            continue
        pattern = case_key_pattern(name)
        found = [p for stem, p in masks.items() if pattern.search(stem)]
        if len(found) == 1:
            return found[0]
    return None


def _domain_of(task: TaskConfig, modality: str) -> str:
    names = [d.name for d in (task.source, task.target) if d.modality == modality]
    if len(names) != 1:
        raise SourceError(f"spine source needs exactly one {modality} domain in the task, found {len(names)}")
    return names[0]


def spine_cases(task: TaskConfig, src: SpineSource) -> tuple[list[Case], Rejected]:
    """Lumbar spine: MRI and CT folders, each holding one DICOM folder or one NIfTI file per
    case; masks are NIfTI/NRRD files named after the case in the mask folders, or (CT, when
    `totalsegmentator` is on and no mask folder is given) computed by TotalSegmentator."""
    rejected: Rejected = []
    cases = []
    labels = _spine_labels(task, src.mask_values)
    for modality, root, masks in (("MR", src.mri, src.mri_masks), ("CT", src.ct, src.ct_masks)):
        domain = _domain_of(task, modality)
        root = _need(root, f"spine {modality}")
        mask_files = {}
        if masks is not None:
            for p in sorted(_need(masks, f"spine {modality} mask").rglob("*")):
                if p.is_file() and is_volume_file(p):
                    mask_files.setdefault(_stem(p), p)
        totalseg = modality == "CT" and masks is None and src.totalsegmentator
        for entry in sorted(root.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                kind = "dicom"
            elif is_volume_file(entry):
                kind = "file"
            else:
                rejected.append((str(entry), "unsupported file (expected a DICOM folder, NIfTI or NRRD)"))
                continue
            key = _stem(entry) if kind == "file" else entry.name
            refs: tuple[MaskRef, ...] = ()
            found = _find_mask(key, mask_files)
            if found is not None:
                refs = (MaskRef(str(found), labels),)
            elif not totalseg and masks is not None:
                rejected.append((str(entry), "no mask file for this case"))
                continue
            cases.append(
                Case(
                    key=key,
                    image=str(entry),
                    kind=kind,
                    domain=domain,
                    modality=modality,
                    masks=refs,
                    totalseg=totalseg and not refs,
                    mask_required=masks is not None or totalseg,
                )
            )
    return cases, rejected


def folder_cases(task: TaskConfig, src: FolderSource) -> tuple[list[Case], Rejected]:
    """Any data set: a CSV with columns patient, domain, image and optionally mask (paths
    relative to `root`; image a DICOM folder, NIfTI or NRRD; mask values 1..K = structures)."""
    root = _need(src.root, "folder source")
    csv = src.csv if Path(src.csv).is_absolute() else root / src.csv
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as err:  # noqa: BLE001
        raise SourceError(f"{csv}: unreadable CSV ({type(err).__name__})") from None
    missing = {"patient", "domain", "image"} - set(table.columns)
    if missing:
        raise SourceError(f"{csv}: missing columns {sorted(missing)}")
    domains = {task.source.name: task.source.modality, task.target.name: task.target.modality}
    labels = tuple((str(k), k) for k in range(1, len(task.structures) + 1))
    rejected: Rejected = []
    cases = []
    for row in table.itertuples(index=False):
        image = root / row.image
        if row.domain not in domains:
            rejected.append((str(image), f"domain {row.domain!r} is not one of {sorted(domains)}"))
            continue
        if not image.exists():
            rejected.append((str(image), "file not found"))
            continue
        kind = "dicom" if image.is_dir() else "file"
        if kind == "file" and not is_volume_file(image):
            rejected.append((str(image), "unsupported file (expected a DICOM folder, NIfTI or NRRD)"))
            continue
        mask = str(getattr(row, "mask", "") or "")
        refs = (MaskRef(str(root / mask), labels),) if mask else ()
        cases.append(
            Case(
                key=_stem(image),
                image=str(image),
                kind=kind,
                domain=row.domain,
                modality=domains[row.domain],
                masks=refs,
                patient=row.patient,
                mask_required=bool(mask),
            )
        )
    return cases, rejected


def collect(task: TaskConfig, src) -> tuple[list[Case], Rejected]:
    """The cases of one task from its (resolved, non-phantom) data source."""
    if isinstance(src, DBCSource):
        return dbc_cases(task, src)
    if isinstance(src, SpineSource):
        return spine_cases(task, src)
    if isinstance(src, FolderSource):
        return folder_cases(task, src)
    raise SourceError(f"no adapter for data source {type(src).__name__}")
