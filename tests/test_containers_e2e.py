"""The real Docker engine, end to end: build the CPU images without any registry or package index,
run the smoke study through compose (one container per stage), and check that the containers
produce byte-identical outputs to the local runner, ran as non-root without a network, and could
not write the raw data.

Needs a Docker engine. Where none answers, the test installs Debian's docker.io if it is missing
(as root, with apt-get), starts `dockerd` in the background and stops it by its PID afterwards.
Outside CI a machine that cannot do this skips the test; with CI=true (or
MEDTRANS_REQUIRE_DOCKER=1) it fails instead: CI must never pass without the real engine.

Timings go to build/docker/e2e-times.json. E2E_STAGES="preprocess cyclegan ..." limits the
stages (development only; the default is every stage of the study).
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medtrans.shared.catalogue import stages as catalogue

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STAGES = tuple(i.name for i in catalogue.images())  # one image (compose service) each
TRANSLATORS = catalogue.translator_names()
TEXT = {".csv", ".md", ".html", ".tex", ".json", ".txt", ".svg"}
UID = "10001:10001"
REQUIRED = (
    os.environ.get("CI", "").lower() in ("1", "true", "yes")
    or os.environ.get("MEDTRANS_REQUIRE_DOCKER") == "1"
)
TIMES = ROOT / "build" / "docker" / "e2e-times.json"

pytestmark = pytest.mark.slow


def _unavailable(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"the Docker end-to-end test must run in CI: {why}")
    pytest.skip(why)


def _answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _install_docker() -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        _unavailable("no dockerd, and installing docker.io needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = [
        "apt-get",
        "install",
        "-y",
        "-q",
        "-o",
        "DPkg::Lock::Timeout=600",
        "--no-install-recommends",
        "docker.io",
        "debootstrap",
        "iptables",
    ]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    if run.returncode != 0:  # stale package lists: update once and retry
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    if run.returncode != 0 or not shutil.which("dockerd"):
        _unavailable(f"apt-get install docker.io failed: {run.stderr[-500:]}")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A Docker engine that answers: the one running, or a dockerd started here (stopped by PID)."""
    if _answers():
        yield "existing"
        return
    if not shutil.which("dockerd"):
        _install_docker()
    state = tmp_path_factory.mktemp("dockerd")
    log = open(state / "dockerd.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["dockerd", "--pidfile", str(state / "dockerd.pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not _answers():
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                _unavailable(f"dockerd did not start: {(state / 'dockerd.log').read_text()[-1500:]}")
            time.sleep(1)
        yield f"started (pid {proc.pid})"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


# The containers get no thread settings from the host (torch takes the cores it sees), so the
# local runner they are compared with must not either: OMP_NUM_THREADS=1 in the test's
# environment gave maskgan and spade other weights than in the containers (1 thread against 2).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _sh(cmd: list[str], env: dict | None = None, timeout: int = 1800) -> float:
    t0 = time.monotonic()
    base = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    run = subprocess.run(
        cmd, cwd=ROOT, env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    assert run.returncode == 0, (
        f"{' '.join(cmd)} exited {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    )
    return time.monotonic() - t0


PROVENANCE = re.compile(r'<section id="provenance">.*?</section>', re.S)


def _without_provenance_text(text: str) -> str:
    assert len(PROVENANCE.findall(text)) == 1, "report.html: expected one provenance section"
    return PROVENANCE.sub("", text)


def _digests(run: Path) -> dict[str, dict[str, str]]:
    """Every manifest of a run folder: its outputs' path -> sha256."""
    out = {}
    for m in sorted(run.rglob("manifest.json")):
        rel = m.relative_to(run)
        if any(part.startswith(".") for part in rel.parts):
            continue
        out[rel.parent.as_posix()] = {o["path"]: o["sha256"] for o in json.loads(m.read_text())["outputs"]}
    return out


# Floating-point numbers in text outputs may differ in their last bits: on some CPUs the BLAS and
# LAPACK kernels of a container's process and of the host's differ (OpenBLAS picks its kernel per
# CPU), and the radiomics FRD of a set with a near-constant feature (d^2 ~ 1e9 from terms that
# cancel) shows it (CI, once). Such a number must agree to RTOL; every other byte must be the same.
RTOL = 1e-9
NUMBER = re.compile(r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


def text_mismatch(mine: str, reference: str) -> str | None:
    """None where two texts are the same up to RTOL in their numbers; otherwise the first place
    that differs, with its context."""
    a, b = NUMBER.split(mine), NUMBER.split(reference)
    if len(a) != len(b):
        return f"{len(a) // 2} numbers against {len(b) // 2}"
    at = 0
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y and (i % 2 == 0 or not _close(float(x), float(y))):
            return f"{x!r} against {y!r} after {mine[max(0, at - 80) : at]!r}"
        at += len(x)
    return None


def _close(x: float, y: float) -> bool:
    """Within RTOL, and finite: a token such as "07e8172" inside a hex digest reads as inf, and
    two such tokens must not pass as equal numbers."""
    return math.isfinite(x) and math.isfinite(y) and math.isclose(x, y, rel_tol=RTOL, abs_tol=1e-12)


def assert_same_outputs(compose_run: Path, local: Path, weights: Path, stages: tuple[str, ...]) -> None:
    """The same outputs, byte for byte, for every manifest of every stage, with three exceptions
    by design: report.html's "Provenance" section records where each upstream output was made
    (python, container image id, code revision, finish times, manifest digests), which is what
    differs between a container and the local runner; a metric without weights names the folder
    where it looked (/weights in a container, the host folder locally); and numbers in text
    outputs agree to RTOL (see there). Every difference of every folder is listed when it fails."""
    ours, theirs = _digests(compose_run), _digests(local)
    assert set(ours) == set(theirs) and ours, (sorted(ours), sorted(theirs))
    covered = {folder.split("/")[0] for folder in ours}
    expect = {"translate" if s in TRANSLATORS else s for s in stages}
    assert covered == expect
    failures = []
    for folder in sorted(theirs):
        paths = set(ours[folder]) | set(theirs[folder])
        for path in sorted(p for p in paths if ours[folder].get(p) != theirs[folder].get(p)):
            if Path(path).suffix not in TEXT or path not in ours[folder] or path not in theirs[folder]:
                failures.append(f"{folder}/{path}")
                continue
            mine, reference = ((r / folder / path).read_text() for r in (compose_run, local))
            if folder == "report" and path == "report.html":
                _assert_names_the_images(compose_run)
                mine, reference = _without_provenance_text(mine), _without_provenance_text(reference)
            why = text_mismatch(mine, reference.replace(str(weights), "/weights"))
            if why is not None:
                failures.append(f"{folder}/{path}: {why}")
    assert not failures, f"{len(failures)} outputs differ from the local runner's:\n" + "\n".join(failures)


def _assert_names_the_images(compose_run: Path) -> None:
    """The report's Provenance section names the image of every upstream output."""
    ids = {
        json.loads(m.read_text())["environment"]["image_id"]
        for m in compose_run.rglob("manifest.json")
        if m.parent.name != "report"
    }
    section = PROVENANCE.search((compose_run / "report" / "report.html").read_text()).group(0)
    assert all(i[:19] in section for i in ids if i), "the report must name the images that ran"


def test_text_outputs_match_to_rtol_in_their_numbers_and_exactly_elsewhere():
    row = "unsb,frd,5185586239.993345,-24115901816.600777,16\n"
    assert text_mismatch(row, row) is None
    assert text_mismatch(row, row.replace("993345", "993344")) is None  # last bits
    assert "5185586239.993345" in text_mismatch(row, row.replace("5185586239", "5185596239"))
    assert text_mismatch(row, row.replace("unsb", "spade")) is not None
    assert text_mismatch(row, row.replace(",16", ",17")) is not None
    assert text_mismatch(row, row + row) == "3 numbers against 6"
    assert text_mismatch("<td>0.5</td>", "<td>0.5</td><td></td>") is not None
    assert text_mismatch("sha256 87cacf07e8172fc4", "sha256 87cacf09e8172fc4") is not None  # inf


def test_smoke_study_through_compose_matches_the_local_runner(engine, tmp_path):
    stages = tuple(os.environ.get("E2E_STAGES", " ".join(STAGES)).split())
    times: dict[str, float | str] = {"engine": engine}
    py = {"PYTHON": str(BIN / "python")}

    # 1. images: the wheelhouse once (kept between runs), a registry-free base, then every stage
    sums = ROOT / "wheelhouse" / "SHA256SUMS"
    if not sums.is_file() or sums.stat().st_mtime < (ROOT / "pyproject.toml").stat().st_mtime:
        times["wheelhouse_s"] = _sh(["docker/scripts/wheelhouse.sh", "wheelhouse"], py)
    # BASE_IMAGE=debootstrap: no registry asked (tests/test_fresh_host.py takes the route make chooses)
    times["build_s"] = _sh(
        ["docker/scripts/build.sh", *stages], {**py, "BASE_IMAGE": "debootstrap"}, timeout=2400
    )
    tag = (
        subprocess.run(
            [sys.executable, "docker/scripts/requirements.py", "--version"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        + "-cpu"
    )

    # 2. the smoke study through compose, on a fresh run volume, raw data and weights read-only
    data, weights = tmp_path / "data", tmp_path / "weights"
    data.mkdir()
    weights.mkdir()
    (data / "README").write_text("raw data must stay untouched\n")
    subprocess.run(["docker", "volume", "rm", "-f", "medtrans-run-smoke"], capture_output=True, check=False)
    compose_run, records = tmp_path / "compose-run", tmp_path / "records"
    env = {
        **py,
        "EXPORT": str(compose_run),
        "RECORDS": str(records),
        "STAGES": " ".join(stages),
        "COMPOSE_PROJECT_NAME": "medtrans-e2e",
        "MEDTRANS_DATA": str(data),
        "MEDTRANS_WEIGHTS_DIR": str(weights),
    }
    times["compose_run_s"] = _sh(["docker/scripts/compose-run.sh", "studies/smoke.yaml"], env)

    # 3. the local runner, same study, same (empty) weights folder, one stage command at a time
    local = tmp_path / "local-run"
    t0 = time.monotonic()
    for stage in stages:
        cmd = ["translate", stage] if stage in TRANSLATORS else [stage]
        _sh(
            [str(BIN / "medtrans"), *cmd, "--study", "studies/smoke.yaml", "--run", str(local)],
            {"MEDTRANS_WEIGHTS": str(weights)},
        )
    times["local_run_s"] = time.monotonic() - t0

    # 4. the same outputs, byte for byte (report.html outside its Provenance section)
    assert_same_outputs(compose_run, local, weights, stages)
    _sh([str(BIN / "medtrans"), "verify", str(compose_run)])

    # 5. each manifest names the image that made it
    for m in compose_run.rglob("manifest.json"):
        if any(p.startswith(".") for p in m.relative_to(compose_run).parts):
            continue
        env_rec = json.loads(m.read_text())["environment"]
        assert env_rec["container"] is True and env_rec["image_id"].startswith("sha256:"), m

    # 6. how every container ran: non-root, no network, read-only inputs and root file system
    for stage in stages:
        (info,) = json.loads((records / f"{stage}.inspect.json").read_text())
        assert info["State"]["ExitCode"] == 0
        assert info["Config"]["User"] == UID, stage
        assert info["HostConfig"]["NetworkMode"] == "none", stage
        assert set(info["NetworkSettings"]["Networks"]) <= {"none"}, stage
        assert info["HostConfig"]["ReadonlyRootfs"] is True, stage
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        assert mounts["/data"]["RW"] is False and Path(mounts["/data"]["Source"]) == data, stage
        assert mounts["/weights"]["RW"] is False and mounts["/medtrans/study.yaml"]["RW"] is False, stage
        assert mounts["/medtrans/run"]["Type"] == "volume" and mounts["/medtrans/run"]["RW"] is True, stage
        image = info["Config"]["Image"]
        assert image == f"medtrans/{stage}:{tag}"
        assert (
            info["Image"]
            == subprocess.run(
                ["docker", "image", "inspect", "-f", "{{.Id}}", image],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    assert sorted(p.name for p in data.iterdir()) == ["README"]

    # 7. and the read-only mount really refuses a write, as the stage user
    probe = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--pull",
            "never",
            "--network",
            "none",
            "--user",
            UID,
            "--entrypoint",
            "touch",
            "-v",
            f"{data}:/data:ro",
            f"medtrans/{stages[0]}:{tag}",
            "/data/written-by-a-stage",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr
    assert not (data / "written-by-a-stage").exists()

    TIMES.parent.mkdir(parents=True, exist_ok=True)
    TIMES.write_text(
        json.dumps(
            {**times, "stages": list(stages), "records": (records / "stages.tsv").read_text()}, indent=2
        )
        + "\n"
    )
    print(json.dumps(times, indent=2))
    subprocess.run(["docker", "volume", "rm", "-f", "medtrans-run-smoke"], capture_output=True, check=False)
