#!/usr/bin/env bash
# Build the medtrans images: one base (the base image's Python 3, torch, core pins) and one thin image per
# stage and per translator (docker/stage/Dockerfile, one target each), all from the wheelhouse
# (never a package index or a registry).
#   docker/scripts/build.sh [STAGE...]
# env: VARIANT=cpu|cuda  BASE_IMAGE=<image>|debootstrap  TAG=<tag>  WHEELHOUSE=wheelhouse
#      WITH_WEIGHTS=0|1  WEIGHTS=weights  PYTHON=.venv/bin/python (builds medtrans's wheel where it
#      has setuptools; else the builder container does)  HOST_PYTHON=python3 (any >= 3.9)
# Writes build/docker/images-<TAG>.tsv: image, id, build seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=${HOST_PYTHON:-python3}
case $PY in /*) ;; */*) PY=$ROOT/$PY ;; *) PY=$(command -v "$PY") ;; esac
# The images and each one's extra, command and labels: shared/catalogue/stages.py (any python3).
field() { "$PY" shared/catalogue/stages.py image "$1" "$2"; }
all_stages=$("$PY" shared/catalogue/stages.py images)
STAGES=("$@")
# shellcheck disable=SC2206  # one plain name per line (the catalogue checks them)
[ ${#STAGES[@]} -gt 0 ] || STAGES=($all_stages)
for stage in "${STAGES[@]}"; do field "$stage" name >/dev/null || exit 2; done  # unknown: stages.py lists the images
VARIANT=${VARIANT:-cpu}
VERSION=$("$PY" docker/scripts/requirements.py --version)
TAG=${TAG:-$VERSION-$VARIANT}
WH=$(realpath "${WHEELHOUSE:-wheelhouse}")
REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain -- shared stages setup.py pyproject.toml 2>/dev/null)" ]; then
    REVISION="$REVISION-dirty"
fi
OUT=build/docker
mkdir -p "$OUT"
TSV=$OUT/images-$TAG.tsv

[ -f "$WH/SHA256SUMS" ] || { echo "build: no wheelhouse at $WH; run \`make wheelhouse\` first" >&2; exit 2; }
have=$(cat "$WH/TORCH_VARIANT" 2>/dev/null || echo cpu)
[ "$have" = "$VARIANT" ] || { echo "build: $WH holds torch $have wheels, VARIANT=$VARIANT; run \`make wheelhouse VARIANT=$VARIANT\`" >&2; exit 2; }

# the official image pinned by digest where a registry answers, else debootstrap (one line says which)
BASE_IMAGE=$(VARIANT=$VARIANT docker/scripts/base-image.sh)

# medtrans's own wheel, from a clean copy of the sources, with fixed zip timestamps so the same
# code gives the same sha256 (and the stage layers stay cached while the code does not change).
serve=$(mktemp -d "${TMPDIR:-/tmp}/medtrans-serve.XXXXXX")
server_pid=""
cleanup() { [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true; rm -rf "$serve"; }
trap cleanup EXIT
mkdir -p "$serve/src" "$serve/medtrans"
tar -c --exclude='__pycache__' --exclude='*.pyc' shared stages setup.py pyproject.toml README.md | tar -x -C "$serve/src"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-315532800}
if "$PY" -c 'import setuptools, wheel' 2>/dev/null; then
    ( cd "$serve/src" && "$PY" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$serve/medtrans" . )
else  # no build tools on the host: the builder container (the base image's Python, setuptools)
    chmod a+rwx "$serve/medtrans"
    VARIANT=$VARIANT docker/scripts/builder.sh -v "$serve/src:/medtrans-src:ro" -v "$serve/medtrans:/out" -- bash -ec \
        'cp -a /medtrans-src /tmp/src && cd /tmp/src && pip wheel --quiet --no-deps --no-build-isolation --wheel-dir /out .'
fi >"$OUT/wheel.log" 2>&1 || { cat "$OUT/wheel.log" >&2; exit 1; }
wheel=$(ls "$serve"/medtrans/medtrans-*.whl)
source_digest=$(docker/scripts/source-digest.sh)
wheel_sha=$(sha256sum "$wheel" | cut -d' ' -f1)
ln -s "$WH" "$serve/wheelhouse"

# Serve the wheels to the builds on 127.0.0.1 (builds use the host network: no BuildKit-only
# `RUN --mount` needed, and the wheels never become an image layer).
# A fixed port: the URL is a build argument, and a changed value would invalidate the build cache.
port=${WHEEL_PORT:-38765}
if ! "$PY" -c "import socket, sys; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null; then
    port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "build: port ${WHEEL_PORT:-38765} busy; serving the wheels on $port (the build cache will not be reused)"
fi
"$PY" -m http.server --bind 127.0.0.1 --directory "$serve" "$port" >/dev/null 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/wheelhouse/SHA256SUMS')" 2>/dev/null && break
    sleep 0.2
done
URL=http://127.0.0.1:$port
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}   # the classic builder: in every engine, no buildx needed

build() {  # image revision dockerfile-dir build-args...
    local image=$1 revision=$2 dir=$3; shift 3
    local t0=$SECONDS
    echo "build: $image"
    if ! docker build --network host --quiet --tag "$image" \
            --label "org.opencontainers.image.created=$(date -u -d "@${SOURCE_DATE_EPOCH:-315532800}" +%Y-%m-%dT%H:%M:%SZ)" \
            --build-arg VERSION="$VERSION" --build-arg REVISION="$revision" "$@" "$dir" > "$OUT/build.log" 2>&1; then
        tail -40 "$OUT/build.log" >&2
        echo "build: $image failed (full log: $OUT/build.log)" >&2
        exit 1
    fi
    printf '%s\t%s\t%s\n' "$image" "$(docker image inspect -f '{{.Id}}' "$image")" "$((SECONDS - t0))" >> "$TSV"
}

: > "$TSV"
# The base holds no medtrans code: its revision is a digest of what it is built from, so a new
# commit leaves its id, and with it every stage's dependency layer, cached.
core=$("$PY" docker/scripts/requirements.py core)
base_revision=base-$(printf '%s\n' "$BASE_IMAGE" "$core" "$(cat docker/base/Dockerfile "$WH/SHA256SUMS")" | sha256sum | cut -c1-12)
build "medtrans/base:$TAG" "$base_revision" docker/base \
    --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg TORCH_VARIANT="$VARIANT" \
    --build-arg WHEELHOUSE_URL="$URL/wheelhouse/" \
    --build-arg CORE_REQUIREMENTS="$core" --label "org.medtrans.base-image=$BASE_IMAGE"
for stage in "${STAGES[@]}"; do
    build "medtrans/$stage:$TAG" "$REVISION" docker/stage --target "$stage" \
        --build-arg BASE="medtrans/base:$TAG" \
        --build-arg STAGE_COMMAND="$(field "$stage" command)" \
        --build-arg TITLE="$(field "$stage" title)" \
        --build-arg DESCRIPTION="medtrans $stage: $(field "$stage" description)." \
        --build-arg WHEELHOUSE_URL="$URL/wheelhouse/" \
        --build-arg EXTRA_REQUIREMENTS="$("$PY" docker/scripts/requirements.py "$(field "$stage" extra)")" \
        --build-arg MEDTRANS_WHEEL_URL="$URL/medtrans/$(basename "$wheel")#sha256=$wheel_sha" \
        --label "org.medtrans.source-digest=$source_digest"
    if [ "${WITH_WEIGHTS:-0}" = 1 ] && [ "$(field "$stage" weights)" = true ]; then
        [ -d "${WEIGHTS:-weights}" ] || { echo "build: WITH_WEIGHTS=1 but no ${WEIGHTS:-weights}/; run \`make weights\`" >&2; exit 2; }
        build "medtrans/$stage:$TAG" "$REVISION" "${WEIGHTS:-weights}" -f "$ROOT/docker/with-weights/Dockerfile" \
            --build-arg IMAGE="medtrans/$stage:$TAG" --label "org.medtrans.source-digest=$source_digest"
    fi
done
# old layers of images rebuilt under the same tag (ours only)
docker image prune -f --filter "label=org.opencontainers.image.source=https://github.com/medtrans/medtrans" >/dev/null || true
echo "build: done ($TSV)"
column -t "$TSV" 2>/dev/null || cat "$TSV"
