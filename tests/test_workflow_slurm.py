"""The workflow through a real SLURM: a single-node cluster on this machine (tests/slurm_cluster.py)
runs the smoke study with Snakemake's SLURM executor. Every unit is one SLURM job, every manifest's
output digests equal the local runner's, and a rerun submits nothing. Outside CI a machine that
cannot start SLURM (not root, no apt-get, no snakemake) skips; with CI=true it fails instead.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medtrans.shared.config import load_study
from medtrans.shared.layout import MANIFEST, RunLayout

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slurm_cluster  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "workflow"))
from medtrans_workflow import units  # noqa: E402

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
pytestmark = pytest.mark.slow


def _unavailable() -> str:
    for module in ("snakemake", "snakemake_executor_plugin_slurm"):
        if importlib.util.find_spec(module) is None:
            return f"{module} not installed (pip install 'medtrans[workflow]')"
    if os.geteuid() != 0:
        return "slurmd and munged must run as root to start a test cluster"
    return slurm_cluster.install()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = _unavailable()
    if why:
        if CI:
            pytest.fail(f"the SLURM workflow test must run in CI: {why}")
        pytest.skip(why)
    with slurm_cluster.SlurmCluster(tmp_path_factory.mktemp("slurm"), cpus=max(4, os.cpu_count() or 1)) as c:
        yield c


# report.html's Provenance section records run times and environments (as in test_e2e)
PROVENANCE = re.compile(r'<section id="provenance">.*?</section>', re.S)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """One weights folder for both runs: the metrics name it in their 'weights missing' notes,
    and ./weights would depend on each process's working directory."""
    return tmp_path_factory.mktemp("weights")


# One torch thread count for both runs: reductions split by threads, so the count is part of
# what makes two CPU runs bit-identical. A SLURM job step sets OMP_NUM_THREADS to the job's
# CPUs, the study's `resources` threads (1 for every smoke stage), so the local run gets the same.
_SMOKE = load_study(ROOT / "studies" / "smoke.yaml")
_SMOKE_THREADS = {units.resources(job, _SMOKE).threads for job in units.jobs(_SMOKE)}
assert len(_SMOKE_THREADS) == 1, f"the smoke study's jobs ask for different threads: {_SMOKE_THREADS}"
THREADS = str(_SMOKE_THREADS.pop())


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, weights):
    """The local runner's run of the smoke study, with its wall time: `medtrans run` in its own
    process, with the environment the SLURM jobs get (threads, weights), so the two runs differ
    only in who scheduled the units."""
    layout = RunLayout(tmp_path_factory.mktemp("local") / "run")
    env = {**os.environ, "OMP_NUM_THREADS": THREADS, "MEDTRANS_WEIGHTS": str(weights)}
    env["MEDTRANS_PROGRESS"] = "0"
    study = ROOT / "studies" / "smoke.yaml"
    argv = [sys.executable, "-m", "medtrans.stages.cli", "run", str(study), "--run", str(layout.root)]
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-4000:]
    return layout, time.perf_counter() - t0


def snakemake(cluster, work: Path, run: Path, weights: Path) -> subprocess.CompletedProcess:
    argv = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(ROOT / "workflow" / "Snakefile"),
        "--profile", str(ROOT / "workflow" / "profiles" / "slurm"),
        "--directory", str(work),
        "--config", f"study={ROOT / 'studies' / 'smoke.yaml'}", f"run={run}", f"weights={weights}",
        "--default-resources", f"slurm_partition={cluster.partition}",
        "--jobs", "4",
        "--slurm-no-account",                 # no accounting database on the test cluster
        "--slurm-status-command", "squeue",   # the executor's status checks (sacct needs slurmdbd)
        "--slurm-keep-successful-logs",
        "--slurm-init-seconds-before-status-checks", "1",
        "--seconds-between-status-checks", "2",
    ]  # fmt: skip
    # the local runner's torch thread count, so both runs compute with the same reductions
    env = {**cluster.env, "OMP_NUM_THREADS": THREADS, "MEDTRANS_PROGRESS": "0"}
    return subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=3000)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory, weights):
    work = tmp_path_factory.mktemp("workdir")
    run = work / "runs" / "smoke"
    t0 = time.perf_counter()
    first = snakemake(cluster, work, run, weights)
    seconds = time.perf_counter() - t0
    assert first.returncode == 0, first.stderr[-4000:] + cluster.logs("slurmctld")
    jobs = cluster.completed_jobs()
    return work, RunLayout(run), jobs, seconds


