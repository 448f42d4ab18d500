#!/usr/bin/env bash
# Restore an archive made by archive.sh: check every checksum, load the images and check that
# their ids are the archived ones, and put the wheelhouse and weights back where make expects them.
#   docker/scripts/restore.sh DIR           (WHEELHOUSE=wheelhouse, WEIGHTS=weights)
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:?usage: restore.sh ARCHIVE_DIR}
WH=${WHEELHOUSE:-wheelhouse}
WEIGHTS=${WEIGHTS:-weights}
echo "restore: checking $DIR/SHA256SUMS"
( cd "$DIR" && sha256sum --quiet --strict -c SHA256SUMS )
docker load -i "$DIR/images.tar"
while IFS=$'\t' read -r image id; do
    got=$(docker image inspect -f '{{.Id}}' "$image")
    [ "$got" = "$id" ] || { echo "restore: $image has id $got, the archive says $id" >&2; exit 1; }
done < "$DIR/images.tsv"
echo "restore: $(wc -l < "$DIR/images.tsv") images loaded, ids as archived"
for pair in "wheelhouse:$WH" "weights:$WEIGHTS"; do
    src=$DIR/${pair%%:*} dst=${pair#*:}
    [ -d "$src" ] || continue
    if [ -e "$dst" ] && [ -n "$(ls -A "$dst")" ]; then
        if diff -rq "$src" "$dst" >/dev/null; then echo "restore: $dst already identical"; continue; fi
        mv "$dst" "$dst.before-restore-$(date -u +%Y%m%dT%H%M%SZ)"
    fi
    rm -rf "$dst"; cp -a "$src" "$dst"
    echo "restore: $dst restored"
done
