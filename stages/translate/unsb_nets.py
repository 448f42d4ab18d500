"""UNSB's networks and losses (Kim et al., ICLR 2024; reference cyclomon/UNSB, MIT), written
from the paper and the reference's constants, 1-channel, device-agnostic (the reference
hard-codes CUDA).

- `time_grid` / `sb_step`: the reference's 5-step time grid and its stochastic update.
- `UNSBGenerator`: the CUT/CycleGAN ResNet generator with anti-aliased down/up-sampling and
  residual blocks modulated by a noise vector z (PixelNorm + MLP -> per-channel affine).
- `TimePatchD`: the time-conditioned PatchGAN used both as the discriminator D (1 input
  channel) and as the energy network E (2 pairs x 2 channels = 4 input channels).
- `PatchSampleF` + `patch_nce_loss`: CUT's PatchNCE (2-layer MLP to 256, l2 norm, shared
  patch ids, temperature 0.07, negatives from the same image).

The residual block computes what the reference's `ResnetBlock_cond.forward` computes: it
applies each layer of its first branch to the block *input* (`out = layer(x)` in a loop), so
only that branch's norm reaches the output and the block is
x + IN(conv(pad(ReLU(adaptive(IN(x), z))))). Its first conv, its time bias (and so the
generator's step MLP) and its spare `style` layer never reach the output; they are kept as
parameters, created in the reference's order, so that parameter counts match the
reference's network. The reference generator is therefore NOT conditioned on the step
through its residual blocks (D and E are). `conditioned=True` is an opt-in variant that is:
pad -> conv -> IN -> + time bias -> z affine -> ReLU -> pad -> conv -> IN.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


# -- the Schrodinger-bridge time grid -----------------------------------------------------
def time_grid(num_timesteps: int) -> np.ndarray:
    """The reference's grid: increments [0, 1, 1/2, ..., 1/(T-1)], cumulative, normalised to
    [0, 1], mapped to 0.5 + 0.5 t, with 0 prepended: T=5 -> [0, .5, .74, .86, .94, 1]."""
    incs = np.array([0.0] + [1.0 / (i + 1) for i in range(num_timesteps - 1)])
    times = np.cumsum(incs)
    times = times / times[-1]
    times = 0.5 * times[-1] + 0.5 * times
    return np.concatenate([np.zeros(1), times])


def sb_step(x_t: Tensor, x1_hat: Tensor, times: Tensor, t: int, tau: float, noise: Tensor) -> Tensor:
    """One stochastic step from grid index t-1 to t (t >= 1): with dt = t_t - t_{t-1} and
    r = dt / (1 - t_{t-1}): x <- (1 - r) x + r x1_hat + sqrt(tau dt (1 - r)) eps."""
    delta = times[t] - times[t - 1]
    denom = times[-1] - times[t - 1]
    r = delta / denom
    scale = delta * (1 - r)
    return (1 - r) * x_t + r * x1_hat + (scale * tau).sqrt() * noise


def timestep_embedding(steps: Tensor, dim: int, max_positions: int = 10000) -> Tensor:
    """Transformer sinusoidal embedding of integer steps (B,) -> (B, dim), as the reference."""
    half = dim // 2
    freq = math.log(max_positions) / (half - 1)
    freq = torch.exp(torch.arange(half, dtype=torch.float32, device=steps.device) * -freq)
    emb = steps.float()[:, None] * freq[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


# -- anti-aliased resampling (Zhang 2019, as in CUT/UNSB) ---------------------------------
def _binomial(size: int) -> Tensor:
    a = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float32)
    f = a[:, None] * a[None, :]
    return f / f.sum()


class BlurDown(nn.Module):
    """Reflect-pad 1, depthwise [1,2,1]^2/16 blur, stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("filt", _binomial(3)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class BlurUp(nn.Module):
    """Replicate-pad 1, depthwise transposed conv with the [1,3,3,1]^2 filter x 4, stride 2,
    cropped to exactly twice the input size (the reference's `Upsample`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("filt", (_binomial(4) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv_transpose2d(
            F.pad(x, (1, 1, 1, 1), mode="replicate"), self.filt, stride=2, padding=2, groups=x.shape[1]
        )
        return y[:, :, 1:-1, 1:-1]


def _norm(ch: int) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=False, track_running_stats=False)


class PixelNorm(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-8)


class AdaptiveAffine(nn.Module):
    """gamma(z) * x + beta(z), per channel."""

    def __init__(self, channels: int, z_dim: int):
        super().__init__()
        self.style = nn.Linear(z_dim, 2 * channels)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        gamma, beta = self.style(z)[:, :, None, None].chunk(2, 1)
        return gamma * x + beta


class CondResBlock(nn.Module):
    """The reference's residual block (see the module doc): x + IN(conv(pad(ReLU(adaptive(IN(x),
    z))))); `conv0`, `time` and `style` are its dead layers. `conditioned`: the opt-in variant
    whose first conv is live and whose step bias is added after its norm."""

    def __init__(self, dim: int, temb_dim: int, z_dim: int, conditioned: bool = False):
        super().__init__()
        self.conditioned = conditioned
        self.conv0 = nn.Conv2d(dim, dim, 3, bias=True)  # dead in the reference
        self.norm0 = _norm(dim)
        self.adaptive = AdaptiveAffine(dim, z_dim)
        self.conv1 = nn.Conv2d(dim, dim, 3, bias=True)
        self.norm1 = _norm(dim)
        self.time = nn.Linear(temb_dim, dim)  # the reference's `Dense_time`: dead there
        self.style = nn.Linear(z_dim, 2 * dim)  # the reference's unused `style` layer

    def forward(self, x: Tensor, temb: Tensor, zemb: Tensor) -> Tensor:
        if self.conditioned:
            h = self.norm0(self.conv0(F.pad(x, (1, 1, 1, 1), mode="reflect")))
            h = h + self.time(temb)[:, :, None, None]
        else:
            h = self.norm0(x)
        h = F.relu(self.adaptive(h, zemb))
        h = self.norm1(self.conv1(F.pad(h, (1, 1, 1, 1), mode="reflect")))
        return x + h


class UNSBGenerator(nn.Module):
    """G(x_t, t, z) -> x1_hat. Layer ids for PatchNCE follow the reference: 0..11 are the
    encoder's modules (0 = reflection-padded input, 4 / 8 = the two stride-1 convs before
    each blur-downsampling), 12 + i is the output of residual block i."""

    def __init__(
        self,
        ngf: int = 64,
        n_blocks: int = 9,
        n_mlp: int = 3,
        in_ch: int = 1,
        out_ch: int = 1,
        conditioned: bool = False,
    ):
        super().__init__()
        if ngf < 4:
            raise ValueError("UNSB ngf must be >= 4 (the step embedding has ngf dimensions)")
        self.ngf = ngf
        enc: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_ch, ngf, 7, bias=True),
            _norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            c = ngf * 2**i
            enc += [
                nn.Conv2d(c, 2 * c, 3, padding=1, bias=True),
                _norm(2 * c),
                nn.ReLU(True),
                BlurDown(2 * c),
            ]
        self.encoder = nn.ModuleList(enc)
        dim = 4 * ngf
        self.blocks = nn.ModuleList(CondResBlock(dim, dim, dim, conditioned) for _ in range(n_blocks))
        dec: list[nn.Module] = []
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            dec += [BlurUp(c), nn.Conv2d(c, c // 2, 3, padding=1, bias=True), _norm(c // 2), nn.ReLU(True)]
        dec += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_ch, 7), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)
        mapping: list[nn.Module] = [PixelNorm(), nn.Linear(dim, dim), nn.LeakyReLU(0.2)]
        for _ in range(n_mlp):
            mapping += [nn.Linear(dim, dim), nn.LeakyReLU(0.2)]
        self.z_mapping = nn.Sequential(*mapping)
        self.time_mlp = nn.Sequential(
            nn.Linear(ngf, dim), nn.LeakyReLU(0.2), nn.Linear(dim, dim), nn.LeakyReLU(0.2)
        )

    @property
    def z_dim(self) -> int:
        return 4 * self.ngf

    @property
    def n_layers(self) -> int:
        return len(self.encoder) + len(self.blocks)

    def _cond(self, t: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.time_mlp(timestep_embedding(t, self.ngf)), self.z_mapping(z)

    def forward(self, x: Tensor, t: Tensor, z: Tensor) -> Tensor:
        temb, zemb = self._cond(t, z)
        h = x
        for layer in self.encoder:
            h = layer(h)
        for block in self.blocks:
            h = block(h, temb, zemb)
        return self.decoder(h)

    def encode(self, x: Tensor, t: Tensor, z: Tensor, layers: tuple[int, ...]) -> list[Tensor]:
        """Features at the given layer ids (sorted), stopping after the last one."""
        if max(layers) >= self.n_layers:
            raise ValueError(
                f"NCE layer {max(layers)} does not exist: the generator has {self.n_layers} layers"
            )
        temb, zemb = self._cond(t, z)
        feats, h, last = [], x, max(layers)
        for i, layer in enumerate(self.encoder):
            h = layer(h)
            if i in layers:
                feats.append(h)
            if i == last:
                return feats
        for j, block in enumerate(self.blocks):
            h = block(h, temb, zemb)
            if j + len(self.encoder) in layers:
                feats.append(h)
            if j + len(self.encoder) == last:
                break
        return feats


class _CondConv(nn.Module):
    """conv k4 s1 p1 -> + time bias -> [instance norm] -> LeakyReLU 0.2 -> [blur-down]."""

    def __init__(self, cin: int, cout: int, temb_dim: int, norm: bool, down: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, stride=1, padding=1, bias=True)
        self.dense = nn.Linear(temb_dim, cout)
        self.norm = _norm(cout) if norm else nn.Identity()
        self.down = BlurDown(cout) if down else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv(x) + self.dense(temb)[:, :, None, None]
        return self.down(F.leaky_relu(self.norm(h), 0.2))


class TimePatchD(nn.Module):
    """The reference's `basic_cond` PatchGAN: n_layers blur-downsampling conv blocks, one more
    block without downsampling, a final k4 conv to one channel; each block gets a bias from
    the step embedding (4*ndf dims, sinusoid -> 2 x (Linear, LeakyReLU)). `forward(x, t, x2)`
    concatenates x2 on channels (the energy network's pairs)."""

    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        tdim = 4 * ndf
        self.tdim = tdim
        blocks = [_CondConv(in_ch, ndf, tdim, norm=False, down=True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            blocks.append(_CondConv(ndf * prev, ndf * mult, tdim, norm=True, down=True))
        prev, mult = mult, min(2**n_layers, 8)
        blocks.append(_CondConv(ndf * prev, ndf * mult, tdim, norm=True, down=False))
        self.blocks = nn.ModuleList(blocks)
        self.final = nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)
        self.time_mlp = nn.Sequential(
            nn.Linear(tdim, tdim), nn.LeakyReLU(0.2), nn.Linear(tdim, tdim), nn.LeakyReLU(0.2)
        )

    def forward(self, x: Tensor, t: Tensor, x2: Tensor | None = None) -> Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.tdim))
        h = x if x2 is None else torch.cat([x, x2], dim=1)
        for block in self.blocks:
            h = block(h, temb)
        return self.final(h)