def _minutes(limit: str) -> int:
    """squeue's time limit ([D-]HH:MM:SS or MM:SS) in minutes."""
    days, _, clock = limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    seconds = sum(v * 60**i for i, v in enumerate(reversed(parts)))
    return int(days or 0) * 1440 + seconds // 60


def _unit_of(comment: str) -> str:
    """The executor's job comment `rule_<rule>_wildcards_<values joined by _>` -> unit label."""
    rule, _, wildcards = comment.removeprefix("rule_").partition("_wildcards_")
    return "/".join([rule, *wildcards.split("_")]) if wildcards else rule


def test_every_unit_is_one_slurm_job(cluster, slurm_run, smoke_study):
    _, _, jobs, seconds = slurm_run
    labels = [j.label for j in units.jobs(smoke_study)]
    assert len(jobs) == len(labels), jobs  # sacct --completion: one finished job per unit
    assert {j["state"] for j in jobs} == {"COMPLETED"} and {j["exitcode"] for j in jobs} == {"0:0"}
    queue = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%k|%C|%m|%l"], env=cluster.env, capture_output=True, text=True
    ).stdout.split()
    by_unit = {_unit_of(line.split("|")[1]): line.split("|") for line in queue}
    assert sorted(by_unit) == sorted(labels)
    assert {j["jobid"] for j in jobs} == {v[0] for v in by_unit.values()}
    for label, (_, _, cpus, mem, limit) in by_unit.items():  # the study's resources, as SLURM got them
        want = units.resources(units.parse_label(label), smoke_study)
        assert (int(cpus), mem, _minutes(limit)) == (want.threads, f"{want.mem_mb}M", want.runtime), label
    print(f"\nsmoke study through SLURM: {seconds:.0f} s wall, {len(jobs)} jobs")


def _outputs(layout: RunLayout, label: str) -> list[tuple[str, str]]:
    manifest = json.loads(Path(units.parse_label(label).manifest(layout)).read_text())
    assert manifest["status"] == "complete"
    return [(o["path"], o["sha256"]) for o in manifest["outputs"]]


def test_every_manifest_digest_equals_the_local_runner(slurm_run, local_run, smoke_study):
    _, layout, _, slurm_seconds = slurm_run
    local, local_seconds = local_run
    for job in units.jobs(smoke_study):
        ours, theirs = dict(_outputs(layout, job.label)), dict(_outputs(local, job.label))
        assert ours.keys() == theirs.keys(), job.label
        differ = sorted(k for k in ours if ours[k] != theirs[k])
        if job.label == "report" and "report.html" in differ:
            pages = [PROVENANCE.sub("", (r.report() / "report.html").read_text()) for r in (layout, local)]
            assert pages[0] == pages[1], "report.html differs outside its Provenance section"
            differ.remove("report.html")
        assert not differ, f"{job.label}: outputs differ from the local runner's: {differ}"
    print(f"\nsmoke study: local runner {local_seconds:.0f} s, through SLURM {slurm_seconds:.0f} s")


def test_rerun_submits_nothing(cluster, slurm_run, weights):
    work, layout, jobs, _ = slurm_run
    before = {p: p.stat().st_mtime_ns for p in layout.root.rglob(MANIFEST)}
    again = snakemake(cluster, work, layout.root, weights)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr
    assert len(cluster.completed_jobs()) == len(jobs)
    assert {p: p.stat().st_mtime_ns for p in layout.root.rglob(MANIFEST)} == before


def test_a_run_folder_of_the_local_runner_needs_no_job(local_run, tmp_path):
    """Manifests Snakemake did not write are taken as they are: the plan is empty."""
    layout, _ = local_run
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow" / "Snakefile"),
         "--directory", str(tmp_path), "-n", "--cores", "1",
         "--config", f"study={ROOT / 'studies' / 'smoke.yaml'}", f"run={layout.root}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Nothing to be done" in out.stdout + out.stderr
