#!/usr/bin/env bash
# Pretrained weights for offline use: fetched once on a machine with internet, checked against
# committed sha256 locks, then mounted read-only into the containers (/weights).
#   docker/scripts/weights.sh fetch  [DIR]   # download (needs internet) + verify (+ lock)
#   docker/scripts/weights.sh verify [DIR]   # offline check
# - FID Inception and SPADE's VGG19 (vgg19-dcbb9e9d.pth): medtrans.stages.metrics.weights (their lock:
#   stages/metrics/weights.lock.json)
# - TotalSegmentator: its own download command into TOTALSEG_HOME_DIR=DIR/totalsegmentator with
#   usage statistics off; every file under nnunet/results is locked in docker/totalsegmentator.lock
#   (written by the first fetch; commit it). TOTALSEG_TASKS (default: total) picks the tasks.
# Python: .venv (BIN=.venv/bin) where there is one, else the stage images (medtrans/metrics and
# medtrans/preprocess:MEDTRANS_TAG, built by `make images`), so the container path needs no
# Python on the host beyond python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${BIN:-.venv/bin}
cmd=${1:?usage: weights.sh fetch|verify [DIR]}
DIR=$(realpath -m "${2:-weights}")
TS=$DIR/totalsegmentator
LOCK=$ROOT/docker/totalsegmentator.lock
if [ -x "$BIN/python" ]; then
    W=$DIR   # the weights folder as the Python below sees it
    py() { "$BIN/python" "$@"; }
    ts_download() { TOTALSEG_HOME_DIR=$TS "$BIN/totalseg_download_weights" "$@"; }
else
    W=/weights
    TAG=${MEDTRANS_TAG:?weights: no .venv here; set MEDTRANS_TAG (e.g. 0.1.0-cpu) to use the stage images}
    in_image() {  # image network command...: the weights folder mounted at /weights, as this user
        local image=medtrans/$1:$TAG net=$2; shift 2
        docker image inspect "$image" >/dev/null 2>&1 || { echo "weights: no .venv and no image $image; run \`make images\`" >&2; return 2; }
        docker run --rm --pull never --network "$net" --user "$(id -u):$(id -g)" -e HOME=/tmp \
            -e TOTALSEG_HOME_DIR=/weights/totalsegmentator -v "$DIR:/weights" --entrypoint "$1" "$image" "${@:2}"
    }
    py() { in_image metrics "$([ "$cmd" = fetch ] && echo host || echo none)" /opt/venv/bin/python "$@"; }
    ts_download() { in_image preprocess host /opt/venv/bin/totalseg_download_weights "$@"; }
fi

ts_lock_lines() { ( cd "$TS" && find nnunet/results -type f -print0 | sort -z | xargs -0 -r sha256sum ); }

verify() {
    local rc=0
    py -m medtrans.stages.metrics.weights verify --dir "$W" || rc=1
    if [ -d "$TS/nnunet/results" ]; then
        if [ -f "$LOCK" ]; then
            ( cd "$TS" && sha256sum --quiet --strict -c "$LOCK" ) && echo "weights: TotalSegmentator files match $LOCK" || rc=1
        else
            echo "weights: no $LOCK to check TotalSegmentator against; run \`make weights\` once with internet" >&2; rc=1
        fi
    else
        echo "weights: no TotalSegmentator weights in $TS (needed only for CT without masks; \`make weights\`)"
    fi
    return $rc
}

case $cmd in
fetch)
    mkdir -p "$DIR" "$TS"
    py -m medtrans.stages.metrics.weights fetch --dir "$W"
    # usage statistics off before TotalSegmentator first runs (it creates config.json otherwise)
    ${HOST_PYTHON:-python3} - "$TS/config.json" <<'PY'
import json, sys
from pathlib import Path
path = Path(sys.argv[1])
config = json.loads(path.read_text()) if path.is_file() else {"totalseg_id": "medtrans-offline", "prediction_counter": 0}
config["send_usage_stats"] = False
config["statistics_disclaimer_shown"] = True
path.write_text(json.dumps(config, indent=4) + "\n")
PY
    for task in ${TOTALSEG_TASKS:-total}; do
        ts_download -t "$task"
    done
    if [ ! -f "$LOCK" ]; then
        ts_lock_lines > "$LOCK"
        echo "weights: recorded $(wc -l < "$LOCK") TotalSegmentator sha256 digests in $LOCK; commit it"
    fi
    verify
    ;;
verify) verify ;;
*) echo "usage: weights.sh fetch|verify [DIR]" >&2; exit 2 ;;
esac
