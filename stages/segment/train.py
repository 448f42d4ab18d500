"""Training with early stopping, and a checkpoint after every epoch that makes a resumed
training end with the same weights as an uninterrupted one (on CPU).

The checkpoint holds the model, optimizer and scheduler states, the epoch, the best weights
so far, the early-stopping counter, the history, and every random state the next epoch
reads: torch (CPU and CUDA), NumPy, Python, the data loader's shuffle generator and each
random MONAI transform's own generator (MONAI's DataLoader reseeds the transforms from the
loader generator when it is built, so on resume the loader is built first, then the saved
states are put back).
"""

import copy
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, Randomizable
from monai.utils import convert_to_tensor

from medtrans.shared.config.segment import SegmentConfig
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


def capture_rng(generator: torch.Generator, transform) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "loader": generator.get_state(),
        "transforms": [r.R.get_state() for r in _randomizables(transform)],
    }


def restore_rng(state: dict, generator: torch.Generator, transform) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    generator.set_state(state["loader"])
    members = _randomizables(transform)
    if len(members) != len(state["transforms"]):
        raise RuntimeError("checkpoint was written with other transforms; delete the partial folder")
    for member, s in zip(members, state["transforms"], strict=True):
        member.R.set_state(s)


def _save(path: Path, payload: dict) -> None:
    """Write atomically, so a crash during the save leaves the previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def val_dice(model: torch.nn.Module, data: ImageSet, n_structures: int, device, batch_size: int) -> float:
    """Mean over images of the mean foreground Dice: the model-selection criterion."""
    pred = predict(model, data.images, device, batch_size)
    dice, _ = score_images(pred, data.masks, n_structures, hd=False)
    return float(dice.mean(axis=1).mean())


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
    after_epoch: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train on `train_set`, keep the weights with the best `val_set` Dice; stop after
    `cfg.patience` epochs without improvement or at `cfg.max_epochs`. `after_epoch(epoch)`
    runs after each epoch's checkpoint is written (tests use it to interrupt)."""
    loss_fn = build_loss()
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    transform = train_transforms(cfg.augment)
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

    epoch, bad, history = 0, 0, []
    best = {"state": copy.deepcopy(model.state_dict()), "epoch": 0, "dice": -1.0}
    stopped = False
    ckpt = work / CHECKPOINT
    if resume and ckpt.is_file():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)  # RNG states must stay on CPU
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        epoch, bad, history, best, stopped = (
            saved["epoch"], saved["bad_epochs"], saved["history"], saved["best"], saved["stopped"],
        )
        restore_rng(saved["rng"], generator, transform)
        log.info("%s: resumed after epoch %d (best val Dice %.4f)", desc, epoch, best["dice"])

    bar = progress(range(epoch + 1, cfg.max_epochs + 1), desc=desc, total=cfg.max_epochs, initial=epoch)
    for epoch in bar if not stopped else ():
        model.train()
        total, count = 0.0, 0
        lr = optimizer.param_groups[0]["lr"]
        for batch in loader:
            x = convert_to_tensor(batch[IMAGE], track_meta=False).to(device)  # plain tensors:
            y = convert_to_tensor(batch[LABEL], track_meta=False).to(device)  # MetaTensor is slow
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(x)
            count += len(x)
        if scheduler is not None:
            scheduler.step()
        score = val_dice(model, val_set, n_structures, device, cfg.batch_size)
        history.append({"epoch": epoch, "train_loss": total / max(count, 1), "val_dice": score, "lr": lr})
        if score > best["dice"]:
            best = {"state": copy.deepcopy(model.state_dict()), "epoch": epoch, "dice": score}
            bad = 0
        else:
            bad += 1
        stopped = bad >= cfg.patience
        loss_mean = history[-1]["train_loss"]
        bar.set_postfix(loss=f"{loss_mean:.4f}", val_dice=f"{score:.4f}", best=f"{best['dice']:.4f}")
        _save(ckpt, {
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "bad_epochs": bad,
            "best": best,
            "history": history,
            "stopped": stopped,
            "rng": capture_rng(generator, transform),
        })
        if after_epoch is not None:
            after_epoch(epoch)
        if stopped:
            log.info("%s: early stop after epoch %d (no better val Dice for %d epochs)", desc, epoch, bad)
            break
    bar.close()
    return TrainResult(best["state"], best["epoch"], best["dice"], len(history), stopped, history)
