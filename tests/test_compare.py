"""`medtrans compare` and its folder readers: PNG, DICOM series, NIfTI volumes, degenerate inputs."""

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from metrics_helpers import phantoms, random_inception_file
from typer.testing import CliRunner
from volume_helpers import dicom_series, nifti_claiming, png_header

from medtrans.shared.hashing import sha256_file
from medtrans.shared.imageio import write_png
from medtrans.stages.cli import app
from medtrans.stages.metrics import swd
from medtrans.stages.metrics.command import compare
from medtrans.stages.metrics.features import extract_features
from medtrans.stages.metrics.fid import fid_from_features
from medtrans.stages.metrics.images import FolderError, Windowing, load_folder, pair_key
from medtrans.stages.metrics.inception import load_inception
from medtrans.stages.metrics.pairs import score_pairs
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
    folder = dicom_series(tmp_path / "dicom" / "series1", _hu(u8))
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
    with pytest.raises(FolderError, match=str(culprit)):
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


def _translated(tmp_path, sources):
    """A source folder and its 'translation' (inverted intensities, anatomy kept), same names."""
    src = _pngs(tmp_path / "src", sources)
    return src, _pngs(tmp_path / "translated", (255 - sources).astype(np.uint8))


def test_pair_metrics_need_source_and_pair_by_file_name(pngs, tmp_path):
    real = pngs[0]
    sources = phantoms(5, 7, size=32, noise=0.05)
    src, fake = _translated(tmp_path, sources)
    plain = runner.invoke(app, ["compare", str(real), str(fake), "--metrics", "swd,nmi,mind,ngf"])
    assert plain.exit_code == 0, plain.output
    assert plain.output.count("skipped NMI, MIND-SSC, NGF: pair metrics need --source DIR") == 1
    assert "nmi" not in plain.output.split("skipped", 1)[1].split("\n", 1)[1]  # no rows
    out = tmp_path / "r.json"
    args = ["compare", str(real), str(fake), "--source", str(src), "--bootstrap", "4", "--out", str(out)]
    result = runner.invoke(app, [*args, "--metrics", "swd,nmi,mind,ngf"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    rows = {r["metric"]: r for r in data["rows"]}
    want = score_pairs(["nmi", "mind", "ngf"], load_folder(src).images, load_folder(fake).images)
    for name, value in want.items():
        assert rows[name]["value"] == pytest.approx(value, rel=1e-12) and rows[name]["ci_low"] is not None
    assert rows["mind"]["value"] == pytest.approx(0.0, abs=1e-12) and rows["ngf"]["value"] == pytest.approx(
        1.0
    )
    assert data["source"]["n"] == 5 and data["settings"]["pairs"]["nmi"]["bins"] == 32
    # the translation listed in another order (other names): paired by name, not by position
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    for i, img in enumerate((255 - sources).astype(np.uint8)):
        write_png(shuffled / f"{i:02d}.png", img)
    (shuffled / "00.png").rename(shuffled / "tmp.png")
    (shuffled / "04.png").rename(shuffled / "00.png")
    (shuffled / "tmp.png").rename(shuffled / "04.png")
    swapped = compare(real, shuffled, ("nmi",), src)
    assert swapped["rows"][0]["value"] < want["nmi"] - 0.1  # two pairs now of different slices


def test_pair_metrics_refuse_unmatched_or_missized_sources(pngs, tmp_path):
    src, fake = _translated(tmp_path, phantoms(4, 7, size=32))
    write_png(fake / "extra.png", phantoms(1, 8, size=32)[0])
    result = runner.invoke(
        app, ["compare", str(pngs[0]), str(fake), "--source", str(src), "--metrics", "nmi"]
    )
    assert result.exit_code == 2 and "extra.png: no source image of that name" in result.output
    big = _pngs(tmp_path / "big", phantoms(5, 7, size=48))
    result = runner.invoke(
        app, ["compare", str(pngs[0]), str(src), "--source", str(big), "--metrics", "mind"]
    )
    assert result.exit_code == 2 and "are 48x48" in result.output and "--size" in result.output
    only_pairs = runner.invoke(app, ["compare", str(pngs[0]), str(fake), "--metrics", "nmi,ngf"])
    assert only_pairs.exit_code == 2 and "only pair metrics, and no --source" in only_pairs.output
    with pytest.raises(ValueError, match="pair metrics need a source folder"):
        compare(pngs[0], fake, ("nmi",))


def test_pair_key_ignores_the_image_extension():
    assert pair_key("a/b.png") == pair_key("a/b.DCM") == pair_key("a/b.jpeg") == "a/b"
    assert pair_key("vol.nii.gz#0012") == pair_key("vol.png#0012") == "vol#0012"
    assert pair_key("x.y.tiff") == "x.y" and pair_key("series-3#0001") == "series-3#0001"


def test_unknown_metric_is_refused(pngs):
    result = runner.invoke(app, ["compare", str(pngs[0]), str(pngs[1]), "--metrics", "fid,psnr"])
    assert result.exit_code == 2


# ---------------------------------------------------------------------------------------------
# bad input: every bad file is named, compare refuses by default and goes on with --skip-bad


def _bad_png_bomb(bad):
    (bad / "bomb.png").write_bytes(png_header(100_000, 100_000))
    return bad / "bomb.png"


def _bad_nifti_huge(bad):
    return nifti_claiming(bad / "huge.nii", (1000, 1000, 1000))


def _series(bad):
    return dicom_series(bad / "s", _hu(phantoms(4, 8, size=32)))


def _bad_dicom_no_rows(bad):
    folder = _series(bad)
    ds = pydicom.dcmread(folder / "im001")
    del ds.Rows, ds.Columns
    ds.save_as(folder / "im001")
    return folder / "im001"


def _bad_dicom_twice(bad):
    folder = _series(bad)
    shutil.copy(folder / "im002", folder / "im002-copy")
    return folder


def _bad_dicom_shared_uid(bad):
    folder = _series(bad)
    uid = pydicom.dcmread(folder / "im000").SeriesInstanceUID
    dicom_series(bad / "t", _hu(phantoms(4, 9, size=32)), uid=uid)
    return folder


def _bad_dicom_gap(bad):
    folder = _series(bad)
    (folder / "im002").unlink()
    return folder


def _bad_dicom_corrupt(bad):
    folder = _series(bad)
    (folder / "im999").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x01\x00garbage" * 3)
    return folder / "im999"


def _bad_truncated_png(bad):
    data = (bad / "00.png").read_bytes()
    (bad / "cut.png").write_bytes(data[: len(data) // 2])
    return bad / "cut.png"


def _bad_broken_link(bad):
    (bad / "gone.png").symlink_to(bad / "nowhere.png")
    return bad / "gone.png"


BAD = {name.removeprefix("_bad_"): fn for name, fn in dict(globals()).items() if name.startswith("_bad_")}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_file_is_named_refused_and_skipped_on_request(pngs, tmp_path, kind):
    bad = _pngs(tmp_path / "bad", phantoms(3, 3, size=32))
    culprit = BAD[kind](bad)
    args = ["compare", str(pngs[0]), str(bad), "--metrics", "swd"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert str(culprit) in result.output and "--skip-bad" in result.output
    out = tmp_path / "r.json"
    result = runner.invoke(app, [*args, "--skip-bad", "--out", str(out)])
    assert result.exit_code == 0, result.output
    fake = json.loads(out.read_text())["fake"]
    assert str(culprit) in {s["file"] for s in fake["skipped"]}
    assert fake["n"] == 3 + (4 if kind == "dicom_corrupt" else 0)  # the good files are all used


def test_unreadable_folder_is_reported_not_skipped_silently(pngs, tmp_path, monkeypatch):
    bad = _pngs(tmp_path / "bad", phantoms(3, 3, size=32))
    locked = bad / "locked"
    _pngs(locked, phantoms(2, 4, size=32))
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(locked):  # tests run as root, where chmod 000 does not lock
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = runner.invoke(app, ["compare", str(pngs[0]), str(bad), "--metrics", "swd"])
    assert result.exit_code == 2 and str(locked) in result.output and "unreadable folder" in result.output
    result = runner.invoke(app, ["compare", str(pngs[0]), str(bad), "--metrics", "swd", "--skip-bad"])
    assert result.exit_code == 0 and f"skipped {locked}: unreadable folder" in result.output


def test_every_bad_file_of_both_folders_is_listed_in_one_run(tmp_path):
    real = _pngs(tmp_path / "real", phantoms(3, 1, size=32))
    fake = _pngs(tmp_path / "fake", phantoms(1, 2, size=32))
    culprits = [_bad_png_bomb(real), _bad_truncated_png(fake), _bad_nifti_huge(fake)]
    for i in range(20):
        write_png(fake / f"blank{i:02d}.png", np.full((32, 32), i, np.uint8))
        culprits.append(fake / f"blank{i:02d}.png")
    result = runner.invoke(app, ["compare", str(real), str(fake), "--metrics", "swd"])
    assert result.exit_code == 2
    text = result.output.replace("\n", " ")
    assert all(str(c) in text for c in culprits)
    assert "fake: 22 bad file(s)" in text and "real: 1 bad file(s)" in text


def test_nibabel_anatomical_volume_compares_constant_slices_skipped(pngs, tmp_path):
    """nibabel's own test volume: its slices that the CT window saturates are skipped with a log line."""
    import logging

    import nibabel.testing

    fake = tmp_path / "B"
    fake.mkdir()
    shutil.copy(Path(nibabel.testing.data_path) / "anatomical.nii", fake)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("medtrans.metrics.images").addHandler(handler)
    try:
        result = runner.invoke(app, ["compare", str(pngs[0]), str(fake), "--metrics", "swd", "--size", "32"])
    finally:
        logging.getLogger("medtrans.metrics.images").removeHandler(handler)
    assert result.exit_code == 0, result.output
    assert any("anatomical.nii: skipped" in m and "constant after windowing" in m for m in seen), seen
    names = load_folder(fake, Windowing(size=32)).names
    assert "anatomical.nii#0022" not in names and len(names) >= 2


def test_non_images_are_ignored_and_recorded(pngs, tmp_path):
    folder = dicom_series(tmp_path / "d" / "s", _hu(phantoms(4, 5, size=32)))
    ds = pydicom.dcmread(folder / "im000")
    del ds.PixelData
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.save_as(tmp_path / "d" / "report.dcm")
    (tmp_path / "d" / "notes.txt").write_text("scanner notes")
    out = tmp_path / "r.json"
    result = runner.invoke(
        app, ["compare", str(pngs[0]), str(tmp_path / "d"), "--metrics", "swd", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    fake = json.loads(out.read_text())["fake"]
    assert fake["n"] == 4 and not fake["skipped"]
    assert {Path(i["file"]).name for i in fake["ignored"]} == {"report.dcm", "notes.txt"}
