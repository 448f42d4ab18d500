"""Bad input never stops the stage: each kind of broken file goes to the manifest's `rejected`
list with its reason, the other cases are still used, and the stage fails (with the list) only
when a domain or split ends up below `min_slices_per_split`.

One phantom spine data set (MRI as DICOM, CT as NIfTI) is damaged in a different way per
patient, the stage runs once, and each test checks its own kind of damage."""

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from medtrans.shared.config import parse_study
from medtrans.shared.dataset import SliceIndex
from medtrans.shared.layout import RunLayout
from medtrans.shared.manifest import read_manifest
from medtrans.shared.stage import StageInputError
from medtrans.stages.preprocess.phantom import generate as phantom
from medtrans.stages.preprocess.splits import pseudonym, pseudonym_key
from medtrans.stages.runner import run_stage

SEED = 5


@pytest.fixture(scope="module", autouse=True)
def _pseudonym_key(pseudonym_key_env):
    """Real-data adapters: preprocess refuses them without a pseudonym key."""
    return pseudonym_key_env


def _study(raw: Path, **pre) -> object:
    data = {
        "kind": "spine",
        "mri": str(raw / "mri"),
        "ct": str(raw / "ct"),
        "mri_masks": str(raw / "mri_masks"),
        "ct_masks": str(raw / "ct_masks"),
        "totalsegmentator": False,
    }
    task = {
        "source": {"name": "mri", "modality": "MR"},
        "target": {"name": "ct", "modality": "CT"},
        "structures": ["vertebrae"],
        "plane": "sagittal",
        "data": data,
    }
    prep = {"image_size": 32, "split": [0.5, 0.25, 0.25], "min_slices_per_split": 1, "workers": 1, **pre}
    return parse_study(
        {"name": "robust", "seed": SEED, "profile": "demo", "tasks": {"spine": task}, "preprocess": prep}
    )


def _phantom_task(n: int):
    return parse_study(
        {
            "name": "robust",
            "seed": SEED,
            "profile": "demo",
            "tasks": {
                "spine": {
                    "source": {"name": "mri", "modality": "MR"},
                    "target": {"name": "ct", "modality": "CT"},
                    "structures": ["vertebrae"],
                    "plane": "sagittal",
                    "data": {"kind": "phantom", "patients_per_domain": n, "shape": [6, 32, 32]},
                }
            },
        }
    ).tasks["spine"]


def _slices(series: Path) -> list[Path]:
    files = sorted(series.glob("*.dcm"))
    return sorted(files, key=lambda f: int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber))


def _damage(raw: Path) -> dict[str, str]:
    """Break the data; returns {kind: case key} of the damaged cases."""
    mri = sorted(p.name for p in (raw / "mri").iterdir())
    ct = sorted(p.name.removesuffix(".nii.gz") for p in (raw / "ct").iterdir())
    series = {k: next((raw / "mri" / k).iterdir()) for k in mri}
    # corrupt DICOM file inside an otherwise good series
    (series[mri[0]] / "9-999.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x01\x00garbage" * 3)
    # truncated slice in the middle of a series
    middle = _slices(series[mri[1]])[3]
    middle.write_bytes(middle.read_bytes()[: int(middle.stat().st_size * 0.6)])
    # an extra series without pixel data (e.g. a structured report) next to the images
    ds = pydicom.dcmread(_slices(series[mri[2]])[0])
    del ds.PixelData
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["sr"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["sr-1"])
    ds.save_as(series[mri[2]].parent / "report.dcm")
    # two patients' series mixed in one folder
    for i, f in enumerate(_slices(series[mri[4]])):
        shutil.copy(f, series[mri[3]] / f"x-{i}.dcm")
    # the same slice file present twice in a series (a common export accident)
    first = _slices(series[mri[5]])[2]
    shutil.copy(first, first.with_name("copy-" + first.name))
    # CT: a mask of another shape, an empty mask, NaN voxels, a mask too small for any slice
    img = nib.load(str(raw / "ct_masks" / f"{ct[0]}.nii.gz"))
    nib.save(
        nib.Nifti1Image(np.asarray(img.dataobj)[:-5, :-3], img.affine),
        str(raw / "ct_masks" / f"{ct[0]}.nii.gz"),
    )
    img = nib.load(str(raw / "ct_masks" / f"{ct[1]}.nii.gz"))
    nib.save(
        nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), str(raw / "ct_masks" / f"{ct[1]}.nii.gz")
    )
    img = nib.load(str(raw / "ct" / f"{ct[2]}.nii.gz"))
    data = img.get_fdata(dtype=np.float32)
    data[3, 4, 2] = np.nan
    data[5, 6, 1] = np.inf
    nib.save(nib.Nifti1Image(data, img.affine), str(raw / "ct" / f"{ct[2]}.nii.gz"))
    img = nib.load(str(raw / "ct_masks" / f"{ct[3]}.nii.gz"))
    tiny = np.zeros(img.shape, np.uint8)
    tiny[10, 10, 2] = 1
    nib.save(nib.Nifti1Image(tiny, img.affine), str(raw / "ct_masks" / f"{ct[3]}.nii.gz"))
    # an unreadable NIfTI (with a mask, so only the image is at fault) and an unsupported file
    (raw / "ct" / "broken.nii.gz").write_bytes(b"\x1f\x8b\x08\x00 this is not gzip data")
    shutil.copy(raw / "ct_masks" / f"{ct[4]}.nii.gz", raw / "ct_masks" / "broken.nii.gz")
    (raw / "ct" / "readme.txt").write_text("scanner notes")
    kinds = ("corrupt", "truncated", "nopixels", "mixed", "shape", "empty", "nan", "noslices")
    return {
        **dict(zip(kinds, [*mri[:4], *ct[:4]], strict=True)),
        "duplicate": mri[5],
        "unreadable": "broken",
        "unsupported": "readme",
    }


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    phantom.generate(SEED, "spine", _phantom_task(8), raw)
    keys = _damage(raw)
    study = _study(raw)
    layout = RunLayout(tmp_path_factory.mktemp("run"))
    run_stage("preprocess", study, layout)
    extra = read_manifest(layout.preprocess("spine")).extra
    return {"raw": raw, "keys": keys, "extra": extra, "layout": layout, "study": study}


