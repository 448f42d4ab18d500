"""Real-data adapters on layouts the tests write with the phantom writers: DBC (DICOM series per
patient, domain from the Manufacturer, series chosen by description, NRRD masks matched by
patient), lumbar spine (MRI as NIfTI, CT as DICOM with a rescale intercept, NRRD masks),
folder + CSV, and TotalSegmentator up to its network call."""

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medtrans.shared.config import parse_study
from medtrans.shared.dataset import SliceIndex
from medtrans.shared.imageio import read_png
from medtrans.shared.layout import RunLayout
from medtrans.shared.manifest import read_manifest
from medtrans.shared.stage import StageInputError
from medtrans.stages.preprocess.phantom import breast, spine
from medtrans.stages.preprocess.phantom.generate import identity
from medtrans.stages.preprocess.phantom.writers import (
    centred_grid,
    write_dicom_series,
    write_nifti,
    write_nrrd,
)
from medtrans.stages.runner import run_stage


@pytest.fixture(scope="module", autouse=True)
def _pseudonym_key(pseudonym_key_env):
    """Real-data adapters: preprocess refuses them without a pseudonym key."""
    return pseudonym_key_env

SHAPE = (6, 32, 32)
BREAST = {
    "source": {"name": "ge", "modality": "MR"},
    "target": {"name": "siemens", "modality": "MR"},
    "structures": ["breast", "fgt"],
    "plane": "axial",
}
SPINE = {
    "source": {"name": "mri", "modality": "MR"},
    "target": {"name": "ct", "modality": "CT"},
    "structures": ["vertebrae"],
    "plane": "sagittal",
}


def _study(task: dict, data: dict, name: str = "spine"):
    prep = {"image_size": 32, "split": [0.5, 0.25, 0.25], "min_slices_per_split": 1, "workers": 1}
    return parse_study(
        {
            "name": "adapters",
            "seed": 9,
            "profile": "demo",
            "tasks": {name: {**task, "data": data}},
            "preprocess": prep,
        }
    )


def _write_dbc(root: Path) -> None:
    """Breast_MRI_001..006 (GE, Siemens), pre and post-contrast series, Slicer-style NRRDs;
    Breast_MRI_007 from Philips (no domain), Breast_MRI_008 without masks."""
    makers = ["GE MEDICAL SYSTEMS"] * 3 + ["SIEMENS"] * 3 + ["Philips Medical Systems", "SIEMENS"]
    for k, maker in enumerate(makers, 1):
        r = np.random.default_rng(k)
        pid = f"Breast_MRI_{k:03d}"
        anat = breast.anatomy(r, SHAPE)
        vendor = breast.VENDORS["source" if maker.startswith("GE") else "target"]
        values = breast.render(anat, vendor, r)
        grid = centred_grid(SHAPE, (25.0, 10.0, 10.0), (1, 0, 0), (0, 1, 0))
        study = root / "images" / pid / "01-01-1990-NA-MRI BREAST BILATERAL W  WO-12345"
        common = dict(modality="MR", manufacturer=maker, model="m", uid_seed=pid)
        write_dicom_series(
            study / "3.000000-ax dyn pre-41234",
            values,
            grid,
            identity(r, "source", k),
            description="ax dyn pre",
            series_number=3,
            **common,
        )
        post = values[:4] * 1.5  # fewer slices: the chosen series shows in the slice count
        write_dicom_series(
            study / "4.000000-ax dyn 1st pass-5678",
            post,
            grid,
            identity(r, "source", k),
            description="ax dyn 1st pass",
            series_number=4,
            **common,
        )
        if k != 8:
            masks = root / "masks" / pid
            write_nrrd(masks / f"Segmentation_{pid}_Breast.seg.nrrd", anat.breast.astype(np.uint8), grid)
            write_nrrd(masks / f"Segmentation_{pid}_Dense_and_Vessels.seg.nrrd", anat.dense, grid)
    # a mask of another patient whose id contains ours as a prefix must not be picked up
    write_nrrd(
        root / "masks" / "Breast_MRI_0011" / "Segmentation_Breast_MRI_0011_Breast.seg.nrrd",
        np.zeros(SHAPE, np.uint8),
        grid,
    )


