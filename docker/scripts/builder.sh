#!/usr/bin/env bash
# Run a command in the builder image (docker/builder: the base image's Python, a compiler),
# building the image first where it is missing. The checkout is mounted read-only at /src, the
# host's pip settings (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS, PIP_TRUSTED_HOST,
# PIP_CERT) are passed on, with the local folders they name mounted read-only at the same path.
#   docker/scripts/builder.sh [-v HOST:CONTAINER]... -- COMMAND...     (VARIANT=cpu|cuda)
#   docker/scripts/builder.sh --image      print the builder image's name (building it if needed)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VARIANT=${VARIANT:-cpu}
version=$(${HOST_PYTHON:-python3} docker/scripts/requirements.py --version)
IMAGE=medtrans/builder:$version-$VARIANT
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    from=$(docker/scripts/base-image.sh)
    echo "builder: $IMAGE FROM $from" >&2
    mkdir -p build/docker
    # the build context: the Dockerfile and the CAs the host's pip trusts (a proxy's, a private one)
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/medtrans-builder.XXXXXX")
    cp docker/builder/Dockerfile "$ctx/"
    : > "$ctx/extra-ca.pem"
    for ca in ${PIP_CERT:-} ${SSL_CERT_FILE:-} ${REQUESTS_CA_BUNDLE:-}; do [ -f "$ca" ] && cat "$ca" >> "$ctx/extra-ca.pem"; done
    DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} docker build --network host --quiet --tag "$IMAGE" \
        --build-arg BASE_IMAGE="$from" --build-arg VERSION="$version" \
        --label "org.medtrans.base-image=$from" "$ctx" > build/docker/builder.log 2>&1 \
        || { rm -rf "$ctx"; tail -30 build/docker/builder.log >&2; echo "builder: $IMAGE failed (build/docker/builder.log)" >&2; exit 1; }
    rm -rf "$ctx"
fi
[ "${1:-}" = --image ] && { echo "$IMAGE"; exit 0; }
args=(--rm --network host --user "$(id -u):$(id -g)" -e HOME=/tmp -e SOURCE_DATE_EPOCH -v "$ROOT:/src:ro")
while [ "${1:-}" = -v ]; do args+=(-v "$2"); shift 2; done
[ "${1:-}" = -- ] && shift
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_TRUSTED_HOST PIP_CERT PIP_DEFAULT_TIMEOUT; do
    [ -n "${!var:-}" ] || continue
    args+=(-e "$var")
    for word in ${!var}; do
        path=${word#file://}
        [[ $path == /* && -e $path ]] && args+=(-v "$path:$path:ro")
    done
done
exec docker run "${args[@]}" "$IMAGE" "$@"
