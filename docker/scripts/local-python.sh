#!/usr/bin/env bash
# The Python the local path (.venv, no Docker) is made with: PYTHON=... if given, else the first
# of python3.11, python3.12, python3 inside pyproject's requires-python. Outside it,
# an error with the alternatives. Prints the interpreter on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
spec=$(sed -nE 's/^requires-python = ">=3\.([0-9]+),<3\.([0-9]+)".*/\1 \2/p' pyproject.toml)
lo=${spec% *} hi=${spec#* }
[ -n "$spec" ] || { echo "error: pyproject.toml's requires-python is not of the form \">=3.X,<3.Y\"" >&2; exit 2; }
range="3.$lo to 3.$((hi - 1))"
seen=()
for py in ${PYTHON:-python3.11 python3.12 python3}; do
    command -v "$py" >/dev/null 2>&1 || continue
    minor=$("$py" -c 'import sys; print(sys.version_info[1] if sys.version_info[0] == 3 else -1)' 2>/dev/null || echo -1)
    if [ "$minor" -ge "$lo" ] && [ "$minor" -lt "$hi" ]; then echo "$py"; exit 0; fi
    if [ "$minor" = -1 ]; then seen+=("$py is no Python 3"); else seen+=("$py is 3.$minor"); fi
done
cat >&2 <<MSG
error: the local path (no Docker) needs Python $range; ${seen[*]:-no python3 found}${PYTHON:+ (PYTHON=$PYTHON)}.
  Alternatives:
  - the container path: start a Docker engine (with compose v2) and run \`make all\`; the host then
    needs only make, git, Docker and any python3 >= 3.9 (README: Set-up);
  - a supported Python next to the system one, then \`make all PYTHON=python3.12\`:
      uv python install 3.12   (uv: https://docs.astral.sh/uv/)
      Ubuntu: sudo add-apt-repository ppa:deadsnakes/ppa && sudo apt-get install python3.12-venv
      RHEL-like 9: sudo dnf install python3.12     any OS: pyenv install 3.12
MSG
exit 2
