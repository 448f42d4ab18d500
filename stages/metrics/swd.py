"""Sliced Wasserstein distance of Karras et al. (Progressive GAN, 2018), vectorised in torch.

The algorithm (metrics/sliced_wasserstein.py of the Progressive GAN code): a Laplacian pyramid
of every image (5x5 binomial kernel, mirror padding; levels while the side is at least 16, the
last level being the low-pass image); per level, `nhoods_per_image` random 7x7 neighbourhoods
per image (centres in [3, W-3)); the descriptors of each set normalised per channel by that set's
own mean and std; `dir_repeats` draws of `dirs_per_repeat` random unit directions; per direction
the 1-D Wasserstein distance of the two projected descriptor sets (mean absolute difference of
the sorted projections); the mean over directions and repeats, times 1e3. One value per level
and their average.

Two facts the docs must carry: each set is normalised by its own statistics, so SWD ignores a
brightness or contrast change of a whole set; and two identical sets give exactly 0 only when
they share neighbourhood centres: with independently drawn centres they never do (the sample
noise of one seed on 40 images is about 5%).

Where the two sets have different sizes the reference cannot run (it asserts equal shapes); here
the 1-D distance is then computed exactly from the two empirical quantile functions, which
reduces to the reference's mean absolute difference of sorted projections when sizes are equal.

Grayscale input is replicated to `channels` (3 by default, as the reference expects RGB); the
replication is done implicitly (identical channels give identical per-channel statistics, and a
projection onto a 3-channel direction equals a projection onto the sum of its channel parts),
which gives the same numbers as replicating the pixels at a third of the cost.

One implementation runs on every device: torch for the pyramid, the neighbourhoods and the
projections; the projections' rows are sorted by torch.sort on CUDA and by NumPy on a CPU, where
np.sort along rows is several times faster than torch.sort (`make bench` measures the whole).
A real set scored against many (`SWDReference`: the metrics stage, bootstrap replicates) keeps
its sorted projections; one pair (`swd`) makes them block by block beside the fake set's, the
same blocks and so the same value, without a level of projections in fresh memory.
"""

import functools
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from medtrans.shared.seeding import derive_seed

BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)  # the 5x5 kernel is the outer product / 256
# Images per pyramid batch on a CPU: a batch's intermediates then stay in the cache, and the
# allocator reuses their memory instead of faulting in fresh pages.
CPU_BATCH = 16
BLOCK_ROWS = 64  # directions per projection block: 64 x 8192 float32 projections are 2 MiB


@dataclass(frozen=True)
class SWDParams:
    """The reference's constants (Progressive GAN defaults)."""

    nhood_size: int = 7
    nhoods_per_image: int = 128
    dir_repeats: int = 4
    dirs_per_repeat: int = 128
    min_resolution: int = 16
    channels: int = 3  # grayscale is replicated to this many channels (1 or 3)


@dataclass
class SWDDescriptors:
    """Raw (not yet normalised) neighbourhood descriptors of one image set, per pyramid level.

    `levels[i]` has shape (n_images, nhoods_per_image, C, k, k) with C the number of *stored*
    channels (1 for grayscale input; `channels` says how many the metric replicates to). The
    layout of a patch follows the reference: axis 3 runs along x, axis 4 along y.
    """

    resolutions: tuple[int, ...]
    levels: list[torch.Tensor]
    channels: int

    @property
    def n_images(self) -> int:
        return int(self.levels[0].shape[0])

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Arrays for a feature cache (`swd_<res>` per level)."""
        return {f"swd_{r}": lvl.cpu().numpy() for r, lvl in zip(self.resolutions, self.levels, strict=True)}

    @classmethod
    def from_numpy(cls, arrays: dict[str, np.ndarray], channels: int) -> "SWDDescriptors":
        keys = sorted(
            (k for k in arrays if k.startswith("swd_") and k[4:].isdigit()), key=lambda k: -int(k[4:])
        )
        return cls(
            tuple(int(k[4:]) for k in keys), [torch.from_numpy(np.asarray(arrays[k])) for k in keys], channels
        )


@dataclass(frozen=True)
class SWDResult:
    """SWD x 1e3 per pyramid level (keyed by resolution) and the average over levels."""

    per_level: dict[int, float] = field(default_factory=dict)

    @property
    def average(self) -> float:
        return float(np.mean(list(self.per_level.values())))


@contextmanager
def _one_torch_thread():
    """Run torch single-threaded inside. Why: torch splits a reduction (the per-channel mean and
    std of `normalise`) by its thread count, so with more threads SWD's value would depend on the
    machine; and SWD's tensors are small, so extra threads mostly wait at each operation's end."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def _single_threaded(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with _one_torch_thread():
            return fn(*args, **kwargs)

    return run


