"""Seconds per training iteration of a translator at a study's settings, measured on this
device with a few steps on synthetic batches (for `medtrans plan`; nothing is written).

The cost of a step depends on the shapes, not on the pixel values, so random images, label
maps and foreground masks at image_size and the schedule's batch size give the real cost.
A SPADE with its VGG loss whose weights file is absent is timed with a random VGG19."""

import time

import torch

from medtrans.shared.config import StudyConfig
from medtrans.shared.seeding import derive_seed
from medtrans.stages.translate.base import Progress
from medtrans.stages.translate.registry import get_model
from medtrans.stages.translate.settings import task_settings
from medtrans.stages.translate.spade_nets import VGGLoss


def synthetic_batch(batch: int, size: int, n_classes: int, device: torch.device, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)

    def image() -> torch.Tensor:
        return (torch.rand(batch, 1, size, size, generator=gen) * 2 - 1).to(device)

    def labels() -> torch.Tensor:
        return torch.randint(0, n_classes, (batch, size, size), generator=gen).to(device)

    return {
        "a": image(), "b": image(), "mask_a": labels(), "mask_b": labels(),
        "fg_a": (labels() > 0).float(), "fg_b": (labels() > 0).float(),
    }  # fmt: skip


def _model(study: StudyConfig, task: str, name: str, device: torch.device):
    settings = task_settings(study, task, name)
    vgg_random = getattr(settings, "vgg_loss", False)
    if vgg_random:  # built without it, then given a random VGG19 (its file may be absent here)
        settings = settings.model_copy(update={"vgg_loss": False})
    n_classes = len(study.tasks[task].structures) + 1
    seed = derive_seed(study.seed, "warmup", task, name)
    model = get_model(name)(
        settings, n_classes=n_classes, image_size=study.preprocess.image_size, device=device, seed=seed
    )
    if vgg_random:
        model.config = model.config.model_copy(update={"vgg_loss": True})
        model.vgg = VGGLoss(None).to(device)
    return model, settings.schedule, n_classes, seed


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def translator_step_seconds(
    study: StudyConfig, task: str, name: str, device: torch.device, steps: int = 2
) -> float:
    """Mean wall seconds of `steps` training iterations after one untimed step."""
    model, schedule, n_classes, seed = _model(study, task, name, device)
    model.set_train(True)
    size = study.preprocess.image_size
    batch = synthetic_batch(schedule.batch_size, size, n_classes, device, seed)
    total = []
    for i in range(steps + 1):
        progress = Progress(i, 0, steps + 1, max(schedule.n_epochs, 1), schedule.n_epochs_decay)
        _sync(device)
        t0 = time.perf_counter()
        model.train_step(batch, progress)
        _sync(device)
        total.append(time.perf_counter() - t0)
    return sum(total[1:]) / steps
