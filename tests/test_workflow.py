"""The Snakemake workflow (workflow/): units, dependencies, resources, the container command it
builds from compose.yaml, the `--task` narrowing of the stage commands, and a dry run.
The real runs through SLURM are in test_workflow_slurm.py."""

import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from medtrans.shared.config import load_study, parse_study
from medtrans.shared.layout import RunLayout
from medtrans.stages import runner
from medtrans.stages.cli import app

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "workflow"))
from medtrans_workflow import container, gpus, units  # noqa: E402

SNAKEMAKE = importlib.util.find_spec("snakemake") is not None


@pytest.fixture(scope="module")
def paper():
    return load_study(ROOT / "studies" / "paper.yaml")


def test_one_job_per_unit_of_the_local_runner(smoke_study, tmp_path):
    labels = [j.label for j in units.jobs(smoke_study)]
    planned = [label for label, _ in runner.study_status(smoke_study, RunLayout(tmp_path))]
    assert labels == planned and len(labels) == 17


def test_dependencies_mirror_what_each_stage_reads(smoke_study):
    for stage in ("segment", "metrics"):  # every translator and the calibration sets of the task
        ups = units.upstream(units.Job(stage, "spine"), smoke_study)
        assert [j.label for j in ups] == ["preprocess/spine"] + [
            f"translate/spine/{m}" for m in smoke_study.translate.models
        ] + ["calibrate/spine"]
    assert [j.label for j in units.upstream(units.Job("translate", "breast", "unsb"), smoke_study)] == [
        "preprocess/breast"
    ]
    assert [j.label for j in units.upstream(units.Job("calibrate", "breast"), smoke_study)] == [
        "preprocess/breast"  # beside the translators
    ]
    no_calibration = smoke_study.calibrate.model_copy(update={"enabled": False})
    off = smoke_study.model_copy(update={"calibrate": no_calibration})
    assert "calibrate/spine" not in {j.label for j in units.upstream(units.Job("segment", "spine"), off)}
    report = {j.label for j in units.upstream(units.Job("report"), smoke_study)}
    assert report == {j.label for j in units.jobs(smoke_study)} - {"report"}


def test_labels_parse_back_and_bad_ones_say_why():
    assert units.parse_label("translate/breast/cyclegan").stage_args() == [
        "translate",
        "cyclegan",
        "--task",
        "breast",
    ]
    assert units.parse_label("report").stage_args() == ["report"]
    for bad, why in (
        ("train/x", "unknown stage"),
        ("segment", "segment/<task>"),
        ("translate/b/x", "translator"),
    ):
        with pytest.raises(ValueError, match=why):
            units.parse_label(bad)


def test_gpus_follow_the_study_device_and_totalsegmentator(paper, smoke_study):
    gpu = {j.label: units.resources(j, paper).gpus for j in units.jobs(paper)}
    assert gpu["translate/breast/cyclegan"] == gpu["segment/spine"] == gpu["metrics/breast"] == 1
    assert gpu["preprocess/spine"] == 1  # TotalSegmentator makes the CT masks
    assert gpu["preprocess/breast"] == gpu["report"] == 0
    assert {units.resources(j, smoke_study).gpus for j in units.jobs(smoke_study)} == {0}  # device: cpu


def test_resources_come_from_the_study_and_stay_out_of_every_digest(paper):
    unsb = units.resources(units.Job("translate", "breast", "unsb"), paper)
    cyclegan = units.resources(units.Job("translate", "breast", "cyclegan"), paper)
    assert (unsb.runtime, unsb.mem_mb) == (4320, 48000) and cyclegan.runtime == 2880
    data = yaml.safe_load((ROOT / "studies" / "paper.yaml").read_text())
    data.pop("resources")
    assert parse_study(data).part() == paper.part()


def test_unknown_translator_in_resources_is_a_clear_error():
    data = yaml.safe_load((ROOT / "studies" / "smoke.yaml").read_text())
    data["resources"]["translators"] = {"pix2pix": {"threads": 2}}
    with pytest.raises(Exception, match="resources.translators"):
        parse_study(data, "smoke.yaml")


def test_docker_command_has_exactly_the_isolation_of_compose(tmp_path):
    compose = ROOT / "compose.yaml"
    svc = container.service(compose, "cyclegan-gpu")
    env = {
        "MEDTRANS_STUDY": str(tmp_path / "s.yaml"),
        "MEDTRANS_DATA": str(tmp_path / "data"),
        "MEDTRANS_WEIGHTS_DIR": str(tmp_path / "w"),
        "MEDTRANS_TAG": "9.9-cuda",
    }
    mounts = container.mounts(svc, compose, env, tmp_path / "run")
    argv = container.docker_argv(
        svc, mounts, container.image(svc, env), "sha256:abc", ["--task", "breast"], ["1"]
    )
    text = " ".join(argv)
    for flag in (
        "--user 10001:10001",
        "--network none",
        "--read-only",
        "--tmpfs /tmp",
        "--tmpfs /medtrans/home",
        "--cap-drop ALL",
        "--security-opt no-new-privileges:true",
        "--shm-size 1gb",
        "--gpus device=1",
        "--env MEDTRANS_IMAGE_ID=sha256:abc",
    ):
        assert flag in text
    assert f"type=bind,source={tmp_path / 'run'},target=/medtrans/run" + " " in text + " "  # writable
    for target in ("/medtrans/study.yaml", "/data", "/weights"):
        assert f"target={target},readonly" in text
    assert argv[-7:] == [
        "medtrans/cyclegan:9.9-cuda",
        "--study",
        "/medtrans/study.yaml",
        "--run",
        "/medtrans/run",
        "--task",
        "breast",
    ]
    assert (tmp_path / "data").is_dir()  # created like compose's create_host_path