# -- PatchNCE ----------------------------------------------------------------------------
def _l2norm(x: Tensor) -> Tensor:
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-7)


class PatchSampleF(nn.Module):
    """Per NCE layer: pick `num_patches` random locations (shared between query and key),
    project each feature vector by Linear -> ReLU -> Linear to `nc` dims, l2-normalise."""

    def __init__(self, channels: list[int], nc: int = 256):
        super().__init__()
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)) for c in channels
        )

    def forward(
        self,
        feats: list[Tensor],
        num_patches: int,
        patch_ids: list[Tensor] | None = None,
        gen: torch.Generator | None = None,
    ) -> tuple[list[Tensor], list[Tensor]]:
        out, ids = [], []
        for i, feat in enumerate(feats):
            flat = feat.permute(0, 2, 3, 1).flatten(1, 2)  # B, HW, C
            if patch_ids is None:
                pid = torch.randperm(
                    flat.shape[1], generator=gen, device=gen.device if gen is not None else "cpu"
                )
                pid = pid[: min(num_patches, flat.shape[1])].to(feat.device)
            else:
                pid = patch_ids[i]
            sample = flat[:, pid, :].flatten(0, 1)  # B*P, C
            out.append(_l2norm(self.mlps[i](sample)))
            ids.append(pid)
        return out, ids


