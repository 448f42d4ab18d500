"""SPADE's networks and losses (Park et al., CVPR 2019; reference NVlabs/SPADE, CC BY-NC-SA:
written from the paper and the reference's constants, no code copied), 1 output channel.

- `SPADENorm`: parameter-free instance norm, then x (1 + gamma) + beta with gamma, beta from
  a 3x3 conv (128 hidden) + ReLU on the label map resized (nearest) to x.
- `SPADEResBlock`: [SPADE -> LeakyReLU 0.2 -> 3x3 conv] x 2 with spectral norm, learned 1x1
  shortcut (SPADE, no activation, no bias) when the width changes.
- `SPADEGenerator`: label map resized to the latent size -> 3x3 conv to 16 ngf -> head,
  middle x 2, up x 4 (16 -> 8 -> 4 -> 2 -> 1 ngf) with x2 nearest upsamplings ->
  LeakyReLU 0.2 -> 3x3 conv -> tanh.
- `MultiscaleD`: `num_d` PatchGANs (4 layers: k4, pad 2; first conv plain, then spectral
  norm + instance norm, stride 2 except the last, final k4 conv to 1 channel) on the label
  map concatenated with the image, average-pooled (3, stride 2, pad 1, no pad counted)
  between scales; returns every layer's output for feature matching.
- hinge loss (no tanh), feature matching, the optional VGG19 perceptual loss.

Upsampling at small sizes: the reference ('normal') upsamples 5 times, so its latent map is
size / 32 (8 x 8 at 256 px). With 64 px images that would be 2 x 2 and with 32 px 1 x 1,
where instance norm has nothing to normalise (PyTorch refuses 1 x 1). `n_upsampling` keeps
the 5 upsamplings while the latent stays >= `min_latent` (4) pixels a side, and otherwise
drops the earliest ones (the one between the head and the first middle block first, then
the one before up_0, ...): 256 px -> 5 (latent 8, the reference), 64 px -> 4 (latent 4),
32 px -> 3 (latent 4). Every block is kept, so the widths match the reference at any size.
"""

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import spectral_norm


def n_upsampling(image_size: int, max_up: int = 5, min_latent: int = 4) -> int:
    """How many x2 upsamplings the generator makes at this image size (see module doc)."""
    if image_size < min_latent:
        raise ValueError(f"SPADE: image size {image_size} is below the minimum latent size {min_latent}")
    n = min(max_up, int(math.floor(math.log2(image_size / min_latent))))
    if image_size % (2**n):
        raise ValueError(f"SPADE: image size {image_size} is not divisible by 2^{n}")
    return n


def one_hot(labels: Tensor, n_classes: int) -> Tensor:
    """(B,H,W) int64 in 0..K-1 -> (B,K,H,W) float one-hot; refuses out-of-range labels (the
    reference's users trip over 0/255 maps)."""
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(
            f"label map values must be in 0..{n_classes - 1}, got {int(labels.min())}..{int(labels.max())}"
        )
    return F.one_hot(labels.long(), n_classes).permute(0, 3, 1, 2).float()


class SPADENorm(nn.Module):
    def __init__(self, channels: int, label_nc: int, hidden: int = 128, ks: int = 3):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(label_nc, hidden, ks, padding=ks // 2), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, ks, padding=ks // 2)
        self.beta = nn.Conv2d(hidden, channels, ks, padding=ks // 2)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        h = self.shared(seg)
        return self.norm(x) * (1 + self.gamma(h)) + self.beta(h)


class SPADEResBlock(nn.Module):
    def __init__(self, fin: int, fout: int, label_nc: int, hidden: int = 128):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmid = min(fin, fout)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmid, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(fmid, fout, 3, padding=1))
        self.norm_0 = SPADENorm(fin, label_nc, hidden)
        self.norm_1 = SPADENorm(fmid, label_nc, hidden)
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
            self.norm_s = SPADENorm(fin, label_nc, hidden)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return x_s + dx


class SPADEGenerator(nn.Module):
    """Label map (B,K,H,W) one-hot -> image (B,1,H,W) in [-1, 1]."""

    def __init__(
        self,
        label_nc: int,
        image_size: int,
        ngf: int = 64,
        hidden: int = 128,
        max_up: int = 5,
        min_latent: int = 4,
    ):
        super().__init__()
        nf = ngf
        self.n_up = n_upsampling(image_size, max_up, min_latent)
        self.latent = image_size // 2**self.n_up
        self.fc = nn.Conv2d(label_nc, 16 * nf, 3, padding=1)
        self.head_0 = SPADEResBlock(16 * nf, 16 * nf, label_nc, hidden)
        self.G_middle_0 = SPADEResBlock(16 * nf, 16 * nf, label_nc, hidden)
        self.G_middle_1 = SPADEResBlock(16 * nf, 16 * nf, label_nc, hidden)
        self.up_0 = SPADEResBlock(16 * nf, 8 * nf, label_nc, hidden)
        self.up_1 = SPADEResBlock(8 * nf, 4 * nf, label_nc, hidden)
        self.up_2 = SPADEResBlock(4 * nf, 2 * nf, label_nc, hidden)
        self.up_3 = SPADEResBlock(2 * nf, 1 * nf, label_nc, hidden)
        self.conv_img = nn.Conv2d(nf, 1, 3, padding=1)
        # the five places the reference upsamples: before G_middle_0, up_0, up_1, up_2, up_3;
        # the earliest ones are skipped when the image is too small for five
        self.upsample_before = [False] * (5 - self.n_up) + [True] * self.n_up

    def forward(self, seg: Tensor) -> Tensor:
        x = self.fc(F.interpolate(seg, size=(self.latent, self.latent), mode="nearest"))
        x = self.head_0(x, seg)
        blocks = [self.G_middle_0, self.G_middle_1, self.up_0, self.up_1, self.up_2, self.up_3]
        ups = [self.upsample_before[0], False] + self.upsample_before[1:]
        for block, up in zip(blocks, ups, strict=True):
            if up:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = block(x, seg)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


class NLayerD(nn.Module):
    """One PatchGAN of the multiscale discriminator; forward returns every layer's output."""

    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 4):
        super().__init__()
        kw, pad = 4, 2
        layers = [nn.Sequential(nn.Conv2d(in_ch, ndf, kw, stride=2, padding=pad), nn.LeakyReLU(0.2))]
        nf = ndf
        for n in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            conv = spectral_norm(nn.Conv2d(prev, nf, kw, stride=stride, padding=pad, bias=False))
            layers.append(nn.Sequential(conv, nn.InstanceNorm2d(nf, affine=False), nn.LeakyReLU(0.2)))
        layers.append(nn.Sequential(nn.Conv2d(nf, 1, kw, stride=1, padding=pad)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for layer in self.layers:
            x = layer(x)
            out.append(x)
        return out


class MultiscaleD(nn.Module):
    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 4, num_d: int = 2):
        super().__init__()
        self.ds = nn.ModuleList(NLayerD(in_ch, ndf, n_layers) for _ in range(num_d))

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        result = []
        for i, d in enumerate(self.ds):
            result.append(d(x))
            if i != len(self.ds) - 1:
                x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)
        return result


