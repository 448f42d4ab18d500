"""Listing the files of a data folder without losing any silently."""

import os
from pathlib import Path


def files_under(folder: Path, problems: list[tuple[str, str]]) -> list[Path]:
    """Every non-hidden file under `folder` (linked folders followed once), sorted; a sub-folder
    that cannot be listed goes to `problems` as (folder, reason) instead of being skipped."""

    def unreadable(err: OSError) -> None:
        problems.append((str(err.filename), f"unreadable folder ({err.strerror or err})"))

    found, seen = [], set()
    for root, dirs, names in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a linked folder already read (or a link cycle)
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / n for n in names if not n.startswith("."))
    return sorted(p for p in found if p.is_file() or p.is_symlink())
