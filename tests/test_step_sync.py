"""Losses read from the device every N steps (CUDA) instead of after every step: a CPU run must
be exactly today's. The reference is the code of BASE (the commit before the change), taken from
git and run in its own process next to the current code on the same short trainings."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASE = "d999622"  # main before losses stayed on the device (stages/translate/loop.py, segment/train.py)
SCRIPT = Path(__file__).with_name("sync_reference.py")


def _package_from(commit: str, dest: Path) -> Path:
    """`medtrans` as an importable folder from `commit`'s shared/ and stages/ (setup.py's mapping)."""
    src = dest / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit, "shared", "stages"], capture_output=True
    )
    if archive.returncode != 0:
        pytest.fail(
            f"git archive {commit} failed in {REPO} (a clone without history? fetch it): {archive.stderr!r}"
        )
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    pkg = dest / "pkg" / "medtrans"
    pkg.mkdir(parents=True)
    shutil.copytree(src / "shared", pkg / "shared")
    shutil.copytree(src / "stages", pkg / "stages")
    shutil.copy(src / "shared" / "_package" / "__init__.py", pkg / "__init__.py")
    return dest / "pkg"


def _run(pythonpath: Path | None, work: Path, study: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MEDTRANS_PROGRESS": "0"}
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    work.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(study), str(work)],
        capture_output=True, text=True, env=env, cwd=work, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _has_base() -> bool:
    """Whether this checkout holds BASE (a shallow clone does not)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return False
    probe = ["git", "-C", str(REPO), "cat-file", "-e", f"{BASE}^{{commit}}"]
    return subprocess.run(probe, capture_output=True).returncode == 0


@pytest.mark.skipif(not _has_base(), reason=f"needs commit {BASE} in the history (a shallow clone lacks it)")
def test_cpu_training_is_bit_identical_to_the_base_commit(tmp_path):
    base_pkg = _package_from(BASE, tmp_path / "base")
    probe = subprocess.run(
        [sys.executable, "-c", "import medtrans.stages.translate.loop as m; print(m.__file__)"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(base_pkg)},
    )  # fmt: skip
    assert probe.stdout.startswith(str(base_pkg)), (
        f"the base code is not what runs: {probe.stdout}{probe.stderr}"
    )
    # the base commit's smoke study for both (the base code refuses keys added since)
    study = tmp_path / "smoke.yaml"
    show = ["git", "-C", str(REPO), "show", f"{BASE}:studies/smoke.yaml"]
    shown = subprocess.run(show, capture_output=True)
    assert shown.returncode == 0, shown.stderr
    study.write_bytes(shown.stdout)
    before = _run(base_pkg, tmp_path / "before", study)
    after = _run(None, tmp_path / "after", study)
    assert set(before["translators"]) == set(after["translators"]) and before["translators"]
    for name, want in before["translators"].items():
        got = after["translators"][name]
        assert got["losses_csv"] == want["losses_csv"], name
        assert got["final"] == want["final"], name
        assert got["networks"] == want["networks"], name
        assert got["optimizers"] == want["optimizers"], name
    assert after["segment"] == before["segment"]


def test_losslog_reads_device_tensors_as_the_same_floats():
    """The deferred window (what CUDA uses) gives the same rows as reading each loss at once."""
    import torch

    from medtrans.stages.translate.loop import LossLog

    gen = torch.Generator().manual_seed(0)
    steps = [{"G": torch.rand((), generator=gen), "D": torch.rand((), generator=gen)} for _ in range(7)]
    now, later = LossLog(), LossLog(deferred=True)
    for i, losses in enumerate(steps, 1):
        now.add(losses)
        later.add(losses)
        if i % 3 == 0:
            assert later.close_row(i, 7) == now.close_row(i, 7)
    assert later.state() == now.state()  # an open window is read for the checkpoint
    assert all(isinstance(v, float) for vs in later.window.values() for v in vs)
