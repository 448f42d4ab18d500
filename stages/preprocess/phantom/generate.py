"""Write the phantom study's raw files, laid out like the real data sets, so the real-data
adapters read them: breast like DBC (DICOM series per patient, NRRD segmentations), spine
like the lumbar spine data (MRI DICOM series, CT NIfTI in HU, NIfTI vertebra label maps).

Deterministic from the study seed: patient p of domain d of task t uses the generator
`rng(seed, "phantom", t, role, p)`; the two domains hold different synthetic patients.
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medtrans.shared.config.data import DBCSource, PhantomSource, SpineSource
from medtrans.shared.config.study import TaskConfig
from medtrans.shared.hashing import digest
from medtrans.stages.preprocess.phantom import breast, spine
from medtrans.stages.preprocess.phantom.writers import (
    Identity,
    centred_grid,
    write_dicom_series,
    write_nifti,
    write_nrrd,
)

GENERATOR_VERSION = "1"
STAMP = ".phantom.json"
PRE_SERIES = "ax dyn pre"
BREAST_MASK = "Segmentation_{pid}_Breast.seg.nrrd"
DENSE_MASK = "Segmentation_{pid}_Dense_and_Vessels.seg.nrrd"

_SURNAMES = ("Voxelby", "Phantomsson", "Dicomwitz", "Niftington", "Hounsfeldt", "Gradientova", "Rasterman")
_GIVEN = ("Quorra", "Baltazar", "Ysolde", "Oswin", "Marisol", "Thaddeus", "Wilhelmina")
_PLACES = ("Phantom Valley General Hospital", "St. Voxel Imaging Institute", "Synthetic Lakes Clinic")


def anatomy_of(task: TaskConfig) -> str:
    """Which phantom anatomy a task uses: explicit in the study, or from its structures."""
    src = task.data
    if isinstance(src, PhantomSource) and src.anatomy != "auto":
        return src.anatomy
    if {"breast", "fgt"} & set(task.structures):
        return "breast"
    return "spine"


def identity(r: np.random.Generator, role: str, p: int) -> Identity:
    """Fake identifying tags; distinctive strings so a grep finds any leak."""
    digits = "".join(str(d) for d in r.integers(0, 10, 8))
    return Identity(
        name=f"{r.choice(_SURNAMES)}^{r.choice(_GIVEN)}^{role[0].upper()}{p:03d}",
        patient_id=f"PHX{digits}",
        birth_date=f"19{r.integers(30, 99):02d}{r.integers(1, 13):02d}{r.integers(1, 29):02d}",
        accession=f"ACX{r.integers(10**6, 10**7)}",
        institution=str(r.choice(_PLACES)),
        physician=f"Referrer^{r.choice(_GIVEN)}{p:02d}",
    )


@dataclass(frozen=True)
class Job:
    """One synthetic patient to write (picklable, for the process pool)."""

    seed: int  # derive_seed(study seed, "phantom", task, role, index)
    task: str
    anatomy: str
    role: str
    modality: str
    index: int
    shape: tuple[int, int, int]
    out: str


def write_patient(job: Job) -> dict:
    """Write one synthetic patient's image and masks; returns its fake identity (for tests)."""
    r = np.random.default_rng(job.seed)
    who = identity(r, job.role, job.index)
    out = Path(job.out)
    if job.anatomy == "breast":
        _write_breast(r, job, who, out)
    else:
        _write_spine(r, job, who, out)
    return {"role": job.role, "index": job.index, **who.__dict__}


