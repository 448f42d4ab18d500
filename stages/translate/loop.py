"""The training loop all translators share.

Schedule: `n_epochs` at the base learning rate, then `n_epochs_decay` epochs decaying
linearly towards zero (junyanz/pytorch-CycleGAN-and-pix2pix `lambda_rule`, epoch_count 1):
during 0-based epoch e the factor is 1 - max(0, e + 1 - n_epochs) / (n_epochs_decay + 1).

Checkpoints (`checkpoints/last.pt` in the unit's partial folder, every `checkpoint_every`
epochs and at the end) hold every network, optimizer, scheduler, the model's extra state
(image pools), the loss log and the RNG states of Python, NumPy, torch CPU and CUDA, so a
resumed run continues exactly where the uninterrupted one would have been (the references
restore only weights).
"""

import csv
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtrans.shared.config.translate import Acceleration, Schedule
from medtrans.shared.log import get_logger, progress
from medtrans.stages.translate.base import Progress, Translator
from medtrans.stages.translate.data import TrainData, pair_indices

CHECKPOINT = Path("checkpoints") / "last.pt"
LOSSES_CSV = "losses.csv"
LOSSES_PNG = "losses.png"
log = get_logger("medtrans.translate")

# Called after every iteration with its Progress; tests use it to interrupt a run.
ITERATION_HOOKS: list[Callable[[Progress], None]] = []


def lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """Learning-rate multiplier during 0-based `epoch`."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


@dataclass
class LoopResult:
    iterations: int
    epochs: int
    seconds_per_iteration: float | None  # wall clock, over the iterations run in this call
    cpu_seconds_per_iteration: float | None  # process CPU time (all threads), same iterations
    final_losses: dict[str, float]
    resumed_from_iteration: int
    loss_rows: list[dict[str, float]] = field(default_factory=list)


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, model: Translator, schedulers: dict, state: dict[str, Any]) -> None:
    """Everything needed to continue exactly; written to a temporary file then renamed."""
    payload = {
        "networks": {k: v.state_dict() for k, v in model.networks().items()},
        "optimizers": {k: v.state_dict() for k, v in model.optimizers().items()},
        "schedulers": {k: v.state_dict() for k, v in schedulers.items()},
        "extra": model.extra_state(),
        "rng": _rng_state(),
        **state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _interned(obj: Any) -> Any:
    """Dict keys as the interned strings an uninterrupted run uses (its loss names are source
    literals): pickle shares identical objects, so without this a resumed run's checkpoint holds
    the same values in different bytes."""
    if isinstance(obj, dict):
        return {sys.intern(k) if isinstance(k, str) else k: _interned(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_interned(v) for v in obj]
    return obj


def load_checkpoint(path: Path, model: Translator, schedulers: dict) -> dict[str, Any]:
    # on the CPU first: RNG states must stay CPU tensors; load_state_dict moves the rest
    payload = torch.load(path, map_location="cpu", weights_only=False)
    for k, net in model.networks().items():
        net.load_state_dict(payload["networks"][k])
    for k, opt in model.optimizers().items():
        opt.load_state_dict(payload["optimizers"][k])
    for k, sch in schedulers.items():
        sch.load_state_dict(payload["schedulers"][k])
    model.load_extra_state(payload["extra"])
    _set_rng_state(payload["rng"])
    return payload


def write_losses(work: Path, rows: list[dict[str, float]]) -> None:
    """losses.csv (iteration, epoch, one column per loss) and losses.png."""
    names = sorted({k for r in rows for k in r} - {"iteration", "epoch"})
    with open(work / LOSSES_CSV, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["iteration", "epoch", *names])
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    its = [r["iteration"] for r in rows]
    for name in names:
        ax.plot(its, [r.get(name, math.nan) for r in rows], label=name, lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    if rows:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(work / LOSSES_PNG, metadata={"Software": None})
    plt.close(fig)


def prepare(model: Translator, accel: Acceleration) -> None:
    """Acceleration on CUDA only: bf16 autocast flag and channels_last networks."""
    if model.device.type != "cuda":
        return
    model.bf16 = accel.bf16
    if accel.channels_last:
        for net in model.networks().values():
            net.to(memory_format=torch.channels_last)


def train(
    model: Translator,
    data: TrainData,
    schedule: Schedule,
    work: Path,
    seed: int,
    *,
    accel: Acceleration | None = None,
    log_every: int = 10,
    resume: bool = True,
    desc: str = "train",
) -> LoopResult:
    """Train `model` for the schedule; resume from `work/checkpoints/last.pt` when present."""
    accel = accel or Acceleration()
    prepare(model, accel)
    iters = data.iters_per_epoch(schedule.batch_size, schedule.iters_per_epoch)
    n_ep, n_dec = schedule.n_epochs, schedule.n_epochs_decay
    total_epochs = n_ep + n_dec
    schedulers = {
        k: torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(e, n_ep, n_dec))
        for k, opt in model.optimizers().items()
    }
    ckpt = work / CHECKPOINT
    start_epoch, rows, window = 0, [], {}
    if resume and ckpt.is_file():
        state = load_checkpoint(ckpt, model, schedulers)
        start_epoch, rows, window = state["epoch"], _interned(state["loss_rows"]), _interned(state["window"])
        log.info("%s: resumed after epoch %d/%d", desc, start_epoch, total_epochs)
    start_iter = start_epoch * iters
    channels_last = model.device.type == "cuda" and accel.channels_last

    model.set_train(True)
    last: dict[str, float] = {}
    t0, c0, done = time.perf_counter(), time.process_time(), 0
    bar = progress(
        range(start_iter, total_epochs * iters), desc, total=total_epochs * iters, initial=start_iter
    )
    it_bar = iter(bar)
    for epoch in range(start_epoch, total_epochs):
        idx_a, idx_b = pair_indices(
            seed, epoch, len(data.source), len(data.target), iters, schedule.batch_size
        )
        for i in range(iters):
            next(it_bar, None)
            batch = data.batch(idx_a[i], idx_b[i], model.device)
            if channels_last:
                batch = {
                    k: (v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v)
                    for k, v in batch.items()
                }
            prog = Progress(epoch * iters + i, epoch, iters, n_ep, n_dec)
            last = model.train_step(batch, prog)
            done += 1
            for k, v in last.items():
                window.setdefault(k, []).append(float(v))
            n_it = prog.iteration + 1
            if n_it % log_every == 0 or n_it == total_epochs * iters:
                rows.append(
                    {
                        "iteration": n_it,
                        "epoch": round(n_it / iters, 4),
                        **{k: float(np.mean(v)) for k, v in window.items()},
                    }
                )
                window = {}
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(
                        {k: f"{v:.3g}" for k, v in rows[-1].items() if k not in ("iteration", "epoch")}
                    )
            for hook in ITERATION_HOOKS:
                hook(prog)
        for sch in schedulers.values():
            sch.step()
        if (epoch + 1) % schedule.checkpoint_every == 0 or epoch + 1 == total_epochs:
            save_checkpoint(
                ckpt, model, schedulers, {"epoch": epoch + 1, "loss_rows": rows, "window": window}
            )
            write_losses(work, rows)
    if hasattr(bar, "close"):
        bar.close()
    if start_epoch >= total_epochs:
        write_losses(work, rows)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    model.set_train(False)
    final = {k: v for k, v in (rows[-1].items() if rows else ()) if k not in ("iteration", "epoch")}
    return LoopResult(
        iterations=total_epochs * iters,
        epochs=total_epochs,
        seconds_per_iteration=(elapsed / done) if done else None,
        cpu_seconds_per_iteration=(cpu / done) if done else None,
        final_losses=final or {k: float(v) for k, v in last.items()},
        resumed_from_iteration=start_iter,
        loss_rows=rows,
    )
