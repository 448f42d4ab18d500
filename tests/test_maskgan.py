"""MaskGAN: the attention generator's composition, the losses (with the reference's
bugs fixed), and learning a known mapping."""

import pytest
import torch
from test_translate_framework import held_out_error, one_thread  # noqa: F401

from medtrans.shared.config.translate import MaskGANConfig
from medtrans.stages.translate.base import Progress
from medtrans.stages.translate.maskgan import AttentionGenerator, MaskGAN

pytestmark = pytest.mark.usefixtures("one_thread")


def model(**kw) -> MaskGAN:
    torch.manual_seed(0)
    cfg = MaskGANConfig(ngf=4, ndf=4, n_blocks=1, **kw)
    return MaskGAN(cfg, n_classes=2, image_size=32, device=torch.device("cpu"), seed=1)


def test_output_is_content_and_input_weighted_by_softmax_attention():
    g = AttentionGenerator(1, 1, ngf=4, n_blocks=1, n_att=5)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    out, att = g(x)
    assert att.shape == (2, 5, 32, 32)
    assert torch.allclose(att.sum(1), torch.ones(2, 32, 32), atol=1e-5)
    content = g.content(g.encoder(x))
    assert content.shape == (2, 5, 32, 32)  # n_att x C channels, the last one unused
    want = (content[:, :4] * att[:, :4]).sum(1, keepdim=True) + x * att[:, 4:]
    assert torch.allclose(out, want, atol=1e-6)
    with torch.no_grad():  # all attention on the background map: the input is copied
        g.attention[-1].bias.copy_(torch.tensor([-50.0, -50, -50, -50, 50]))
        g.attention[-1].weight.zero_()
    assert torch.allclose(g(x)[0], x, atol=1e-5)


def test_mask_and_shape_losses_pair_the_right_maps():
    m = model(lambda_mask=1.0, lambda_shape=0.5)
    z, o = torch.zeros(1, 8, 8), torch.ones(1, 8, 8)
    batch = {"fg_a": o, "fg_b": z}
    att = {"fake_b": z, "rec_a": o, "fake_a": z, "rec_b": z}
    prog = Progress(iteration=0, epoch=1, iters_per_epoch=1, n_epochs=2, n_epochs_decay=1)
    losses = {k: float(v) for k, v in m._extra_losses(batch, att, prog).items()}
    # background attention 0 where a is all foreground: right; where b is all background: off by 1
    assert losses["mask_A"] == 0 and losses["mask_B"] == 1
    # shape: G_A(a) vs G_B(G_A(a)) differ by 1 everywhere; G_B(b) vs G_A(G_B(b)) agree (the
    # reference compared the B side with the A side's reconstruction)
    ramp = 0.5 * (1 + 1) / (3 + 1)
    assert losses["shape_A"] == pytest.approx(ramp) and losses["shape_B"] == 0


def test_step_clips_generator_gradients_and_trains_everything():
    m = model(grad_clip=1.0)
    seen = []
    real_step = m.opt_G.step

    def spy(*a, **k):
        grads = [p.grad for g in (m.G_A, m.G_B) for p in g.parameters() if p.grad is not None]
        seen.append(
            float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        )
        return real_step(*a, **k)

    m.opt_G.step = spy
    before = {k: [p.clone() for p in n.parameters()] for k, n in m.networks().items()}
    fg = torch.zeros(2, 32, 32)
    fg[:, 8:24, 8:24] = 1
    batch = {
        "a": torch.rand(2, 1, 32, 32) * 2 - 1,
        "b": torch.rand(2, 1, 32, 32) * 2 - 1,
        "fg_a": fg,
        "fg_b": fg,
    }
    losses = m.train_step(batch, Progress(0, 0, 1, 1, 1))
    assert {"mask_A", "mask_B", "shape_A", "shape_B", "D_A", "D_B", "cycle_A"} <= set(losses)
    assert seen and seen[0] <= 1.0 + 1e-4
    for k, net in m.networks().items():
        assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), before[k], strict=True)), k
    assert set(m.panels(batch["a"])) == {"background_attention"}


def test_learns_a_known_mapping(tmp_path):
    """As for CycleGAN: held-out source slices within 25 gray levels of the known answer."""
    settings = {
        "ngf": 8,
        "ndf": 8,
        "n_blocks": 2,
        "lr": 1e-3,
        "schedule": {"n_epochs": 6, "n_epochs_decay": 6, "iters_per_epoch": 10, "batch_size": 1},
    }
    untrained, trained, copy = held_out_error("maskgan", settings, tmp_path)
    print(f"maskgan held-out MAE: untrained {untrained:.1f}, trained {trained:.1f}, copy {copy:.1f}")
    assert trained < 25
    assert trained < 0.7 * copy
    assert trained < 0.4 * untrained
