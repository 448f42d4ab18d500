"""CycleGAN (Zhu et al., ICCV 2017), after junyanz/pytorch-CycleGAN-and-pix2pix
(models/cycle_gan_model.py): two ResNet generators G_A: A->B and G_B: B->A, two 70x70
PatchGAN discriminators (D_A judges domain B, D_B judges domain A), least-squares GAN loss,
cycle L1 x lambda_cycle per direction, identity L1 x lambda_cycle x lambda_identity, image
pools of 50, one Adam for both generators and one for both discriminators.

MaskGAN subclasses this and changes only the generator and the extra losses (`_generate`,
`_extra_losses`), so the update order below is shared: G step with the discriminators
frozen, then the D step on pooled fakes.
"""

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medtrans.shared.config.translate import CycleGANConfig
from medtrans.shared.seeding import derive_seed
from medtrans.stages.translate.base import ImagePool, Progress, Translator
from medtrans.stages.translate.nets import (
    ResnetGenerator,
    init_weights,
    lsgan_loss,
    patch_discriminator,
    patch_logits,
)
from medtrans.stages.translate.registry import register


@register("cyclegan")
class CycleGAN(Translator):
    uses_masks = False
    uses_foreground = False

    def __init__(
        self, config: CycleGANConfig, *, n_classes: int, image_size: int, device: torch.device, seed: int
    ):
        super().__init__(config, n_classes=n_classes, image_size=image_size, device=device, seed=seed)
        c = config
        self.G_A = init_weights(self._make_generator(), c.init_gain).to(self.device)
        self.G_B = init_weights(self._make_generator(), c.init_gain).to(self.device)
        self.D_A = init_weights(patch_discriminator(1, c.ndf, c.n_layers_d), c.init_gain).to(self.device)
        self.D_B = init_weights(patch_discriminator(1, c.ndf, c.n_layers_d), c.init_gain).to(self.device)
        self.opt_G = torch.optim.Adam(
            itertools.chain(self.G_A.parameters(), self.G_B.parameters()), lr=c.lr, betas=tuple(c.betas)
        )
        self.opt_D = torch.optim.Adam(
            itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr=c.lr, betas=tuple(c.betas)
        )
        self.pool_A = ImagePool(c.pool_size, derive_seed(seed, "pool_A"))  # fakes of domain A, for D_B
        self.pool_B = ImagePool(c.pool_size, derive_seed(seed, "pool_B"))  # fakes of domain B, for D_A

    # -- model-specific parts (MaskGAN overrides) -----------------------------------------
    def _make_generator(self) -> nn.Module:
        return ResnetGenerator(1, 1, self.config.ngf, self.config.n_blocks)

    def _generate(self, net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(translation, background attention or None)."""
        return net(x), None

    def _extra_losses(
        self, batch: dict[str, Tensor], att: dict[str, Tensor | None], progress: Progress
    ) -> dict[str, Tensor]:
        return {}

    def _clip_generators(self) -> None:
        pass

    # -- the contract ---------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        return {"G_A": self.G_A, "G_B": self.G_B, "D_A": self.D_A, "D_B": self.D_B}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_G, "D": self.opt_D}

    def train_step(self, batch: dict[str, Tensor], progress: Progress) -> dict[str, Tensor]:
        c = self.config
        real_a, real_b = batch["a"], batch["b"]
        with self.autocast():
            fake_b, att_fake_b = self._generate(self.G_A, real_a)
            rec_a, att_rec_a = self._generate(self.G_B, fake_b)
            fake_a, att_fake_a = self._generate(self.G_B, real_b)
            rec_b, att_rec_b = self._generate(self.G_A, fake_a)

        # generators, discriminators frozen
        self.requires_grad([self.D_A, self.D_B], False)
        self.opt_G.zero_grad(set_to_none=True)
        losses: dict[str, Tensor] = {}
        with self.autocast():
            losses["G_A"] = lsgan_loss(patch_logits(self.D_A, fake_b), True)
            losses["G_B"] = lsgan_loss(patch_logits(self.D_B, fake_a), True)
            losses["cycle_A"] = F.l1_loss(rec_a.float(), real_a) * c.lambda_cycle
            losses["cycle_B"] = F.l1_loss(rec_b.float(), real_b) * c.lambda_cycle
            if c.lambda_identity > 0:
                idt_a, _ = self._generate(self.G_A, real_b)  # G_A should leave B images alone
                idt_b, _ = self._generate(self.G_B, real_a)
                losses["idt_A"] = F.l1_loss(idt_a.float(), real_b) * c.lambda_cycle * c.lambda_identity
                losses["idt_B"] = F.l1_loss(idt_b.float(), real_a) * c.lambda_cycle * c.lambda_identity
            att = {"fake_b": att_fake_b, "rec_a": att_rec_a, "fake_a": att_fake_a, "rec_b": att_rec_b}
            losses.update(self._extra_losses(batch, att, progress))
        sum(losses.values()).backward()
        self._clip_generators()
        self.opt_G.step()

        # discriminators on real images and pooled fakes
        self.requires_grad([self.D_A, self.D_B], True)
        self.opt_D.zero_grad(set_to_none=True)
        pooled_b = self.pool_B.query(fake_b.float())
        pooled_a = self.pool_A.query(fake_a.float())
        with self.autocast():
            d_a = 0.5 * (
                lsgan_loss(patch_logits(self.D_A, real_b), True)
                + lsgan_loss(patch_logits(self.D_A, pooled_b.detach()), False)
            )
            d_b = 0.5 * (
                lsgan_loss(patch_logits(self.D_B, real_a), True)
                + lsgan_loss(patch_logits(self.D_B, pooled_a.detach()), False)
            )
        (d_a + d_b).backward()
        self.opt_D.step()
        losses["D_A"], losses["D_B"] = d_a, d_b
        return {k: v.detach() for k, v in losses.items()}  # read by the loop, not here

    @torch.no_grad()
    def translate(self, a: Tensor, mask_a: Tensor | None = None, fg_a: Tensor | None = None) -> Tensor:
        return self._generate(self.G_A, a)[0]

    def extra_state(self) -> dict[str, Any]:
        return {"pool_A": self.pool_A.state_dict(), "pool_B": self.pool_B.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pool_A.load_state_dict(state["pool_A"], self.device)
        self.pool_B.load_state_dict(state["pool_B"], self.device)
