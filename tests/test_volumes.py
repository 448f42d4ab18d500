"""The shared volume readers (`medtrans.shared.volumes`): every transfer syntax of pydicom's own
test files, the pixel limit read from headers, duplicate slice positions, and the windowing
policy's constant-slice rule as preprocess applies it."""

import shutil
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from volume_helpers import dicom_series, nifti_claiming, png_header

from medtrans.shared.volumes.dicom import read_dicom_image, read_dicom_series, scan_dicom
from medtrans.shared.volumes.errors import VolumeError
from medtrans.shared.volumes.files import read_nifti, read_nrrd, read_sitk
from medtrans.shared.volumes.limits import ENV
from medtrans.shared.volumes.raster import read_raster
from medtrans.stages.preprocess.slicing import slice_volume
from medtrans.stages.preprocess.worker import Settings

LOSSLESS = [
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
]
JPEG_12BIT = ["JPGExtended.dcm", "JPEG-lossy.dcm"]  # 1.2.840.10008.1.2.4.51, 12-bit samples


def _testfile(name: str) -> str:
    path = get_testdata_file(name, download=False)
    assert path, f"pydicom ships {name}"
    return path


@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_transfer_syntaxes_equal_the_uncompressed_file(name):
    arr, modality = read_dicom_image(_testfile(name))
    ref = pydicom.dcmread(_testfile("MR_small.dcm")).pixel_array
    assert modality == "MR"
    np.testing.assert_array_equal(arr, ref.astype(np.float32))


@pytest.mark.parametrize("name", JPEG_12BIT)
def test_12_bit_jpeg_extended_decodes(name):
    """JPEG-lossy.dcm carries a non-sequential scan header that JPGExtended.dcm fixes: both decode
    to the same 12-bit image."""
    arr, _ = read_dicom_image(_testfile(name))
    other, _ = read_dicom_image(_testfile(JPEG_12BIT[1 - JPEG_12BIT.index(name)]))
    assert arr.shape == (1024, 256) and 0 < arr.max() < 4096
    np.testing.assert_array_equal(arr, other)
    assert int(arr.sum()) == 3_767_007  # what GDCM's own decoder gives for JPGExtended.dcm


def test_png_header_over_the_limit_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(100_000, 100_000))
    with pytest.raises(VolumeError, match="100000 x 100000") as err:
        read_raster(path)
    assert err.value.file == str(path) and ENV in err.value.reason


def test_nifti_claiming_a_billion_voxels_is_refused_before_allocation(tmp_path):
    path = nifti_claiming(tmp_path / "huge.nii", (1000, 1000, 1000))
    assert path.stat().st_size < 1500
    with pytest.raises(VolumeError, match="1000000000 pixels, over the limit") as err:
        read_nifti(path)
    assert err.value.file == str(path)


def test_the_limit_is_a_setting(tmp_path, monkeypatch):
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.float32), np.eye(4)), path)
    monkeypatch.setenv(ENV, "999")
    with pytest.raises(VolumeError, match="over the limit of 999"):
        read_nifti(path)
    monkeypatch.setenv(ENV, "1000")
    assert read_nifti(path).data.shape == (10, 10, 10)


def test_nrrd_and_metaimage_headers_are_checked(tmp_path, monkeypatch):
    nrrd.write(str(tmp_path / "v.nrrd"), np.zeros((8, 8, 8), np.uint8), {"space": "left-posterior-superior",
               "space directions": np.eye(3), "space origin": np.zeros(3)})  # fmt: skip
    import SimpleITK as sitk

    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8, 8), np.float32)), str(tmp_path / "v.mha"))
    monkeypatch.setenv(ENV, "500")
    for reader, name in ((read_nrrd, "v.nrrd"), (read_sitk, "v.mha")):
        with pytest.raises(VolumeError, match="over the limit of 500") as err:
            reader(tmp_path / name)
        assert err.value.file == str(tmp_path / name)


def test_dicom_series_over_the_limit_is_refused_from_headers(tmp_path, monkeypatch):
    folder = dicom_series(tmp_path / "s", np.ones((4, 16, 16), np.int16))
    monkeypatch.setenv(ENV, str(4 * 16 * 16 - 1))
    (series,) = scan_dicom(folder, [])
    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(lambda ds: pytest.fail("pixels read")))
    with pytest.raises(VolumeError, match="over the limit") as err:
        read_dicom_series(series, [])
    assert err.value.file == str(folder)


