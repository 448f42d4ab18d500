#!/usr/bin/env bash
# Download every pinned wheel once with the host's pip, so image builds never reach a package
# index (offline builds; no private-CA trouble inside builds). The versions are the ones the
# local .venv was tested with (`pip freeze`), plus each stage's extra from pyproject.toml.
#   docker/scripts/wheelhouse.sh [WHEELHOUSE_DIR]      (TORCH_VARIANT=cpu|cuda, PYTHON=...)
set -euo pipefail
cd "$(dirname "$0")/../.."
WH=${1:-wheelhouse}
PY=${PYTHON:-.venv/bin/python}
TORCH_VARIANT=${TORCH_VARIANT:-cpu}
extras=$("$PY" shared/catalogue/stages.py extras)   # every stage image's extra
EXTRAS=${EXTRAS:-${extras//$'\n'/,}}

mkdir -p "$WH"
rm -f "$WH"/*.whl "$WH/SHA256SUMS"   # one version per package: stale wheels would win the resolution
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Constraints: exactly what .venv runs (medtrans itself excluded: its wheel is built per image build).
"$PY" -m pip freeze --exclude-editable | grep -viE '^(medtrans|-e )' > "$tmp/constraints.txt"
if [ "$TORCH_VARIANT" = cuda ]; then
    # PyPI's Linux torch wheel is the CUDA build; its CUDA runtime comes as pinned nvidia-* wheels.
    sed -i -E 's/^torch==([0-9.]+)\+cpu$/torch==\1/' "$tmp/constraints.txt"
    export PIP_FIND_LINKS=""   # a local CPU wheel folder would otherwise win (2.13.0+cpu > 2.13.0)
fi

echo "wheelhouse: pinned wheels for medtrans[$EXTRAS] (torch $TORCH_VARIANT) -> $WH/"
"$PY" -m pip wheel --quiet --wheel-dir "$WH" --constraint "$tmp/constraints.txt" ".[$EXTRAS]"
rm -f "$WH"/medtrans-*.whl
echo "$TORCH_VARIANT" > "$WH/TORCH_VARIANT"
( cd "$WH" && sha256sum -- *.whl > SHA256SUMS )
echo "wheelhouse: $(ls "$WH"/*.whl | wc -l) wheels, $(du -sh "$WH" | cut -f1)"
