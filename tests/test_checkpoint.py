"""shared/checkpoint.py on its own: a round trip restores the objects and every random state,
a save is atomic and runs the hook, and a checkpoint that does not fit is refused by name.
(Exact resume of real training: test_translate_framework, test_unsb, test_spade, test_segment.)"""

import random

import numpy as np
import pytest
import torch

from medtrans.shared import checkpoint


class Augment:
    """Stands in for a MONAI random transform: its own RandomState in `.R`."""

    def __init__(self, seed: int):
        self.R = np.random.RandomState(seed)


def make(seed: int = 0):
    torch.manual_seed(seed)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    sch = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    gen = torch.Generator().manual_seed(seed)
    aug = Augment(seed)
    objects = checkpoint.Resumable({"net": net}, {"adam": opt}, {"lr": sch}, {"loader": gen}, [aug])
    return net, opt, sch, gen, aug, objects


def step(net, opt, sch) -> None:
    opt.zero_grad()
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    sch.step()


def draws(gen, aug) -> list:
    return [
        random.random(),
        np.random.rand(),
        torch.rand(1).item(),
        torch.rand(1, generator=gen).item(),
        aug.R.rand(),
    ]


def test_round_trip_restores_objects_and_every_random_state(tmp_path):
    net, opt, sch, gen, aug, objects = make(0)
    step(net, opt, sch)
    path = tmp_path / "ck" / "last.pt"
    checkpoint.save(path, objects, 1, {"log": [1.0]}, {"pool": [2]})
    expected = draws(gen, aug)
    weights = {k: v.clone() for k, v in net.state_dict().items()}

    net2, opt2, sch2, gen2, aug2, objects2 = make(1)  # other weights, other random states
    restored = checkpoint.load(path, objects2)
    assert (restored.epoch, restored.state, restored.extra) == (1, {"log": [1.0]}, {"pool": [2]})
    for k, v in weights.items():
        assert torch.equal(net2.state_dict()[k], v)
    assert opt2.state_dict()["state"][0]["step"] == 1 and sch2.last_epoch == 1
    assert draws(gen2, aug2) == expected


def test_save_is_atomic_and_runs_the_hook_after_it(tmp_path):
    net, opt, sch, gen, aug, objects = make()
    path = tmp_path / "last.pt"
    seen = []

    def hook(saved: checkpoint.Saved) -> None:
        assert saved.path.is_file() and not saved.path.with_suffix(".tmp").exists()
        seen.append(saved.epoch)

    with checkpoint.after_save(hook):
        checkpoint.save(path, objects, 1, {})
        checkpoint.save(path, objects, 2, {})
    checkpoint.save(path, objects, 3, {})  # outside the block: the hook is gone
    assert seen == [1, 2]
    assert torch.load(path, weights_only=False)["epoch"] == 3


def test_a_checkpoint_that_does_not_fit_is_refused_by_name(tmp_path):
    *_, objects = make()
    path = tmp_path / "last.pt"
    checkpoint.save(path, objects, 1, {})
    other = checkpoint.Resumable(
        {"generator": torch.nn.Linear(3, 2)},
        objects.optimizers,
        objects.schedulers,
        objects.generators,
        objects.randomizables,
    )
    with pytest.raises(checkpoint.CheckpointError, match="last.pt: holds networks"):
        checkpoint.load(path, other)
    fewer = checkpoint.Resumable(objects.networks, objects.optimizers, objects.schedulers)
    with pytest.raises(checkpoint.CheckpointError, match="other generators or transforms"):
        checkpoint.load(path, fewer)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="last.pt: unreadable"):
        checkpoint.load(path, objects)
