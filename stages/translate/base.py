"""The protocol every translator implements, and the pieces models share (image pool).

The training loop (`loop.py`) owns the schedule, checkpoints and RNG states; a model owns
its networks, optimizers and one update (`train_step`). Anything else random a model keeps
(an image pool, its own generator) goes through `extra_state` so a resumed run is exact.
"""

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

BATCH_KEYS = ("a", "b", "mask_a", "mask_b", "fg_a", "fg_b")


@dataclass(frozen=True)
class Progress:
    """Where training is, for models whose losses depend on it (MaskGAN's shape ramp)."""

    iteration: int  # 0-based global iteration
    epoch: int  # 0-based epoch
    iters_per_epoch: int
    n_epochs: int  # epochs at constant lr
    n_epochs_decay: int  # epochs of linear decay

    @property
    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay

    @property
    def total_iterations(self) -> int:
        return self.total_epochs * self.iters_per_epoch

    @property
    def epoch_float(self) -> float:
        """Epochs done, fractional (0 at the start, total_epochs at the end)."""
        return self.iteration / self.iters_per_epoch


class Translator:
    """Base class of a translator. Subclasses set the class attributes and implement the
    abstract methods; `networks()` must list every trainable or EMA network."""

    name: ClassVar[str] = ""
    uses_masks: ClassVar[bool] = False  # needs mask_a / mask_b (label maps) to translate
    uses_foreground: ClassVar[bool] = False  # uses fg_a / fg_b (automatic foreground)
    # what one epoch passes over once: "both" = max(|A|, |B|) images (the unpaired
    # references), "target" = the target (label map, image) pairs (SPADE's trainer)
    epoch_over: ClassVar[str] = "both"

    def __init__(self, config: Any, *, n_classes: int, image_size: int, device: torch.device, seed: int):
        self.config = config
        self.n_classes = n_classes
        self.image_size = image_size
        self.device = torch.device(device)
        self.seed = seed
        self.bf16 = False  # set by the loop from config.accel on CUDA

    @classmethod
    def needs_source_masks(cls, config: Any) -> bool:
        """Whether translating reads the SOURCE slices' label masks (checked before training:
        a slice without one would be translated from a blank map)."""
        return cls.uses_masks

    @classmethod
    def preflight(cls, config: Any) -> None:
        """Refuse, when the unit is planned, settings that cannot train here (missing
        weights files); raises with the file and the fix. Cheap: no hashing."""

    # -- the contract -------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(self, batch: dict[str, Tensor], progress: Progress) -> dict[str, Tensor]:
        """One optimisation step on `batch`; returns each loss as a detached 0-dim tensor (the
        loop reads them: at once on a CPU, every `log_every` steps on CUDA, so that a step never
        waits for the device). Never `.item()` here."""
        raise NotImplementedError

    def translate(self, a: Tensor, mask_a: Tensor | None = None, fg_a: Tensor | None = None) -> Tensor:
        """Source images (B,1,H,W) in [-1,1] -> target-domain images, same shape, in [-1,1]."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """Non-network state needed to resume exactly (image pools, own generators)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{self.name}: unexpected extra state {sorted(state)}")

    def panels(
        self, a: Tensor, mask_a: Tensor | None = None, fg_a: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Extra (B,1,H,W) images in [-1,1] for samples.png (e.g. attention maps)."""
        return {}

    # -- helpers ------------------------------------------------------------------------
    def autocast(self):
        """bf16 autocast around forward passes when enabled (CUDA only)."""
        if self.bf16 and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def set_train(self, mode: bool) -> None:
        for net in self.networks().values():
            net.train(mode)

    @staticmethod
    def requires_grad(nets: list[nn.Module], flag: bool) -> None:
        for net in nets:
            for p in net.parameters():
                p.requires_grad_(flag)


class ImagePool:
    """The references' history buffer of generated images (Shrivastava et al. 2017): the
    discriminator sees a generated image from the pool half of the time once it is full.
    Uses its own seeded generator, saved with the checkpoint."""

    def __init__(self, size: int, seed: int):
        self.size = size
        self.images: list[Tensor] = []
        self.gen = torch.Generator()
        self.gen.manual_seed(seed)

    def query(self, images: Tensor) -> Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.gen).item() > 0.5:
                j = int(torch.randint(0, self.size, (), generator=self.gen))
                out.append(self.images[j].clone())
                self.images[j] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, Any]:
        return {"images": [t.cpu() for t in self.images], "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.images = [t.to(device) for t in state["images"]]
        self.gen.set_state(state["gen"])
