"""One training step of each translator (the catalogue's) and of the segment UNet, as the
stages run it and with each optimisation, built for `make bench-gpu` (`bench/gpu.py`).

A variant is a set of switches on the same step: the batch copied from the host and every loss
read after every step (today's path) or the split resident on the device and the losses read
every `READ_EVERY` steps (the loop's CUDA path), fused Adam, bf16 autocast, channels_last,
torch.compile. Every variant but today's is CUDA only (on a CPU the stages do nothing new).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from medtrans.shared.catalogue.stages import translator_names
from medtrans.shared.config import load_study
from medtrans.shared.device import fuse_optimizers, host_floats

ROOT = Path(__file__).resolve().parents[2]
READ_EVERY = 10  # the loop's default log_every: losses read once per this many steps
UNET = "unet"


@dataclass(frozen=True)
class Variant:
    name: str
    resident: bool = False  # batch on the device already, losses read every READ_EVERY steps
    fused: bool = False
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False

    @property
    def cuda_only(self) -> bool:
        return self != TODAY


TODAY = Variant("eager fp32 (today)")
VARIANTS: tuple[Variant, ...] = (
    TODAY,
    Variant("no sync + resident + fused Adam", resident=True, fused=True),
    Variant("+ bf16 autocast", resident=True, fused=True, bf16=True),
    Variant("+ bf16 + channels_last", resident=True, fused=True, bf16=True, channels_last=True),
    Variant("+ torch.compile (fp32)", resident=True, fused=True, compile=True),
)


@dataclass(frozen=True)
class Sizes:
    """Where the settings come from: the paper study on CUDA, the smoke study's tiny ones on a CPU."""

    study: Path
    image_size: int
    task: str = "breast"

    @classmethod
    def for_device(cls, device: torch.device, tiny: bool) -> Sizes:
        if device.type == "cuda" and not tiny:
            return cls(ROOT / "studies" / "paper.yaml", 256)
        return cls(ROOT / "studies" / "smoke.yaml", 32)


def names() -> tuple[str, ...]:
    return (*translator_names(), UNET)


def _translator_settings(sizes: Sizes, name: str):
    from medtrans.stages.translate.settings import task_settings

    settings = task_settings(load_study(sizes.study), sizes.task, name)
    if name == "spade" and getattr(settings, "vgg_loss", False):
        from medtrans.stages.translate.spade import vgg_weights_present

        try:
            vgg_weights_present(settings)
        except Exception:  # noqa: BLE001 - no weights here: time the step without the VGG term
            settings = settings.model_copy(update={"vgg_loss": False})
    return settings


def batch_size(sizes: Sizes, name: str) -> int:
    if name == UNET:
        return load_study(sizes.study).segment.batch_size
    return _translator_settings(sizes, name).schedule.batch_size


def _host_batch(n: int, size: int, n_classes: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(n, 1, size, size, generator=gen) * 2 - 1
    b = torch.rand(n, 1, size, size, generator=gen) * 2 - 1
    return {
        "a": a,
        "b": b,
        "mask_a": torch.randint(0, n_classes, (n, size, size), generator=gen),
        "mask_b": torch.randint(0, n_classes, (n, size, size), generator=gen),
        "fg_a": (a[:, 0] > 0).float(),
        "fg_b": (b[:, 0] > 0).float(),
    }


class Step:
    """`step()` runs one training step; `flush()` reads the losses still on the device."""

    def __init__(self, name: str, variant: Variant, sizes: Sizes, device: torch.device):
        self.name, self.variant, self.device = name, variant, device
        self.pending: list = []
        n_classes = 3
        n = batch_size(sizes, name)
        if name == UNET:
            self._build_unet(sizes, n, n_classes)
        else:
            self._build_translator(sizes, name, n, n_classes)
        if variant.fused:
            fuse_optimizers(self.optimizers)
        fmt = torch.channels_last if variant.channels_last else torch.contiguous_format
        if variant.channels_last:
            for net in self.nets:
                net.to(memory_format=torch.channels_last)
        if variant.compile:
            for net in self.nets:
                net.compile()
        host = {k: (v.contiguous(memory_format=fmt) if v.ndim == 4 else v) for k, v in self.host.items()}
        self.host = host
        self.resident = {k: v.to(device) for k, v in host.items()} if variant.resident else None

    def _build_translator(self, sizes: Sizes, name: str, n: int, n_classes: int) -> None:
        from medtrans.stages.translate.base import Progress
        from medtrans.stages.translate.registry import get_model

        settings = _translator_settings(sizes, name)
        torch.manual_seed(0)
        self.model = get_model(name)(
            settings, n_classes=n_classes, image_size=sizes.image_size, device=self.device, seed=0
        )
        self.model.bf16 = self.variant.bf16 and self.device.type == "cuda"
        self.model.set_train(True)
        self.nets = list(self.model.networks().values())
        self.optimizers = list(self.model.optimizers().values())
        self.host = _host_batch(n, sizes.image_size, n_classes)
        self.progress = Progress(0, 0, 100, 100, 100)

    def _build_unet(self, sizes: Sizes, n: int, n_classes: int) -> None:
        from medtrans.stages.segment.model import build_loss, build_optimizer, build_unet

        cfg = load_study(sizes.study).segment
        torch.manual_seed(0)
        self.unet = build_unet(cfg, n_classes - 1).to(self.device)
        self.unet.train()
        self.loss_fn = build_loss()
        self.nets = [self.unet]
        self.optimizers = [build_optimizer(cfg, self.unet)]
        gen = torch.Generator().manual_seed(0)
        self.host = {
            "x": torch.rand(n, 1, sizes.image_size, sizes.image_size, generator=gen),
            "y": torch.randint(0, n_classes, (n, 1, sizes.image_size, sizes.image_size), generator=gen),
        }

    def _batch(self) -> dict[str, torch.Tensor]:
        if self.resident is not None:
            return self.resident
        return {k: v.to(self.device) for k, v in self.host.items()}

    def losses(self) -> dict[str, torch.Tensor]:
        """One step; its losses as 0-dim tensors."""
        batch = self._batch()
        if self.name != UNET:
            return self.model.train_step(batch, self.progress)
        opt = self.optimizers[0]
        opt.zero_grad(set_to_none=True)
        with self._unet_autocast():
            loss = self.loss_fn(self.unet(batch["x"]).float(), batch["y"])
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}

    def _unet_autocast(self):
        import contextlib

        if self.variant.bf16 and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self) -> None:
        out = self.losses()
        if self.variant.resident:
            self.pending += list(out.values())
            if len(self.pending) >= READ_EVERY * len(out):
                self.flush()
        else:
            [float(v) for v in out.values()]  # today's path: every loss read after every step

    def flush(self) -> None:
        if self.pending:
            host_floats(self.pending)
            self.pending = []
