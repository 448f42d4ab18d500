#!/usr/bin/env bash
# The image docker/base and docker/builder build FROM, for VARIANT: prints its reference on
# stdout and one line on stderr saying which route it took.
#   BASE_IMAGE=<image>    that image (pulled if absent)
#   BASE_IMAGE=debootstrap, or no registry answers: Debian bookworm made with debootstrap
#   otherwise             the official image pinned by digest in docker/base/images.pin
# A pinned image is also tagged medtrans/from:<variant>-<digest12>, which `make archive` saves
# (a loaded image has no registry digest), so a restored, offline host finds it again.
#   VARIANT=cpu|cuda docker/scripts/base-image.sh      (PULL_TIMEOUT=60 seconds)
set -euo pipefail
cd "$(dirname "$0")/../.."
VARIANT=${VARIANT:-cpu}
say() { echo "make all: $*" >&2; }
ROOTFS=medtrans/debian:bookworm-minbase
debootstrap_route() {
    say "$1 -> base image $ROOTFS, made with debootstrap from Debian's packages (docker/scripts/base-rootfs.sh)"
    docker/scripts/base-rootfs.sh "$ROOTFS" >&2
    echo "$ROOTFS"
}
if [ "${BASE_IMAGE:-}" = debootstrap ]; then debootstrap_route "BASE_IMAGE=debootstrap"; exit 0; fi
if [ -n "${BASE_IMAGE:-}" ]; then
    docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || docker pull -q "$BASE_IMAGE" >&2 \
        || { echo "error: BASE_IMAGE=$BASE_IMAGE is neither here nor pullable" >&2; exit 2; }
    say "base image $BASE_IMAGE (BASE_IMAGE)"
    echo "$BASE_IMAGE"
    exit 0
fi
pinned=$(awk -v v="$VARIANT" '$1 == v { print $2 }' docker/base/images.pin)
[[ $pinned == *@sha256:* ]] || { echo "error: docker/base/images.pin has no line for VARIANT=$VARIANT" >&2; exit 2; }
digest=${pinned##*@sha256:}
local_tag=medtrans/from:$VARIANT-${digest:0:12}
if docker image inspect "$pinned" >/dev/null 2>&1; then
    say "base image $pinned (official, pinned in docker/base/images.pin; already here)"
elif docker image inspect "$local_tag" >/dev/null 2>&1; then
    say "base image $pinned (official, pinned in docker/base/images.pin; restored as $local_tag)"
    echo "$local_tag"
    exit 0
elif why=$(timeout "${PULL_TIMEOUT:-60}" docker pull -q "$pinned" 2>&1 >/dev/null); then
    say "a registry answers -> base image $pinned (official, pinned in docker/base/images.pin)"
elif grep -qiE 'manifest unknown|not found|does not exist' <<< "$why"; then
    # the registry answered but has no such digest: a wrong pin, not an offline host
    cat >&2 <<MSG
error: a registry answers but has no $pinned ($(head -n1 <<< "$why")).
  Fix its line in docker/base/images.pin (the comment there says how to read the digest), or
  build without it: make all BASE_IMAGE=debootstrap (or BASE_IMAGE=<any Debian/Ubuntu image>).
MSG
    exit 2
else
    debootstrap_route "no registry answers"
    exit 0
fi
docker tag "$pinned" "$local_tag" >&2
echo "$pinned"
