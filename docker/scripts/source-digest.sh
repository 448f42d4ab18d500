#!/usr/bin/env bash
# A digest of the code that goes into the images (the medtrans package and its pins). build.sh
# labels every stage image with it; `make all` rebuilds only images whose label differs, so
# images restored from an archive are used as they are, and a code change is never run stale.
set -euo pipefail
cd "$(dirname "$0")/../.."
find shared stages setup.py pyproject.toml -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64
