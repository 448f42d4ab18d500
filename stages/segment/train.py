"""Training with early stopping, and a checkpoint after every epoch that makes a resumed
training end with the same weights as an uninterrupted one (on CPU).

The checkpoint (`medtrans.shared.checkpoint`) holds the model, optimizer and scheduler
states, every random state the next epoch reads (torch CPU and CUDA, NumPy, Python, the data
loader's shuffle generator and each random MONAI transform's own generator), and the loop's
state: the epoch, the best weights so far, the early-stopping counter, the history. MONAI's
DataLoader reseeds the transforms from the loader generator when it is built, so on resume
the loader is built first, then the saved states are put back.
"""

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, Randomizable
from monai.utils import convert_to_tensor

from medtrans.shared import checkpoint
from medtrans.shared.config.segment import SegmentConfig
from medtrans.shared.device import fuse_optimizers, host_floats
from medtrans.shared.log import get_logger, progress
from medtrans.stages.segment.data import ImageSet
from medtrans.stages.segment.model import (
    IMAGE,
    LABEL,
    build_loss,
    build_optimizer,
    build_scheduler,
    predict,
    train_transforms,
)
from medtrans.stages.segment.scoring import score_images

log = get_logger("medtrans.segment")
CHECKPOINT = Path(".checkpoint") / "last.pt"  # a dot path: never part of the output manifest
HISTORY_COLUMNS = ("epoch", "train_loss", "val_dice", "lr")


@dataclass
class TrainResult:
    best_state: dict
    best_epoch: int
    best_dice: float
    epochs: int
    stopped_early: bool
    history: list[dict]


def _randomizables(obj, seen: set[int] | None = None) -> list[Randomizable]:
    """Every object with its own random generator inside a transform, in a fixed order."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    found = [obj] if isinstance(obj, Randomizable) else []
    children = obj.transforms if isinstance(obj, Compose) else list(vars(obj).values())
    for child in children:
        if isinstance(child, Randomizable) or isinstance(child, Compose):
            found += _randomizables(child, seen)
    return found


def val_dice(model: torch.nn.Module, data: ImageSet, n_structures: int, device, batch_size: int) -> float:
    """Mean over images of the mean foreground Dice: the model-selection criterion."""
    pred = predict(model, data.images, device, batch_size)
    dice, _ = score_images(pred, data.masks, n_structures, hd=False)
    return float(dice.mean(axis=1).mean())


@dataclass
class _LoopState:
    """The loop's own state, saved with every checkpoint."""

    epoch: int
    bad_epochs: int
    best: dict  # {"state": weights, "epoch": int, "dice": float}
    history: list[dict]
    stopped: bool

    def record(self, row: dict, model: torch.nn.Module, patience: int) -> None:
        """Log one epoch; keep the weights when the val Dice improved; decide to stop."""
        self.epoch = row["epoch"]
        self.history.append(row)
        if row["val_dice"] > self.best["dice"]:
            self.best = {
                "state": copy.deepcopy(model.state_dict()),
                "epoch": row["epoch"],
                "dice": row["val_dice"],
            }
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        self.stopped = self.bad_epochs >= patience

    def state(self) -> dict:
        return {
            "bad_epochs": self.bad_epochs,
            "best": self.best,
            "history": self.history,
            "stopped": self.stopped,
        }


def _loader(
    train_set: ImageSet, cfg: SegmentConfig, transform, seed: int
) -> tuple[DataLoader, torch.Generator]:
    """The shuffled, augmenting train loader and its own seeded generator."""
    items = [{IMAGE: im, LABEL: m} for im, m in zip(train_set.images, train_set.masks, strict=True)]
    generator = torch.Generator()
    generator.manual_seed(seed)
    loader = DataLoader(
        Dataset(items, transform),
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=generator,
        num_workers=cfg.num_workers,
    )
    return loader, generator


