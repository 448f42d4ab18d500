"""Exact-resume checkpoints for the training loops (translate and segment).

A checkpoint holds everything the next epoch reads, so a run resumed from it ends exactly
where the uninterrupted run would have (the reference repositories restore weights only):
the networks, optimizers and LR schedulers; the trainer's own extra state (image pools); the
loop's counters and logs; and every random state: Python, NumPy, torch CPU and CUDA, plus the
loop's own generators (a data loader's shuffle generator) and the NumPy RandomState of each
object that keeps one in `.R` (MONAI's random transforms).

The file is written to a temporary name and renamed, so a crash during the save leaves the
previous checkpoint. It is read on the CPU first: RNG states must stay CPU tensors, and
`load_state_dict` moves the rest to where the live objects are.

Tests interrupt training through one hook: `after_save(fn)` runs `fn(Saved)` after every
checkpoint is in place; raising there simulates a crash at any point before the next save,
since everything after a checkpoint is recomputed on resume.
"""

import contextlib
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint that cannot continue this training (unreadable, or other objects)."""


@dataclass(frozen=True)
class Resumable:
    """The live objects a checkpoint saves and restores in place, each by a stable name."""

    networks: Mapping[str, torch.nn.Module]
    optimizers: Mapping[str, torch.optim.Optimizer]
    schedulers: Mapping[str, Any] = field(default_factory=dict)
    generators: Mapping[str, torch.Generator] = field(default_factory=dict)
    randomizables: Sequence[Any] = ()  # objects with their own np.random.RandomState in `.R`


@dataclass(frozen=True)
class Saved:
    """What a hook learns about a checkpoint just written."""

    path: Path
    epoch: int  # epochs completed


@dataclass(frozen=True)
class Restored:
    """A loaded checkpoint's own parts; the live objects are already restored."""

    epoch: int
    extra: dict[str, Any]
    state: dict[str, Any]  # the loop's counters and logs, as passed to `save`


_HOOKS: list[Callable[[Saved], None]] = []


@contextlib.contextmanager
def after_save(hook: Callable[[Saved], None]) -> Iterator[None]:
    """Run `hook` after every checkpoint written inside the block (tests raise there)."""
    _HOOKS.append(hook)
    try:
        yield
    finally:
        _HOOKS.remove(hook)


def rng_state(objects: Resumable) -> dict[str, Any]:
    """Every random state the loop reads; the optional parts only where the loop has them."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if objects.generators:
        state["generators"] = {k: g.get_state() for k, g in objects.generators.items()}
    if objects.randomizables:
        state["randomizables"] = [r.R.get_state() for r in objects.randomizables]
    return state


def set_rng_state(state: dict[str, Any], objects: Resumable, path: Path) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved_gens = state.get("generators", {})
    saved_rand = state.get("randomizables", [])
    if set(saved_gens) != set(objects.generators) or len(saved_rand) != len(objects.randomizables):
        raise CheckpointError(f"{path}: written with other generators or transforms; {_FIX}")
    for name, gen in objects.generators.items():
        gen.set_state(saved_gens[name])
    for member, s in zip(objects.randomizables, saved_rand, strict=True):
        member.R.set_state(s)


_FIX = "delete it (or rerun the stage with --force) to start the training over"


def save(
    path: Path,
    objects: Resumable,
    epoch: int,
    state: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write the checkpoint after `epoch` completed epochs atomically, then run the hooks."""
    payload = {
        "networks": {k: v.state_dict() for k, v in objects.networks.items()},
        "optimizers": {k: v.state_dict() for k, v in objects.optimizers.items()},
        "schedulers": {k: v.state_dict() for k, v in objects.schedulers.items()},
        "extra": extra if extra is not None else {},
        "rng": rng_state(objects),
        "epoch": epoch,
        **state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    for hook in list(_HOOKS):
        hook(Saved(path, epoch))


def _restore(kind: str, live: Mapping[str, Any], saved: Mapping[str, Any], path: Path) -> None:
    if set(live) != set(saved):
        raise CheckpointError(
            f"{path}: holds {kind} {sorted(saved)}, the training has {sorted(live)}; {_FIX}"
        )
    for name, obj in live.items():
        obj.load_state_dict(saved[name])


def load(path: Path, objects: Resumable) -> Restored:
    """Restore `objects` and the random states from `path`; returns the rest."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file: say which and what to do
        raise CheckpointError(f"{path}: unreadable checkpoint ({err}); {_FIX}") from None
    own = ("networks", "optimizers", "schedulers", "extra", "rng", "epoch")
    if not isinstance(payload, dict) or not set(own) <= set(payload):
        raise CheckpointError(f"{path}: not a medtrans training checkpoint; {_FIX}")
    _restore("networks", objects.networks, payload["networks"], path)
    _restore("optimizers", objects.optimizers, payload["optimizers"], path)
    _restore("schedulers", objects.schedulers, payload["schedulers"], path)
    set_rng_state(payload["rng"], objects, path)
    state = {k: v for k, v in payload.items() if k not in own}
    return Restored(epoch=payload["epoch"], extra=payload["extra"], state=state)
