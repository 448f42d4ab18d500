"""Crash at any moment: the local runner (`medtrans run studies/smoke.yaml`) is killed with SIGKILL
at seeded random moments, two inside each stage, and rerun each time; after every kill each
complete unit already equals the uninterrupted run, `verify` finds nothing wrong, and the final
run's outputs equal the uninterrupted run's digests.

Kill moments are placed by the uninterrupted run's own timeline: a kill aims at a random unit of
its stage and a random fraction of that unit's duration, measured from the moment that unit's
partial folder appears, so each kill lands inside the work it aims at whatever the machine's
speed (a rerun redoes the unit it was killed in, so the test costs about one more smoke run).
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medtrans.shared.audit import audit_run
from medtrans.shared.layout import MANIFEST, RunLayout
from medtrans.stages.runner import STAGES

ROOT = Path(__file__).resolve().parent.parent
SEED = 20
KILLS_PER_STAGE = 2
PROVENANCE = re.compile(r'<section id="provenance">.*?</section>', re.S)
pytestmark = pytest.mark.slow


def _digests(root: Path) -> dict[str, str]:
    import json

    found = {}
    for manifest in sorted(root.rglob(MANIFEST)):
        rel = manifest.parent.relative_to(root)
        if not any(part.startswith(".") for part in rel.parts):
            for out in json.loads(manifest.read_text())["outputs"]:
                found[f"{rel.as_posix()}/{out['path']}"] = out["sha256"]
    return found


def _started(root: Path, label: str) -> tuple | None:
    """Identity of the key file a unit writes into its partial folder when it starts (or resumes);
    None while it is not running."""
    out = root / label
    try:
        st = (out.parent / f".{out.name}.partial" / ".partial.json").stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _schedule(outcomes) -> list[tuple[int, float]]:
    """(unit index, seconds into that unit) for each kill, two per stage, seeded."""
    rng = np.random.default_rng(SEED)
    labels = [o.unit for o in outcomes]
    kills = []
    for stage in STAGES:
        idx = [i for i, label in enumerate(labels) if label.split("/")[0] == stage]
        for _ in range(KILLS_PER_STAGE):
            i = int(rng.choice(idx))
            kills.append((i, float(rng.uniform(0.05, 0.8)) * outcomes[i].seconds))
    return sorted(kills)


def _kill_at(run: Path, labels: list[str], target: int, offset: float, log) -> tuple[str, int | None]:
    """Start the runner; once the partial folder of unit `target` (or of any later unit, when the
    target is already done) appears, wait `offset` seconds and SIGKILL it. Returns the unit the
    kill aimed at and the return code (None: killed)."""
    cmd = [sys.executable, "-m", "medtrans.stages.cli", "run", "studies/smoke.yaml", "--run", str(run)]
    left = {i: _started(run, labels[i]) for i in range(len(labels))}  # partials of earlier kills
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 900
    while proc.poll() is None and time.monotonic() < deadline:
        busy = [i for i in range(target, len(labels)) if _started(run, labels[i]) not in (None, left[i])]
        if busy:
            time.sleep(offset)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return labels[busy[0]], None
            break
        time.sleep(0.05)
    proc.wait()
    return labels[target], proc.returncode


def _same(found: dict[str, str], reference: dict[str, str], run: Path, ref_root: Path) -> list[str]:
    differ = sorted(k for k in found if found[k] != reference.get(k))
    if "report/report.html" in differ:
        pages = [PROVENANCE.sub("", (r / "report" / "report.html").read_text()) for r in (run, ref_root)]
        if pages[0] == pages[1]:
            differ.remove("report/report.html")
    return differ


def test_sigkill_at_random_moments_then_rerun_gives_the_same_outputs(tmp_path, smoke_full_run):
    ref_layout, outcomes = smoke_full_run
    reference = _digests(ref_layout.root)
    labels = [o.unit for o in outcomes]
    run = RunLayout(tmp_path / "run").root
    hits = []
    with open(tmp_path / "runner.log", "wb") as log:
        for target, offset in _schedule(outcomes):
            aimed, rc = _kill_at(run, labels, target, offset, log)
            hits.append((aimed, rc))
            assert rc in (None, 0), f"runner failed after a kill; see {tmp_path / 'runner.log'}"
            if run.is_dir() and list(run.rglob(MANIFEST)):
                audit = audit_run(run, None)
                assert not audit.problems, audit.problems[:5]
            differ = _same(_digests(run), reference, run, ref_layout.root)
            assert not differ, f"a complete unit differs from the uninterrupted run: {differ[:5]}"
        final = subprocess.run(
            [sys.executable, "-m", "medtrans.stages.cli", "run", "studies/smoke.yaml", "--run", str(run)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    assert final.returncode == 0
    killed = [aimed for aimed, rc in hits if rc is None]
    assert len(killed) >= 10, hits
    assert {label.split("/")[0] for label in killed} == set(STAGES), hits
    found = _digests(run)
    assert found.keys() == reference.keys()
    assert not _same(found, reference, run, ref_layout.root)