def test_dbc_layout(tmp_path):
    _write_dbc(tmp_path / "dbc")
    data = {"kind": "dbc", "root": str(tmp_path / "dbc" / "images"), "masks": str(tmp_path / "dbc" / "masks")}
    layout = RunLayout(tmp_path / "run")
    run_stage("preprocess", _study(BREAST, data, "breast"), layout)
    extra = read_manifest(layout.preprocess("breast")).extra
    table = SliceIndex.for_task(layout, "breast").table
    assert table.groupby("domain").patient.nunique().to_dict() == {"ge": 3, "siemens": 3}
    assert extra["slices_read"] == 6 * SHAPE[0]  # the 6-slice pre-contrast series, not the 4-slice post
    reasons = sorted(r["reason"] for r in extra["rejected"])
    assert any("manufacturer 'Philips Medical Systems' matches no domain" in r for r in reasons)
    assert any("no segmentation NRRD" in r for r in reasons)
    assert len(reasons) == 2
    assert set(table.structures) <= {"breast", "breast|fgt", "fgt"} and "breast|fgt" in set(table.structures)


def _write_spine(root: Path, n: int = 3) -> None:
    """MRI as NIfTI files with NIfTI masks; CT as DICOM series (HU via RescaleIntercept) with
    NRRD masks; different synthetic patients in each."""
    grid = centred_grid(SHAPE, (12.0, 6.0, 7.0), (0, 1, 0), (0, 0, -1))
    for k in range(n):
        r = np.random.default_rng(100 + k)
        anat = spine.anatomy(r, SHAPE)
        write_nifti(root / "mri" / f"sub-{k:02d}.nii.gz", spine.render_mri(anat, r), grid, dtype=np.int16)
        write_nifti(root / "mri_masks" / f"sub-{k:02d}.nii.gz", anat.vertebrae, grid, dtype=np.uint8)
        r = np.random.default_rng(200 + k)
        anat = spine.anatomy(r, SHAPE)
        hu = spine.render_ct(anat, r)
        write_dicom_series(
            root / "ct" / f"case{k:02d}" / "2-bone",
            hu,
            grid,
            identity(r, "target", k),
            modality="CT",
            manufacturer="TOSHIBA",
            model="Aquilion",
            description="bone",
            series_number=2,
            uid_seed=f"ct{k}",
            inter=-1024.0,
            shuffle=r,
        )
        write_nrrd(root / "ct_masks" / f"case{k:02d}.nrrd", anat.vertebrae, grid)


def test_spine_layout_mri_nifti_ct_dicom(tmp_path):
    _write_spine(tmp_path / "spine")
    root = tmp_path / "spine"
    data = {
        "kind": "spine",
        "mri": str(root / "mri"),
        "ct": str(root / "ct"),
        "mri_masks": str(root / "mri_masks"),
        "ct_masks": str(root / "ct_masks"),
        "totalsegmentator": False,
    }
    layout = RunLayout(tmp_path / "run")
    run_stage("preprocess", _study(SPINE, data), layout)
    index = SliceIndex.for_task(layout, "spine")
    table = index.table
    assert read_manifest(layout.preprocess("spine")).extra["rejected"] == []
    assert table.groupby("domain").patient.nunique().to_dict() == {"ct": 3, "mri": 3}
    # the CT window maps cortical bone bright and air dark: bone pixels far brighter than the rest
    ct = table[table.domain == "ct"]
    inside, outside = [], []
    for row in ct.itertuples():
        img, mask = read_png(index.path(row.image)), read_png(index.path(row.mask))
        inside.append(img[mask > 0].mean())
        outside.append(img[mask == 0].mean())
    assert np.mean(inside) > np.mean(outside) + 20


