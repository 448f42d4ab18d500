"""One workflow job: run the unit's `medtrans` stage command in the chosen runtime.

    python -m medtrans_workflow.job translate/breast/cyclegan --study S --run R --runtime local

The command is the local runner's and the containers' own (`medtrans translate cyclegan
--study S --run R`), narrowed to the unit with `--task`. The stage contract decides: an up-to-date
unit finishes at once, an interrupted one resumes from its partial folder.
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from medtrans_workflow import container, gpus
from medtrans_workflow.units import Job, parse_label

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
REPO = Path(__file__).resolve().parents[2]


class Runtime(StrEnum):
    local = "local"
    docker = "docker"
    apptainer = "apptainer"


def local_argv(job: Job, study: Path, run: Path) -> list[str]:
    """The venv's own `medtrans` (next to this Python), as `medtrans run` would run the unit."""
    exe = Path(sys.executable).parent / "medtrans"
    return [str(exe), *job.stage_args(), "--study", str(study), "--run", str(run)]


def container_env(study: Path, data: Path | None, weights: Path | None, tag: str | None) -> dict[str, str]:
    """The variables compose.yaml reads, as compose-run.sh sets them."""
    env = dict(os.environ)
    # the stage command needs medtrans only, not this package (the Snakefile put it on the path)
    here = str(Path(__file__).resolve().parents[1])
    kept = [p for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != Path(here)]
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    env["MEDTRANS_STUDY"] = str(study)
    for key, value in (("MEDTRANS_DATA", data), ("MEDTRANS_WEIGHTS_DIR", weights), ("MEDTRANS_TAG", tag)):
        if value:
            env[key] = str(value)
    if weights:  # the venv's stages read it; the containers see the folder at /weights
        env["MEDTRANS_WEIGHTS"] = str(Path(weights).resolve())
    return env


def require(engine: str) -> None:
    if shutil.which(engine) is None:
        raise container.ContainerError(f"runtime {engine}: no `{engine}` on PATH of {os.uname().nodename}")


def image_id(ref: str) -> str:
    argv = ["docker", "image", "inspect", "-f", "{{.Id}}", ref]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise container.ContainerError(f"image {ref} missing on this host; build it with `make images`")
    return done.stdout.strip()


def check_writable_by(run: Path, user: str) -> None:
    """The container writes the run folder as compose's user; say how to allow it."""
    uid = int(user.split(":")[0])
    st = run.stat()
    if st.st_uid != uid and not (st.st_mode & 0o002) and os.getuid() != uid:
        raise container.ContainerError(
            f"{run}: the container user {uid} cannot write here; give it and yourself access, e.g. "
            f"setfacl -R -m u:{uid}:rwX -m d:u:{uid}:rwX -m u:$USER:rwX -m d:u:$USER:rwX {run}"
        )


def run_child(argv: list[str], env: dict[str, str]) -> int:
    """Run and wait; SIGTERM (scancel, a time limit) is passed on so the unit stops cleanly."""
    typer.echo("medtrans-job: " + shlex.join(argv), err=True)
    child = subprocess.Popen(argv, env=env)
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    return child.wait()


@app.command()
def main(
    unit: Annotated[str, typer.Argument(help="Unit label, e.g. translate/breast/cyclegan.")],
    study: Annotated[Path, typer.Option(help="Study file.")],
    run: Annotated[Path, typer.Option(help="Run folder.")],
    runtime: Annotated[Runtime, typer.Option(help="Where the stage command runs.")] = Runtime.local,
    gpus_: Annotated[int, typer.Option("--gpus", help="GPUs the job asked for.")] = 0,
    threads: Annotated[int, typer.Option(help="CPU threads the job asked for.")] = 1,
    tag: Annotated[str | None, typer.Option(help="Image tag (default: compose's).")] = None,
    data: Annotated[Path | None, typer.Option(help="Raw data folder, mounted at /data.")] = None,
    weights: Annotated[Path | None, typer.Option(help="Weights folder, mounted at /weights.")] = None,
    sif_dir: Annotated[Path, typer.Option(help="Folder of <image>-<tag>.sif files.")] = Path("apptainer"),
    compose: Annotated[Path, typer.Option(help="compose.yaml whose services the containers follow.")] = REPO
    / "compose.yaml",
) -> None:
    """Run one unit's stage command; exit with its status."""
    try:
        job = parse_label(unit)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    study, run = study.resolve(), run.resolve()
    env = container_env(study, data, weights, tag)
    env.setdefault("OMP_NUM_THREADS", str(threads))  # a scheduler's or the user's choice wins
    run.mkdir(parents=True, exist_ok=True)
    try:
        with gpus.claim(0 if gpus.scheduler_assigned() else gpus_) as ids:
            if ids:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
            argv = _argv(job, runtime, study, run, env, ids, sif_dir, compose, gpus_ > 0)
            code = run_child(argv, env)
    except (container.ContainerError, RuntimeError) as err:
        typer.secho(f"error: {unit}: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def _argv(job, runtime, study, run, env, ids, sif_dir, compose, gpu) -> list[str]:
    if runtime is Runtime.local:
        return local_argv(job, study, run)
    svc = container.service(compose.resolve(), job.image + ("-gpu" if gpu else ""))
    mounts = container.mounts(svc, compose.resolve(), env, run)
    ref = container.image(svc, env)
    require(runtime.value)
    if runtime is Runtime.docker:
        check_writable_by(run, str(svc["user"]))
        # under SLURM name the job's own devices, by their host indices, to the engine
        devices = ids or (gpus.host_devices() if gpu else [])
        return container.docker_argv(svc, mounts, ref, image_id(ref), job.narrow_args(), devices)
    sif = sif_dir.resolve() / (ref.split("/")[-1].replace(":", "-") + ".sif")
    if not sif.is_file():
        raise container.ContainerError(
            f"{sif} missing; build it: apptainer build {sif} docker-daemon://{ref}"
        )
    return container.apptainer_argv(svc, mounts, sif, job.narrow_args(), gpu)


if __name__ == "__main__":
    app()
