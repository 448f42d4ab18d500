"""Audit of a whole run folder (`medtrans verify`): the chain of manifests, file by file.

Every manifest must parse (one that does not is reported and the rest still checked), hold its
signature when a key is configured, list outputs that exist with their sha256 and no file it
does not list, and refer to upstream manifests exactly as they are now. Nothing here raises on
a bad run: every finding is a line naming the file. Only a run that cannot be read at all
raises `RunUnreadable`.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from medtrans.shared import signing
from medtrans.shared.hashing import sha256_checked
from medtrans.shared.layout import MANIFEST
from medtrans.shared.manifest import Manifest, output_problems


class RunUnreadable(RuntimeError):
    """The run folder itself cannot be read (missing, not a folder, no manifest at all)."""


@dataclass
class Audit:
    manifests: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _walk(root: Path, audit: Audit) -> list[Path]:
    """Every file under the run, dot-folders (partials, caches, moved-aside outputs) excluded;
    a folder that cannot be listed is a problem, never skipped silently."""

    def unreadable(err: OSError) -> None:
        audit.problems.append(f"{err.filename}: cannot be read ({err.strerror})")

    files = []
    for folder, dirs, names in os.walk(root, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [Path(folder) / n for n in sorted(names) if not n.startswith(".")]
    return files


def _escapes(rel: str) -> bool:
    p = PurePosixPath(rel)
    return p.is_absolute() or ".." in p.parts


def _parse(path: Path, key: bytes | None, audit: Audit) -> Manifest | None:
    """The manifest at `path`, or None after reporting why it cannot be used."""
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        audit.problems.append(f"{path}: unreadable manifest ({err.__class__.__name__}: {err})")
        return None
    if not isinstance(content, dict):
        audit.problems.append(f"{path}: unreadable manifest (not a JSON object)")
        return None
    why = signing.check(content, key)
    if why:
        audit.problems.append(f"{path}: {why}")
    elif key is None and signing.FIELD in content:
        audit.notes.append(f"{path}: signed, but no key is configured to check it")
    try:
        return Manifest.model_validate(content)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        audit.problems.append(f"{path}: invalid manifest: {where}: {first['msg']}")
        return None


def _check_unit(root: Path, folder: Path, manifest: Manifest, audit: Audit) -> None:
    bad_paths = [o.path for o in manifest.outputs if _escapes(o.path)]
    for rel in bad_paths:
        audit.problems.append(f"{folder / MANIFEST}: output path {rel!r} leaves the unit folder")
    for problem in output_problems(folder, manifest.model_copy(update={
        "outputs": [o for o in manifest.outputs if o.path not in bad_paths]
    })):  # fmt: skip
        audit.problems.append(problem)
    for ref in manifest.inputs:
        upstream = root / ref.path
        if _escapes(ref.path):
            audit.problems.append(f"{folder / MANIFEST}: input path {ref.path!r} leaves the run folder")
        elif not upstream.is_file():
            audit.problems.append(f"{folder / MANIFEST}: input {ref.path} is missing")
        elif sha256_checked(upstream) != ref.sha256:
            audit.problems.append(
                f"{folder / MANIFEST}: input {ref.path} is not the manifest this unit was built "
                "from (upstream rebuilt or edited since; rerun this stage)"
            )


def audit_run(root: Path, key: bytes | None) -> Audit:
    """Check every manifest of the run at `root` and every file in it."""
    root = Path(root)
    if not root.is_dir():
        raise RunUnreadable(f"{root}: no such run folder")
    audit = Audit()
    files = _walk(root, audit)
    units = sorted({f.parent for f in files if f.name == MANIFEST})
    if not units:
        raise RunUnreadable(f"{root}: no {MANIFEST} under it (not a run folder, or nothing ran yet)")
    audit.manifests = len(units)
    listed: set[Path] = set()
    for folder in units:
        listed.add(folder / MANIFEST)
        manifest = _parse(folder / MANIFEST, key, audit)
        if manifest is None:  # its files cannot be told apart from strays: not listed either
            listed.update(f for f in files if f.is_relative_to(folder))
            continue
        listed.update(folder / o.path for o in manifest.outputs)
        _check_unit(root, folder, manifest, audit)
    for f in files:
        if f not in listed:
            owner = next((u for u in reversed(units) if f.is_relative_to(u)), None)
            what = "not listed in its folder's manifest" if owner else "not part of any unit's output"
            audit.problems.append(f"{f}: {what}")
    return audit
