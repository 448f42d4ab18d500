"""Bad input, one test per kind: `verify`, `status`, study files and `compare` options. Each asserts
the exit code, that the message names the file (or the option), and that nothing else is lost
(verify still checks every other manifest). The README's "Bad input" table lists these kinds."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from medtrans.shared import signing
from medtrans.shared.hashing import sha256_file
from medtrans.shared.imageio import write_png
from medtrans.shared.layout import RunLayout
from medtrans.shared.stage import Unit, execute
from medtrans.stages.cli import app
from medtrans.stages.preprocess.splits import KEY_ENV

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "studies" / "smoke.yaml"
cli = CliRunner()


def _invoke(*args) -> tuple[int, str]:
    """Exit code and output; a usage error's box (rich) is flattened to plain words."""
    result = cli.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    assert "Traceback" not in result.output
    out = result.output
    if "Error ─" in out:
        out = " ".join(re.sub("[│╭╮╰╯─]", " ", out).split())
    return result.exit_code, out


# ---- verify -------------------------------------------------------------------------------------


def _build(ctx):
    (ctx.work / "images").mkdir()
    (ctx.work / "images" / "a.png").write_bytes(b"png bytes")
    (ctx.work / "table.csv").write_text("x\n1\n")


@pytest.fixture
def run(tmp_path) -> RunLayout:
    """Three units: preprocess/t -> translate/t/cyclegan -> segment/t."""
    layout = RunLayout(tmp_path / "run")
    pre = Unit("preprocess", ("t",), layout.preprocess("t"), {}, _build)
    tr = Unit("translate", ("t", "cyclegan"), layout.translate("t", "cyclegan"), {}, _build, inputs=[pre.out])
    seg = Unit("segment", ("t",), layout.segment("t"), {}, _build, inputs=[tr.out])
    for unit in (pre, tr, seg):
        execute(unit, layout)
    return layout


def _edit_json(path: Path, change) -> None:
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content, indent=2))


def _truncated(layout):
    path = layout.segment("t") / "manifest.json"
    path.write_bytes(path.read_bytes()[:500])
    return path


def _not_an_object(layout):
    path = layout.segment("t") / "manifest.json"
    path.write_text("[]")
    return path


def _schema(layout):
    path = layout.segment("t") / "manifest.json"
    _edit_json(path, lambda c: c.pop("outputs"))
    return path


def _flipped(layout):
    path = layout.translate("t", "cyclegan") / "images" / "a.png"
    path.write_bytes(b"PNG bytes")
    return path


def _deleted(layout):
    path = layout.translate("t", "cyclegan") / "images" / "a.png"
    path.unlink()
    return path


def _unlisted(layout):
    path = layout.preprocess("t") / "images" / "extra.png"
    path.write_bytes(b"x")
    return path


def _escaping(layout):
    path = layout.segment("t") / "manifest.json"
    _edit_json(path, lambda c: c["outputs"][0].update(path="../../../etc/hostname"))
    return path


def _stale_input(layout):
    path = layout.preprocess("t") / "manifest.json"
    _edit_json(path, lambda c: c.update(finished="2000-01-01T00:00:00+00:00"))
    return layout.translate("t", "cyclegan") / "manifest.json"


VERIFY_KINDS = {
    "truncated manifest": (_truncated, "unreadable manifest"),
    "manifest not a JSON object": (_not_an_object, "not a JSON object"),
    "manifest missing a field": (_schema, "invalid manifest: outputs"),
    "altered output": (_flipped, "sha256 differs"),
    "deleted output": (_deleted, "missing"),
    "unlisted file": (_unlisted, "not listed"),
    "output path leaving its folder": (_escaping, "leaves the unit folder"),
    "input reference not the current upstream": (_stale_input, "not the manifest this unit was built from"),
}


@pytest.mark.parametrize("kind", VERIFY_KINDS)
def test_verify_bad_run(run, kind):
    damage, words = VERIFY_KINDS[kind]
    path = damage(run)
    code, out = _invoke("verify", run.root)
    assert code == 1, out
    assert any(str(path) in line and words in line for line in out.splitlines()), out
    assert "verified 3 manifests" in out  # every other manifest still checked


def _sign_run(layout, monkeypatch):
    monkeypatch.setenv(signing.KEY_ENV, "k" * 64)
    for folder in (layout.preprocess("t"), layout.translate("t", "cyclegan"), layout.segment("t")):
        shutil.rmtree(folder)
    test_run = layout
    pre = Unit("preprocess", ("t",), test_run.preprocess("t"), {}, _build)
    execute(pre, test_run)
    return pre


