"""The training loop all translators share.

Schedule: `n_epochs` at the base learning rate, then `n_epochs_decay` epochs decaying
linearly towards zero (junyanz/pytorch-CycleGAN-and-pix2pix `lambda_rule`, epoch_count 1):
during 0-based epoch e the factor is 1 - max(0, e + 1 - n_epochs) / (n_epochs_decay + 1).

Checkpoints (`checkpoints/last.pt` in the unit's partial folder, every `checkpoint_every`
epochs and at the end) are written by `medtrans.shared.checkpoint`: every network,
optimizer, scheduler, the model's extra state (image pools), the loss log and every RNG
state, so a resumed run continues exactly where the uninterrupted one would have been (the
references restore only weights). The pairing needs no saved state: it is a pure function
of (seed, epoch).
"""

import csv
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medtrans.shared import checkpoint
from medtrans.shared.config.translate import Acceleration, Augment, Schedule
from medtrans.shared.device import fuse_optimizers, host_floats
from medtrans.shared.log import get_logger, progress
from medtrans.stages.translate import augment as aug
from medtrans.stages.translate.base import Progress, Translator
from medtrans.stages.translate.data import TrainData, pair_indices

CHECKPOINT = Path("checkpoints") / "last.pt"
LOSSES_CSV = "losses.csv"
LOSSES_PNG = "losses.png"
log = get_logger("medtrans.translate")


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


@dataclass
class LossLog:
    """losses.csv's rows (each the mean over `log_every` iterations) and the open window;
    both go into the checkpoint, so a resumed run logs the same rows.

    A step's losses are 0-dim tensors. On a CPU each is read at once (`float`, as always); on
    CUDA (`deferred`) they stay on the device and the window is read in one transfer when its
    row closes or a checkpoint is written, so the step never waits for the GPU. Both read the
    same float32 values into the same doubles: the rows are the same numbers either way."""

    rows: list[dict[str, float]] = field(default_factory=list)
    window: dict[str, list] = field(default_factory=dict)
    deferred: bool = False

    def add(self, losses: dict) -> None:
        for k, v in losses.items():
            keep = self.deferred and torch.is_tensor(v)
            self.window.setdefault(k, []).append(v.detach() if keep else float(v))

    def settle(self) -> None:
        """Every value of the open window as a float (one device-to-host copy per loss name)."""
        for k, values in self.window.items():
            if any(torch.is_tensor(v) for v in values):
                self.window[k] = host_floats(values)

    def close_row(self, n_iterations: int, iters_per_epoch: int) -> dict[str, float]:
        self.settle()
        row = {
            "iteration": n_iterations,
            "epoch": round(n_iterations / iters_per_epoch, 4),
            **{k: float(np.mean(v)) for k, v in self.window.items()},
        }
        self.rows.append(row)
        self.window = {}
        return row

    def state(self) -> dict:
        self.settle()
        return {"loss_rows": self.rows, "window": self.window}

    def final(self) -> dict[str, float]:
        return {
            k: v for k, v in (self.rows[-1].items() if self.rows else ()) if k not in ("iteration", "epoch")
        }


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
    """Acceleration on CUDA only: bf16 autocast flag, channels_last networks, fused optimizers.
    A CPU run is left exactly as it was."""
    if model.device.type != "cuda":
        return
    model.bf16 = accel.bf16
    if accel.channels_last:
        for net in model.networks().values():
            net.to(memory_format=torch.channels_last)
    fuse_optimizers(model.optimizers().values())


@dataclass
class _Run:
    """What every iteration of one `train` call reads."""

    model: Translator
    data: TrainData
    schedule: Schedule
    seed: int
    iters: int  # per epoch
    log_every: int
    channels_last: bool
    bar: object  # the progress bar (set_postfix when it has one)
    augment: Augment | None = None  # None: the slices as they are

    @property
    def total_epochs(self) -> int:
        return self.schedule.n_epochs + self.schedule.n_epochs_decay


def make_schedulers(model: Translator, schedule: Schedule) -> dict:
    """One LambdaLR per optimizer, following `lr_factor`."""
    n_ep, n_dec = schedule.n_epochs, schedule.n_epochs_decay
    return {
        k: torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(e, n_ep, n_dec))
        for k, opt in model.optimizers().items()
    }


def _resume(path: Path, model: Translator, objects: checkpoint.Resumable) -> tuple[int, LossLog]:
    """Epochs done and the loss log, restored from `path`."""
    restored = checkpoint.load(path, objects)
    model.load_extra_state(restored.extra)
    state = restored.state
    return restored.epoch, LossLog(_interned(state["loss_rows"]), _interned(state["window"]))


