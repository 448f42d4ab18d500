"""Training and test data for the translators, read from `preprocess/<task>/`.

Slices are small (image_size^2 bytes), so whole splits live in memory as arrays. Pairing is
unpaired and seeded: epoch e draws its source order from permutations of the source train
split and, for each source slice, a uniformly random target train slice
(`pair_indices(seed, e, ...)`), a pure function of (seed, epoch) so a resumed run sees the
same pairs without saving sampler state.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from medtrans.shared.dataset import SliceIndex
from medtrans.shared.imageio import ImageFormatError, read_png, to_unit
from medtrans.shared.seeding import derive_seed
from medtrans.stages.translate.foreground import foreground_mask

DEFAULT_FG_THRESHOLD = 0.1


@dataclass
class Split:
    """One role x split of a task, in slice_id order."""

    ids: list[str]
    images: np.ndarray  # (N,H,W) float32 in [-1,1]
    masks: np.ndarray  # (N,H,W) int64 labels 0..K (all 0 where a slice has no mask)
    fg: np.ndarray  # (N,H,W) float32 {0,1}
    _resident: dict = field(default_factory=dict, repr=False, compare=False)  # device -> tensors

    def __len__(self) -> int:
        return len(self.ids)

    def tensors(self, idx, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = np.asarray(idx)
        if torch.device(device).type == "cuda":
            return self._indexed_on(torch.device(device), idx)
        img = torch.from_numpy(self.images[idx]).unsqueeze(1).to(device)
        mask = torch.from_numpy(self.masks[idx]).to(device)
        fg = torch.from_numpy(self.fg[idx]).to(device)
        return img, mask, fg

    def _indexed_on(self, device: torch.device, idx: np.ndarray):
        """The batch from a copy of the whole split kept on the GPU (copied once; images float32,
        masks and foreground as uint8: 4096 slices of 256 x 256 are 1 GiB + 2 x 256 MiB), so a
        step copies nothing from the host but the indices. Same values as the host path."""
        key = str(device)
        if key not in self._resident:
            small = self.masks.max(initial=0) < 256
            self._resident[key] = (
                torch.from_numpy(self.images).to(device),
                torch.from_numpy(self.masks.astype(np.uint8) if small else self.masks).to(device),
                torch.from_numpy(self.fg.astype(np.uint8)).to(device),
            )
        images, masks, fg = self._resident[key]
        i = torch.from_numpy(idx).to(device, non_blocking=True)
        return images[i].unsqueeze(1), masks[i].long(), fg[i].float()


def load_split(
    index: SliceIndex,
    role: str,
    split: str,
    size: int,
    n_classes: int,
    fg_threshold: float = DEFAULT_FG_THRESHOLD,
) -> Split:
    """Read one role x split; refuses wrong sizes and labels beyond the task's structures.
    Foreground: the masks preprocess computed per volume (MaskGAN's reference route); a slice
    shipped without one (an index written without them) gets the per-slice `foreground_mask`
    at `fg_threshold`."""
    rows = index.select(role, split)
    if rows.empty:
        raise ImageFormatError(f"{index.folder / 'index.csv'}: no {role} {split} slices")
    raw = [read_png(index.path(r), size) for r in rows.image]
    fg = [
        read_png(index.path(rel), size) > 0 if rel else foreground_mask(img, fg_threshold)
        for rel, img in zip(rows["foreground"], raw, strict=True)
    ]
    masks = []
    for rel in rows["mask"]:
        if rel:
            m = read_png(index.path(rel), size)
            if int(m.max()) >= n_classes:
                raise ImageFormatError(f"{index.path(rel)}: label {int(m.max())} >= {n_classes} classes")
            masks.append(m.astype(np.int64))
        else:
            masks.append(np.zeros((size, size), np.int64))
    return Split(
        ids=list(rows.slice_id),
        images=np.stack([to_unit(r) for r in raw]),
        masks=np.stack(masks),
        fg=np.stack(fg).astype(np.float32),
    )


@dataclass
class TrainData:
    """Source and target train splits; `batch` assembles the dict a model's train_step gets."""

    source: Split
    target: Split

    def batch(self, idx_a, idx_b, device: torch.device) -> dict[str, torch.Tensor]:
        a, mask_a, fg_a = self.source.tensors(idx_a, device)
        b, mask_b, fg_b = self.target.tensors(idx_b, device)
        return {"a": a, "b": b, "mask_a": mask_a, "mask_b": mask_b, "fg_a": fg_a, "fg_b": fg_b}

    def iters_per_epoch(self, batch_size: int, override: int | None, over: str = "both") -> int:
        """The references' epoch: max(|A|, |B|) images (junyanz UnalignedDataset), or one
        pass over the target pairs (`over="target"`: SPADE's paired dataset)."""
        if override:
            return override
        n = len(self.target) if over == "target" else max(len(self.source), len(self.target))
        return -(-n // batch_size)


def _passes(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """`count` indices from successive permutations of range(n)."""
    reps = -(-count // n)
    return np.concatenate([rng.permutation(n) for _ in range(reps)])[:count]


def pair_indices(
    seed: int, epoch: int, n_source: int, n_target: int, iters: int, batch_size: int, over: str = "both"
) -> tuple[np.ndarray, np.ndarray]:
    """(iters, batch_size) source and target indices for one epoch, a pure function of its args.

    over "both": source permutations, each with a uniformly random target (unpaired);
    "target": target permutations (each target pair once per pass), source uniformly random."""
    rng = np.random.default_rng(derive_seed(seed, "pairs", epoch))
    count = iters * batch_size
    if over == "target":
        tgt = _passes(rng, n_target, count)
        src = rng.integers(0, n_source, size=count)
    else:
        src = _passes(rng, n_source, count)
        tgt = rng.integers(0, n_target, size=count)
    return src.reshape(iters, batch_size), tgt.reshape(iters, batch_size)
