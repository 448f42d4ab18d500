"""`medtrans compare` and its folder readers: PNG, DICOM series, NIfTI volumes, degenerate inputs."""

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest
from metrics_helpers import phantoms, random_inception_file
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from typer.testing import CliRunner

from medtrans.shared.hashing import sha256_file
from medtrans.shared.imageio import write_png
from medtrans.stages.cli import app
from medtrans.stages.metrics import swd
from medtrans.stages.metrics.features import extract_features
from medtrans.stages.metrics.fid import fid_from_features
from medtrans.stages.metrics.images import ImageSetError, Windowing, load_folder
from medtrans.stages.metrics.inception import load_inception
from medtrans.stages.metrics.weights import locate_inception

runner = CliRunner()
CT_LO, CT_HI = 400 - 900, 400 + 900  # the default CT window (level 400, width 1800)


def _pngs(folder, images):
    for i, img in enumerate(images):
        write_png(folder / f"{i:02d}.png", img)
    return folder


def _hu(u8: np.ndarray) -> np.ndarray:
    """Hounsfield values that the default CT window maps back to exactly these 8-bit values."""
    return np.round(CT_LO + u8.astype(np.float64) * (CT_HI - CT_LO) / 255.0).astype(np.int16)


def _dicom_series(folder, slices: np.ndarray, modality: str = "CT", uid: str | None = None):
    """An axial DICOM series (LPS, IOP 1,0,0,0,1,0), one file per slice, int16 pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    series = uid or generate_uid()
    for k, pixels in enumerate(slices):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"im{k:03d}"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = modality, series, 1, k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, 2.0 * (len(slices) - k)]  # written in reverse: sorting matters
        ds.PixelSpacing, ds.SliceThickness = [1, 1], 2
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.ascontiguousarray(pixels, dtype=np.int16).tobytes()
        pydicom.dcmwrite(folder / f"im{k:03d}", ds, enforce_file_format=True)
    return folder


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    return (
        _pngs(root / "real", phantoms(6, 1, size=32)),
        _pngs(root / "fake", phantoms(6, 2, size=32, blobs=2, noise=0.05)),
    )


def test_png_folders_cli_writes_json_and_csv(pngs, tmp_path):
    real, fake = pngs
    out = tmp_path / "res" / "results.json"
    result = runner.invoke(app, ["compare", str(real), str(fake), "--metrics", "swd,frd", "--out", str(out),
                                 "--cache", str(tmp_path / "cache")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "swd" in result.output and "frd_log" in result.output
    data = json.loads(out.read_text())
    rows = {r["metric"]: r for r in data["rows"]}
    assert set(rows) == {"swd", "swd_32", "swd_16", "frd", "frd_log"}
    want = swd.swd(load_folder(real).images, load_folder(fake).images, swd.SWDParams(), seed=2020)
    assert rows["swd"]["value"] == pytest.approx(want.average, rel=1e-12)
    assert rows["frd_log"]["value"] == pytest.approx(np.log(rows["frd"]["value"]), rel=1e-12)
    csv_text = out.with_suffix(".csv").read_text()
    assert csv_text.splitlines()[0] == "set,metric,value,ci_low,ci_high,n,network_sha256,note"
    assert len(csv_text.splitlines()) == 6


def test_custom_extractor_fid_kid_is(tmp_path):
    # 4 images a set: 299 x 299 Inception on a CPU runs at a few images/s
    real = _pngs(tmp_path / "real", phantoms(4, 1, size=32))
    fake = _pngs(tmp_path / "fake", phantoms(4, 2, size=32, blobs=2, noise=0.05))
    net = random_inception_file(tmp_path)
    out = tmp_path / "r.json"
    args = ["--metrics", "fid,kid,is", "--extractor", str(net), "--is-splits", "2", "--bootstrap", "3"]
    result = runner.invoke(app, ["compare", str(real), str(fake), *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "CUSTOM" in result.output
    data = json.loads(out.read_text())
    assert data["network"] == {
        "available": True,
        "file": str(net),
        "sha256": sha256_file(net),
        "standard": False,
    }
    rows = {r["metric"]: r for r in data["rows"]}
    model = load_inception(locate_inception(custom=net))
    f_real = extract_features(model, load_folder(real).images, progress=False)
    f_fake = extract_features(model, load_folder(fake).images, progress=False)
    assert rows["fid"]["value"] == pytest.approx(fid_from_features(f_real, f_fake, warn=False), rel=1e-9)
    assert rows["fid"]["ci_low"] is not None and rows["fid"]["network_sha256"] == sha256_file(net)
    assert np.isfinite(rows["kid"]["value"]) and rows["is"]["value"] > 1


def test_missing_weights_are_notes(pngs, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTRANS_WEIGHTS", str(tmp_path / "none"))
    result = runner.invoke(app, ["compare", str(pngs[0]), str(pngs[1]), "--metrics", "fid,swd"])
    assert result.exit_code == 1, result.output  # a requested metric without a value: not a success
    assert "weights missing" in result.output and "make weights" in result.output
    assert "not computed: fid" in result.output


def test_dicom_series_is_sorted_windowed_and_compared(pngs, tmp_path):
    u8 = phantoms(5, 7, size=32)
    folder = _dicom_series(tmp_path / "dicom" / "series1", _hu(u8))
    (tmp_path / "dicom" / "notes.txt").write_text("not an image")
    loaded = load_folder(tmp_path / "dicom")
    assert loaded.kinds == {"dicom": 5}
    # position order reverses the file order; CT window maps the values back; display = pixel array
    np.testing.assert_allclose(loaded.images.astype(int), u8[::-1].astype(int), atol=1)
    assert all(name.startswith("series1/") for name in loaded.names)
    result = runner.invoke(app, ["compare", str(pngs[0]), str(folder), "--metrics", "swd"])
    assert result.exit_code == 0, result.output


def test_nifti_volume_planes_and_modality(tmp_path):
    rng = np.random.default_rng(0)
    ct = rng.integers(-1000, 2000, size=(24, 20, 6)).astype(np.float32)
    nib.save(nib.Nifti1Image(ct, np.eye(4)), tmp_path / "ct.nii.gz")
    axial = load_folder(tmp_path, Windowing(plane="axial"))
    assert axial.images.shape == (6, 20, 24)  # rows: anterior-posterior (y), columns: x
    expected = np.clip(np.rint((ct[::-1, ::-1, 0].T - CT_LO) / (CT_HI - CT_LO) * 255), 0, 255)
    np.testing.assert_allclose(axial.images[0], expected, atol=1)  # auto: CT since min <= -500
    sag = load_folder(tmp_path, Windowing(plane="sagittal", size=16))
    assert sag.images.shape == (24, 16, 16)
    mr = load_folder(tmp_path, Windowing(modality="MR"))
    assert not np.array_equal(mr.images, axial.images)


@pytest.mark.parametrize("case", ["empty", "one", "constant", "sizes", "nan"])
def test_degenerate_inputs_are_clear_errors(pngs, tmp_path, case):
    bad = tmp_path / "bad"
    bad.mkdir()
    imgs = phantoms(3, 3, size=32)
    culprit = bad
    if case == "one":
        _pngs(bad, imgs[:1])
    elif case == "constant":
        _pngs(bad, imgs)
        culprit = bad / "01.png"
        write_png(culprit, np.full((32, 32), 9, np.uint8))
    elif case == "sizes":
        _pngs(bad, imgs)
        culprit = bad / "02.png"
        write_png(culprit, phantoms(1, 4, size=24)[0])
    elif case == "nan":
        vol = np.ones((8, 8, 3), np.float32)
        vol[2, 2, 1] = np.nan
        culprit = bad / "v.nii.gz"
        nib.save(nib.Nifti1Image(vol, np.eye(4)), culprit)
    with pytest.raises(ImageSetError, match=str(culprit)):
        load_folder(bad)
    result = runner.invoke(app, ["compare", str(pngs[0]), str(bad), "--metrics", "swd"])
    assert result.exit_code == 2
    assert "error:" in result.output and str(culprit) in result.output.replace("\n", "")


def test_size_option_resizes_mismatched_images(pngs, tmp_path):
    mixed = _pngs(tmp_path / "mixed", phantoms(3, 3, size=32))
    write_png(mixed / "z.png", phantoms(1, 4, size=48)[0])
    assert load_folder(mixed, Windowing(size=32)).images.shape == (4, 32, 32)
    result = runner.invoke(app, ["compare", str(pngs[0]), str(mixed), "--metrics", "swd", "--size", "32"])
    assert result.exit_code == 0, result.output


def test_unknown_metric_is_refused(pngs):
    result = runner.invoke(app, ["compare", str(pngs[0]), str(pngs[1]), "--metrics", "fid,psnr"])
    assert result.exit_code == 2
