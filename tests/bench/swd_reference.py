"""A plain NumPy/SciPy sliced Wasserstein distance, written step by step after the description
of Karras et al. (Progressive GAN, metrics/sliced_wasserstein.py), independently of `swd.py`.

It exists to check `swd.py` (tests) and to time it (`make bench`); it is deliberately the
straightforward form: RGB input (grayscale tiled to 3 channels), a full 2-D convolution per
pyramid step with zero insertion for the upsampling, a loop per neighbourhood level and repeat.
Centres and directions can be passed in so both implementations can be fed the same draws.
"""

import numpy as np
import scipy.ndimage

KERNEL = np.outer([1.0, 4.0, 6.0, 4.0, 1.0], [1.0, 4.0, 6.0, 4.0, 1.0]) / 256.0


def _convolve(batch: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return scipy.ndimage.convolve(batch, kernel[None, None], mode="mirror")


def _down(batch: np.ndarray) -> np.ndarray:
    return _convolve(batch, KERNEL.astype(batch.dtype))[:, :, ::2, ::2]


def _up(batch: np.ndarray) -> np.ndarray:
    n, c, h, w = batch.shape
    spread = np.zeros((n, c, 2 * h, 2 * w), batch.dtype)
    spread[:, :, ::2, ::2] = batch
    return _convolve(spread, (4.0 * KERNEL).astype(batch.dtype))


def pyramid(batch: np.ndarray, levels: int) -> list[np.ndarray]:
    """Laplacian pyramid, fine to coarse, the low-pass image last."""
    gauss = [batch]
    for _ in range(levels - 1):
        gauss.append(_down(gauss[-1]))
    return [gauss[i] - _up(gauss[i + 1]) for i in range(levels - 1)] + [gauss[-1]]


def level_sides(side: int, minimum: int = 16) -> list[int]:
    sides = []
    while side >= minimum:
        sides.append(side)
        side //= 2
    return sides


def draw_centres(rng: np.random.Generator, n: int, h: int, w: int, per_image: int, size: int = 7):
    r = size // 2
    xs = rng.integers(r, w - r, size=(n, per_image))
    ys = rng.integers(r, h - r, size=(n, per_image))
    return ys, xs


def neighbourhoods(level: np.ndarray, ys: np.ndarray, xs: np.ndarray, size: int = 7) -> np.ndarray:
    """(n*per_image, C, size, size) patches; axis 2 is the x offset and axis 3 the y offset,
    as in the reference's ogrid."""
    r = size // 2
    off = np.arange(-r, r + 1)
    img = np.repeat(np.arange(ys.shape[0]), ys.shape[1])[:, None, None, None]
    chan = np.arange(level.shape[1])[None, :, None, None]
    x = xs.reshape(-1)[:, None, None, None] + off[None, None, :, None]
    y = ys.reshape(-1)[:, None, None, None] + off[None, None, None, :]
    return level[img, chan, y, x]


def standardise(desc: np.ndarray) -> np.ndarray:
    desc = desc - desc.mean(axis=(0, 2, 3), keepdims=True)
    desc = desc / desc.std(axis=(0, 2, 3), keepdims=True)
    return desc.reshape(desc.shape[0], -1)


def draw_directions(rng: np.random.Generator, dim: int, repeats: int, per_repeat: int) -> list[np.ndarray]:
    out = []
    for _ in range(repeats):
        d = rng.standard_normal((dim, per_repeat))
        out.append(d / np.sqrt(np.sum(d * d, axis=0, keepdims=True)))
    return out


def sliced(a: np.ndarray, b: np.ndarray, directions: list[np.ndarray]) -> float:
    assert a.shape == b.shape
    values = []
    for d in directions:
        d = d.astype(a.dtype)
        pa = np.sort(a @ d, axis=0)
        pb = np.sort(b @ d, axis=0)
        values.append(np.mean(np.abs(pa - pb)))
    return float(np.mean(values))


def reference_swd(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    rng: np.random.Generator | None = None,
    centres_real=None,
    centres_fake=None,
    directions=None,
    nhoods_per_image: int = 128,
    dir_repeats: int = 4,
    dirs_per_repeat: int = 128,
    dtype=np.float32,
) -> dict:
    """{'per_level': {side: SWD x 1e3}, 'average': ...} for two (N, H, W) grayscale sets.

    `centres_*` are per-level (ys, xs) arrays; `directions` per-level lists of (147, dirs) arrays.
    Whatever is not given is drawn from `rng` (real centres, fake centres, then directions).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    sets = [np.repeat(np.asarray(s, dtype)[:, None], 3, axis=1) for s in (real, fake)]
    sides = level_sides(min(sets[0].shape[2:]))
    pyramids = [pyramid(s, len(sides)) for s in sets]
    centres = [centres_real, centres_fake]
    desc = [[], []]
    for k in range(2):
        for lvl_index, level in enumerate(pyramids[k]):
            if centres[k] is None:
                ys, xs = draw_centres(rng, level.shape[0], level.shape[2], level.shape[3], nhoods_per_image)
            else:
                ys, xs = (np.asarray(a) for a in centres[k][lvl_index])
            desc[k].append(standardise(neighbourhoods(level, ys, xs)))
    per_level = {}
    for i, side in enumerate(sides):
        dirs = (
            directions[i]
            if directions is not None
            else draw_directions(rng, desc[0][i].shape[1], dir_repeats, dirs_per_repeat)
        )
        per_level[side] = 1e3 * sliced(desc[0][i], desc[1][i], dirs)
    return {"per_level": per_level, "average": float(np.mean(list(per_level.values())))}