def _interned(obj):
    """Dict keys as the interned strings an uninterrupted run uses (its loss names are source
    literals): pickle shares identical objects, so without this a resumed run's checkpoint holds
    the same values in different bytes."""
    if isinstance(obj, dict):
        return {sys.intern(k) if isinstance(k, str) else k: _interned(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_interned(v) for v in obj]
    return obj


def _batch(run: _Run, idx_a, idx_b, draws, i: int) -> dict[str, torch.Tensor]:
    batch = run.data.batch(idx_a, idx_b, run.model.device)
    if draws is not None:
        batch = aug.augment_batch(batch, run.augment, draws, i)
    if run.channels_last:
        batch = {
            k: (v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v)
            for k, v in batch.items()
        }
    return batch


def _epoch(run: _Run, epoch: int, losses: LossLog, ticks) -> dict:
    """One epoch of updates; returns the last step's losses (0-dim tensors)."""
    s = run.schedule
    idx_a, idx_b = pair_indices(
        run.seed,
        epoch,
        len(run.data.source),
        len(run.data.target),
        run.iters,
        s.batch_size,
        run.model.epoch_over,
    )
    draws = None
    if run.augment is not None and aug.active(run.augment):
        size = run.data.source.images.shape[-1]
        draws = tuple(
            aug.epoch_draws(run.augment, size, run.seed, epoch, d, run.iters, s.batch_size)
            for d in ("source", "target")
        )
    last: dict = {}
    for i in range(run.iters):
        next(ticks, None)
        prog = Progress(epoch * run.iters + i, epoch, run.iters, s.n_epochs, s.n_epochs_decay)
        last = run.model.train_step(_batch(run, idx_a[i], idx_b[i], draws, i), prog)
        losses.add(last)
        n_it = prog.iteration + 1
        if n_it % run.log_every == 0 or n_it == run.total_epochs * run.iters:
            row = losses.close_row(n_it, run.iters)
            if hasattr(run.bar, "set_postfix"):
                run.bar.set_postfix(
                    {k: f"{v:.3g}" for k, v in row.items() if k not in ("iteration", "epoch")}
                )
    return last


def train(
    model: Translator,
    data: TrainData,
    schedule: Schedule,
    work: Path,
    seed: int,
    *,
    accel: Acceleration | None = None,
    augment: Augment | None = None,
    log_every: int = 10,
    resume: bool = True,
    desc: str = "train",
) -> LoopResult:
    """Train `model` for the schedule; resume from `work/checkpoints/last.pt` when present.
    `augment` None trains on the slices as they are."""
    accel = accel or Acceleration()
    prepare(model, accel)
    iters = data.iters_per_epoch(schedule.batch_size, schedule.iters_per_epoch, model.epoch_over)
    total_epochs = schedule.n_epochs + schedule.n_epochs_decay
    schedulers = make_schedulers(model, schedule)
    objects = checkpoint.Resumable(model.networks(), model.optimizers(), schedulers)
    ckpt = work / CHECKPOINT
    start_epoch, losses = 0, LossLog()
    if resume and ckpt.is_file():
        start_epoch, losses = _resume(ckpt, model, objects)
        log.info("%s: resumed after epoch %d/%d", desc, start_epoch, total_epochs)
    losses.deferred = model.device.type == "cuda"  # a CPU reads each loss at once, as always
    start_iter = start_epoch * iters

    model.set_train(True)
    clock = (time.perf_counter(), time.process_time())
    bar = progress(
        range(start_iter, total_epochs * iters), desc, total=total_epochs * iters, initial=start_iter
    )
    channels_last = model.device.type == "cuda" and accel.channels_last
    run = _Run(model, data, schedule, seed, iters, log_every, channels_last, bar, augment)
    ticks, last = iter(bar), {}
    for epoch in range(start_epoch, total_epochs):
        last = _epoch(run, epoch, losses, ticks)
        for sch in schedulers.values():
            sch.step()
        if (epoch + 1) % schedule.checkpoint_every == 0 or epoch + 1 == total_epochs:
            checkpoint.save(ckpt, objects, epoch + 1, losses.state(), model.extra_state())
            write_losses(work, losses.rows)
    if hasattr(bar, "close"):
        bar.close()
    if start_epoch >= total_epochs:
        write_losses(work, losses.rows)
    model.set_train(False)
    return _result(total_epochs, iters, start_epoch, clock, losses, last)


def _result(
    total_epochs: int, iters: int, start_epoch: int, clock: tuple[float, float], losses: LossLog, last: dict
) -> LoopResult:
    """The loop's summary; times per iteration count only the iterations this call ran."""
    elapsed, cpu = time.perf_counter() - clock[0], time.process_time() - clock[1]
    done = max(0, total_epochs - start_epoch) * iters
    return LoopResult(
        iterations=total_epochs * iters,
        epochs=total_epochs,
        seconds_per_iteration=(elapsed / done) if done else None,
        cpu_seconds_per_iteration=(cpu / done) if done else None,
        final_losses=losses.final() or {k: float(v) for k, v in last.items()},
        resumed_from_iteration=start_epoch * iters,
        loss_rows=losses.rows,
    )
