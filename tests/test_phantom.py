"""The phantom study: deterministic, real DICOM/NIfTI/NRRD files, plausible contrasts, geometry
that the readers recover exactly."""

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from medtrans.shared.config import parse_study
from medtrans.shared.volumes.files import read_nifti, read_nrrd, read_volume
from medtrans.stages.preprocess.phantom import generate as phantom
from medtrans.stages.preprocess.phantom.writers import (
    centred_grid,
    write_dicom_series,
    write_nifti,
    write_nrrd,
)


def _study(patients=3, shape=(6, 64, 64)):
    return parse_study(
        {
            "name": "ph",
            "seed": 11,
            "profile": "demo",
            "tasks": {
                "breast": {
                    "source": {"name": "ge", "modality": "MR"},
                    "target": {"name": "siemens", "modality": "MR"},
                    "structures": ["breast", "fgt"],
                    "data": {"kind": "phantom", "patients_per_domain": patients, "shape": list(shape)},
                },
                "spine": {
                    "source": {"name": "mri", "modality": "MR"},
                    "target": {"name": "ct", "modality": "CT"},
                    "structures": ["vertebrae"],
                    "plane": "sagittal",
                    "data": {"kind": "phantom", "patients_per_domain": patients, "shape": list(shape)},
                },
            },
        }
    )


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    study = _study()
    root = tmp_path_factory.mktemp("phantom")
    for name, task in study.tasks.items():
        phantom.generate(study.seed, name, task, root / name)
    return study, root


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_patients(raw, tmp_path):
    study, root = raw
    again = tmp_path / "again"
    phantom.generate(study.seed, "spine", study.tasks["spine"], again)
    assert _digests(again) == _digests(root / "spine")
    other = tmp_path / "other"
    phantom.generate(study.seed + 1, "spine", study.tasks["spine"], other)
    assert _digests(other) != _digests(root / "spine")


def test_domains_hold_different_patients(raw):
    study, _ = raw
    ids = phantom.identities(study.seed, "breast", study.tasks["breast"])
    src = {i["patient_id"] for i in ids if i["role"] == "source"}
    tgt = {i["patient_id"] for i in ids if i["role"] == "target"}
    assert len(src) == 3 and len(tgt) == 3 and not src & tgt


def test_breast_dicom_series_tags(raw):
    study, root = raw
    ids = {i["patient_id"]: i for i in phantom.identities(study.seed, "breast", study.tasks["breast"])}
    series = sorted((root / "breast" / "images").glob(f"*/*/*{phantom.PRE_SERIES}"))
    assert len(series) == 6
    makers = set()
    for folder in series:
        files = sorted(folder.glob("*.dcm"))
        assert len(files) == 6
        ds = pydicom.dcmread(files[0])
        assert ds.Modality == "MR"
        makers.add(ds.Manufacturer)
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"):
            assert tag in ds
        who = ids[ds.PatientID]
        assert str(ds.PatientName) == who["name"] and ds.InstitutionName == who["institution"]
        assert ds.PatientBirthDate == who["birth_date"]
        # file order is not slice order: readers must sort by geometry
        z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
        assert z != sorted(z)
    assert makers == {"GE MEDICAL SYSTEMS", "SIEMENS"}


def test_breast_masks_nrrd_on_the_image_and_fgt_darker_than_fat(raw):
    _, root = raw
    for pid_dir in sorted((root / "breast" / "masks").iterdir()):
        pid = pid_dir.name
        image = read_volume(
            next((root / "breast" / "images" / pid).glob(f"*/*{phantom.PRE_SERIES}"))
        ).canonical()
        breast = read_nrrd(pid_dir / phantom.BREAST_MASK.format(pid=pid)).canonical()
        dense = read_nrrd(pid_dir / phantom.DENSE_MASK.format(pid=pid)).canonical()
        assert breast.data.shape == image.data.shape and np.allclose(breast.affine, image.affine)
        fgt = dense.data == 1
        fat = (breast.data > 0) & (dense.data == 0)
        assert fgt.sum() > 0.1 * breast.data.sum()  # FGT is a sizeable structure
        assert np.median(image.data[fgt]) < 0.8 * np.median(image.data[fat])  # T1: FGT darker than fat
        assert not ((dense.data > 0) & (breast.data == 0)).any()