class SWDInputError(ValueError):
    """Images SWD cannot use (too small, wrong shape, unequal sizes between sets)."""


def resolutions(height: int, width: int, min_resolution: int = 16) -> tuple[int, ...]:
    """Pyramid level sides: the image side, halved while it is at least `min_resolution`."""
    res, out = min(height, width), []
    while res >= min_resolution:
        out.append(res)
        res //= 2
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Laplacian pyramid


def _blur_down_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Mirror-pad by 2 along `dim`, convolve with [1,4,6,4,1]/16 and keep the even outputs;
    written as five strided slices (memory-bound adds beat a 1-channel convolution on a CPU),
    accumulated in place. Along the last axis the even and odd samples are first split into two
    contiguous halves, so that each tap is a contiguous slice of one of them."""
    n = x.shape[dim]
    out = (n + 1) // 2
    head = x.narrow(dim, 1, 2).flip(dim)  # x[2], x[1] -> mirror without repeating the edge
    tail = x.narrow(dim, n - 3, 2).flip(dim)
    xp = torch.cat([head, x, tail], dim=dim)
    if dim == x.ndim - 1:
        phases = (xp[..., 0::2].contiguous(), xp[..., 1::2].contiguous())
        taps = [phases[k % 2].narrow(dim, k // 2, out) for k in range(len(BINOMIAL))]
    else:
        every_second = (slice(None),) * dim + (slice(None, None, 2),)
        taps = [xp.narrow(dim, k, 2 * out - 1)[every_second] for k in range(len(BINOMIAL))]
    acc = taps[0] * (BINOMIAL[0] / 16.0)
    term = torch.empty_like(acc)
    for part, w in zip(taps[1:], BINOMIAL[1:], strict=True):
        acc += torch.mul(part, w / 16.0, out=term)
    return acc


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur with the 5x5 binomial kernel (mirror padding) and keep every second pixel."""
    return _blur_down_axis(_blur_down_axis(x, 3), 2)


