"""Editors and static tools resolve medtrans's imports to the checkout's files.

`make setup` installs medtrans in setuptools' strict editable mode: a tree of links to the
checkout under build/__editable__.*, put on sys.path by a .pth file, which jedi, pyright and mypy
read. (The default editable mode maps `medtrans.*` onto shared/ and stages/ through an import hook
that runs only in a live interpreter, so static tools find nothing.) Here jedi, the engine of
several editors, follows imports of the checkout and must land in the checkout's own files.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import medtrans

ROOT = Path(__file__).resolve().parent.parent

# (file of the checkout, text of an import line in it, name to follow, where its definition is)
CASES = [
    ("stages/runner.py", "from medtrans.shared.stage import", "execute", "shared/stage.py"),
    ("stages/runner.py", "from medtrans.shared.layout import", "RunLayout", "shared/layout.py"),
    ("stages/cli.py", "from medtrans.stages import runner", "runner", "stages/runner.py"),
    (
        "shared/config/translate.py",
        "from medtrans.shared.catalogue.stages import",
        "translator_names",
        "shared/catalogue/stages.py",
    ),
    (
        "stages/translate/cyclegan.py",
        "from medtrans.stages.translate.registry import",
        "register",
        "stages/translate/registry.py",
    ),
]


def _strict_install_here() -> bool:
    """Whether this interpreter's medtrans comes from a strict editable link tree."""
    path = Path(medtrans.__file__)
    return any(part.startswith("__editable__.") for part in path.parts) and path.is_symlink()


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> Path:
    """The interpreter jedi should resolve with: this one when `make setup` made it (strict),
    otherwise a fresh venv with a strict editable install of the checkout (no index needed)."""
    if _strict_install_here():
        return Path(sys.executable)
    tmp = tmp_path_factory.mktemp("strict")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True)
    build = (
        "import sys, setuptools.build_meta as b; "
        "print(b.build_editable(sys.argv[1], {'editable-mode': 'strict'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", build, str(tmp)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    wheel = tmp / out.stdout.strip().splitlines()[-1]
    python = tmp / "venv" / "bin" / "python"
    install = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "-q",
        "--no-deps",
        "--no-index",
    ]
    run = subprocess.run([*install, str(wheel)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return python


# jedi runs in a child process: its compiled-subprocess reader threads, left in this process,
# hold the locks of their pipes' buffers, and a later test's fork (FRD's worker pool) that
# inherits one held lock hangs when the child closes that pipe.
GOTO = """
import json, sys
from pathlib import Path
import jedi
root, environment, cases = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
project = jedi.Project(root, environment_path=environment)
out = []
for source, line_start, name, _target in cases:
    path = root / source
    text = path.read_text()
    lines = text.splitlines()
    # the name inside the import statement (which may continue on the next lines)
    first = next(i for i, line in enumerate(lines) if line.startswith(line_start))
    row, col = next(
        (r, lines[r].find(name)) for r in range(first, len(lines)) if name in lines[r].split("#")[0]
    )
    script = jedi.Script(text, path=path, project=project, environment=project.get_environment())
    found = script.goto(row + 1, col, follow_imports=True)
    out.append(
        [str(found[0].module_path) if found[0].module_path else None, found[0].type, found[0].line]
        if found else None
    )
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def resolved(environment) -> dict[tuple[str, str], list | None]:
    """(source, name) -> [module path, type, line] of jedi's goto, or None where it found nothing."""
    run = subprocess.run(
        [sys.executable, "-c", GOTO, str(ROOT), str(environment), json.dumps(CASES)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    return {(c[0], c[2]): r for c, r in zip(CASES, results, strict=True)}


@pytest.mark.parametrize(("source", "line_start", "name", "target"), CASES)
def test_goto_on_an_import_lands_in_the_checkout(resolved, source, line_start, name, target):
    found = resolved[(source, name)]
    assert found, f"jedi cannot follow {name!r} in {source} (is medtrans a strict editable install?)"
    module_path, kind, line = found
    assert module_path is not None
    assert Path(module_path).resolve() == (ROOT / target).resolve()
    if kind != "module":  # a definition: jedi's line holds it
        assert name in (ROOT / target).read_text().splitlines()[line - 1]


def _fake_tool(folder: Path, name: str, log: Path) -> None:
    (folder / name).write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "{log}"\n')
    (folder / name).chmod(0o755)


def test_make_setup_installs_strict_and_links_again_when_files_change(tmp_path):
    """The Makefile's stamps: a changed pyproject.toml reinstalls everything and then medtrans
    strict; a changed list of files under shared/ and stages/ only links the tree again."""
    venv, log = tmp_path / "venv", tmp_path / "calls.log"
    (venv / "bin").mkdir(parents=True)
    for tool in ("pip", "python"):
        _fake_tool(venv / "bin", tool, log)
    (venv / ".setup-stamp").touch()
    os.utime(venv / ".setup-stamp", (0, 0))  # older than pyproject.toml: a full install is due

    def setup(*extra: str) -> list[str]:
        log.write_text("")
        cmd = ["make", "--no-print-directory", "setup", f"VENV={venv}", "PYTHON=python3", *extra]
        run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stdout + run.stderr
        return [line for line in log.read_text().splitlines() if line.startswith("pip install")]

    full = setup()
    assert "pip install -q -e .[all,dev]" in full  # the pinned dependencies, then medtrans, strict
    assert (
        full[-1]
        == "pip install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=strict"
    )
    assert setup() == []  # nothing changed
    relink = setup("MODULE_LIST=shared/new_module.py")  # a file added (or removed)
    assert relink == [full[-1]]
    assert setup("MODULE_LIST=shared/new_module.py") == []
