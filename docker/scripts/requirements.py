"""Print the exact pins of medtrans's core dependencies or of one extra, from pyproject.toml.

The image builds pass them as build arguments, so pyproject.toml stays the one place where a
stage's dependencies are pinned:  python docker/scripts/requirements.py core|<extra> [--version]
Runs with any python3 >= 3.9 (the container path needs nothing else on the host): tomllib where
there is one (3.11+), else a reader of the plain subset of TOML the [project] table uses.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
SELF = re.compile(r"^medtrans\[(?P<extras>[^\]]+)\]$")
TABLE = re.compile(r"^\[(?P<name>[^\]]+)\]\s*$")
KEY = re.compile(r"^(?P<key>[A-Za-z0-9_.-]+)\s*=\s*(?P<value>.*)$")


def _value(text: str) -> object:
    """A TOML string, or a list of strings (one line or several), as Python: comments dropped."""
    return ast.literal_eval(re.sub(r"#[^\"'\n]*$", "", text, flags=re.M).strip())


def project_table(text: str) -> dict:
    """pyproject's [project] table with [project.optional-dependencies]: what this script reads.

    The subset: `key = "string"` and `key = [ "string", ... ]` over one or more lines. Anything
    else inside those two tables is an error naming the line (use Python 3.11+ then)."""
    try:
        import tomllib
    except ImportError:  # Python 3.9/3.10: the plain subset below
        pass
    else:
        return tomllib.loads(text)["project"]
    project: dict = {}
    table: dict | None = None
    lines = iter(text.splitlines())
    for line in lines:
        m = TABLE.match(line.strip())
        if m:
            table = project if m["name"] == "project" else None
            if m["name"] == "project.optional-dependencies":
                table = project.setdefault("optional-dependencies", {})
            continue
        m = KEY.match(line.strip())
        if table is None or not m or m["value"].startswith("{"):
            continue
        value = m["value"]
        while value.count("[") > value.count("]"):
            value += "\n" + next(lines)
        try:
            table[m["key"]] = _value(value)
        except (ValueError, SyntaxError) as err:
            why = f"cannot read `{line.strip()}` without tomllib (Python 3.11+): {err}"
            raise SystemExit(f"error: {PYPROJECT}: {why}") from err
    return project


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
    project = project_table(PYPROJECT.read_text())
    if argv == ["--version"]:
        print(project["version"])
        return
    if argv == ["--requires-python"]:
        print(project["requires-python"])
        return
    if len(argv) != 1:
        raise SystemExit(__doc__)
    print(" ".join(requirements(project, argv[0])))


if __name__ == "__main__":
    main(sys.argv[1:])
