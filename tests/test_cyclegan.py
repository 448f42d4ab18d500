"""CycleGAN: the reference architecture's size, and learning a known mapping."""

import pytest
import torch
from test_translate_framework import held_out_error, one_thread  # noqa: F401

from medtrans.shared.config.translate import CycleGANConfig
from medtrans.stages.translate.base import Progress
from medtrans.stages.translate.cyclegan import CycleGAN
from medtrans.stages.translate.nets import ResnetGenerator, patch_discriminator

pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_reference_sizes():
    """junyanz prints 11.378 M parameters for resnet_9blocks and 2.765 M for the basic
    PatchGAN discriminator (RGB, ngf = ndf = 64)."""
    assert round(n_params(ResnetGenerator(3, 3, 64, 9)) / 1e6, 3) == 11.378
    assert round(n_params(patch_discriminator(3, 64, 3)) / 1e6, 3) == 2.765
    x = torch.zeros(1, 1, 256, 256)
    assert ResnetGenerator(1, 1, 8, 1)(x).shape == x.shape
    assert patch_discriminator(1, 8, 3)(x)[-1].shape == (1, 1, 30, 30)  # 70x70 receptive field


def test_step_updates_every_network_and_reports_the_losses():
    cfg = CycleGANConfig(ngf=4, ndf=4, n_blocks=1)
    torch.manual_seed(0)
    m = CycleGAN(cfg, n_classes=2, image_size=32, device=torch.device("cpu"), seed=1)
    before = {k: [p.clone() for p in n.parameters()] for k, n in m.networks().items()}
    batch = {"a": torch.rand(2, 1, 32, 32) * 2 - 1, "b": torch.rand(2, 1, 32, 32) * 2 - 1}
    losses = m.train_step(batch, Progress(0, 0, 1, 1, 1))
    assert set(losses) == {"G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"}
    for k, net in m.networks().items():
        assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), before[k], strict=True)), k
    assert len(m.pool_A.images) == len(m.pool_B.images) == 2
    out = m.translate(batch["a"])
    assert out.shape == (2, 1, 32, 32) and out.abs().max() <= 1


def test_learns_a_known_mapping(tmp_path):
    """Trained briefly on intensity inversion inside the body, held-out source slices come
    out within 25 gray levels (mean absolute error) of the right answer; copying the input
    is off by about 37 and the untrained generator by far more."""
    settings = {
        "ngf": 8,
        "ndf": 8,
        "n_blocks": 2,
        "lr": 1e-3,
        "schedule": {"n_epochs": 6, "n_epochs_decay": 6, "iters_per_epoch": 10},
    }
    untrained, trained, copy = held_out_error("cyclegan", settings, tmp_path)
    print(f"cyclegan held-out MAE: untrained {untrained:.1f}, trained {trained:.1f}, copy {copy:.1f}")
    assert trained < 25
    assert trained < 0.7 * copy
    assert trained < 0.4 * untrained
