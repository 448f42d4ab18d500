"""Study-file check of the data paths: every folder and file a task's data source names exists.

Separate from parsing (`load_study`), because a study is also read where its raw data is not
mounted (a copied run being reported or verified); the commands that run or report a study's
state (`status`, `run`, `preprocess`) call it, so a wrong path is one clear line at once.
"""

from pathlib import Path

from medtrans.shared.config.data import DBCSource, FolderSource, SpineSource
from medtrans.shared.config.study import StudyConfig, StudyError


def _needed(data) -> list[tuple[str, Path, str]]:
    """(field, path, 'folder' | 'file') that a data source cannot do without."""
    if isinstance(data, FolderSource):
        csv = data.csv if Path(data.csv).is_absolute() else Path(data.root) / data.csv
        return [("root", Path(data.root), "folder"), ("csv", csv, "file")]
    if isinstance(data, DBCSource):
        return [("root", Path(data.root), "folder"), ("masks", Path(data.masks), "folder")]
    if isinstance(data, SpineSource):
        found = [("mri", Path(data.mri), "folder"), ("ct", Path(data.ct), "folder")]
        for name in ("mri_masks", "ct_masks"):
            if getattr(data, name) is not None:
                found.append((name, Path(getattr(data, name)), "folder"))
        return found
    return []  # the phantom ships with the code


def missing_data_paths(study: StudyConfig) -> list[str]:
    """One line per data path of the study that does not exist (or is the wrong kind)."""
    lines = []
    for name, task in study.tasks.items():
        for field, path, kind in _needed(task.data):
            ok = path.is_dir() if kind == "folder" else path.is_file()
            if not ok:
                what = "exists but is not a folder" if kind == "folder" and path.exists() else "not found"
                if kind == "file" and path.is_dir():
                    what = "is a folder, not a file"
                lines.append(f"tasks.{name}.data.{field}: {kind} {path} {what}")
    return lines


def check_data_paths(study: StudyConfig, source: str) -> None:
    """Raise `StudyError` naming the study file and every data path that is missing."""
    lines = missing_data_paths(study)
    if lines:
        raise StudyError(
            f"{source}: {'; '.join(lines)} (paths are relative to the working directory; "
            "fix the study's data paths or mount the data)"
        )
