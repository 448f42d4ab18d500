"""Networks the references share (junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py).

ResNet generator (Johnson et al. 2016 as adapted by CycleGAN): reflection pad + 7x7 conv,
two stride-2 3x3 convs, `n_blocks` residual blocks (reflection pad, 3x3 conv, norm, ReLU,
reflection pad, 3x3 conv, norm), two stride-2 transposed 3x3 convs (output_padding 1),
reflection pad + 7x7 conv, tanh. Instance norm without affine or running statistics; conv
biases on (the reference sets bias = norm is InstanceNorm). No dropout (CycleGAN default).
It is split into an encoder and a decoder so MaskGAN's attention generator can share them.
"""

import torch
import torch.nn.functional as F
from monai.networks.nets import PatchDiscriminator
from torch import Tensor, nn


def norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            norm(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            norm(dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def encoder(in_ch: int, ngf: int, n_blocks: int) -> nn.Sequential:
    """Stem, two downsamplings, residual blocks: (B,in,H,W) -> (B,4ngf,H/4,W/4)."""
    layers: list[nn.Module] = [
        nn.ReflectionPad2d(3),
        nn.Conv2d(in_ch, ngf, 7, bias=True),
        norm(ngf),
        nn.ReLU(True),
    ]
    for i in range(2):
        c = ngf * 2**i
        layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=True), norm(2 * c), nn.ReLU(True)]
    layers += [ResidualBlock(ngf * 4) for _ in range(n_blocks)]
    return nn.Sequential(*layers)


def upsampler(ngf: int) -> list[nn.Module]:
    """Two transposed-conv upsamplings: 4ngf at H/4 -> ngf at H."""
    layers: list[nn.Module] = []
    for i in range(2):
        c = ngf * 2 ** (2 - i)
        layers += [
            nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=True),
            norm(c // 2),
            nn.ReLU(True),
        ]
    return layers


def head(ngf: int, out_ch: int, kernel: int = 7) -> list[nn.Module]:
    """Output conv (reflection pad + 7x7, or a plain 1x1)."""
    pad = kernel // 2
    return ([nn.ReflectionPad2d(pad)] if pad else []) + [nn.Conv2d(ngf, out_ch, kernel, bias=True)]


class ResnetGenerator(nn.Module):
    """CycleGAN's `resnet_9blocks` (n_blocks configurable), output in [-1, 1]."""

    def __init__(self, in_ch: int = 1, out_ch: int = 1, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        self.encoder = encoder(in_ch, ngf, n_blocks)
        self.decoder = nn.Sequential(*upsampler(ngf), *head(ngf, out_ch), nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


def patch_discriminator(in_ch: int = 1, ndf: int = 64, n_layers: int = 3) -> nn.Module:
    """The 70x70 PatchGAN (n_layers 3): MONAI's PatchDiscriminator with instance norm and
    bias equals junyanz's NLayerDiscriminator; it returns every layer's output, `patch_logits`
    keeps the last."""
    return PatchDiscriminator(
        spatial_dims=2,
        channels=ndf,
        in_channels=in_ch,
        out_channels=1,
        num_layers_d=n_layers,
        norm="INSTANCE",
        bias=True,
    )


def patch_logits(disc: nn.Module, x: Tensor) -> Tensor:
    return disc(x)[-1]


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """The references' 'normal' init: conv/linear weights N(0, gain), biases 0."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net


def lsgan_loss(pred: Tensor, real: bool) -> Tensor:
    """Least-squares GAN loss (Mao et al. 2017) against targets 1 (real) or 0 (fake)."""
    pred = pred.float()
    return F.mse_loss(pred, torch.ones_like(pred) if real else torch.zeros_like(pred))
