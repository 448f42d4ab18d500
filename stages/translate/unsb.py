"""UNSB (Kim et al., ICLR 2024): unpaired translation as a Schrodinger bridge, learnt by a
time-conditioned generator, a time-conditioned PatchGAN D and an energy network E.

One training step (the reference's `SBModel.optimize_parameters`):
1. draw one step index t in [0, T) for the batch; without gradients, simulate the bridge
   from the source batch `a`, from a second independent source batch `a2` and (NCE
   identity) from the target batch `b` up to step t: x_0 = input, x1_hat = G(x_k, k, z),
   x_{k+1} = sb_step(x_k, x1_hat);
2. G maps x_t (and the target's x_t) to x1_hat; the D step (LSGAN, 0.5 (fake + real)), the
   E step (-E(p,p).mean() + s + s^2, s = logsumexp E(p, p2) over the patch map), then the
   G + F step: LSGAN + lambda_SB * SB + lambda_NCE * PatchNCE (averaged with the identity
   NCE on the target; each layer's NCE is already weighted by lambda_NCE, so the reference
   weights it by lambda_NCE squared, and so does this),
   SB = -(T-t)/T tau [E(p,p).mean() - logsumexp E(p,p2)] + tau mean((x_t - x1_hat)^2),
   p = (x_t, x1_hat) and p2 = (x2_t, x2_1hat).

The reference reads `a2` from a second, independently shuffled data loader. The framework
gives one source batch per step, so the second batch here is the previous step's source
batch (an independent random draw of the same sampler; checkpointed, so resumes are exact);
on the very first step, when there is none, the batch rolled by one (itself at batch 1).

All randomness of the model (t, z, bridge noise, NCE patch ids) comes from its own seeded
generator, saved in `extra_state`. Inference runs the T generator steps from the source
image and keeps the last x1_hat, with its own generator re-seeded on every call, so a
translation never depends on how far training drew from the training generator and the same
batch always gives the same result.
"""

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from medtrans.shared.config.translate import UNSBConfig
from medtrans.shared.seeding import derive_seed
from medtrans.stages.translate.base import Progress, Translator
from medtrans.stages.translate.registry import register
from medtrans.stages.translate.unsb_nets import (
    PatchSampleF,
    TimePatchD,
    UNSBGenerator,
    init_xavier,
    lsgan_loss,
    patch_nce_loss,
    sb_step,
    time_grid,
)


@dataclass(frozen=True)
class _Pass:
    """One training step's forward pass, read by the D, E and G updates."""

    t: int  # the step index drawn for the batch
    steps: Tensor  # t per sample
    xt: Tensor  # x_t simulated from the source batch
    xt2: Tensor  # from the second source batch
    fake_b: Tensor  # x1_hat = G(x_t)
    fake_b2: Tensor  # G(x2_t)
    idt_b: Tensor | None  # G of the target's x_t (NCE identity)


