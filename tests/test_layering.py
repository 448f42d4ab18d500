"""DESIGN.md's import rules, checked on the source: a stage never imports another stage (they meet
only in the run folder), `shared/` imports no stage. Only the command layer on top (stages/*.py:
cli, runner, parallel, plan, calibration) may import every stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STAGES = sorted(p.name for p in (ROOT / "stages").iterdir() if (p / "__init__.py").is_file())


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, `from medtrans.stages import x` as medtrans.stages.x."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "medtrans.stages":
                out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def _stage_imports(folder: Path) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted(folder.rglob("*.py"))
        for line, module in _imports(path)
        if module.startswith("medtrans.stages")
    ]


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_no_other_stage(stage):
    own = f"medtrans.stages.{stage}"
    bad = [
        line for line in _stage_imports(ROOT / "stages" / stage)
        if not (line.split(": ")[1] == own or line.split(": ")[1].startswith(own + "."))
    ]  # fmt: skip
    what = f"stages/{stage} imports another stage or the command layer (DESIGN.md):\n"
    assert not bad, what + "\n".join(bad)


def test_every_stage_is_checked_calibrate_included():
    assert {"preprocess", "translate", "segment", "metrics", "calibrate", "report"} <= set(STAGES)


def test_shared_imports_no_stage():
    bad = _stage_imports(ROOT / "shared")
    assert not bad, "shared/ imports a stage (DESIGN.md):\n" + "\n".join(bad)
