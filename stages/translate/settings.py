"""The settings a translator trains with on one task: its study settings with the per-task
overrides applied (SPADE's `label_source_tasks`, `translate.no_flip`)."""

from medtrans.shared.config import StudyConfig
from medtrans.shared.config.base import Config


def task_settings(study: StudyConfig, task: str, model: str) -> Config:
    """`study.translate.<model>` as it applies to `task`."""
    settings = study.translate.settings(model)
    update: dict = {}
    per_task = getattr(settings, "label_source_tasks", None)
    if per_task and task in per_task:
        update["label_source"] = per_task[task]
    augment = getattr(settings, "augment", None)
    if task in study.translate.no_flip and augment is not None and augment.flip:
        update["augment"] = augment.model_copy(update={"flip": False})
    return settings.model_copy(update=update) if update else settings