# -- losses ------------------------------------------------------------------------------
def hinge_d_loss(preds: list[list[Tensor]], real: bool) -> Tensor:
    """The discriminator's hinge loss on each scale's final map, averaged over scales."""
    losses = [
        (-torch.clamp(p[-1] - 1, max=0) if real else -torch.clamp(-p[-1] - 1, max=0)).mean() for p in preds
    ]
    return sum(losses) / len(losses)


def hinge_g_loss(preds: list[list[Tensor]]) -> Tensor:
    return sum(-p[-1].mean() for p in preds) / len(preds)


def feature_matching_loss(fake: list[list[Tensor]], real: list[list[Tensor]], weight: float) -> Tensor:
    """L1 between the discriminators' intermediate outputs (the final map excluded) for fake
    and (detached) real, weight / num_d per layer, summed."""
    total = torch.zeros((), device=fake[0][0].device)
    for pf, pr in zip(fake, real, strict=True):
        for f, r in zip(pf[:-1], pr[:-1], strict=True):
            total = total + F.l1_loss(f, r.detach()) * weight / len(fake)
    return total


def split_pred(preds: list[list[Tensor]]) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
    """Outputs of a [fake; real] batch -> (fake part, real part), as the reference feeds both at once."""
    fake = [[t[: t.shape[0] // 2] for t in p] for p in preds]
    real = [[t[t.shape[0] // 2 :] for t in p] for p in preds]
    return fake, real


def init_xavier(net: nn.Module, gain: float = 0.02) -> None:
    """The reference's init (xavier normal, gain 0.02, biases 0) on every Conv/Linear. With
    spectral norm the visible weight shares storage with `weight_orig`, so initialise that."""
    for m in net.modules():
        name = m.__class__.__name__
        if "Conv" in name or "Linear" in name:
            w = getattr(m, "weight_orig", None)
            if w is None:
                w = getattr(m, "weight", None)
            if w is not None:
                nn.init.xavier_normal_(w, gain=gain)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


# -- optional VGG19 perceptual loss ---------------------------------------------------------
_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
_SLICES = (2, 7, 12, 21, 30)  # ends of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in `features`


class VGG19Features(nn.Module):
    """torchvision's VGG19 `features` layout (so its state dict loads), frozen, written here
    because medtrans does not import torchvision."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in _VGG19:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
                c = v
        self.features = nn.Sequential(*layers[: _SLICES[-1]])
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        out, start = [], 0
        for end in _SLICES:
            for i in range(start, end):
                x = self.features[i](x)
            out.append(x)
            start = end
        return out


class VGGLoss(nn.Module):
    """The reference's perceptual loss: sum of w_i L1(VGG_i(fake), VGG_i(real)) with weights
    1/32, 1/16, 1/8, 1/4, 1 on relu1_1..relu5_1; gray images repeated to 3 channels, fed in
    [-1, 1] as the reference feeds them."""

    WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)

    def __init__(self, weights_file: Path | None):
        super().__init__()
        self.vgg = VGG19Features()
        if weights_file is None:  # random weights: the same cost, for timing only (`medtrans plan`)
            self.vgg.eval()
            return
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
        feats = {
            k: v for k, v in state.items() if k.startswith("features.") and int(k.split(".")[1]) < _SLICES[-1]
        }
        self.vgg.load_state_dict(feats, strict=True)
        self.vgg.eval()

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        fx, fy = self.vgg(x.repeat(1, 3, 1, 1)), self.vgg(y.repeat(1, 3, 1, 1))
        return sum(w * F.l1_loss(a, b.detach()) for w, a, b in zip(self.WEIGHTS, fx, fy, strict=True))
