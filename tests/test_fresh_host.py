"""A fresh host, as a new user has one: Debian 13 (trixie: Python 3.13, no 3.11) holding only make,
git, the Docker CLI and python3, with the engine's socket mounted. In a fresh clone it runs
`make all STUDY=studies/smoke.yaml` (wheelhouse in the builder container, base image, images,
compose from the wheelhouse's compose binary: the CLI has no compose plugin), and the outputs'
digests equal the local runner's. Then `make archive`; every medtrans image is removed; the same
host without any network unpacks the archive's sources, runs `make restore` and `make all`.

It follows the Docker end-to-end test (tests/test_containers_e2e.py) in `make test`: no medtrans
image may exist beforehand (the test removes them), but the engine's build cache still holds
that test's layers; run after it on the 2-core machine the whole test took about 10 min, while
an earlier run from an empty cache took 31.5 min for the first `make all` alone (README:
Containers, "A fresh host"). With CI=true (or MEDTRANS_REQUIRE_DOCKER=1) a missing engine or debootstrap
fails it instead of skipping. Timings go to build/docker/fresh-host-times.json.

The fresh host is a container of the daemon it drives, so every path it hands to Docker (bind
mounts of the checkout, the wheelhouse, the study) must mean the same on both sides: its work
folder is mounted at the same path, and TMPDIR points into it.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SPEC = importlib.util.spec_from_file_location("medtrans_e2e", ROOT / "tests" / "test_containers_e2e.py")
e2e = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(e2e)
engine = e2e.engine  # the fixture: the running engine, or dockerd started (and stopped) here
TIMES = ROOT / "build" / "docker" / "fresh-host-times.json"
IMAGE = "medtrans-test/fresh-host:trixie"
PACKAGES = "make,git,docker-cli,python3,ca-certificates"
PIP_VARS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_TRUSTED_HOST", "PIP_CERT")

pytestmark = pytest.mark.slow


def _mirror() -> str:
    """The Debian mirror apt uses here (deb822 or one-line sources), else deb.debian.org."""
    for f in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        text = f.read_text() if f.is_file() else ""
        for url in re.findall(r"https?://\S+/debian/?(?=\s|$)", text):
            if "security" not in url:
                return url
    return "http://deb.debian.org/debian"


def _host_image(work: Path) -> None:
    """Debian trixie minbase plus PACKAGES, imported as IMAGE (once; debootstrap needs root)."""
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0:
        return
    if not shutil.which("debootstrap"):
        e2e._unavailable("debootstrap is missing (apt-get install debootstrap)")
    root = work / "rootfs"
    cmd = ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "trixie", str(root), _mirror()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["docker", "import", "-", IMAGE], stdin=tar.stdout, check=True, capture_output=True)
    assert tar.wait() == 0
    shutil.rmtree(root)


def _on_host(work: Path, script: str, network: str, timeout: int = 5400) -> tuple[str, float]:
    """Run a bash script on the fresh host (as root: the socket's owner), in its work folder."""
    args = ["docker", "run", "--rm", "--network", network, "-v", "/var/run/docker.sock:/var/run/docker.sock"]
    args += ["-v", f"{work}:{work}", "-v", f"{ROOT}:/src:ro", "-w", str(work), "-e", f"TMPDIR={work}/tmp"]
    # a worktree's .git is a file naming the main repository's git folder: mounted where it says
    common = subprocess.run(
        ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not common.startswith(str(ROOT) + "/"):
        args += ["-v", f"{common}:{common}:ro"]
    for var in PIP_VARS:  # the package index this machine reaches, for the builder container
        if os.environ.get(var):
            args += ["-e", var]
            for word in os.environ[var].split():
                path = word.removeprefix("file://")
                if path.startswith("/") and Path(path).exists():
                    args += ["-v", f"{path}:{path}:ro"]
    t0 = time.monotonic()
    run = subprocess.run(
        [*args, IMAGE, "bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    return out, time.monotonic() - t0


def _remove_medtrans_images() -> None:
    names = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=medtrans/*"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if names:
        subprocess.run(["docker", "image", "rm", "-f", *names], capture_output=True, check=True)


def test_fresh_trixie_host_make_all_then_offline_from_an_archive(engine):
    times: dict[str, float | str] = {"engine": engine}
    work = Path(tempfile.mkdtemp(prefix="medtrans-fresh-", dir="/tmp"))
    (work / "tmp").mkdir()
    t0 = time.monotonic()
    _host_image(work)
    times["host_image_s"] = time.monotonic() - t0
    _remove_medtrans_images()
    subprocess.run(["docker", "volume", "rm", "-f", "medtrans-run-smoke"], capture_output=True, check=False)

    # 1. what the host has: Python 3.13 and no 3.11, no compose plugin; then a fresh clone, make all
    out, times["make_all_s"] = _on_host(
        work,
        "python3 -c 'import sys; assert sys.version_info[:2] == (3, 13), sys.version'\n"
        "if command -v python3.11 || docker compose version; then echo 'not a fresh host'; exit 1; fi\n"
        "git -c safe.directory='*' clone -q /src clone && cd clone\n"
        "make all STUDY=studies/smoke.yaml GPU=0 MEDTRANS_DATA=$PWD/data",
        network="host",
    )
    assert "a Docker engine answers -> one container per stage" in out
    assert "GPU=0 -> CPU images" in out and re.search(
        r"make all: (a registry answers|no registry answers)", out
    )
    assert "images missing or built from other code" in out and ".venv" not in out.replace("no .venv", "")
    clone = work / "clone"

    # 2. the local runner on the same study: the same outputs
    local = work / "local-run"
    t0 = time.monotonic()
    e2e._sh(
        [str(BIN / "medtrans"), "run", "studies/smoke.yaml", "--run", str(local)],
        {"MEDTRANS_WEIGHTS": str(clone / "weights")},
        timeout=5400,
    )
    times["local_run_s"] = time.monotonic() - t0
    stages = e2e.STAGES
    e2e.assert_same_outputs(clone / "runs" / "smoke", local, clone / "weights", stages)

    # 3. an archive, then nothing medtrans left on the engine, then the host without a network
    _, times["archive_s"] = _on_host(work, "cd clone && make archive GPU=0 ARCHIVE=$PWD/../archive", "host")
    _remove_medtrans_images()
    subprocess.run(["docker", "volume", "rm", "-f", "medtrans-run-smoke"], capture_output=True, check=False)
    out, times["restore_and_make_all_s"] = _on_host(
        work,
        "mkdir offline && tar -xzf archive/source.tar.gz -C offline && cd offline\n"
        "make restore GPU=0 ARCHIVE=$PWD/../archive\n"
        "make all STUDY=studies/smoke.yaml GPU=0 MEDTRANS_DATA=$PWD/data",
        network="none",
    )
    assert "images medtrans/*:" in out and "are built from this code" in out
    assert "images missing" not in out and "compose-run: run volume medtrans-run-smoke copied" in out
    e2e.assert_same_outputs(work / "offline" / "runs" / "smoke", local, clone / "weights", stages)

    TIMES.parent.mkdir(parents=True, exist_ok=True)
    TIMES.write_text(json.dumps(times, indent=2) + "\n")
    print(json.dumps(times, indent=2))
    subprocess.run(["docker", "volume", "rm", "-f", "medtrans-run-smoke"], capture_output=True, check=False)
    shutil.rmtree(work, ignore_errors=True)