def test_verify_forged_manifest_with_signing_key(run, monkeypatch):
    pre = _sign_run(run, monkeypatch)
    target = pre.out / "table.csv"
    target.write_text("x\n2\n")
    path = pre.out / "manifest.json"
    _edit_json(path, lambda c: next(o for o in c["outputs"] if o["path"] == "table.csv").update(
        sha256=sha256_file(target)
    ))  # fmt: skip
    code, out = _invoke("verify", run.root)
    assert code == 1 and f"{path}: signature does not match its content" in out


def test_verify_unsigned_manifest_with_signing_key(run, monkeypatch):
    monkeypatch.setenv(signing.KEY_ENV, "k" * 64)
    code, out = _invoke("verify", run.root)
    assert code == 1 and f"{run.segment('t') / 'manifest.json'}: not signed" in out


def test_verify_key_file_inside_the_run(run, monkeypatch):
    key = run.root / "signing.key"
    key.write_text("k" * 64)
    monkeypatch.setenv(signing.KEY_FILE_ENV, str(key))
    code, out = _invoke("verify", run.root)
    assert code == 2 and str(key.resolve()) in out and "inside the run folder" in out


def test_verify_missing_run_folder(tmp_path):
    code, out = _invoke("verify", tmp_path / "absent")
    assert code == 2 and f"{tmp_path / 'absent'}: no such run folder" in out


