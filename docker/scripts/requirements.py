"""Print the exact pins of medtrans's core dependencies or of one extra, from pyproject.toml.

The image builds pass them as build arguments, so pyproject.toml stays the one place where a
stage's dependencies are pinned:  python docker/scripts/requirements.py core|<extra> [--version]
"""

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
SELF = re.compile(r"^medtrans\[(?P<extras>[^\]]+)\]$")


def requirements(project: dict, which: str) -> list[str]:
    """`core` -> project.dependencies; an extra -> its pins (self-references expanded), sorted."""
    if which == "core":
        return list(project["dependencies"])
    extras = project.get("optional-dependencies", {})
    if which not in extras:
        raise SystemExit(f"error: no extra {which!r} in {PYPROJECT} (have: {', '.join(extras)})")
    out: list[str] = []
    for req in extras[which]:
        m = SELF.match(req.replace(" ", ""))
        items = [r for extra in m["extras"].split(",") for r in requirements(project, extra)] if m else [req]
        for r in items:
            if r not in out:
                out.append(r)
    return out


def main(argv: list[str]) -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    if argv == ["--version"]:
        print(project["version"])
        return
    if len(argv) != 1:
        raise SystemExit(__doc__)
    print(" ".join(requirements(project, argv[0])))


if __name__ == "__main__":
    main(sys.argv[1:])