def _entries(damaged, kind: str) -> list[dict]:
    key = damaged["keys"][kind]
    pid = pseudonym(pseudonym_key("robust", SEED, phantom=False), key)
    return [r for r in damaged["extra"]["rejected"] if pid in r["file"] or key in r["file"]]


def _reasons(damaged, kind: str) -> str:
    return " | ".join(r["reason"] for r in _entries(damaged, kind))


def _used(damaged) -> set[str]:
    table = SliceIndex.for_task(damaged["layout"], "spine").table
    return set(table.patient)


def _pid(damaged, kind: str) -> str:
    return pseudonym(pseudonym_key("robust", SEED, phantom=False), damaged["keys"][kind])


def test_corrupt_dicom_file_is_rejected_and_its_series_still_used(damaged):
    assert "DICOM" in _reasons(damaged, "corrupt")
    assert any(r["file"].endswith("9-999.dcm") for r in _entries(damaged, "corrupt"))
    assert _pid(damaged, "corrupt") in _used(damaged)


def test_truncated_dicom_slice_rejects_file_and_the_gapped_series(damaged):
    reasons = _reasons(damaged, "truncated")
    assert "DICOM" in reasons and "spacing" in reasons
    assert _pid(damaged, "truncated") not in _used(damaged)


def test_series_without_pixel_data_is_rejected_images_still_used(damaged):
    assert "without pixel data" in _reasons(damaged, "nopixels")
    assert _pid(damaged, "nopixels") in _used(damaged)


def test_mixed_series_in_one_folder(damaged):
    assert "mixed series" in _reasons(damaged, "mixed")
    assert _pid(damaged, "mixed") not in _used(damaged)


def test_duplicate_slice_file_rejects_the_series_by_name(damaged):
    assert "slices at one position" in _reasons(damaged, "duplicate")
    assert "remove the duplicate" in _reasons(damaged, "duplicate")
    assert _pid(damaged, "duplicate") not in _used(damaged)


def test_mask_of_another_shape(damaged):
    assert "does not match image grid" in _reasons(damaged, "shape")


def test_empty_mask(damaged):
    assert "empty mask" in _reasons(damaged, "empty")


def test_nan_and_inf_voxels(damaged):
    assert "2 NaN or infinite voxels" in _reasons(damaged, "nan")


def test_patient_without_usable_slices(damaged):
    assert "no usable slices" in _reasons(damaged, "noslices")


def test_unreadable_nifti(damaged):
    assert "unreadable NIfTI" in _reasons(damaged, "unreadable")


def test_unsupported_file(damaged):
    assert "unsupported file" in _reasons(damaged, "unsupported")


def test_good_cases_all_used_and_every_rejection_accounted(damaged):
    extra = damaged["extra"]
    broken = {"truncated", "mixed", "duplicate", "shape", "empty", "nan", "noslices"}
    assert len(_used(damaged)) == 16 - len(broken)
    for kind in damaged["keys"]:
        assert _entries(damaged, kind), kind
    for r in extra["rejected"]:
        assert set(r) == {"file", "reason"} and not r["file"].startswith("/")
    assert extra["counts"]["ct"]["test"] >= 1


def test_below_minimum_fails_with_the_list(damaged, tmp_path):
    study = _study(damaged["raw"], min_slices_per_split=25)
    layout = RunLayout(tmp_path / "run")
    with pytest.raises(StageInputError) as err:
        run_stage("preprocess", study, layout)
    message = str(err.value)
    assert "below min_slices_per_split=25" in message and "ct/" in message
    assert "empty mask" in message and "unsupported file" in message
    assert read_manifest(layout.preprocess("spine")) is None  # nothing that looks finished