def _up_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Insert zeros along `dim`, mirror-pad, convolve with [1,4,6,4,1]/8, done polyphase: the even
    outputs are (x[i-1] + 6 x[i] + x[i+1]) / 8, the odd ones (x[i] + x[i+1]) / 2, where mirror
    padding of the zero-inserted signal means x[-1] = x[1] at the start and x[n] = x[n-1] at the end.
    The neighbours are added as shifted slices (no padded copies), each output in the order
    (6 x + prev) + next, so the value of every sample is fixed."""
    n = x.shape[dim]
    shape = list(x.shape)
    shape[dim] = 2 * n
    out = torch.empty(shape, dtype=x.dtype, device=x.device)
    even, odd = out.narrow(dim, 0, 2 * n).unflatten(dim, (n, 2)).unbind(dim + 1)
    head, body, tail = x.narrow(dim, 0, n - 1), x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)
    torch.mul(x, 6.0, out=even)
    even.narrow(dim, 1, n - 1).add_(head)
    even.narrow(dim, 0, 1).add_(x.narrow(dim, min(1, n - 1), 1))
    even.narrow(dim, 0, n - 1).add_(body)
    even.narrow(dim, n - 1, 1).add_(tail)
    even.div_(8.0)
    torch.add(head, body, out=odd.narrow(dim, 0, n - 1))
    torch.add(tail, tail, out=odd.narrow(dim, n - 1, 1))
    odd.div_(2.0)
    return out


def pyr_up(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Upsample x2 (zero insertion, 4 x the binomial kernel, mirror padding), cropped to HxW."""
    y = _up_axis(_up_axis(x, 2), 3)
    return y[:, :, :height, :width]


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Band-pass levels from fine to coarse; the last level is the low-pass image."""
    pyramid = [images]
    for _ in range(1, levels):
        pyramid.append(pyr_down(pyramid[-1]))
    out = [
        fine - pyr_up(coarse, fine.shape[-2], fine.shape[-1])
        for fine, coarse in zip(pyramid[:-1], pyramid[1:], strict=True)
    ]
    out.append(pyramid[-1])
    return out


# ---------------------------------------------------------------------------------------------
# Descriptors


def draw_centres(
    n_images: int, height: int, width: int, params: SWDParams, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbourhood centres (ys, xs), each (n_images, nhoods), drawn uniformly from [r, side-r)."""
    r = params.nhood_size // 2
    if height - r <= r or width - r <= r:
        raise SWDInputError(
            f"a {height}x{width} pyramid level is too small for "
            f"{params.nhood_size}x{params.nhood_size} neighbourhoods"
        )
    size = (n_images, params.nhoods_per_image)
    xs = torch.randint(r, width - r, size, generator=generator)
    ys = torch.randint(r, height - r, size, generator=generator)
    return ys, xs