def test_folder_csv_source_same_patient_in_both_domains_keeps_one_split(tmp_path):
    root = tmp_path / "data"
    grid = centred_grid(SHAPE, (12.0, 6.0, 7.0), (0, 1, 0), (0, 0, -1))
    rows = ["patient,domain,image,mask"]
    for k in range(4):
        r = np.random.default_rng(300 + k)
        anat = spine.anatomy(r, SHAPE)
        write_nifti(root / f"p{k}_mr.nii.gz", spine.render_mri(anat, r), grid)
        write_nifti(root / f"p{k}_ct.nii.gz", spine.render_ct(anat, r), grid)
        write_nifti(root / f"p{k}_seg.nii.gz", (anat.vertebrae > 0).astype(np.uint8), grid, dtype=np.uint8)
        rows += [f"P{k},mri,p{k}_mr.nii.gz,p{k}_seg.nii.gz", f"P{k},ct,p{k}_ct.nii.gz,p{k}_seg.nii.gz"]
    rows += ["P9,pet,p0_mr.nii.gz,", "P8,ct,missing.nii.gz,"]
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    layout = RunLayout(tmp_path / "run")
    data = {"kind": "folder", "root": str(root), "csv": "cases.csv"}
    run_stage("preprocess", _study(SPINE, data), layout)
    table = SliceIndex.for_task(layout, "spine").table
    assert (table.groupby("patient").split.nunique() == 1).all()
    assert table.groupby("patient").domain.nunique().eq(2).all()
    assert len(set(table.slice_id)) == len(table)
    reasons = [r["reason"] for r in read_manifest(layout.preprocess("spine")).extra["rejected"]]
    assert any("'pet' is not one of" in r for r in reasons) and any("file not found" in r for r in reasons)


def _ct_only_layout(tmp_path: Path) -> dict:
    _write_spine(tmp_path / "spine", n=3)
    root = tmp_path / "spine"
    return {
        "kind": "spine",
        "mri": str(root / "mri"),
        "ct": str(root / "ct"),
        "mri_masks": str(root / "mri_masks"),
        "totalsegmentator": True,
    }


def test_totalsegmentator_missing_weights_names_make_weights_and_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "weights" / "totalseg"))
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH", raising=False)
    with pytest.raises(StageInputError) as err:
        run_stage("preprocess", _study(SPINE, _ct_only_layout(tmp_path)), RunLayout(tmp_path / "run"))
    message = str(err.value)
    assert "make weights" in message
    assert str(tmp_path / "weights" / "totalseg" / "nnunet" / "results" / "Dataset292") in message


def test_totalsegmentator_integration_up_to_the_network(tmp_path, monkeypatch):
    """The real TotalSegmentator package runs (task config, roi subset, crop, label mapping,
    usage statistics off, downloads refused) with weight folders laid out as `make weights`
    stores them; only its final network call `nnUNet_predict_image` is replaced, because the
    real weights (about 1.5 GB) are not on this machine and tests never download. The stand-in
    labels bone (> 600 HU) as vertebrae_L3 on the input grid."""
    import totalsegmentator.nnunet as ts_nnunet

    from medtrans.shared.volumes.files import read_volume
    from medtrans.stages.preprocess import totalseg

    home = tmp_path / "totalseg"
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(home))
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH", raising=False)
    rois = ("vertebrae_L1", "vertebrae_L2", "vertebrae_L3", "vertebrae_L4", "vertebrae_L5")
    for path in totalseg.required_weights(rois):
        path.mkdir(parents=True)
    calls = []
    l3 = totalseg.roi_labels()["vertebrae_L3"]

    def network(input_img, *args, **kwargs):
        img = input_img if isinstance(input_img, nib.Nifti1Image) else nib.load(str(input_img))
        calls.append({"task_id": args[1] if len(args) > 1 else kwargs.get("task_id"), "shape": img.shape})
        labels = (np.asarray(img.get_fdata()) > 600).astype(np.uint8) * l3
        return nib.Nifti1Image(labels, img.affine), img, None

    monkeypatch.setattr(ts_nnunet, "nnUNet_predict_image", network)
    _write_spine(tmp_path / "spine", n=1)
    ct = read_volume(next((tmp_path / "spine" / "ct").iterdir())).canonical()
    labels = totalseg.segment_vertebrae(ct, rois, 1)
    assert labels.shape == ct.data.shape and set(np.unique(labels)) == {0, 1}
    assert (ct.data[labels > 0] > 600).all()
    assert [c["task_id"] for c in calls] == [298, [291, 292, 293, 294, 295]]  # crop model, then the parts
    config = json.loads((home / "config.json").read_text())
    assert config["send_usage_stats"] is False
    assert not os.environ.get("TOTALSEG_WEIGHTS_PATH")


