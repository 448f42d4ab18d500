"""MaskGAN (Phan et al., MICCAI 2023), after HieuPhan33/MaskGAN (models/mask_gan_model.py,
`ResnetGenerator_Att` in models/networks.py): CycleGAN with an attention generator.

The generator shares one encoder (stem, downsamplings, residual blocks) between a content
decoder (n_att x C channels, tanh) and an attention decoder (n_att channels, 1x1 output conv,
softmax over channels). Output = sum over i < n_att-1 of content_i x attention_i + input x
attention_{n_att-1}: the last map is the "background" attention that copies the input.

Extra losses, both directions:
- mask: lambda_mask x L1(background attention of G(x), 1 - foreground(x)), foreground from the
  masks preprocess computes per volume as the reference's preprocess/main.py does (so
  background = 1 where the attention should copy the input);
- shape consistency: lambda_shape(epoch) x L1(background attention of G_A(a), background
  attention of G_B(G_A(a))) and the same for b with G_B then G_A; lambda_shape(epoch) =
  lambda_shape x (epoch + 1) / (total epochs + 1) (the reference's ramp, 1-based epochs).
Generator gradients are clipped to norm `grad_clip` before the G step.

Deliberate differences from the reference (its bugs): its loss_shapeA compares the B-side
background attention with the A-side reconstruction's attention (here: B-side with B-side);
its D step clips the generator's gradients again (here: the D step is not clipped); it needs
apex (not needed: plain PyTorch, optional bf16 autocast); its define_G skips weight
initialisation (here: normal(0, 0.02) as in CycleGAN).
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medtrans.shared.config.translate import MaskGANConfig
from medtrans.stages.translate.base import Progress
from medtrans.stages.translate.cyclegan import CycleGAN
from medtrans.stages.translate.nets import encoder, head, upsampler
from medtrans.stages.translate.registry import register


class AttentionGenerator(nn.Module):
    """Returns (output, attention (B,n_att,H,W)); content images via `content`."""

    def __init__(self, in_ch: int = 1, out_ch: int = 1, ngf: int = 64, n_blocks: int = 9, n_att: int = 5):
        super().__init__()
        if n_att < 2:
            raise ValueError("n_attentions must be at least 2 (one content map and the background)")
        self.out_ch, self.n_att = out_ch, n_att
        self.encoder = encoder(in_ch, ngf, n_blocks)
        self.content = nn.Sequential(*upsampler(ngf), *head(ngf, n_att * out_ch, 7), nn.Tanh())
        self.attention = nn.Sequential(*upsampler(ngf), *head(ngf, n_att, 1))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)
        content = self.content(h)
        att = torch.softmax(self.attention(h).float(), dim=1).to(content.dtype)
        b, _, hh, ww = content.shape
        images = content.view(b, self.n_att, self.out_ch, hh, ww)[:, : self.n_att - 1]
        out = (images * att[:, : self.n_att - 1, None]).sum(1) + x * att[:, -1:]
        return out, att


@register("maskgan")
class MaskGAN(CycleGAN):
    uses_masks = False
    uses_foreground = True

    config: MaskGANConfig

    def _make_generator(self) -> nn.Module:
        c = self.config
        return AttentionGenerator(1, 1, c.ngf, c.n_blocks, c.n_attentions)

    def _generate(self, net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor | None]:
        out, att = net(x)
        return out, att[:, -1]

    def shape_weight(self, progress: Progress) -> float:
        return self.config.lambda_shape * (progress.epoch + 1) / (progress.total_epochs + 1)

    def _extra_losses(
        self, batch: dict[str, Tensor], att: dict[str, Tensor | None], progress: Progress
    ) -> dict[str, Tensor]:
        c = self.config
        lam_shape = self.shape_weight(progress)
        return {
            "mask_A": c.lambda_mask * F.l1_loss(att["fake_b"].float(), 1.0 - batch["fg_a"]),
            "mask_B": c.lambda_mask * F.l1_loss(att["fake_a"].float(), 1.0 - batch["fg_b"]),
            "shape_A": lam_shape * F.l1_loss(att["fake_b"].float(), att["rec_a"].float()),
            "shape_B": lam_shape * F.l1_loss(att["fake_a"].float(), att["rec_b"].float()),
        }

    def _clip_generators(self) -> None:
        if self.config.grad_clip > 0:
            params = [p for g in (self.G_A, self.G_B) for p in g.parameters()]
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)

    @torch.no_grad()
    def panels(
        self, a: Tensor, mask_a: Tensor | None = None, fg_a: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Background attention of G_A(a), shown in [-1,1] (white = copies the input)."""
        _, att = self.G_A(a)
        return {"background_attention": att[:, -1:] * 2 - 1}
