#!/usr/bin/env bash
# Run a study through compose, one container per stage: one `docker compose run --no-deps SERVICE`
# per stage, in the local runner's order, stopping at the first failure (so the exit code is
# that of the first stage that failed, 0 only when all succeeded). JOBS=N (N > 1): the services
# that read only earlier batches (the translators and calibrate; then segment and metrics) N at
# a time. Each container's `docker inspect` is kept (user, network, mounts: how it ran) and the
# container removed.
# Afterwards the run volume is copied to runs/<study name>/ (EXPORT=DIR to choose, EXPORT= to skip).
#   docker/scripts/compose-run.sh STUDY_FILE [--gpu]
# env: MEDTRANS_TAG, MEDTRANS_DATA (./data), MEDTRANS_WEIGHTS_DIR (./weights), RECORDS, EXPORT, JOBS
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=${HOST_PYTHON:-python3}   # any python3 >= 3.9: only the standard library is used
study=${1:?usage: compose-run.sh STUDY_FILE [--gpu]}
profile=cpu suffix=""
[ "${2:-}" = --gpu ] && { profile=gpu; suffix=-gpu; }
[ -f "$study" ] || { echo "compose-run: no study file $study" >&2; exit 2; }
version=$("$PY" docker/scripts/requirements.py --version)
export MEDTRANS_TAG=${MEDTRANS_TAG:-$version-$([ $profile = gpu ] && echo cuda || echo cpu)}
export MEDTRANS_STUDY=$(realpath "$study")
# the study's top-level `name:` (a plain word: the config refuses others), without PyYAML
export MEDTRANS_STUDY_NAME=$(sed -nE 's/^name:[[:space:]]*["'"'"']?([A-Za-z0-9_.-]+)["'"'"']?[[:space:]]*(#.*)?$/\1/p' "$study" | head -n1)
[ -n "$MEDTRANS_STUDY_NAME" ] || { echo "compose-run: $study has no top-level \`name: <word>\`" >&2; exit 2; }
export MEDTRANS_DATA=$(realpath -m "${MEDTRANS_DATA:-data}")
export MEDTRANS_WEIGHTS_DIR=$(realpath -m "${MEDTRANS_WEIGHTS_DIR:-weights}")
mkdir -p "$MEDTRANS_DATA" "$MEDTRANS_WEIGHTS_DIR"
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-medtrans}
RECORDS=${RECORDS:-build/docker/runs/$MEDTRANS_STUDY_NAME}
mkdir -p "$RECORDS"
: > "$RECORDS/stages.tsv"
compose() { docker/scripts/compose.sh --file "$ROOT/compose.yaml" --profile "$profile" "$@"; }

# the services in run order: shared/catalogue/stages.py, or STAGES="preprocess cyclegan ..."
all_stages=$("$PY" shared/catalogue/stages.py images)
read -r -a stages <<< "${STAGES:-${all_stages//$'\n'/ }}"
echo "compose-run: study $MEDTRANS_STUDY_NAME ($study), images medtrans/*:$MEDTRANS_TAG, profile $profile, volume medtrans-run-$MEDTRANS_STUDY_NAME"
# one stage's container: compose run, its inspect record, its stages.tsv row; returns its exit code
run_service() {
    local stage=$1 image id service name t0 rc=0
    image=medtrans/$stage:$MEDTRANS_TAG
    id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null) \
        || { echo "compose-run: image $image missing; run \`make images\`" >&2; return 2; }
    export "MEDTRANS_IMAGE_ID_${stage^^}=$id"
    service=$stage$suffix
    name=medtrans-$MEDTRANS_STUDY_NAME-$service
    docker rm -f "$name" >/dev/null 2>&1 || true
    echo "compose-run: [$stage] $image ($id)"
    t0=$SECONDS
    if [ -n "${2:-}" ]; then
        compose run --no-deps --name "$name" "$service" > "$2" 2>&1 || rc=$?
    else
        compose run --no-deps --name "$name" "$service" || rc=$?
    fi
    # the record keeps how the container ran, never the secrets it was given
    docker inspect "$name" 2>/dev/null \
        | sed -E 's/"(MEDTRANS_(SIGNING|PSEUDONYM)_KEY)=[^"]+"/"\1=<redacted>"/g' \
        > "$RECORDS/$service.inspect.json" || true
    docker rm "$name" >/dev/null 2>&1 || true
    printf '%s\t%s\t%s\t%s\n' "$service" "$id" "$rc" "$((SECONDS - t0))" >> "$RECORDS/stages.tsv"
    return "$rc"
}