def _write_breast(r: np.random.Generator, job: Job, who: Identity, out: Path) -> None:
    shape = job.shape
    grid = centred_grid(shape, (150.0 / shape[0], 340.0 / shape[1], 340.0 / shape[2]), (1, 0, 0), (0, 1, 0))
    anat = breast.anatomy(r, shape)
    vendor = breast.VENDORS[job.role]
    values = breast.render(anat, vendor, r)
    pid = who.patient_id
    study_dir = out / "images" / pid / f"01-01-2020-{pid}-BREAST"
    common = dict(
        modality="MR", manufacturer=vendor.manufacturer, model=vendor.model, uid_seed=f"{job.task}{pid}"
    )
    write_dicom_series(
        study_dir / f"3.000000-{PRE_SERIES}",
        values,
        grid,
        who,
        description=PRE_SERIES,
        series_number=3,
        slope=vendor.slope,
        shuffle=r,
        **common,
    )
    # a localizer in the same study: the adapter must pick the series by its description
    loc = values[:: max(1, shape[0] // 3)][:3]
    loc_grid = centred_grid(loc.shape, (50.0, grid.spacing[1], grid.spacing[2]), (1, 0, 0), (0, 1, 0))
    write_dicom_series(
        study_dir / "1.000000-3 plane loc",
        loc,
        loc_grid,
        who,
        description="3 plane loc",
        series_number=1,
        slope=vendor.slope,
        **common,
    )
    masks = out / "masks" / pid
    write_nrrd(masks / BREAST_MASK.format(pid=pid), anat.breast.astype(np.uint8), grid)
    write_nrrd(masks / DENSE_MASK.format(pid=pid), anat.dense, grid)


def _write_spine(r: np.random.Generator, job: Job, who: Identity, out: Path) -> None:
    shape = job.shape
    grid = centred_grid(shape, (72.0 / shape[0], 200.0 / shape[1], 240.0 / shape[2]), (0, 1, 0), (0, 0, -1))
    anat = spine.anatomy(r, shape)
    pid = who.patient_id
    if job.modality == "CT":
        hu = spine.render_ct(anat, r)
        write_nifti(out / "ct" / f"{pid}.nii.gz", hu, grid, dtype=np.uint16, slope=1.0, inter=-1024.0)
        write_nifti(out / "ct_masks" / f"{pid}.nii.gz", anat.vertebrae, grid, dtype=np.uint8)
    else:
        values = spine.render_mri(anat, r)
        write_dicom_series(
            out / "mri" / pid / "1.000000-t2 sag",
            values,
            grid,
            who,
            modality="MR",
            manufacturer="SIEMENS",
            model="Aera",
            description="t2_tse_sag",
            series_number=1,
            uid_seed=f"{job.task}{pid}",
            shuffle=r,
        )
        write_nifti(out / "mri_masks" / f"{pid}.nii.gz", anat.vertebrae, grid, dtype=np.uint8)


def jobs(seed: int, task_name: str, task: TaskConfig, out: Path) -> list[Job]:
    src = task.data
    assert isinstance(src, PhantomSource)
    from medtrans.shared.seeding import derive_seed  # imports torch: keep it out of the workers

    kind = anatomy_of(task)
    return [
        Job(
            derive_seed(seed, "phantom", task_name, role, p),
            task_name,
            kind,
            role,
            dom.modality,
            p,
            tuple(src.shape),
            str(out),
        )
        for role, dom in (("source", task.source), ("target", task.target))
        for p in range(src.patients_per_domain)
    ]


def identities(seed: int, task_name: str, task: TaskConfig) -> list[dict]:
    """The fake identities `generate` writes, recomputed without writing (privacy tests)."""
    out = []
    for job in jobs(seed, task_name, task, Path(".")):
        who = identity(np.random.default_rng(job.seed), job.role, job.index)
        out.append({"role": job.role, "index": job.index, **who.__dict__})
    return out


def stamp_of(seed: int, task: TaskConfig) -> dict:
    return {"version": GENERATOR_VERSION, "digest": digest([seed, task.model_dump(mode="json")])}


def is_current(seed: int, task: TaskConfig, out: Path) -> bool:
    try:
        return json.loads((out / STAMP).read_text()) == stamp_of(seed, task)
    except (OSError, ValueError):
        return False


def generate(seed: int, task_name: str, task: TaskConfig, out: Path, mapper=map) -> list[dict]:
    """Write every synthetic patient of one task under `out` (replacing what was there).
    `mapper` runs the per-patient jobs (the builtin map, or a process pool's map)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    identities = list(mapper(write_patient, jobs(seed, task_name, task, out)))
    (out / STAMP).write_text(json.dumps(stamp_of(seed, task)))
    return identities


def source_for(task: TaskConfig, raw: Path) -> DBCSource | SpineSource:
    """The real-data adapter config that reads the phantom's raw files."""
    if anatomy_of(task) == "breast":
        return DBCSource(
            root=raw / "images",
            masks=raw / "masks",
            series_pattern=f"(?i)^{PRE_SERIES}$",
            source_manufacturer="GE",
            target_manufacturer="SIEMENS",
        )
    return SpineSource(
        mri=raw / "mri",
        ct=raw / "ct",
        mri_masks=raw / "mri_masks",
        ct_masks=raw / "ct_masks",
        totalsegmentator=False,
    )
