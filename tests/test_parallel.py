"""The local runner's units side by side (`medtrans run --jobs N`): the same outputs as one at a
time, the batches from the catalogue, a failing unit stopping nothing else, the GPU memory rule."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from medtrans.shared.catalogue import stages as catalogue
from medtrans.shared.config.resources import JobResources, ResourcesConfig
from medtrans.stages import parallel, runner

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "studies" / "smoke.yaml"


def test_batches_follow_the_catalogue():
    batches = runner.waves()
    assert [s for b in batches for s in b] == sorted(
        catalogue.stage_names(), key=catalogue.stage_names().index
    )
    where = {s: i for i, b in enumerate(batches) for s in b}
    for s in catalogue.STAGES:
        assert all(where[up] < where[s.name] for up in s.after), s.name
        # as early as its inputs allow: right after the latest stage it reads
        assert where[s.name] == 1 + max((where[up] for up in s.after), default=-1)


def test_stage_commands_name_one_unit():
    model = catalogue.translator_names()[0]
    assert parallel.stage_args("translate", ("breast", model)) == ("translate", model, "--task", "breast")
    assert parallel.stage_args("segment", ("spine",)) == ("segment", "--task", "spine")
    assert parallel.stage_args("report", ()) == ("report",)
    assert parallel.job_label(("translate", model, "--task", "breast")) == f"translate/breast/{model}"


def test_units_get_their_stage_threads_whatever_the_job_count():
    res = ResourcesConfig(translate=JobResources(threads=3), translators={"unsb": JobResources(threads=5)})
    assert res.for_unit("translate", "cyclegan").threads == 3
    assert res.for_unit("translate", "unsb").threads == 5
    assert res.for_unit("a_new_stage").threads == JobResources().threads
    assert parallel.child_env(3, None)["OMP_NUM_THREADS"] == "3"
    assert parallel.child_env(1, 2)["CUDA_VISIBLE_DEVICES"] == "2"


def test_gpu_memory_rule():
    """A unit goes to the GPU with the most free budget that still fits it, else waits."""
    assert parallel.place(10240, {0: 72000, 1: 80000}) == 1
    assert parallel.place(10240, {0: 9000}) is None
    free = {0: int(80 * 1024 * parallel.GPU_SHARE)}
    placed = 0
    while (gpu := parallel.place(10240, free)) is not None:
        free[gpu] -= 10240
        placed += 1
    assert placed == 7  # 10 GiB translator units on an 80 GiB GPU (90% of it shared)


def test_a_failing_unit_stops_nothing_else(tmp_path):
    """Two units at once: one fails at once, the other still runs to its end; both reported."""
    bad = parallel.Job("translate/x/nosuch", ("translate", "nosuch", "--study", str(SMOKE)), 1, None)
    good = parallel.Job("status", ("status", str(SMOKE), "--run", str(tmp_path / "run")), 1, None)
    pool = parallel.Pool(jobs=2, cores=2, logs=tmp_path / "logs")
    done = {f.label: f for f in pool.run([bad, good])}
    assert done["translate/x/nosuch"].code == 2 and done["status"].code == 0
    assert "unknown model" in done["translate/x/nosuch"].log.read_text()
    assert "preprocess/breast" in done["status"].log.read_text()


def _digests(root: Path) -> dict[str, str]:
    """Every output's digest; report.html's with its Provenance section (times, paths) cut out,
    the rule test_e2e.py applies to two sequential runs."""
    import hashlib

    from test_e2e import PROVENANCE
    from test_e2e import _digests as digests

    found = digests(root)
    page = PROVENANCE.sub("", (root / "report" / "report.html").read_text())
    found["report/report.html"] = hashlib.sha256(page.encode()).hexdigest()
    return found


def _run(run: Path, jobs: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEDTRANS_PROGRESS": "0"}
    argv = [
        sys.executable,
        "-m",
        "medtrans.stages.cli",
        "run",
        str(SMOKE),
        "--run",
        str(run),
        "--jobs",
        str(jobs),
    ]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800)


def test_two_units_at_a_time_give_the_outputs_of_one_at_a_time(tmp_path, smoke_preprocessed):
    """`--jobs 1` and `--jobs 2` on the smoke study (preprocess done once): the same digests, each
    unit with its stage's threads from the study's resources in both."""
    runs = {}
    for jobs in (1, 2):
        run = tmp_path / f"jobs{jobs}"
        shutil.copytree(smoke_preprocessed.root, run)
        done = _run(run, jobs)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        assert "start  translate/" in done.stdout and "skipped  preprocess/" in done.stdout
        runs[jobs] = _digests(run)
        assert sorted(p.name for p in (run / parallel.LOGS).iterdir())  # one log per unit
    assert runs[1] == runs[2] and len(runs[1]) > 20