def test_spine_metaimage_and_verse_style_mask_names_and_values(tmp_path):
    """MRI as MetaImage (.mha, as SPIDER ships it) and CT masks named like VerSe
    (`<case>_ct.nii.gz` with `<case>_seg-vert_msk.nii.gz`, L1..L5 = 20..24, other vertebrae and
    a canal label present): `mask_values` keeps L1..L5 only."""
    import SimpleITK as sitk

    root = tmp_path / "spine"
    grid = centred_grid(SHAPE, (12.0, 6.0, 7.0), (0, 1, 0), (0, 0, -1))
    for k in range(3):
        r = np.random.default_rng(400 + k)
        anat = spine.anatomy(r, SHAPE)
        coded = np.where(anat.vertebrae > 0, anat.vertebrae + 19, 0).astype(np.uint8)
        coded[(anat.tissue == spine.CSF)] = 100  # canal: must not become vertebrae
        tmp = tmp_path / "tmp.nii.gz"
        write_nifti(tmp, spine.render_mri(anat, r), grid)
        (root / "mri").mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(sitk.ReadImage(str(tmp)), str(root / "mri" / f"{k}_t2.mha"))
        write_nifti(tmp, coded, grid, dtype=np.uint8)
        (root / "mri_masks").mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(sitk.ReadImage(str(tmp)), str(root / "mri_masks" / f"{k}_t2.mha"))
        write_nifti(root / "ct" / f"sub-verse{k:03d}_ct.nii.gz", spine.render_ct(anat, r), grid)
        write_nifti(root / "ct_masks" / f"sub-verse{k:03d}_seg-vert_msk.nii.gz", coded, grid, dtype=np.uint8)
    data = {
        "kind": "spine",
        "mri": str(root / "mri"),
        "ct": str(root / "ct"),
        "mri_masks": str(root / "mri_masks"),
        "ct_masks": str(root / "ct_masks"),
        "totalsegmentator": False,
        "mask_values": [20, 21, 22, 23, 24],
    }
    layout = RunLayout(tmp_path / "run")
    run_stage("preprocess", _study(SPINE, data), layout)
    assert read_manifest(layout.preprocess("spine")).extra["rejected"] == []
    index = SliceIndex.for_task(layout, "spine")
    assert index.table.groupby("domain").patient.nunique().to_dict() == {"ct": 3, "mri": 3}
    # the canal (label 100, bright CSF on T2) stays background: few bright pixels under the masks
    mri = index.table[index.table.domain == "mri"]
    bright = [
        (read_png(index.path(r.image))[read_png(index.path(r.mask)) > 0] > 235).mean()
        for r in mri.itertuples()
    ]
    assert np.mean(bright) < 0.02


def test_mask_values_keep_only_the_listed_labels():
    from medtrans.shared.config.study import TaskConfig
    from medtrans.stages.preprocess.adapters import _spine_labels
    from medtrans.stages.preprocess.cases import MaskRef
    from medtrans.stages.preprocess.worker import labels_from

    coded = np.array([[0, 20, 24, 100], [18, 21, 26, 0]])
    one = TaskConfig.model_validate({**SPINE, "data": {"kind": "phantom"}})
    ref = MaskRef("m", _spine_labels(one, (20, 21, 22, 23, 24)))
    np.testing.assert_array_equal(labels_from([(ref, coded)], coded.shape), [[0, 1, 1, 0], [0, 1, 0, 0]])
    ref = MaskRef("m", _spine_labels(one, None))
    np.testing.assert_array_equal(labels_from([(ref, coded)], coded.shape), coded > 0)
    two = TaskConfig.model_validate({**SPINE, "structures": ["l1", "l2"], "data": {"kind": "phantom"}})
    ref = MaskRef("m", _spine_labels(two, (20, 21)))
    np.testing.assert_array_equal(labels_from([(ref, coded)], coded.shape), [[0, 1, 0, 0], [0, 2, 0, 0]])