def test_dicom_without_rows_and_columns_is_rejected_by_name(tmp_path):
    folder = dicom_series(tmp_path / "s", np.ones((4, 16, 16), np.int16))
    ds = pydicom.dcmread(folder / "im001")
    del ds.Rows, ds.Columns
    ds.save_as(folder / "im001")
    rejected = []
    (series,) = scan_dicom(folder, rejected)
    assert rejected == [(str(folder / "im001"), "DICOM image without Rows/Columns (0028,0010)/(0028,0011)")]
    assert len(series.files) == 3


@pytest.mark.parametrize("how", ["same file twice", "two series, one UID"])
def test_duplicate_slice_positions_are_refused(tmp_path, how):
    vol = np.arange(4 * 16 * 16, dtype=np.int16).reshape(4, 16, 16)
    folder = dicom_series(tmp_path / "s", vol, uid="1.2.3.4")
    if how == "same file twice":
        shutil.copy(folder / "im002", folder / "im002 (copy)")
    else:
        dicom_series(tmp_path / "s" / "other", vol[::-1], uid="1.2.3.4")
    (series,) = scan_dicom(folder, [])
    with pytest.raises(VolumeError, match="slices at one position") as err:
        read_dicom_series(series, [])
    assert err.value.file == str(folder) and "remove the duplicate" in err.value.reason


def test_preprocess_skips_slices_constant_after_windowing():
    """The shared rule, as compare applies it: a slice all clipped to 255 is not kept, even
    with anatomy in its mask."""
    vol = np.random.default_rng(0).uniform(0, 100, (6, 8, 8)).astype(np.float32)
    vol[:, :, 3] += 200  # one axial slice, not constant, all above the window's upper end
    label = np.ones(vol.shape, np.uint8)
    s = Settings(("body",), "axial", 8, (0.0, 50.0), (400.0, 1800.0), "mask", 0.01)
    kept, constant = slice_volume(vol, label, "MR", s)
    assert constant == 1 and [k for k, *_ in kept] == [0, 1, 2, 4, 5, 6, 7]


def test_a_multi_frame_file_is_one_volume_for_both_paths(tmp_path):
    """One multi-frame file with geometry: frames stacked along the normal (preprocess used to
    reject it as 'not a single-frame image', compare read it as a volume)."""
    from medtrans.shared.volumes.files import read_volume

    vol = np.arange(3 * 16 * 16, dtype=np.int16).reshape(3, 16, 16)
    single = dicom_series(tmp_path / "one", vol[:1])
    ds = pydicom.dcmread(single / "im000")
    ds.NumberOfFrames, ds.SpacingBetweenSlices = 3, 2.0
    ds.PixelData = vol.tobytes()
    (tmp_path / "mf").mkdir()
    ds.save_as(tmp_path / "mf" / "frames.dcm")
    got = read_volume(tmp_path / "mf")
    np.testing.assert_array_equal(got.data, vol.transpose(2, 1, 0).astype(np.float32))
    np.testing.assert_allclose(np.diag(got.affine), [-1.0, -1.0, 2.0, 1.0])


def test_compare_reads_the_compressed_files_through_the_same_reader(tmp_path):
    from medtrans.stages.metrics.images import Windowing, load_folder

    for name in [*JPEG_12BIT, "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm"]:
        (tmp_path / name.removesuffix(".dcm")).mkdir()
        shutil.copy(_testfile(name), tmp_path / name.removesuffix(".dcm"))
    # the two MR_small copies share a SeriesInstanceUID and a position: one series with a duplicate
    with pytest.raises(ValueError, match="slices at one position"):
        load_folder(tmp_path, Windowing(size=64))
    shutil.rmtree(tmp_path / "MR_small_jp2klossless")
    loaded = load_folder(tmp_path, Windowing(size=64))
    assert loaded.kinds == {"dicom": 3} and loaded.images.shape == (3, 64, 64) and not loaded.skipped


def test_every_pydicom_test_image_reads_or_is_a_clear_error():
    """Colour images become luminance; broken or multi-frame files without geometry are a
    `VolumeError` naming the file, never another exception."""
    folder = Path(_testfile("MR_small.dcm")).parent
    read, refused = [], []
    for path in sorted(folder.glob("*.dcm")):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not every test file is a readable dataset
            continue
        if "Rows" not in ds:
            continue
        try:
            arr, _ = read_dicom_image(path)
            assert arr.ndim == 2 and np.isfinite(arr).all(), path.name
            read.append(path.name)
        except VolumeError as err:
            assert err.file == str(path)
            refused.append(path.name)
    assert {"SC_rgb_jpeg.dcm", "SC_rgb_rle.dcm", "examples_jpeg2k.dcm", *JPEG_12BIT, *LOSSLESS} <= set(read)
    assert {"MR_truncated.dcm", "badVR.dcm", "rtdose.dcm"} <= set(refused)