def patch_nce_loss(feat_q: Tensor, feat_k: Tensor, batch_size: int, temperature: float = 0.07) -> Tensor:
    """CUT's PatchNCE: for each query patch, its key at the same location is the positive and
    the other sampled patches of the same image the negatives (diagonal masked with -10)."""
    feat_k = feat_k.detach()
    dim = feat_q.shape[1]
    l_pos = (feat_q * feat_k).sum(dim=1, keepdim=True)
    q = feat_q.view(batch_size, -1, dim)
    k = feat_k.view(batch_size, -1, dim)
    n = q.shape[1]
    l_neg = torch.bmm(q, k.transpose(2, 1))
    eye = torch.eye(n, device=q.device, dtype=torch.bool)[None]
    l_neg = l_neg.masked_fill(eye, -10.0).view(-1, n)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target, reduction="none")


def lsgan_loss(pred: Tensor, real: bool) -> Tensor:
    return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))


def init_xavier(net: nn.Module, gain: float = 0.02) -> None:
    """The reference's init (init_type xavier, init_gain 0.02) on every Conv/Linear weight,
    biases zeroed (this also zeroes the affine layers' gamma bias, as the reference does)."""
    for m in net.modules():
        name = m.__class__.__name__
        if ("Conv" in name or "Linear" in name) and getattr(m, "weight", None) is not None:
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
