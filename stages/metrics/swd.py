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

On a CPU three numba kernels do the heavy parts (torch runs everything on CUDA, and on a CPU
where numba is missing): the Laplacian levels at the sampled pixels only (`swd_cpu.py`, the
torch path's arithmetic in its order, so the same descriptors), the sort of the projections by
radix and the distance beside it (`rowsort.py`, exact). Work is spread over our own threads.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from medtrans.shared.seeding import derive_seed
from medtrans.stages.metrics.rowsort import (
    BLOCK_ROWS,
    cpu_workers,
    in_background,
    numba_available,
    own_threads,
    parallel_map,
    sort_block_,
)
from medtrans.stages.metrics.swd_cpu import describe_planes

BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)  # the 5x5 kernel is the outer product / 256
# Images per pyramid piece on a CPU (pieces go to the threads): for the torch path, 16 of 256x256
# float32 (4 MiB) run about twice as fast per image as all 64 at once (the intermediates stay in
# cache and the allocator reuses their memory instead of faulting in fresh pages), and 4 or fewer
# pay torch's per-operation overhead instead.
CPU_BATCH = 16


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


def _kernel(x: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.tensor(BINOMIAL, dtype=x.dtype, device=x.device) / scale


def _blur_down_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Mirror-pad by 2 along `dim`, convolve with [1,4,6,4,1]/16 and keep the even outputs;
    written as five strided slices (memory-bound adds beat a 1-channel convolution on a CPU)."""
    n = x.shape[dim]
    out = (n + 1) // 2
    head = x.narrow(dim, 1, 2).flip(dim)  # x[2], x[1] -> mirror without repeating the edge
    tail = x.narrow(dim, n - 3, 2).flip(dim)
    xp = torch.cat([head, x, tail], dim=dim)
    acc = None
    for k, w in enumerate(BINOMIAL):
        part = xp.narrow(dim, k, 2 * out - 1)
        part = part[(slice(None),) * dim + (slice(None, None, 2),)]
        acc = part * (w / 16.0) if acc is None else acc + part * (w / 16.0)
    return acc


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur with the 5x5 binomial kernel (mirror padding) and keep every second pixel."""
    return _blur_down_axis(_blur_down_axis(x, 3), 2)


def _up_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Insert zeros along `dim`, mirror-pad, convolve with [1,4,6,4,1]/8, done polyphase: the even
    outputs are (x[i-1] + 6 x[i] + x[i+1]) / 8, the odd ones (x[i] + x[i+1]) / 2, where mirror
    padding of the zero-inserted signal means x[-1] = x[1] at the start and x[n] = x[n-1] at the end."""
    n = x.shape[dim]
    first = x.narrow(dim, 1, 1) if n > 1 else x.narrow(dim, 0, 1)
    last = x.narrow(dim, n - 1, 1)
    prev = torch.cat([first, x.narrow(dim, 0, n - 1)], dim=dim)
    nxt = torch.cat([x.narrow(dim, 1, n - 1), last], dim=dim)
    shape = list(x.shape)
    shape[dim] = 2 * n
    out = torch.empty(shape, dtype=x.dtype, device=x.device)
    index = [slice(None)] * x.ndim
    index[dim] = slice(0, None, 2)
    out[tuple(index)] = (prev + 6.0 * x + nxt) / 8.0
    index[dim] = slice(1, None, 2)
    out[tuple(index)] = (x + nxt) / 2.0
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
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise SWDInputError("images contain NaN or infinite values")
    return x.cpu()


def describe(
    images,
    params: SWDParams = SWDParams(),
    seed: int = 0,
    *,
    centres: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    compiled: bool | None = None,
) -> SWDDescriptors:
    """The raw descriptors of one image set: pyramid, then random neighbourhoods per level.

    Centres come from `seed` (drawn on the CPU, so CPU and CUDA agree) unless given per level.
    On a CPU the numba kernels of `swd_cpu` compute them (`compiled`, by default where numba is
    installed): the same numbers as the torch operations, which run everywhere else.
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
        gen = torch.Generator().manual_seed(int(seed))
        centres, side_h, side_w = [], h, w
        for _ in res:
            centres.append(draw_centres(n, side_h, side_w, params, gen))
            side_h, side_w = (side_h + 1) // 2, (side_w + 1) // 2
    on_cpu = torch.device(device).type == "cpu"
    compiled = on_cpu and (numba_available() if compiled is None else compiled)
    if on_cpu:  # pieces for the threads (each image's pyramid is independent), small enough to
        batch_size = max(1, min(batch_size, CPU_BATCH, -(-n // cpu_workers())))  # stay in cache

    k = params.nhood_size
    levels = [torch.empty((n, ys.shape[1], c, k, k), dtype=dtype) for ys, _ in centres]

    def piece(start: int) -> None:  # writes images [start, stop) of every level
        stop = min(n, start + batch_size)
        parts = [lvl[start:stop] for lvl in levels]
        if compiled:
            at = [(ys[start:stop].numpy(), xs[start:stop].numpy()) for ys, xs in centres]
            describe_planes(x[start:stop].to(dtype).numpy(), at, k, [p.numpy() for p in parts])
            return
        pyramid = laplacian_pyramid(x[start:stop].to(device=device, dtype=dtype), len(res))
        for part, level, (ys, xs) in zip(parts, pyramid, centres, strict=True):
            part.copy_(extract(level, ys[start:stop], xs[start:stop], k))

    starts = list(range(0, n, batch_size))
    with own_threads():
        if on_cpu:
            parallel_map(piece, starts)
        else:
            for start in starts:
                piece(start)
    return SWDDescriptors(res, levels, params.channels)


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


def sorted_projections(
    descs: list[torch.Tensor],
    directions: list[torch.Tensor],
    channels: int,
    against: list[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """Per level, (repeats, dirs, M): per repeat and direction, the sorted projections of the
    level's normalised descriptors (M, D) onto its directions (repeats, channels*D or D, dirs).

    On the CPU every level's blocks of `BLOCK_ROWS` directions go through one thread pool, each
    block projected and sorted by one thread while it is in the cache (`rowsort`: several times
    faster there than torch.sort); elsewhere torch.sort. With `against` (another set's sorted
    projections per level, the same shapes), the CPU path returns instead, per level and row,
    the sum of |this set's - the other's| sorted projections, taken by the same thread while the
    block is in the cache, and keeps no projections."""
    pairs = list(zip(descs, directions, strict=True))
    rows = [_direction_rows(dirs, desc.shape[1], channels) for desc, dirs in pairs]
    shapes = [(d.shape[0], d.shape[2]) for d in directions]
    if descs[0].device.type != "cpu":
        return [
            torch.sort(r @ desc.T, dim=1).values.reshape(*shape, -1)
            for r, desc, shape in zip(rows, descs, shapes, strict=True)
        ]
    cols = parallel_map(lambda desc: desc.T.contiguous(), descs)  # (D, M): the fastest GEMM layout
    outs, others = None, None
    if against is None:
        outs = [torch.empty(r.shape[0], c.shape[1], dtype=c.dtype) for r, c in zip(rows, cols, strict=True)]
    else:
        others = [a.reshape(r.shape[0], -1).numpy() for a, r in zip(against, rows, strict=True)]
    sums = [np.zeros(r.shape[0]) for r in rows]

    def block(task: tuple[int, int]) -> None:
        level, start = task
        stop = min(start + BLOCK_ROWS, rows[level].shape[0])
        if outs is not None:
            part = outs[level][start:stop]
        else:
            part = torch.empty(stop - start, cols[level].shape[1], dtype=cols[level].dtype)
        torch.mm(rows[level][start:stop], cols[level], out=part)
        if others is None:
            sort_block_(part.numpy())
        else:
            sums[level][start:stop] = sort_block_(part.numpy(), against=others[level][start:stop])

    tasks = [(level, start) for level, r in enumerate(rows) for start in range(0, r.shape[0], BLOCK_ROWS)]
    parallel_map(block, tasks)
    if outs is None:
        return [torch.from_numpy(s) for s in sums]
    return [out.reshape(*shape, -1) for out, shape in zip(outs, shapes, strict=True)]


def level_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """SWD x 1e3 of one level from per-repeat sorted projections (mean over repeats)."""
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
        with own_threads():
            self.sorted_real = sorted_projections(
                self._normalised(real.levels), self.directions, params.channels
            )

    def _normalised(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each level's descriptors normalised by that set's statistics (in the threads, on a CPU)."""

        def prepare(lvl: torch.Tensor) -> torch.Tensor:
            return normalise(lvl.to(self.device, self.dtype))

        if self.device.type == "cpu":
            return parallel_map(prepare, levels)
        return [prepare(lvl) for lvl in levels]

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
        with own_threads():
            descs = self._normalised(levels)
            if self.device.type == "cpu" and descs[0].shape[0] == self.sorted_real[0].shape[-1]:
                # equal sizes: the distance is taken per block, beside the sort
                sums = sorted_projections(descs, self.directions, self.params.channels, self.sorted_real)
                pairs = zip(sums, self.sorted_real, strict=True)
                values = [1e3 * float(s.sum()) / r.numel() for s, r in pairs]
            else:
                fakes = sorted_projections(descs, self.directions, self.params.channels)
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
    with own_threads():
        d_real = describe(real, params, derive_seed(seed, "swd", "real"), dtype=dtype, device=device)
        patch_dim = int(np.prod(d_real.levels[0].shape[3:]))
        seed_dirs = derive_seed(seed, "swd", "directions")
        # the directions are drawn (serial torch.randn) while the fake set is described
        dirs = in_background(level_directions, d_real.resolutions, params, seed_dirs, patch_dim, dtype)
        d_fake = describe(fake, params, derive_seed(seed, "swd", "fake"), dtype=dtype, device=device)
        ref = SWDReference(d_real, params, directions=dirs.result(), dtype=dtype, device=device)
        return ref.score(d_fake)
