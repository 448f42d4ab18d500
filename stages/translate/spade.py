"""SPADE (Park et al., CVPR 2019) as a mask-conditioned translator.

Trained to synthesise TARGET-domain images from target-domain label maps (`mask_b`, or
the automatic foreground masks `fg_b` with `label_source: foreground`); at test time it is
fed the SOURCE test slices' label maps, so the translation keeps the source anatomy by
construction, whatever the source image looks like (the source intensities are never
used). Label maps are one-hot over classes 0..K-1 (K = structures + background for
`masks`, 2 for `foreground`).

One step, in the reference's order (`Pix2PixTrainer`): the generator step (hinge GAN +
lambda_feat * feature matching [+ lambda_vgg * VGG]) and then the discriminator step
(hinge on a [fake; real] batch, fake generated without gradients). TTUR: Adam with
G lr = lr / 2 = 1e-4 and D lr = 2 lr = 4e-4, betas (0, 0.9). No randomness after the
(seeded) initialisation: SPADE without its VAE encoder is deterministic.
"""

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from medtrans.shared.config.translate import SPADEConfig
from medtrans.shared.seeding import derive_seed
from medtrans.shared.stage import StageInputError
from medtrans.stages.translate.base import Progress, Translator
from medtrans.stages.translate.registry import register
from medtrans.stages.translate.spade_nets import (
    MultiscaleD,
    SPADEGenerator,
    VGGLoss,
    feature_matching_loss,
    hinge_d_loss,
    hinge_g_loss,
    init_xavier,
    one_hot,
    split_pred,
)


def weights_dir() -> Path:
    """The weights folder: $MEDTRANS_WEIGHTS, else ./weights (the project's convention)."""
    return Path(os.environ.get("MEDTRANS_WEIGHTS", "weights"))


class VGGWeightsMissing(StageInputError):
    """SPADE's VGG loss is on and its weights file is not in the weights folder."""


def vgg_weights_present(config: SPADEConfig) -> Path:
    """The VGG19 file's path; raises VGGWeightsMissing (naming it and `make weights`) when absent."""
    path = weights_dir() / config.vgg_weights
    if not path.is_file():
        raise VGGWeightsMissing(
            f"SPADE vgg_loss is on but the ImageNet VGG19 weights are missing: expected {path} "
            "(torchvision's vgg19-dcbb9e9d.pth; run `make weights`, or set translate.spade.vgg_loss: false)"
        )
    return path


def vgg_weights_path(config: SPADEConfig) -> Path:
    """The VGG19 file, checked: present, and its sha256 starts with the 8 hex digits that
    torchvision puts in the file name (vgg19-dcbb9e9d.pth)."""
    import hashlib

    path = vgg_weights_present(config)
    stem = Path(config.vgg_weights).stem
    prefix = stem.rsplit("-", 1)[-1] if "-" in stem else ""
    if len(prefix) == 8:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if not h.hexdigest().startswith(prefix):
            raise ValueError(
                f"{path}: sha256 {h.hexdigest()[:8]}... does not match the name's {prefix}; "
                "re-fetch it (`make weights`)"
            )
    return path


@register("spade")
class SPADE(Translator):
    uses_masks = True
    uses_foreground = True  # for `label_source: foreground`
    epoch_over = "target"  # its trainer's epoch: one pass over the target (label map, image) pairs

    def __init__(
        self, config: SPADEConfig, *, n_classes: int, image_size: int, device: torch.device, seed: int
    ):
        super().__init__(config, n_classes=n_classes, image_size=image_size, device=device, seed=seed)
        c = config
        self.label_nc = n_classes if c.label_source == "masks" else 2
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "spade", "init"))
            self.G = SPADEGenerator(
                self.label_nc, image_size, c.ngf, c.spade_hidden, c.max_upsampling, c.min_latent
            )
            self.D = MultiscaleD(self.label_nc + 1, c.ndf, c.n_layers_d, c.num_d)
            init_xavier(self.G, c.init_gain)
            init_xavier(self.D, c.init_gain)
        self.G.to(self.device)
        self.D.to(self.device)
        self.vgg = VGGLoss(vgg_weights_path(c)).to(self.device) if c.vgg_loss else None
        g_lr, d_lr = (c.lr / 2, c.lr * 2) if c.ttur else (c.lr, c.lr)
        betas = tuple(c.betas)
        self._opts = {
            "G": torch.optim.Adam(self.G.parameters(), lr=g_lr, betas=betas),
            "D": torch.optim.Adam(self.D.parameters(), lr=d_lr, betas=betas),
        }

    @classmethod
    def preflight(cls, config: SPADEConfig) -> None:
        if config.vgg_loss:
            vgg_weights_present(config)

    @classmethod
    def needs_source_masks(cls, config: SPADEConfig) -> bool:
        return config.label_source == "masks"

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._opts

    def labels(self, mask: Tensor | None, fg: Tensor | None) -> Tensor:
        """The one-hot label map the study asks for."""
        if self.config.label_source == "masks":
            if mask is None:
                raise ValueError("SPADE (label_source: masks) needs the label masks")
            return one_hot(mask, self.label_nc)
        if fg is None:
            raise ValueError("SPADE (label_source: foreground) needs the automatic foreground masks")
        return one_hot((fg > 0.5).long(), 2)

    def _discriminate(self, seg: Tensor, fake: Tensor, real: Tensor):
        both = torch.cat([torch.cat([seg, fake], 1), torch.cat([seg, real], 1)], 0)
        with self.autocast():
            preds = self.D(both)
        preds = [[t.float() for t in p] for p in preds]
        return split_pred(preds)

    def train_step(self, batch: dict[str, Tensor], progress: Progress) -> dict[str, Tensor]:
        c = self.config
        seg = self.labels(batch.get("mask_b"), batch.get("fg_b"))
        real = batch["b"]

        # generator step
        self.requires_grad([self.D], False)
        self._opts["G"].zero_grad(set_to_none=True)
        with self.autocast():
            fake = self.G(seg).float()
        pred_fake, pred_real = self._discriminate(seg, fake, real)
        loss_gan = hinge_g_loss(pred_fake)
        loss_feat = feature_matching_loss(pred_fake, pred_real, c.lambda_feat)
        loss_vgg = (
            self.vgg(fake, real) * c.lambda_vgg
            if self.vgg is not None
            else torch.zeros((), device=self.device)
        )
        loss_g = loss_gan + loss_feat + loss_vgg
        loss_g.backward()
        self._opts["G"].step()
        self.requires_grad([self.D], True)

        # discriminator step
        self._opts["D"].zero_grad(set_to_none=True)
        with torch.no_grad(), self.autocast():
            fake = self.G(seg).float()
        pred_fake, pred_real = self._discriminate(seg, fake, real)
        loss_d_fake = hinge_d_loss(pred_fake, real=False)
        loss_d_real = hinge_d_loss(pred_real, real=True)
        (loss_d_fake + loss_d_real).backward()
        self._opts["D"].step()
        out = {"G_GAN": loss_gan, "G_Feat": loss_feat, "D_fake": loss_d_fake, "D_real": loss_d_real}
        if self.vgg is not None:
            out["G_VGG"] = loss_vgg
        return {k: v.detach() for k, v in out.items()}  # read by the loop, not here

    @torch.no_grad()
    def translate(self, a: Tensor, mask_a: Tensor | None = None, fg_a: Tensor | None = None) -> Tensor:
        """The source slice's label map -> a target-domain image (the source image is unused)."""
        with self.autocast():
            return self.G(self.labels(mask_a, fg_a)).float()
