"""The container command of a job, read from compose.yaml so a workflow job runs the same
image with exactly the isolation compose gives: the service's user, no network, read-only root,
its tmpfs, dropped capabilities, shm size and mounts. Only the run volume becomes a bind mount
of the run folder (Snakemake must see the manifests), and the command is narrowed to the unit.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

RUN_TARGET = "/medtrans/run"
_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


class ContainerError(RuntimeError):
    """A compose file or image the job cannot use; the message says what to do."""


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}` / `${VAR:-default}` (an empty VAR takes the default)."""
    return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def service(compose: Path, name: str) -> dict:
    """One service of compose.yaml with the `<<:` merges applied (YAML merge keys)."""
    try:
        services = yaml.safe_load(compose.read_text())["services"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as err:
        raise ContainerError(f"{compose}: cannot read its services ({err})") from None
    if name not in services:
        raise ContainerError(f"{compose}: no service {name!r}; the workflow runs the compose services")
    return services[name]


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


def mounts(svc: dict, compose: Path, env: Mapping[str, str], run_dir: Path) -> list[Mount]:
    """The service's volumes: the run volume as a bind of `run_dir`, binds as compose resolves
    them (relative to the compose file; missing host paths created like `create_host_path`)."""
    out = []
    for vol in svc.get("volumes", []):
        target = vol["target"]
        if vol["type"] == "volume":
            if target != RUN_TARGET:
                raise ContainerError(f"{compose}: volume at {target} is not the run volume; add it here")
            out.append(Mount(run_dir, target, False))
            continue
        source = Path(interpolate(vol["source"], env))
        source = source if source.is_absolute() else (compose.parent / source)
        if vol.get("bind", {}).get("create_host_path"):
            source.mkdir(parents=True, exist_ok=True)
        out.append(Mount(source.resolve(), target, bool(vol.get("read_only"))))
    return out


def image(svc: dict, env: Mapping[str, str]) -> str:
    return interpolate(svc["image"], env)


def docker_argv(
    svc: dict, mounts_: list[Mount], image_ref: str, image_id: str, narrow: list[str], gpu_ids: list[str]
) -> list[str]:
    """`docker run` of the service: compose's isolation flags, mounts, the narrowed command."""
    argv = ["docker", "run", "--rm", "--pull", "never", "--user", str(svc["user"])]
    argv += ["--network", svc.get("network_mode", "none")]
    argv += ["--read-only"] if svc.get("read_only") else []
    for path in svc.get("tmpfs", []):
        argv += ["--tmpfs", path]
    for cap in svc.get("cap_drop", []):
        argv += ["--cap-drop", cap]
    for opt in svc.get("security_opt", []):
        argv += ["--security-opt", opt]
    if svc.get("shm_size"):
        argv += ["--shm-size", str(svc["shm_size"])]
    for m in mounts_:
        spec = f"type=bind,source={m.source},target={m.target}" + (",readonly" if m.read_only else "")
        argv += ["--mount", spec]
    argv += ["--env", f"MEDTRANS_IMAGE_ID={image_id}"]
    # the service's secrets (signing and pseudonym keys): passed by name, so docker takes each
    # value from this process's environment and it never appears on a command line
    argv += [a for k in svc.get("environment", {}) if k != "MEDTRANS_IMAGE_ID" for a in ("--env", k)]
    if gpu_ids:
        argv += ["--gpus", f"device={','.join(gpu_ids)}"]
    return argv + [image_ref, *svc.get("command", []), *narrow]


def apptainer_argv(svc: dict, mounts_: list[Mount], sif: Path, narrow: list[str], gpu: bool) -> list[str]:
    """`apptainer run` of the SIF built from the same image: contained (own /tmp, no host home or
    environment), no network, the image read-only, the same mounts. Not tested on these machines.
    Apptainer runs as the calling user (it cannot switch to the image's 10001)."""
    argv = ["apptainer", "run", "--containall", "--no-home", "--net", "--network", "none"]
    argv += ["--env", "HOME=/tmp", "--env", f"MEDTRANS_IMAGE_ID=sif:{sif.name}"]
    for m in mounts_:
        argv += ["--bind", f"{m.source}:{m.target}" + (":ro" if m.read_only else "")]
    if gpu:
        argv += ["--nv", "--env", f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}"]
    return argv + [str(sif), *svc.get("command", []), *narrow]
