"""Integrity of a run: consumers re-check what they read, signed manifests, the whole-chain
`verify`, refused inputs leave nothing behind, and pseudonym keys for real data."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtrans.shared import signing
from medtrans.shared.config import parse_study
from medtrans.shared.hashing import sha256_file
from medtrans.shared.layout import RunLayout
from medtrans.shared.manifest import read_manifest
from medtrans.shared.stage import StageInputError, Unit, execute, state
from medtrans.stages.cli import app
from medtrans.stages.preprocess.splits import KEY_ENV, PseudonymKeyMissing, pseudonym_key

cli = CliRunner()
KEY = "0123456789abcdef" * 4


def _build(text: str):
    def build(ctx):
        (ctx.work / "out").mkdir()
        (ctx.work / "out" / "a.txt").write_text(text)
        (ctx.work / "b.csv").write_text("x,y\n1,2\n")

    return build


def _chain(layout: RunLayout) -> tuple[Unit, Unit]:
    up = Unit("translate", ("t", "cyclegan"), layout.translate("t", "cyclegan"), {"c": 1}, _build("up"))
    down = Unit("segment", ("t",), layout.segment("t"), {"c": 1}, _build("down"), inputs=[up.out])
    return up, down


@pytest.fixture
def chain(tmp_path):
    layout = RunLayout(tmp_path / "run")
    up, down = _chain(layout)
    execute(up, layout)
    execute(down, layout)
    return layout, up, down


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))


def _verify(*args: str):
    return cli.invoke(app, ["verify", *map(str, args)])


def test_altered_upstream_file_is_refused_by_its_consumer(chain):
    layout, up, down = chain
    _flip(up.out / "out" / "a.txt")
    assert state(up, layout).status == "corrupt"
    st = state(down, layout)
    assert st.status == "blocked" and "a.txt" in st.reason
    with pytest.raises(StageInputError, match=r"a\.txt.*medtrans verify.*medtrans translate cyclegan"):
        execute(down, layout, force=True)


def test_deleted_upstream_file_makes_producer_and_consumer_not_done(chain):
    layout, up, down = chain
    (up.out / "b.csv").unlink()
    assert state(up, layout).status == "stale"
    assert state(down, layout).status == "blocked"
    assert execute(up, layout) == "ran"  # the producer rebuilds it; the consumer may use it again
    # (stale, or done when the rebuilt manifest is byte-identical: same second, same outputs)
    assert state(down, layout).status in ("stale", "done")
    execute(down, layout)
    assert state(down, layout).status == "done"


def test_verify_survives_a_truncated_manifest_and_checks_the_rest(chain):
    layout, up, down = chain
    path = down.out / "manifest.json"
    path.write_bytes(path.read_bytes()[:500])
    _flip(up.out / "b.csv")
    result = _verify(layout.root)
    assert result.exit_code == 1, result.output
    assert f"{path}: unreadable manifest" in result.output
    assert "b.csv: sha256 differs" in result.output
    assert "Traceback" not in result.output


def test_verify_reports_unlisted_files_and_stale_input_refs(chain):
    layout, up, down = chain
    (up.out / "stray.png").write_bytes(b"x")
    (layout.root / "translate" / "t" / "loose.txt").write_text("x")
    up2 = Unit(up.stage, up.name, up.out, {"c": 2}, _build("up2"))
    execute(up2, layout)  # rebuilt upstream: down's input reference is now old
    result = _verify(layout.root)
    assert result.exit_code == 1
    assert "loose.txt: not part of any unit's output" in result.output
    assert "is not the manifest this unit was built from" in result.output
    assert _verify(layout.root).output.count("problem") == 1


def test_verify_clean_run_and_unreadable_run(chain, tmp_path):
    layout, _, _ = chain
    assert _verify(layout.root).exit_code == 0
    assert _verify(tmp_path / "nowhere").exit_code == 2
    (tmp_path / "empty").mkdir()
    assert _verify(tmp_path / "empty").exit_code == 2


def test_without_a_key_manifests_carry_no_signature(chain):
    _, up, _ = chain
    content = json.loads((up.out / "manifest.json").read_text())
    assert "signature" not in content
    assert list(content)[-1] == "extra"  # the field order of the manifests before signing


def test_signed_manifest_detects_a_consistent_edit(tmp_path, monkeypatch):
    monkeypatch.setenv(signing.KEY_ENV, KEY)
    layout = RunLayout(tmp_path / "run")
    up, down = _chain(layout)
    execute(up, layout)
    execute(down, layout)
    assert _verify(layout.root).exit_code == 0
    # a forger edits a file and puts its new sha256 into the manifest
    target = up.out / "b.csv"
    target.write_text("x,y\n9,9\n")
    path = up.out / "manifest.json"
    content = json.loads(path.read_text())
    next(o for o in content["outputs"] if o["path"] == "b.csv")["sha256"] = sha256_file(target)
    path.write_text(json.dumps(content, indent=2) + "\n")
    result = _verify(layout.root)
    assert result.exit_code == 1 and f"{path}: signature does not match" in result.output
    assert state(up, layout).status == "corrupt"
    with pytest.raises(StageInputError, match="signature"):
        execute(down, layout, force=True)
    monkeypatch.setenv(signing.KEY_ENV, "another key")
    assert "signed with another key" in _verify(layout.root).output


def test_unsigned_manifest_fails_once_a_key_is_configured(chain, monkeypatch):
    layout, up, _ = chain
    monkeypatch.setenv(signing.KEY_ENV, KEY)
    result = _verify(layout.root)
    assert result.exit_code == 1 and "not signed" in result.output
    assert state(up, layout).status == "corrupt"


def test_key_file_inside_the_run_is_refused(chain, monkeypatch, tmp_path):
    layout, up, _ = chain
    inside = layout.root / "key.txt"
    inside.write_text(KEY)
    monkeypatch.setenv(signing.KEY_FILE_ENV, str(inside))
    result = _verify(layout.root)
    assert result.exit_code == 2 and "inside the run folder" in result.output
    outside = tmp_path / "site.key"
    outside.write_text(KEY)
    monkeypatch.setenv(signing.KEY_FILE_ENV, str(outside))
    execute(up, layout, force=True)
    assert read_manifest(up.out).signature["key_id"] == signing.key_id(KEY.encode())


def test_refused_input_leaves_no_partial_folder(tmp_path):
    layout = RunLayout(tmp_path)

    def refuse(ctx):
        (ctx.work / "half.png").write_bytes(b"x")
        raise StageInputError("data/x: not found")

    unit = Unit("preprocess", ("t",), layout.preprocess("t"), {}, refuse)
    with pytest.raises(StageInputError):
        execute(unit, layout)
    assert not list((tmp_path / "preprocess").iterdir())


def test_verify_with_study_lists_planned_units_the_run_lacks(chain):
    layout, _, _ = chain
    root = Path(__file__).resolve().parent.parent
    result = _verify(layout.root, "--study", root / "studies" / "smoke.yaml")
    assert result.exit_code == 1
    assert "preprocess/breast: planned by" in result.output
    assert "preprocess/spine: planned by" in result.output


# ---- pseudonym keys --------------------------------------------------------------------------


def _folder_study(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cases.csv").write_text("patient,domain,image\n")
    task = {
        "source": {"name": "mri", "modality": "MR"},
        "target": {"name": "ct", "modality": "CT"},
        "structures": ["vertebrae"],
        "data": {"kind": "folder", "root": str(tmp_path / "data"), "csv": "cases.csv"},
    }
    return parse_study({"name": "real", "profile": "demo", "tasks": {"spine": task}})


def test_derived_key_only_for_the_phantom(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    derived = pseudonym_key("demo", 1338, phantom=True)
    assert derived == pseudonym_key("demo", 1338, phantom=True)  # reproducible for the demo
    with pytest.raises(PseudonymKeyMissing, match=r"secrets.token_hex\(32\).*outside the run folder"):
        pseudonym_key("demo", 1338, phantom=False)
    monkeypatch.setenv(KEY_ENV, "site secret")
    assert pseudonym_key("demo", 1338, phantom=False) == b"site secret"
    assert pseudonym_key("demo", 1338, phantom=True) == b"site secret"


def test_preprocess_of_real_data_refuses_without_a_key(tmp_path, monkeypatch):
    from medtrans.stages.runner import run_stage

    monkeypatch.delenv(KEY_ENV, raising=False)
    layout = RunLayout(tmp_path / "run")
    with pytest.raises(PseudonymKeyMissing, match=KEY_ENV):
        run_stage("preprocess", _folder_study(tmp_path), layout)
    assert not layout.root.exists() or not list(layout.root.rglob("*"))
