"""Write compose.yaml and docker/stage/Dockerfile's targets from the catalogue of stages.

    python3 docker/scripts/generate.py write    # `make generate`: rewrite both files
    python3 docker/scripts/generate.py check    # exit 1, naming the file, when one is out of date

The list of stages and translators lives in shared/catalogue/stages.py; these two files are
derived from it and committed (tests/test_catalogue.py checks that they are up to date).
Standard library only, Python 3.9 and later, like the catalogue: it runs on the host.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "stage" / "Dockerfile"
TARGETS_MARK = (
    "# ---- targets: generated from shared/catalogue/stages.py by `make generate`; edit that ----\n"
)
ENTRYPOINT = "/opt/venv/bin/medtrans"


def load_catalogue():
    """shared/catalogue/stages.py by path: no medtrans install needed on the host."""
    path = ROOT / "shared" / "catalogue" / "stages.py"
    spec = importlib.util.spec_from_file_location("medtrans_catalogue_stages", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def project_version() -> str:
    """[project] version of pyproject.toml (a regex: tomllib needs Python 3.11, the host may not)."""
    text = (ROOT / "pyproject.toml").read_text()
    project = re.search(r"(?ms)^\[project\]\n(.*?)(?=^\[|\Z)", text)
    version = project and re.search(r'(?m)^version\s*=\s*"([^"]+)"', project.group(1))
    if not version:
        raise SystemExit(f"generate: no version in the [project] table of {ROOT / 'pyproject.toml'}")
    return version.group(1)


COMPOSE_HEAD = """\
# medtrans: one container per stage and per translator. They share only the run volume and talk
# only through its manifests; raw data, the study file and the weights are mounted read-only and
# no container has a network.
#
# GENERATED from shared/catalogue/stages.py by `make generate`: change the catalogue, not this
# file (tests/test_catalogue.py fails when the two disagree).
#
#   make all                          # builds what is missing, then runs STUDY through compose
#   docker/scripts/compose-run.sh studies/demo.yaml [--gpu]   # the same, images already built
#
# compose-run.sh runs one `docker compose run --no-deps SERVICE` per stage, in order, and stops at
# the first failure (compose `up` exits 0 when the last stage fails unless
# --abort-on-container-failure is given, and --exit-code-from stops the downstream stages).
# `docker compose --profile cpu up` works too: depends_on orders the stages.
#
# Variables (compose-run.sh sets them):
#   MEDTRANS_STUDY        study file on the host           (default ./studies/demo.yaml)
#   MEDTRANS_STUDY_NAME   the study's `name`; names the run volume medtrans-run-<name>
#   MEDTRANS_DATA         raw data folder, mounted at /data (paths in studies/paper.yaml)
#   MEDTRANS_WEIGHTS_DIR  weights folder from `make weights`, mounted at /weights
#   MEDTRANS_TAG          image tag (default {version}-cpu; GPU images: {version}-cuda)
#   MEDTRANS_GPU, MEDTRANS_GPU_<TRANSLATOR>   GPU device id(s) of the gpu profile (translators can
#                         run in parallel on different GPUs)
#   MEDTRANS_IMAGE_ID_<STAGE>            recorded in every manifest (the image's own id)
#
# Profiles: `cpu` (no GPU needed) and `gpu` (GPU stages reserve an NVIDIA GPU; needs the NVIDIA
# container toolkit, otherwise the engine says "could not select device driver").

x-stage: &stage
  pull_policy: never            # images are built locally (make images); never ask a registry
  network_mode: none
  user: "10001:10001"
  read_only: true
  tmpfs:                        # the only writable places besides the run volume
    - /tmp
    - /medtrans/home
  cap_drop: [ALL]
  security_opt: ["no-new-privileges:true"]
  shm_size: 1gb                 # torch data loaders share tensors through /dev/shm
  command: {command}
  volumes:
    - type: volume
      source: run
      target: /medtrans/run
    - type: bind
      source: ${{MEDTRANS_STUDY:-./studies/demo.yaml}}
      target: /medtrans/study.yaml
      read_only: true
    - type: bind
      source: ${{MEDTRANS_DATA:-./data}}
      target: /data
      read_only: true
      bind:
        create_host_path: true
    - type: bind
      source: ${{MEDTRANS_WEIGHTS_DIR:-./weights}}
      target: /weights
      read_only: true
      bind:
        create_host_path: true

x-cpu: &cpu
  <<: *stage
  profiles: [cpu]