def _generator(device: torch.device, seed: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


@register("unsb")
class UNSB(Translator):
    uses_masks = False
    uses_foreground = False

    def __init__(
        self, config: UNSBConfig, *, n_classes: int, image_size: int, device: torch.device, seed: int
    ):
        super().__init__(config, n_classes=n_classes, image_size=image_size, device=device, seed=seed)
        c = config
        if image_size < 32:
            raise ValueError(f"UNSB needs images of at least 32 px (its PatchGANs), got {image_size}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "unsb", "init"))
            self.G = UNSBGenerator(c.ngf, c.n_blocks, c.n_mlp, conditioned=c.conditioned_blocks)
            self.D = TimePatchD(1, c.ndf, c.n_layers_d)
            self.E = TimePatchD(4, c.ndf, c.n_layers_d)
            with torch.no_grad():  # the projection MLPs' input widths, from one dry run
                x = torch.zeros(1, 1, image_size, image_size)
                feats = self.G.encode(
                    x, torch.zeros(1, dtype=torch.long), torch.zeros(1, self.G.z_dim), c.nce_layers
                )
            self.F = PatchSampleF([f.shape[1] for f in feats], c.netf_nc)
            for net in (self.G, self.D, self.E, self.F):
                init_xavier(net, c.init_gain)
        for net in (self.G, self.D, self.E, self.F):
            net.to(self.device)
        self.times = torch.tensor(time_grid(c.num_timesteps), dtype=torch.float32, device=self.device)
        opt = dict(lr=c.lr, betas=tuple(c.betas))
        self._opts = {
            name: torch.optim.Adam(net.parameters(), **opt) for name, net in self.networks().items()
        }
        self.gen = _generator(self.device, derive_seed(seed, "unsb", "train"))
        self.prev_a: Tensor | None = None

    # -- contract -----------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "E": self.E, "F": self.F}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._opts

    def extra_state(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "prev_a": None if self.prev_a is None else self.prev_a.cpu()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"].cpu())  # a checkpoint loaded onto CUDA moves it
        self.prev_a = None if state["prev_a"] is None else state["prev_a"].to(self.device)

    # -- randomness ---------------------------------------------------------------------
    def _randn(self, shape, gen: torch.Generator) -> Tensor:
        return torch.randn(shape, generator=gen, device=self.device)

    def _z(self, n: int, gen: torch.Generator) -> Tensor:
        return self._randn((n, self.G.z_dim), gen)

    def _steps(self, t: int, n: int) -> Tensor:
        return torch.full((n,), t, dtype=torch.long, device=self.device)

    # -- the bridge ---------------------------------------------------------------------
    @torch.no_grad()
    def _simulate(self, starts: list[Tensor], t_end: int, gen: torch.Generator) -> list[Tensor]:
        """x_t at step index t_end for each start batch, with G in eval mode (the
        reference's loop; the same random draws in the same order per step)."""
        was_training = self.G.training
        self.G.eval()
        xs: list[Tensor] = [s for s in starts]
        x1s: list[Tensor | None] = [None] * len(starts)
        tau = self.config.tau
        for t in range(t_end + 1):
            for i, x in enumerate(xs):
                if t > 0:
                    x = sb_step(x, x1s[i], self.times, t, tau, self._randn(x.shape, gen))
                    xs[i] = x
                with self.autocast():
                    x1s[i] = self.G(x, self._steps(t, x.shape[0]), self._z(x.shape[0], gen)).float()
        self.G.train(was_training)
        return xs

    def _nce(self, src: Tensor, tgt: Tensor, gen: torch.Generator) -> Tensor:
        c = self.config
        n = src.shape[0]
        z = self._z(n, gen)
        t0 = self._steps(0, n)
        with self.autocast():
            feat_q = self.G.encode(tgt, t0, z, c.nce_layers)
            feat_k = self.G.encode(src, t0, z, c.nce_layers)
        feat_k_pool, ids = self.F([f.float() for f in feat_k], c.num_patches, gen=gen)
        feat_q_pool, _ = self.F([f.float() for f in feat_q], c.num_patches, patch_ids=ids)
        total = sum(
            patch_nce_loss(q, k, n, c.nce_temperature).mean() * c.lambda_nce
            for q, k in zip(feat_q_pool, feat_k_pool, strict=True)
        )
        return total / len(c.nce_layers)

    def _energy(self, p: Tensor, p2: Tensor, steps: Tensor) -> tuple[Tensor, Tensor]:
        """(E(p, p).mean(), logsumexp over the patch map of E(p, p2))."""
        with self.autocast():
            e_same = self.E(p, steps, p).float()
            e_cross = self.E(p, steps, p2).float()
        return e_same.mean(), torch.logsumexp(e_cross.reshape(-1), dim=0)

    def train_step(self, batch: dict[str, Tensor], progress: Progress) -> dict[str, Tensor]:
        a, b = batch["a"], batch["b"]
        fwd = self._forward(a, b)
        loss_d_fake, loss_d_real = self._update_d(fwd, b)
        loss_e = self._update_e(fwd)
        g = self._update_g(fwd, a, b)
        losses = {**g, "D_real": loss_d_real, "D_fake": loss_d_fake, "E": loss_e}
        return {k: v.detach() for k, v in losses.items()}  # read by the loop, not here

    def _forward(self, a: Tensor, b: Tensor) -> _Pass:
        """Step 1: draw t, simulate the bridge to x_t, map x_t to x1_hat."""
        c, gen = self.config, self.gen
        n = a.shape[0]
        a2 = self.prev_a if self.prev_a is not None and self.prev_a.shape == a.shape else torch.roll(a, 1, 0)
        self.prev_a = a.detach().clone()
        t = int(torch.randint(c.num_timesteps, (1,), generator=gen, device=self.device).item())
        steps = self._steps(t, n)

        starts = [a, a2, b] if c.nce_idt else [a, a2]
        sim = self._simulate(starts, t, gen)
        xt, xt2 = sim[0], sim[1]
        z_in = self._z(2 * n if c.nce_idt else n, gen)
        z_in2 = self._z(n, gen)
        realt = torch.cat([xt, sim[2]], 0) if c.nce_idt else xt
        with self.autocast():
            fake = self.G(realt, self._steps(t, realt.shape[0]), z_in).float()
            fake_b2 = self.G(xt2, steps, z_in2).float()
        return _Pass(t, steps, xt, xt2, fake[:n], fake_b2, fake[n:] if c.nce_idt else None)

    def _update_d(self, fwd: _Pass, b: Tensor) -> tuple[Tensor, Tensor]:
        """The D step: least squares, real target vs x1_hat, at the same step."""
        self.requires_grad([self.D, self.E], True)
        opt = self._opts["D"]
        opt.zero_grad(set_to_none=True)
        with self.autocast():
            pred_fake = self.D(fwd.fake_b.detach(), fwd.steps).float()
            pred_real = self.D(b, fwd.steps).float()
        loss_d_fake, loss_d_real = lsgan_loss(pred_fake, False), lsgan_loss(pred_real, True)
        loss_d = 0.5 * (loss_d_fake + loss_d_real)
        loss_d.backward()
        opt.step()
        return loss_d_fake, loss_d_real

    def _update_e(self, fwd: _Pass) -> Tensor:
        """The E step: the energy network on (x_t, x1_hat) pairs, contrasted with the second batch."""
        opt = self._opts["E"]
        opt.zero_grad(set_to_none=True)
        p, p2 = torch.cat([fwd.xt, fwd.fake_b.detach()], 1), torch.cat([fwd.xt2, fwd.fake_b2.detach()], 1)
        e_same, s = self._energy(p, p2, fwd.steps)
        loss_e = -e_same + s + s**2
        loss_e.backward()
        opt.step()
        return loss_e

    def _update_g(self, fwd: _Pass, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """The G + F step: LSGAN + lambda_SB SB + PatchNCE (with the identity NCE)."""
        c, opt, T, t = self.config, self._opts, self.config.num_timesteps, fwd.t
        self.requires_grad([self.D, self.E], False)
        opt["G"].zero_grad(set_to_none=True)
        opt["F"].zero_grad(set_to_none=True)
        with self.autocast():
            loss_g_gan = lsgan_loss(self.D(fwd.fake_b, fwd.steps).float(), True) * c.lambda_gan
        p, p2 = torch.cat([fwd.xt, fwd.fake_b], 1), torch.cat([fwd.xt2, fwd.fake_b2], 1)
        e_same, s = self._energy(p, p2, fwd.steps)
        loss_sb = -(T - t) / T * c.tau * (e_same - s) + c.tau * torch.mean((fwd.xt - fwd.fake_b) ** 2)
        loss_nce = self._nce(a, fwd.fake_b, self.gen)
        if c.nce_idt:
            loss_nce_y = self._nce(b, fwd.idt_b, self.gen)
            loss_nce_both = 0.5 * (loss_nce + loss_nce_y)
        else:
            loss_nce_y = torch.zeros(())
            loss_nce_both = loss_nce
        # lambda_NCE again on the sum, as the reference (already in each layer's NCE): squared
        loss_g = loss_g_gan + c.lambda_sb * loss_sb + c.lambda_nce * loss_nce_both
        loss_g.backward()
        opt["G"].step()
        opt["F"].step()
        self.requires_grad([self.D, self.E], True)
        return {"G": loss_g, "G_GAN": loss_g_gan, "SB": loss_sb, "NCE": loss_nce, "NCE_Y": loss_nce_y}

    @torch.no_grad()
    def translate(self, a: Tensor, mask_a: Tensor | None = None, fg_a: Tensor | None = None) -> Tensor:
        return self.trajectory(a)[-1]

    @torch.no_grad()
    def trajectory(self, a: Tensor, steps: int | None = None) -> list[Tensor]:
        """x1_hat after each of the first `steps` (None: all T) generator steps from the source
        image (after all T, the last one is the translation). Step t's draws come after step
        t-1's, so a shorter trajectory is the longer one's start."""
        gen = _generator(self.device, derive_seed(self.seed, "unsb", "infer"))
        was_training = self.G.training
        self.G.eval()
        x, x1, out = a, None, []
        for t in range(self.config.num_timesteps if steps is None else steps):
            if t > 0:
                x = sb_step(x, x1, self.times, t, self.config.tau, self._randn(x.shape, gen))
            with self.autocast():
                x1 = self.G(x, self._steps(t, x.shape[0]), self._z(x.shape[0], gen)).float()
            out.append(x1)
        self.G.train(was_training)
        return out

    def panels(
        self, a: Tensor, mask_a: Tensor | None = None, fg_a: Tensor | None = None
    ) -> dict[str, Tensor]:
        """The first step's x1_hat beside the final one: how much the later steps refine."""
        return {"step 1": self.trajectory(a, steps=1)[0]}  # not all T steps again