def extract(level: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, nhood_size: int) -> torch.Tensor:
    """(N, C, H, W) level -> (N, K, C, k, k) patches around the centres (axis 3: x, axis 4: y),
    as one gather from the flat level (twice as fast on a CPU as indexing four axes)."""
    n, c, h, w = level.shape
    dev = level.device
    off = torch.arange(-(nhood_size // 2), nhood_size // 2 + 1, device=dev)
    first = torch.arange(n, device=dev).view(-1, 1) * (c * h * w) + ys.to(dev) * w + xs.to(dev)  # (N, K)
    step = torch.arange(c, device=dev).view(-1, 1, 1) * (h * w) + off.view(1, -1, 1) + off.view(1, 1, -1) * w
    return level.contiguous().view(-1)[first[:, :, None, None, None] + step]


def _as_batch(images) -> torch.Tensor:
    """(N, H, W) or (N, C, H, W) images (array or tensor) -> a checked (N, C, H, W) tensor on the
    CPU, in the images' own dtype (each piece is converted by the thread that describes it)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise SWDInputError(f"expected images of shape (N, H, W) or (N, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise SWDInputError(f"SWD needs at least 2 images, got {x.shape[0]}")
    if x.is_floating_point() and x.numel() and not bool(torch.isfinite(torch.stack(torch.aminmax(x))).all()):
        raise SWDInputError("images contain NaN or infinite values")
    return x.cpu()


@_single_threaded
def describe(
    images,
    params: SWDParams = SWDParams(),
    seed: int = 0,
    *,
    centres: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
) -> SWDDescriptors:
    """The raw descriptors of one image set: pyramid, then random neighbourhoods per level.

    Centres come from `seed` (drawn on the CPU, so CPU and CUDA agree) unless given per level.
    Each image's pyramid is independent, so the batch size changes the speed, never a value.
    """
    x = _as_batch(images)
    n, c, h, w = x.shape
    if c not in (1, params.channels):
        raise SWDInputError(f"images have {c} channels; SWD is set up for {params.channels}")
    res = resolutions(h, w, params.min_resolution)
    if not res:
        raise SWDInputError(
            f"images of {h}x{w} are smaller than the {params.min_resolution}-pixel minimum level"
        )
    if centres is None:
        centres = _draw_level_centres(n, h, w, len(res), params, seed)
    if torch.device(device).type == "cpu":
        batch_size = min(batch_size, CPU_BATCH)
    k = params.nhood_size
    levels = [torch.empty((n, ys.shape[1], c, k, k), dtype=dtype) for ys, _ in centres]
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        pyramid = laplacian_pyramid(x[start:stop].to(device=device, dtype=dtype), len(res))
        for out, level, (ys, xs) in zip(levels, pyramid, centres, strict=True):
            out[start:stop] = extract(level, ys[start:stop], xs[start:stop], k)
    return SWDDescriptors(res, levels, params.channels)


def _draw_level_centres(
    n: int, height: int, width: int, levels: int, params: SWDParams, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every level's centres from one generator, levels fine to coarse."""
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for _ in range(levels):
        out.append(draw_centres(n, height, width, params, gen))
        height, width = (height + 1) // 2, (width + 1) // 2
    return out


def normalise(desc: torch.Tensor) -> torch.Tensor:
    """(N, K, C, k, k) -> (N*K, C*k*k), each channel standardised by this set's mean and std."""
    d = desc.reshape(-1, *desc.shape[2:])
    mean = d.mean(dim=(0, 2, 3), keepdim=True)
    std = d.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    if not bool((std > 0).all()):
        raise SWDInputError("constant images: a pyramid level has zero variance, SWD is undefined")
    return ((d - mean) / std).reshape(d.shape[0], -1)


def draw_directions(
    dim: int, params: SWDParams, generator: torch.Generator, dtype=torch.float64
) -> torch.Tensor:
    """(dir_repeats, dim, dirs_per_repeat) random unit directions (Gaussian, normalised)."""
    dirs = torch.randn(
        params.dir_repeats, dim, params.dirs_per_repeat, generator=generator, dtype=torch.float64
    )
    dirs = dirs / dirs.square().sum(dim=1, keepdim=True).sqrt()
    return dirs.to(dtype)


def wasserstein_1d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the exact 1-D Wasserstein-1 distance between the empirical
    distributions of the rows of `a` (K, n) and `b` (K, m), both sorted along dim 1."""
    n, m = a.shape[1], b.shape[1]
    if n == m:
        return (a - b).abs().mean()
    # breakpoints of the two quantile functions in units of 1/(n m): multiples of m and of n
    steps = torch.cat([torch.arange(1, n + 1) * m, torch.arange(1, m + 1) * n]).unique()
    left = torch.cat([torch.zeros(1, dtype=steps.dtype), steps[:-1]])
    width = (steps - left).to(a.dtype).to(a.device) / (n * m)
    ia, ib = (left // m).to(a.device), (left // n).to(a.device)
    return ((a[:, ia] - b[:, ib]).abs() * width).sum(1).mean()


def _direction_rows(directions: torch.Tensor, dim: int, channels: int) -> torch.Tensor:
    """(repeats, channels*D or D, dirs) directions -> (repeats*dirs, D) rows; stored grayscale
    descriptors stand for `channels` identical copies, so their directions are summed over channels."""
    repeats, full, k = directions.shape
    if full != dim:
        directions = directions.reshape(repeats, channels, dim, k).sum(1)
    return directions.transpose(1, 2).reshape(repeats * k, dim).contiguous()


def sort_rows_(x: torch.Tensor) -> torch.Tensor:
    """Sort each row of a contiguous 2-D tensor in place: NumPy's sort on a CPU (several times
    faster there than torch.sort), torch.sort elsewhere; a sorted multiset is unique, so both
    give the same values."""
    if x.device.type == "cpu":
        x.numpy().sort(axis=1)
    else:
        x.copy_(torch.sort(x, dim=1).values)
    return x


def _project_sorted_(cols: torch.Tensor, rows: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """`out` (R, M) <- the projections of descriptors `cols` (D, M) onto `rows` (R, D), each row
    sorted: block by block, so each block is sorted while the product has just put it in the cache."""
    for start in range(0, rows.shape[0], BLOCK_ROWS):
        part = out[start : start + BLOCK_ROWS]
        torch.mm(rows[start : start + BLOCK_ROWS], cols, out=part)
        sort_rows_(part)
    return out


def sorted_projections(
    descs: list[torch.Tensor], directions: list[torch.Tensor], channels: int
) -> list[torch.Tensor]:
    """Per level, (repeats, dirs, M): per repeat and direction, the sorted projections of the
    level's normalised descriptors (M, D) onto its directions (repeats, channels*D or D, dirs)."""
    out = []
    for desc, dirs in zip(descs, directions, strict=True):
        rows = _direction_rows(dirs, desc.shape[1], channels)
        level = torch.empty(rows.shape[0], desc.shape[0], dtype=desc.dtype, device=desc.device)
        cols = desc.T.contiguous()  # (D, M): the fastest GEMM layout
        out.append(_project_sorted_(cols, rows, level).reshape(dirs.shape[0], dirs.shape[2], -1))
    return out


def distance_to_sorted(
    desc: torch.Tensor, directions: torch.Tensor, channels: int, real: torch.Tensor
) -> float:
    """SWD x 1e3 of one level where both sets have M projections: the mean absolute difference
    of this set's sorted projections and the real set's (`real`, as from `sorted_projections`),
    over repeats, directions and projections."""
    rows = _direction_rows(directions, desc.shape[1], channels)
    against = real.reshape(rows.shape[0], -1)
    return _blockwise_distance(desc, rows, lambda start, n: against[start : start + n])


def pair_distance(real: torch.Tensor, fake: torch.Tensor, directions: torch.Tensor, channels: int) -> float:
    """`distance_to_sorted` of one pair of sets, the real set's sorted projections made block by
    block beside the fake set's instead of held whole: the same blocks, so the same value, without
    the real set's level of projections in fresh memory (one pair is scored once)."""
    rows = _direction_rows(directions, real.shape[1], channels)
    cols = real.T.contiguous()
    block = torch.empty(min(BLOCK_ROWS, rows.shape[0]), real.shape[0], dtype=real.dtype, device=real.device)
    return _blockwise_distance(
        fake, rows, lambda start, n: _project_sorted_(cols, rows[start : start + n], block[:n])
    )


def _blockwise_distance(desc: torch.Tensor, rows: torch.Tensor, real_block: Callable) -> float:
    """SWD x 1e3 of one level: this set's projections onto `rows`, sorted block by block, against
    `real_block(start, n)` (the real set's sorted projections onto the same rows). Each difference
    is taken in float64, where the difference of two float32 values is exact, and summed in
    float64 (millions of terms), block by block in reused buffers, so neither set's projections
    are ever all held at once."""
    block = torch.empty(min(BLOCK_ROWS, rows.shape[0]), desc.shape[0], dtype=desc.dtype, device=desc.device)
    diff = torch.empty(block.shape, dtype=torch.float64, device=desc.device)
    total = torch.zeros((), dtype=torch.float64, device=desc.device)
    cols = desc.T.contiguous()
    for start in range(0, rows.shape[0], BLOCK_ROWS):
        n = min(BLOCK_ROWS, rows.shape[0] - start)
        part = _project_sorted_(cols, rows[start : start + n], block[:n])
        total += _difference_(diff[:n], part, real_block(start, n)).abs_().sum()
    return 1e3 * float(total) / (rows.shape[0] * desc.shape[0])


def _difference_(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`out` (float64) <- a - b, exact for float32 `a` and `b`: on a CPU one NumPy pass that casts
    as it subtracts, elsewhere the two casts and the subtraction."""
    if out.device.type == "cpu":
        np.subtract(a.numpy(), b.numpy(), out=out.numpy(), dtype=np.float64)
    else:
        out.copy_(a).sub_(b.to(out.dtype))
    return out


def level_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """SWD x 1e3 of one level from per-repeat sorted projections (repeats, dirs, M or N): the
    mean over repeats of the exact 1-D distance (`wasserstein_1d`)."""
    return 1e3 * float(torch.stack([wasserstein_1d(a, b) for a, b in zip(real, fake, strict=True)]).mean())


def level_directions(
    resolutions_: tuple[int, ...], params: SWDParams, seed: int, patch_dim: int, dtype: torch.dtype
) -> list[torch.Tensor]:
    """The directions of every level, from `seed` (one generator, levels in order)."""
    gen = torch.Generator().manual_seed(int(seed))
    return [draw_directions(params.channels * patch_dim, params, gen, dtype) for _ in resolutions_]


class SWDReference:
    """The real set's side of SWD, prepared once: normalised descriptors, directions and sorted
    projections per level. Scoring many fake sets (or bootstrap replicates) against one real set
    then costs only the fake side."""

    @_single_threaded
    def __init__(
        self,
        real: SWDDescriptors,
        params: SWDParams = SWDParams(),
        seed: int = 0,
        *,
        directions: list[torch.Tensor] | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        self.params, self.dtype, self.device = params, dtype, torch.device(device)
        self.resolutions = real.resolutions
        patch_dim = int(np.prod(real.levels[0].shape[3:]))
        if directions is None:
            directions = level_directions(real.resolutions, params, seed, patch_dim, dtype)
        self.directions = [d.to(device=self.device, dtype=dtype) for d in directions]
        self.sorted_real = sorted_projections(self._normalised(real.levels), self.directions, params.channels)

    def _normalised(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each level's descriptors normalised by that set's own statistics."""
        return [normalise(lvl.to(self.device, self.dtype)) for lvl in levels]

    @_single_threaded
    def score(self, fake: SWDDescriptors, index: np.ndarray | None = None) -> SWDResult:
        """SWD of a fake set (its images at positions `index`, e.g. a bootstrap resample)."""
        if fake.resolutions != self.resolutions:
            raise SWDInputError(
                f"pyramid levels differ ({list(fake.resolutions)} vs {list(self.resolutions)}): "
                "the two sets must have the same image size"
            )
        levels = fake.levels
        if index is not None:
            picked = torch.as_tensor(index, dtype=torch.long)
            levels = [lvl[picked] for lvl in levels]
        descs, channels = self._normalised(levels), self.params.channels
        if descs[0].shape[0] == self.sorted_real[0].shape[-1]:
            pairs = zip(descs, self.directions, self.sorted_real, strict=True)
            values = [distance_to_sorted(d, dirs, channels, real) for d, dirs, real in pairs]
        else:
            fakes = sorted_projections(descs, self.directions, channels)
            values = [level_distance(real, f) for real, f in zip(self.sorted_real, fakes, strict=True)]
        return SWDResult(dict(zip(self.resolutions, values, strict=True)))


def swd(
    real,
    fake,
    params: SWDParams = SWDParams(),
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> SWDResult:
    """SWD x 1e3 between two image sets ((N, H, W) or (N, C, H, W), any value range).

    Centres of the two sets and the directions come from independent streams derived from `seed`.
    """
    d_real = describe(real, params, derive_seed(seed, "swd", "real"), dtype=dtype, device=device)
    d_fake = describe(fake, params, derive_seed(seed, "swd", "fake"), dtype=dtype, device=device)
    patch_dim = int(np.prod(d_real.levels[0].shape[3:]))
    seed_dirs = derive_seed(seed, "swd", "directions")
    dirs = level_directions(d_real.resolutions, params, seed_dirs, patch_dim, dtype)
    if (d_real.n_images, d_real.resolutions) != (
        d_fake.n_images,
        d_fake.resolutions,
    ):  # SWDReference refuses or scores these
        return SWDReference(d_real, params, directions=dirs, dtype=dtype, device=device).score(d_fake)
    with _one_torch_thread():
        pairs = zip(d_real.levels, d_fake.levels, dirs, strict=True)
        values = [
            pair_distance(
                normalise(r.to(device, dtype)),
                normalise(f.to(device, dtype)),
                d.to(device, dtype),
                params.channels,
            )
            for r, f, d in pairs
        ]
    return SWDResult(dict(zip(d_real.resolutions, values, strict=True)))
