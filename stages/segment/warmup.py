"""Seconds per training iteration of the target-domain UNet at a study's settings, measured
on this device with a few optimizer steps on a synthetic batch (for `medtrans plan`)."""

import time

import torch

from medtrans.shared.config import StudyConfig
from medtrans.shared.seeding import derive_seed
from medtrans.stages.segment.model import build_loss, build_optimizer, build_unet


def unet_step_seconds(study: StudyConfig, task: str, device: torch.device, steps: int = 2) -> float:
    """Mean wall seconds of `steps` UNet iterations (forward, Dice + CE, backward, Adam) after
    one untimed iteration, at the study's image size, widths and batch size."""
    cfg = study.segment
    k = len(study.tasks[task].structures)
    gen = torch.Generator().manual_seed(derive_seed(study.seed, "warmup", task, "unet"))
    size = study.preprocess.image_size
    x = torch.rand(cfg.batch_size, 1, size, size, generator=gen).to(device)
    y = torch.randint(0, k + 1, (cfg.batch_size, 1, size, size), generator=gen).to(device)
    model = build_unet(cfg, k).to(device).train()
    loss_fn, opt = build_loss(), build_optimizer(cfg, model)
    times = []
    for _ in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return sum(times[1:]) / steps
