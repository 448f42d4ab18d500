"""The stage contract: atomic outputs, skip when up to date, rerun on change, verify."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from medtrans.shared.layout import RunLayout
from medtrans.shared.manifest import read_manifest, verify_folder
from medtrans.shared.stage import StageInputError, Unit, execute, state


def _writer(text: str, calls: list):
    def build(ctx):
        calls.append(ctx.resumed)
        (ctx.work / "out").mkdir()
        (ctx.work / "out" / "a.txt").write_text(text)
        (ctx.work / "b.csv").write_text("x,y\n1,2\n")

    return build


def _units(layout: RunLayout, up_config=1, down_config=1, calls=None):
    calls = calls if calls is not None else []
    build = _writer(f"up{up_config}", calls)
    up = Unit("preprocess", ("t",), layout.preprocess("t"), {"c": up_config}, build)
    down = Unit(
        "segment",
        ("t",),
        layout.segment("t"),
        {"c": down_config},
        _writer("down", calls),
        inputs=[layout.preprocess("t")],
        hint="run `medtrans preprocess` first",
    )
    return up, down


def test_manifest_records_outputs_and_environment(tmp_path):
    layout = RunLayout(tmp_path)
    up, _ = _units(layout)
    assert execute(up, layout) == "ran"
    manifest = read_manifest(up.out)
    paths = {o.path: o for o in manifest.outputs}
    assert set(paths) == {"out/a.txt", "b.csv"}
    assert paths["b.csv"].kind == "table"
    assert manifest.environment["torch"] and manifest.environment["python"]
    assert manifest.status == "complete" and manifest.config == {"c": 1}
    assert not list(tmp_path.rglob(".*partial*"))


def test_up_to_date_is_skipped(tmp_path):
    layout = RunLayout(tmp_path)
    calls = []
    up, down = _units(layout, calls=calls)
    assert [execute(up, layout), execute(down, layout)] == ["ran", "ran"]
    assert [execute(up, layout), execute(down, layout)] == ["skipped", "skipped"]
    assert len(calls) == 2
    assert execute(up, layout, force=True) == "ran"


def test_changed_config_reruns_it_and_downstream(tmp_path):
    layout = RunLayout(tmp_path)
    up, down = _units(layout)
    execute(up, layout)
    execute(down, layout)
    up2, down2 = _units(layout, up_config=2)
    assert state(up2, layout).status == "stale"
    assert execute(up2, layout) == "ran"
    st = state(down2, layout)
    assert st.status == "stale" and "upstream" in st.reason
    assert execute(down2, layout) == "ran"
    assert execute(down2, layout) == "skipped"
    assert (up2.out / "out" / "a.txt").read_text() == "up2"


def test_missing_upstream_is_refused_with_the_file_named(tmp_path):
    layout = RunLayout(tmp_path)
    _, down = _units(layout)
    with pytest.raises(StageInputError) as info:
        execute(down, layout)
    assert "preprocess/t/manifest.json" in str(info.value)
    assert "medtrans preprocess" in str(info.value)


def test_exception_mid_write_leaves_nothing_that_looks_complete(tmp_path):
    layout = RunLayout(tmp_path)

    def crash(ctx):
        (ctx.work / "half.txt").write_text("half")
        raise RuntimeError("killed")

    unit = Unit("preprocess", ("t",), layout.preprocess("t"), {"c": 1}, crash)
    with pytest.raises(RuntimeError):
        execute(unit, layout)
    assert not unit.out.exists()
    assert state(unit, layout).status == "missing"
    up, _ = _units(layout)
    assert execute(up, layout) == "ran"
    assert read_manifest(up.out) is not None
    assert not (up.out / "half.txt").exists()  # a non-resumable unit starts from an empty folder


def test_partial_of_other_config_is_discarded_and_same_config_resumed(tmp_path):
    layout = RunLayout(tmp_path)
    calls = []

    def crash(ctx):
        calls.append(ctx.resumed)
        (ctx.work / "ckpt").write_text("1")
        raise RuntimeError("killed")

    execute_unit = Unit("translate", ("t", "m"), layout.translate("t", "m"), {"c": 1}, crash, resumable=True)
    with pytest.raises(RuntimeError):
        execute(execute_unit, layout)
    with pytest.raises(RuntimeError):
        execute(execute_unit, layout)
    assert calls == [False, True]
    other = Unit("translate", ("t", "m"), layout.translate("t", "m"), {"c": 2}, crash, resumable=True)
    with pytest.raises(RuntimeError):
        execute(other, layout)
    assert calls == [False, True, False]


SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    from medtrans.shared.layout import RunLayout
    from medtrans.shared.stage import Unit, execute

    layout = RunLayout(Path(sys.argv[1]))
    kill = sys.argv[2] == "kill"

    def build(ctx):
        for i in range(20):
            (ctx.work / f"part{i}.txt").write_text(str(i))
            if kill and i == 10:
                os.kill(os.getpid(), signal.SIGKILL)

    execute(Unit("preprocess", ("t",), layout.preprocess("t"), {"c": 1}, build), layout)
    """
)


def test_sigkill_mid_write_then_rerun_completes(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(SCRIPT)
    run = tmp_path / "run"
    killed = subprocess.run([sys.executable, str(script), str(run), "kill"], check=False)
    assert killed.returncode == -signal.SIGKILL
    out = run / "preprocess" / "t"
    assert not out.exists()
    assert (run / "preprocess" / ".t.partial").is_dir()
    subprocess.run([sys.executable, str(script), str(run), "ok"], check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["outputs"]) == 20
    assert not (run / "preprocess" / ".t.partial").exists()


def test_verify_catches_a_flipped_byte(tmp_path):
    layout = RunLayout(tmp_path)
    up, _ = _units(layout)
    execute(up, layout)
    assert verify_folder(up.out) == []
    target = up.out / "b.csv"
    data = bytearray(target.read_bytes())
    data[0] ^= 0x01
    target.write_bytes(bytes(data))
    bad = verify_folder(up.out)
    assert len(bad) == 1 and "b.csv" in bad[0]
    env = {**os.environ, "MEDTRANS_PROGRESS": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "medtrans.stages.cli", "verify", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 1
    assert "b.csv" in result.stdout and "1 problem" in result.stdout


def test_deleted_output_makes_unit_stale(tmp_path):
    layout = RunLayout(tmp_path)
    up, _ = _units(layout)
    execute(up, layout)
    (up.out / "b.csv").unlink()
    st = state(up, layout)
    assert st.status == "stale" and "b.csv" in st.reason
    assert execute(up, layout) == "ran"
    assert Path(up.out / "b.csv").is_file()