def test_secrets_reach_the_containers_by_name_only(tmp_path):
    """compose gives every stage the signing key and preprocess the pseudonym key; a workflow
    job passes them by name (`--env NAME`), so no key value is ever on a command line."""
    compose = ROOT / "compose.yaml"
    pre = container.service(compose, "preprocess")
    assert {"MEDTRANS_SIGNING_KEY", "MEDTRANS_PSEUDONYM_KEY"} <= set(pre["environment"])
    svc = container.service(compose, "segment")
    assert "MEDTRANS_SIGNING_KEY" in svc["environment"]
    assert "MEDTRANS_PSEUDONYM_KEY" not in svc["environment"]
    env = {"MEDTRANS_STUDY": str(tmp_path / "s.yaml"), "MEDTRANS_DATA": str(tmp_path / "data")}
    mounts = container.mounts(pre, compose, env, tmp_path / "run")
    argv = container.docker_argv(pre, mounts, "img", "id", [], [])
    for name in ("MEDTRANS_SIGNING_KEY", "MEDTRANS_PSEUDONYM_KEY"):
        assert argv[argv.index(name) - 1] == "--env"
    assert not any("KEY=" in a for a in argv)


def test_compose_interpolation_takes_defaults_for_unset_or_empty():
    assert container.interpolate("a/${X:-dflt}/${Y}", {"X": ""}) == "a/dflt/"
    assert container.interpolate("${X:-dflt}", {"X": "set"}) == "set"


def test_gpu_jobs_on_one_machine_get_distinct_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with gpus.claim(1, tmp_path) as first, gpus.claim(1, tmp_path) as second:
        assert first != second and sorted(first + second) == ["0", "1"]
        waited = []
        t = threading.Thread(target=lambda: waited.append(gpus.claim(1, tmp_path, poll=0.05).__enter__()))
        t.start()
        t.join(0.3)
        assert t.is_alive()  # both devices are taken: the third job waits
    t.join(5)
    assert waited and waited[0] in (["0"], ["1"])
    with pytest.raises(RuntimeError, match="asks for 3 GPU"):
        with gpus.claim(3, tmp_path):
            pass


def test_stage_commands_narrow_to_one_task(tmp_path):
    cli = CliRunner()
    result = cli.invoke(app, ["segment", "--study", str(ROOT / "studies/smoke.yaml"), "--task", "knee"])
    assert result.exit_code == 2 and "no task 'knee'" in result.output and "breast, spine" in result.output
    result = cli.invoke(app, ["report", "--study", str(ROOT / "studies/smoke.yaml"), "--task", "spine"])
    assert result.exit_code != 0  # the report has no per-task unit


def test_narrow_keeps_only_the_tasks_units(smoke_study, tmp_path):
    planned = runner.plan_stage("translate", smoke_study, RunLayout(tmp_path))
    labels = [u.label for u in runner.narrow(planned, ("spine",))]
    assert labels == [f"translate/spine/{m}" for m in smoke_study.translate.models]


def dry_run(workdir: Path, *config: str) -> subprocess.CompletedProcess:
    """`snakemake -n` of the workflow, with its .snakemake/ in `workdir`, not the checkout."""
    argv = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow" / "Snakefile"),
            "--directory", str(workdir), "-n", "--cores", "4"]  # fmt: skip
    argv += ["--config", *config] if config else []
    return subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not SNAKEMAKE, reason="snakemake not installed (pip install 'medtrans[workflow]')")
def test_dry_run_plans_one_job_per_unit_with_the_study_resources(tmp_path):
    out = dry_run(tmp_path, f"study={ROOT / 'studies' / 'paper.yaml'}", f"run={tmp_path / 'run'}")
    assert out.returncode == 0, out.stderr[-2000:] + out.stdout[-2000:]
    text = out.stdout + out.stderr
    stats = dict(line.split()[:2] for line in text.split("Job stats:")[1].splitlines()[3:10] if line.strip())
    assert stats == {
        "preprocess": "2",
        "translate": "8",
        "segment": "2",
        "metrics": "2",
        "calibrate": "2",
        "report": "1",
        "all": "1",
    }
    assert "medtrans_workflow.job translate/spine/unsb" in text and "runtime=4320, gpu=1" in text


@pytest.mark.skipif(not SNAKEMAKE, reason="snakemake not installed (pip install 'medtrans[workflow]')")
def test_missing_study_is_a_clear_error(tmp_path):
    out = dry_run(tmp_path)
    assert out.returncode != 0 and "--config study=studies/demo.yaml" in out.stdout + out.stderr


def test_local_job_runs_the_venvs_own_stage_command(tmp_path):
    from medtrans_workflow import job

    argv = job.local_argv(units.Job("translate", "breast", "spade"), tmp_path / "s.yaml", tmp_path / "run")
    assert Path(argv[0]) == Path(sys.executable).parent / "medtrans"
    assert argv[1:] == ["translate", "spade", "--task", "breast", "--study", str(tmp_path / "s.yaml"),
                        "--run", str(tmp_path / "run")]  # fmt: skip


def test_docker_job_says_how_to_let_the_container_user_write(tmp_path):
    from medtrans_workflow import job

    tmp_path.chmod(0o755)
    if os.getuid() == 10001:
        pytest.skip("running as the container user")
    with pytest.raises(container.ContainerError, match="setfacl"):
        job.check_writable_by(tmp_path, "10001:10001")


def test_a_missing_engine_is_named(tmp_path, monkeypatch):
    from medtrans_workflow import job

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(container.ContainerError, match="no `apptainer` on PATH"):
        job.require("apptainer")