JOBS=${JOBS:-1}
if [ "$JOBS" -le 1 ]; then
    for stage in "${stages[@]}"; do
        rc=0
        run_service "$stage" || rc=$?
        if [ "$rc" != 0 ]; then
            echo "compose-run: stage $stage failed (exit $rc); later stages not run" >&2
            exit "$rc"
        fi
    done
else
    # JOBS > 1: the catalogue's images in batches (an image after the last one it reads), each
    # batch's containers JOBS at a time, each one's output in $RECORDS/<service>.log; a failure
    # stops nothing in its batch, then every failure is reported and later batches are not run
    mapfile -t batches < <("$PY" - "${stages[@]}" <<'PY'
import json, subprocess, sys
cat = json.loads(subprocess.run([sys.executable, "shared/catalogue/stages.py", "json"], capture_output=True, check=True, text=True).stdout)
chosen, level = sys.argv[1:], {}
for i in cat["images"]:
    level[i["name"]] = 1 + max((level[a] for a in i["after"] if a in level), default=-1)
for k in sorted({level[n] for n in chosen}):
    print(" ".join(n for n in chosen if level[n] == k))
PY
)
    for batch in "${batches[@]}"; do
        read -r -a members <<< "$batch"
        declare -A pids=()
        for stage in "${members[@]}"; do
            while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
            run_service "$stage" "$RECORDS/$stage$suffix.log" &
            pids[$stage]=$!
            echo "compose-run: [$stage] started (log $RECORDS/$stage$suffix.log)"
        done
        first=0 failed=""
        for stage in "${members[@]}"; do
            rc=0
            wait "${pids[$stage]}" || rc=$?
            echo "compose-run: [$stage] $([ "$rc" = 0 ] && echo done || echo "FAILED (exit $rc)")"
            if [ "$rc" != 0 ]; then
                failed="$failed $stage"
                [ "$first" = 0 ] && first=$rc
            fi
        done
        unset pids
        if [ -n "$failed" ]; then
            for stage in $failed; do
                echo "compose-run: stage $stage failed (log $RECORDS/$stage$suffix.log)" >&2
            done
            echo "compose-run: later stages not run" >&2
            exit "$first"
        fi
    done
fi

EXPORT=${EXPORT-runs/$MEDTRANS_STUDY_NAME}
if [ -n "$EXPORT" ]; then
    # the run volume -> a host folder, through a stage image's tar (no network, read-only)
    tmp="$EXPORT.export.$$"
    mkdir -p "$tmp"
    docker run --rm --pull never --network none --user 10001:10001 --entrypoint tar \
        -v "medtrans-run-$MEDTRANS_STUDY_NAME:/medtrans/run:ro" "medtrans/${stages[0]}:$MEDTRANS_TAG" \
        -C /medtrans/run -cf - . | tar -C "$tmp" --no-same-owner -xf -
    if [ -e "$EXPORT" ]; then
        old="$EXPORT.previous-$(date -u +%Y%m%dT%H%M%SZ)"
        mv "$EXPORT" "$old"
        echo "compose-run: moved the earlier $EXPORT to $old"
    fi
    mv "$tmp" "$EXPORT"
    echo "compose-run: run volume medtrans-run-$MEDTRANS_STUDY_NAME copied to $EXPORT/"
fi