def test_verify_folder_without_manifests(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    code, out = _invoke("verify", tmp_path)
    assert code == 2 and f"{tmp_path}: no manifest.json" in out


def test_verify_missing_study_file(run, tmp_path):
    code, out = _invoke("verify", run.root, "--study", tmp_path / "absent.yaml")
    assert code == 2 and f"{tmp_path / 'absent.yaml'}: no such study file" in out


# ---- study files (status validates the study, data paths included) ----------------------------


def _study_text(tmp_path: Path, data: dict | None = None) -> dict:
    study = yaml.safe_load(SMOKE.read_text())
    if data is not None:
        study["tasks"] = {"spine": {**study["tasks"]["spine"], "data": data}}
    return study


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def _touch(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _dump(tmp_path: Path, study: dict) -> Path:
    return _write(tmp_path, yaml.safe_dump(study, sort_keys=False))


STUDY_KINDS = {
    "folder data root missing": (
        lambda t: _dump(t, _study_text(t, {"kind": "folder", "root": str(t / "nowhere"), "csv": "c.csv"})),
        "tasks.spine.data.root: folder",
    ),
    "folder data csv missing": (
        lambda t: (t / "data").mkdir()
        or _dump(t, _study_text(t, {"kind": "folder", "root": str(t / "data"), "csv": "cases.csv"})),
        "tasks.spine.data.csv: file",
    ),
    "spine data folder is a file": (
        lambda t: _touch(t / "mri", b"x")
        or _dump(t, _study_text(t, {"kind": "spine", "mri": str(t / "mri"), "ct": str(t)})),
        "exists but is not a folder",
    ),
    "duplicate key": (
        lambda t: _write(t, SMOKE.read_text() + "seed: 8\n"),
        "duplicate key 'seed' (first given on line 3)",
    ),
    "YAML syntax error": (lambda t: _write(t, "name: [unclosed\nseed: 1\n"), "not valid YAML: "),
    "YAML tab indentation": (lambda t: _write(t, "name: x\n\tseed: 1\n"), "found character '\\t'"),
    "unknown key": (lambda t: _write(t, SMOKE.read_text() + "colour: red\n"), "colour: unknown key"),
    "not a mapping": (lambda t: _write(t, "- a\n- b\n"), "a study must be a mapping"),
    "not text": (lambda t: _touch(t / "study.yaml", b"\xff\xfe\x00bad") or t / "study.yaml",
                 "unreadable study file"),
    "missing study file": (lambda t: t / "absent.yaml", "no such study file"),
}


@pytest.mark.parametrize("kind", STUDY_KINDS)
def test_status_bad_study(tmp_path, kind):
    make, words = STUDY_KINDS[kind]
    path = make(tmp_path)
    code, out = _invoke("status", path, "--run", tmp_path / "run")
    assert code == 2, out
    assert str(path) in out and words in out, out
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_status_shows_a_corrupt_unit(smoke_preprocessed, copy_run):
    layout = copy_run(smoke_preprocessed)
    image = next((layout.preprocess("breast") / "images").glob("*.png"))
    data = bytearray(image.read_bytes())
    data[-1] ^= 0xFF
    image.write_bytes(bytes(data))
    code, out = _invoke("status", SMOKE, "--run", layout.root)
    assert code == 1, out
    line = next(x for x in out.splitlines() if x.startswith("preprocess/breast"))
    assert "corrupt" in line and image.name in line
    spine = next(x for x in out.splitlines() if x.startswith("preprocess/spine"))
    assert "done" in spine  # the other task is unaffected
    blocked = next(x for x in out.splitlines() if x.startswith("translate/breast/cyclegan"))
    assert "blocked" in blocked and image.name in blocked


def test_preprocess_real_data_without_pseudonym_key(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cases.csv").write_text("patient,domain,image\n")
    path = _dump(tmp_path, _study_text(tmp_path, {"kind": "folder", "root": str(tmp_path / "data"),
                                                  "csv": "cases.csv"}))  # fmt: skip
    code, out = _invoke("preprocess", "--study", path, "--run", tmp_path / "run")
    assert code == 2 and KEY_ENV in out and "token_hex" in out
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").rglob("*"))


def test_preprocess_refused_input_leaves_no_partial_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test key")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cases.csv").write_text("patient,image\n")  # no domain column
    path = _dump(tmp_path, _study_text(tmp_path, {"kind": "folder", "root": str(tmp_path / "data"),
                                                  "csv": "cases.csv"}))  # fmt: skip
    code, out = _invoke("preprocess", "--study", path, "--run", tmp_path / "run")
    assert code == 2 and str(tmp_path / "data" / "cases.csv") in out
    assert not list((tmp_path / "run").rglob("*.partial"))


# ---- compare options ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    rng = np.random.default_rng(0)
    for name in ("real", "fake"):
        for i in range(4):
            write_png(root / name / f"{i}.png", rng.integers(0, 255, (32, 32), dtype=np.uint8))
    return root / "real", root / "fake"


def _corrupt_extractor(tmp_path: Path) -> Path:
    path = tmp_path / "inception.pth"
    path.write_bytes(b"\x80\x02not a pickle at all")
    return path


OPTION_KINDS = {
    "size 0": (["--size", "0"], "--size 0"),
    "size too large": (["--size", "100000"], "--size 100000"),
    "unknown device": (["--device", "tpu"], "--device tpu"),
    "negative bootstrap": (["--bootstrap", "-1"], "--bootstrap -1"),
    "negative workers": (["--frd-workers", "-1"], "--frd-workers -1"),
    "zero batch size": (["--batch-size", "0"], "--batch-size 0"),
    "zero KID subsets": (["--kid-subsets", "0"], "--kid-subsets 0"),
    "negative seed": (["--seed", "-3"], "--seed -3"),
    "missing extractor": (["--extractor", "{tmp}/absent.pth"], "absent.pth: no such file"),
    "corrupt extractor": (["--extractor", "{tmp}/inception.pth"], "inception.pth: not a readable torch"),
}


@pytest.mark.parametrize("kind", OPTION_KINDS)
def test_compare_bad_option(folders, tmp_path, kind):
    args, words = OPTION_KINDS[kind]
    _corrupt_extractor(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, out = _invoke("compare", *folders, "--metrics", "swd", *args)
    assert code == 2, out
    assert words in out, out


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_compare_cuda_without_a_gpu(folders):
    code, out = _invoke("compare", *folders, "--metrics", "swd", "--device", "cuda")
    assert code == 2 and "--device cuda: no CUDA GPU is visible" in out


def test_compare_metric_that_cannot_be_computed(folders, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTRANS_WEIGHTS", str(tmp_path / "no-weights"))
    out_file = tmp_path / "result.json"
    code, out = _invoke("compare", *folders, "--metrics", "fid,kid,is,swd", "--out", out_file)
    assert code == 1, out
    assert "not computed: fid" in out and "kid" in out and "is:" in out
    rows = json.loads(out_file.read_text())["rows"]
    assert any(r["metric"].startswith("swd") and r["value"] is not None for r in rows)  # swd still there


def test_bad_input_kinds_are_counted():
    """The README's count of these kinds must match this file."""
    kinds = len(VERIFY_KINDS) + len(STUDY_KINDS) + len(OPTION_KINDS) + 11  # + the single tests above
    readme = (ROOT / "README.md").read_text()
    assert f"{kinds} kinds of bad input" in readme
    assert os.path.basename(__file__) in readme