def test_spine_ct_hounsfield_units(raw):
    _, root = raw
    for path in sorted((root / "spine" / "ct").glob("*.nii.gz")):
        ct = read_nifti(path)
        labels = read_nifti(root / "spine" / "ct_masks" / path.name)
        assert ct.data.shape == labels.data.shape
        assert set(np.unique(labels.data)) == {0, 1, 2, 3, 4, 5}  # L1..L5
        assert np.percentile(ct.data, 1) < -900  # air around the body
        bone = ct.data[labels.data > 0]
        assert bone.max() > 1000  # cortical shell
        core = ndimage.binary_erosion(labels.data > 0, np.ones((3, 3, 1), bool), iterations=2)
        assert 150 < np.median(ct.data[core]) < 400  # cancellous inside the cortical shell
        soft = ct.data[(ct.data > -200) & (ct.data < 200) & (labels.data == 0)]
        assert -150 < np.median(soft) < 100
        affine = nib.load(str(path)).affine
        assert not np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3])))  # not stored canonical


def test_spine_mri_t2_contrast(raw):
    _, root = raw
    for folder in sorted((root / "spine" / "mri").iterdir()):
        mri = read_volume(next(folder.iterdir())).canonical()
        labels = read_nifti(root / "spine" / "mri_masks" / f"{folder.name}.nii.gz").canonical()
        assert mri.data.shape == labels.data.shape and np.allclose(mri.affine, labels.affine, atol=1e-3)
        bone = mri.data[labels.data > 0]
        assert np.median(bone) < np.percentile(mri.data, 99)  # CSF and fat brighter than marrow


@pytest.mark.parametrize("fmt", ["dicom", "nifti", "nrrd"])
def test_writers_and_readers_agree_on_geometry(tmp_path, fmt):
    """An oblique-free but non-canonical grid (sagittal, LPS): each format reads back to the same
    canonical array and affine."""
    r = np.random.default_rng(0)
    vol = 2.0 * r.integers(0, 100, (5, 7, 9)).astype(np.float32)  # exact with slope 2
    grid = centred_grid(vol.shape, (3.0, 1.5, 2.0), (0, 1, 0), (0, 0, -1))
    if fmt == "dicom":
        from medtrans.stages.preprocess.phantom.generate import identity

        write_dicom_series(
            tmp_path / "s",
            vol,
            grid,
            identity(r, "source", 0),
            modality="MR",
            manufacturer="X",
            model="Y",
            description="d",
            series_number=1,
            uid_seed="u",
            slope=2.0,
            inter=-10.0,
            shuffle=r,
        )
        got = read_volume(tmp_path / "s")
    elif fmt == "nifti":
        write_nifti(tmp_path / "v.nii.gz", vol, grid, dtype=np.int16)
        got = read_nifti(tmp_path / "v.nii.gz")
    else:
        write_nrrd(tmp_path / "v.nrrd", vol.astype(np.uint8), grid)
        got = read_nrrd(tmp_path / "v.nrrd")
    got = got.canonical()
    ref = nib.as_closest_canonical(nib.Nifti1Image(vol.transpose(2, 1, 0), grid.ras_affine()))
    np.testing.assert_allclose(got.data, np.asarray(ref.dataobj), atol=1e-4)
    np.testing.assert_allclose(got.affine, ref.affine, atol=1e-3)


def test_phantom_and_preprocess_commands(tmp_path):
    """`medtrans phantom` writes the raw files; `medtrans preprocess` reads the study end to end."""
    import yaml
    from typer.testing import CliRunner

    from medtrans.stages.cli import app

    study = _study(patients=3, shape=(6, 32, 32)).model_dump(mode="json")
    study["preprocess"] = {"image_size": 32, "min_slices_per_split": 1, "workers": 1}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    runner = CliRunner()
    result = runner.invoke(
        app, ["phantom", "--study", str(path), "--out", str(tmp_path / "raw"), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "read it as data" in result.output
    assert len(list((tmp_path / "raw" / "spine" / "ct").glob("*.nii.gz"))) == 3
    result = runner.invoke(app, ["preprocess", "--study", str(path), "--run", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "preprocess" / "breast" / "index.csv").is_file()
    assert (tmp_path / "run" / "preprocess" / "spine" / "manifest.json").is_file()
