"""Source label maps, checked before any training.

A translator that paints from the SOURCE test slices' label maps (SPADE with
`label_source: masks`) would, where a slice has no mask, be fed an all-background map and
generate pure background without any error (`data.load_split` fills missing masks with
zeros). So such a unit is refused when it is planned: from the study file when the task's
data source cannot give source masks (a spine task without `mri_masks`), and from
`preprocess/<task>/index.csv` when it exists (a slice whose `mask` column is empty); the
build checks the index again before training, for data sources only the index can tell.
"""

from medtrans.shared.config import StudyConfig
from medtrans.shared.dataset import SliceIndex
from medtrans.shared.layout import RunLayout
from medtrans.shared.stage import StageInputError
from medtrans.stages.translate.settings import task_settings

SHOWN_IDS = 5  # first slice ids named in the error


class MissingSourceMasks(StageInputError):
    """A unit that would translate source slices from blank label maps."""


def _fixes(study: StudyConfig, task: str, model: str) -> str:
    t = study.tasks[task]
    side = "mri_masks" if t.source.modality == "MR" else "ct_masks"
    given = f"give tasks.{task}.data.{side} (label masks named after the cases)"
    if t.data.kind == "folder":
        given = f"give a mask for every {t.source.name} slice in tasks.{task}.data.csv"
    fixes = [given]
    if t.source.modality == "MR":
        fixes.append(
            "or make them with TotalSegmentator's MR model (task total_mr) where it segments "
            f"{', '.join(t.structures)}, and give that folder as {side}"
        )
    if hasattr(study.translate.settings(model), "label_source"):
        fixes.append(f"or set translate.{model}.label_source_tasks: {{{task}: foreground}}")
    return "; ".join(fixes)


def undeclared_reason(study: StudyConfig, task: str) -> str | None:
    """Why the study file alone shows the task's source slices will have no masks (None:
    they will, or only the index can tell)."""
    t = study.tasks[task]
    data = t.data
    if data.kind != "spine":
        return None  # phantom and DBC give masks for both domains; a folder's CSV tells later
    if t.source.modality == "MR" and data.mri_masks is None:
        return f"tasks.{task}.data.mri_masks is not set (TotalSegmentator masks only the CT side)"
    if t.source.modality == "CT" and data.ct_masks is None and not data.totalsegmentator:
        return f"tasks.{task}.data gives neither ct_masks nor totalsegmentator: true"
    return None


def unmasked_test_ids(index: SliceIndex) -> tuple[list[str], int]:
    """(ids of the source test slices without a mask, number of source test slices)."""
    rows = index.select("source", "test")
    return [sid for sid, m in zip(rows.slice_id, rows["mask"], strict=True) if not m], len(rows)


def check_source_masks(study: StudyConfig, task: str, model: str, layout: RunLayout | None) -> None:
    """Refuse the unit when the translator needs source label maps that are missing."""
    from medtrans.stages.translate.registry import get_model

    if not get_model(model).needs_source_masks(task_settings(study, task, model)):
        return
    head = f"translate {task}/{model} paints the {study.tasks[task].source.name} test slices from their masks"
    index_file = layout.preprocess(task) / "index.csv" if layout is not None else None
    if index_file is not None and index_file.is_file():
        missing, n = unmasked_test_ids(SliceIndex.load(index_file.parent))
        if missing:
            first = ", ".join(missing[:SHOWN_IDS]) + (", ..." if len(missing) > SHOWN_IDS else "")
            raise MissingSourceMasks(
                f"{index_file}: {head}, but {len(missing)} of {n} have no mask (first: {first}), "
                f"so it would generate them from blank maps; {_fixes(study, task, model)}"
            )
        return
    reason = undeclared_reason(study, task)
    if reason:
        raise MissingSourceMasks(
            f"{head}, but {reason}: every one of them would be generated from a blank map; "
            f"{_fixes(study, task, model)}"
        )
