#!/usr/bin/env bash
# A Debian bookworm base image made without any registry: debootstrap (minbase) from the Debian
# mirror apt is configured with, then `docker import`. Python 3.11 is added by docker/base/Dockerfile.
#   docker/scripts/base-rootfs.sh [IMAGE]        (MIRROR=..., SUITE=bookworm)
set -euo pipefail
IMAGE=${1:-medtrans/debian:bookworm-minbase}
SUITE=${SUITE:-bookworm}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base-rootfs: $IMAGE exists ($(docker image inspect -f '{{.Id}}' "$IMAGE"))"
    exit 0
fi
if [ -z "${MIRROR:-}" ]; then
    # the first Debian mirror apt uses here (deb822 or one-line sources), else deb.debian.org
    MIRROR=$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
             | grep -v security | head -n1 | tr -d ' ' || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
cannot() {
    cat >&2 <<MSG
error: base-rootfs: $1.
  The base image is made with debootstrap where no registry answers; debootstrap needs root.
  Either install it and run this once as root (Debian/Ubuntu: sudo apt-get install debootstrap;
  RHEL-like: sudo dnf install epel-release && sudo dnf install debootstrap), e.g. sudo make images,
  or let a registry answer (the official images of docker/base/images.pin), or give any
  Debian/Ubuntu image: make images BASE_IMAGE=<image>, or load an archive: make restore ARCHIVE=<dir>
MSG
    exit 2
}
if ! command -v debootstrap >/dev/null; then
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || cannot "debootstrap is missing and cannot be installed here (needs root and apt-get)"
    echo "base-rootfs: debootstrap missing; installing it (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null; } \
        || cannot "apt-get install debootstrap failed"
fi
[ "$(id -u)" = 0 ] || cannot "debootstrap is here but needs root (this is uid $(id -u))"
root=$(mktemp -d "${TMPDIR:-/tmp}/medtrans-rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
echo "base-rootfs: debootstrap --variant=minbase $SUITE from $MIRROR"
debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" > "$root.log" 2>&1 || { tail -20 "$root.log"; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# lean: no downloaded .debs or package lists in the image (the Dockerfile runs apt-get update)
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/*
tar --numeric-owner -C "$root" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $SUITE $MIRROR" - "$IMAGE" >/dev/null
echo "base-rootfs: $IMAGE $(docker image inspect -f '{{.Id}}' "$IMAGE")"