def _fit_epoch(model: torch.nn.Module, loader: DataLoader, loss_fn, optimizer, device) -> float:
    """One pass over the loader; the mean train loss per image. On CUDA the batch losses stay
    on the device and are read once, after the pass (a CPU reads each at once, as always): the
    same floats summed in the same order."""
    model.train()
    deferred = torch.device(device).type == "cuda"
    losses: list = []
    for batch in loader:
        x = convert_to_tensor(batch[IMAGE], track_meta=False).to(device)  # plain tensors:
        y = convert_to_tensor(batch[LABEL], track_meta=False).to(device)  # MetaTensor is slow
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append((loss.detach() if deferred else float(loss.detach()), len(x)))
    total, count = 0.0, 0
    for value, n in zip(host_floats([v for v, _ in losses]), (n for _, n in losses), strict=True):
        total += value * n
        count += n
    return total / max(count, 1)


def _start(model: torch.nn.Module, objects: checkpoint.Resumable, ckpt: Path | None, desc: str) -> _LoopState:
    """A fresh loop state, or the one of the checkpoint `ckpt` (restoring `objects`)."""
    if ckpt is not None and ckpt.is_file():
        restored = checkpoint.load(ckpt, objects)
        run = _LoopState(epoch=restored.epoch, **restored.state)
        log.info("%s: resumed after epoch %d (best val Dice %.4f)", desc, run.epoch, run.best["dice"])
        return run
    best = {"state": copy.deepcopy(model.state_dict()), "epoch": 0, "dice": -1.0}
    return _LoopState(epoch=0, bad_epochs=0, best=best, history=[], stopped=False)


def train(
    model: torch.nn.Module,
    train_set: ImageSet,
    val_set: ImageSet,
    cfg: SegmentConfig,
    n_structures: int,
    device: torch.device,
    seed: int,
    work: Path,
    resume: bool,
    desc: str = "segment",
) -> TrainResult:
    """Train on `train_set`, keep the weights with the best `val_set` Dice; stop after
    `cfg.patience` epochs without improvement or at `cfg.max_epochs`."""
    loss_fn = build_loss()
    optimizer = build_optimizer(cfg, model)
    fuse_optimizers([optimizer])  # CUDA only: a model on the CPU keeps today's optimizer
    scheduler = build_scheduler(cfg, optimizer)
    transform = train_transforms(cfg.augment)
    loader, generator = _loader(train_set, cfg, transform, seed)
    objects = checkpoint.Resumable(
        networks={"unet": model},
        optimizers={"adam": optimizer},
        schedulers={} if scheduler is None else {"lr": scheduler},
        generators={"loader": generator},
        randomizables=_randomizables(transform),
    )
    ckpt = work / CHECKPOINT
    run = _start(model, objects, ckpt if resume else None, desc)

    bar = progress(
        range(run.epoch + 1, cfg.max_epochs + 1), desc=desc, total=cfg.max_epochs, initial=run.epoch
    )
    for epoch in bar if not run.stopped else ():
        lr = optimizer.param_groups[0]["lr"]
        train_loss = _fit_epoch(model, loader, loss_fn, optimizer, device)
        if scheduler is not None:
            scheduler.step()
        score = val_dice(model, val_set, n_structures, device, cfg.batch_size)
        run.record(
            {"epoch": epoch, "train_loss": train_loss, "val_dice": score, "lr": lr}, model, cfg.patience
        )
        bar.set_postfix(loss=f"{train_loss:.4f}", val_dice=f"{score:.4f}", best=f"{run.best['dice']:.4f}")
        checkpoint.save(ckpt, objects, epoch, run.state())
        if run.stopped:
            log.info(
                "%s: early stop after epoch %d (no better val Dice for %d epochs)",
                desc,
                epoch,
                run.bad_epochs,
            )
            break
    bar.close()
    best = run.best
    return TrainResult(best["state"], best["epoch"], best["dice"], len(run.history), run.stopped, run.history)