x-gpu: &gpu
  <<: *stage
  profiles: [gpu]
  deploy:
    resources:
      reservations:
        devices:
          - driver: nvidia
            capabilities: [gpu]
            device_ids: ["${{MEDTRANS_GPU:-0}}"]

x-gpu-device: &gpu-device
  driver: nvidia
  capabilities: [gpu]

services:
"""

COMPOSE_TAIL = """
volumes:
  run:
    name: medtrans-run-${MEDTRANS_STUDY_NAME:-demo}
"""


def _service(img, profile: str, version: str) -> list[str]:
    """The lines of one service: `<image>` in the cpu profile, `<image>-gpu` in the gpu profile."""
    suffix = "" if profile == "cpu" else "-gpu"
    variant = "cpu" if profile == "cpu" else "cuda"
    if profile == "cpu":
        head = ["    <<: *cpu"]
    elif img.gpu:
        head = ["    <<: *gpu"]
    else:  # in the gpu profile to keep the order after the gpu stages, without a GPU of its own
        head = ["    <<: *stage", "    profiles: [gpu]"]
    name = f"  {img.name}{suffix}:"
    if profile == "gpu" and not img.gpu:
        name = name.ljust(30) + "# no GPU needed; ordered after the gpu stages"
    lines = [name, *head]
    lines += [
        f"    image: medtrans/{img.name}:${{MEDTRANS_TAG:-{version}-{variant}}}",
        "    environment:",
        f"      MEDTRANS_IMAGE_ID: ${{MEDTRANS_IMAGE_ID_{img.name.upper()}:-}}",
        # secrets from the host's environment, never from a file in the run volume
        "      MEDTRANS_SIGNING_KEY: ${MEDTRANS_SIGNING_KEY:-}",
    ]
    if img.stage == "preprocess":  # real data needs the pseudonym key (only the phantom does without)
        lines.append("      MEDTRANS_PSEUDONYM_KEY: ${MEDTRANS_PSEUDONYM_KEY:-}")
    if profile == "gpu" and img.gpu and img.per_translator:  # each translator may get its own GPU
        lines += [
            "    deploy:",
            "      resources:",
            "        reservations:",
            "          devices:",
            "            - <<: *gpu-device",
            f'              device_ids: ["${{MEDTRANS_GPU_{img.name.upper()}:-0}}"]',
        ]
    if img.after:
        lines.append("    depends_on:")
        lines += [f"      {up}{suffix}: {{condition: service_completed_successfully}}" for up in img.after]
    return lines


def compose_text(catalogue, version: str) -> str:
    lines: list[str] = []
    for profile, title in (
        ("cpu", "cpu profile"),
        ("gpu", "gpu profile: the same stages, each GPU stage reserving a GPU"),
    ):
        rule = f"  # ---- {title} "
        lines.append(rule + "-" * max(3, 94 - len(rule)))
        for img in catalogue.images():
            lines += _service(img, profile, version)
        lines.append("")
    head = COMPOSE_HEAD.format(version=version, command=json.dumps(list(catalogue.CONTAINER_ARGS)))
    return head + "\n".join(lines).rstrip("\n") + "\n" + COMPOSE_TAIL


def dockerfile_text(catalogue, current: str) -> str:
    """The Dockerfile with everything after TARGETS_MARK replaced by one target per image."""
    if TARGETS_MARK not in current:
        raise SystemExit(f"generate: {DOCKERFILE} lacks the line {TARGETS_MARK.strip()!r}; put it back")
    keep = current[: current.index(TARGETS_MARK) + len(TARGETS_MARK)]
    targets = [
        f"\nFROM stage AS {img.name}\n"
        f"ENTRYPOINT {json.dumps([ENTRYPOINT, *img.command])}\n"
        f"CMD {json.dumps(list(catalogue.CONTAINER_ARGS))}\n"
        for img in catalogue.images()
    ]
    return keep + "".join(targets)


def expected() -> dict[Path, str]:
    catalogue = load_catalogue()
    return {
        COMPOSE: compose_text(catalogue, project_version()),
        DOCKERFILE: dockerfile_text(catalogue, DOCKERFILE.read_text()),
    }


def main(argv: list[str]) -> int:
    if argv not in (["write"], ["check"]):
        print(__doc__, file=sys.stderr)
        return 2
    stale = []
    for path, text in expected().items():
        if path.read_text() == text:
            continue
        if argv == ["write"]:
            path.write_text(text)
            print(f"generate: wrote {path.relative_to(ROOT)}")
        else:
            stale.append(str(path.relative_to(ROOT)))
    if stale:
        print(
            f"generate: {', '.join(stale)} out of date with shared/catalogue/stages.py; run `make generate`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
