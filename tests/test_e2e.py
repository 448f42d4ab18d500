"""End to end: the smoke study through every stage with the local runner, twice.

The same CPU run twice must give the same numbers: every output file of every manifest is
compared by sha256 across two independent run folders. The rerun in place skips everything,
`status` says done, and `verify` passes.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from medtrans.shared.layout import MANIFEST, RunLayout
from medtrans.stages.runner import STAGES, run_study, study_status

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


# report.html's Provenance section records run times and environments: the one part of the
# outputs that legitimately differs between two runs.
PROVENANCE = re.compile(r'<section id="provenance">.*?</section>', re.S)


def _digests(root: Path) -> dict[str, str]:
    found = {}
    for manifest in sorted(root.rglob(MANIFEST)):
        rel = manifest.parent.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        for out in json.loads(manifest.read_text())["outputs"]:
            found[f"{rel.as_posix()}/{out['path']}"] = out["sha256"]
    return found


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, smoke_study, smoke_full_run):
    first, outcomes = smoke_full_run  # shared with the crash test (tests/test_crash.py)
    second = RunLayout(tmp_path_factory.mktemp("e2e-b"))
    run_study(smoke_study, second)
    return first, second, outcomes


def test_every_stage_ran(two_runs, smoke_study):
    first, _, outcomes = two_runs
    stages = {o.unit.split("/")[0] for o in outcomes}
    assert stages == set(STAGES)
    assert all(o.result == "ran" for o in outcomes)
    for task in smoke_study.tasks:
        assert (first.segment(task) / "dice.csv").is_file()
        assert (first.metrics(task) / "metrics.csv").is_file()
        for model in smoke_study.translate.models:
            assert (first.translate(task, model) / MANIFEST).is_file()
    assert (first.report() / "report.html").is_file()
    assert (first.report() / "summary.md").is_file()


def test_same_cpu_run_twice_gives_identical_outputs(two_runs):
    first, second, _ = two_runs
    a, b = _digests(first.root), _digests(second.root)
    assert len(a) > 100
    assert a.keys() == b.keys()
    differ = sorted(k for k in a if a[k] != b[k])
    if "report/report.html" in differ:
        pages = [PROVENANCE.sub("", (r.root / "report" / "report.html").read_text()) for r in (first, second)]
        assert pages[0] == pages[1], "report.html differs outside its Provenance section"
        differ.remove("report/report.html")
    assert not differ, f"outputs differ between two identical CPU runs: {differ[:10]}"


def test_rerun_skips_status_done_and_verify_passes(two_runs, smoke_study):
    first, _, _ = two_runs
    outcomes = run_study(smoke_study, first)
    assert {o.result for o in outcomes} == {"skipped"}
    assert {st.status for _, st in study_status(smoke_study, first)} == {"done"}
    env = {**os.environ, "MEDTRANS_PROGRESS": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "medtrans.stages.cli", "verify", str(first.root)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 problem" in result.stdout
