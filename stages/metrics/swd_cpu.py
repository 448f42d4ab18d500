"""SWD's neighbourhood descriptors on a CPU, compiled by numba: the Laplacian pyramid only where
it is sampled.

`swd.describe` builds each band-pass level as `fine - up(down(fine))` over the whole image and
then keeps 128 neighbourhoods of 7x7 pixels per image: at 256 px that is 10% of the level's
pixels. Here the Gaussian levels (`down`) are still computed whole, since the next level needs
them, but the upsampling and the difference are computed at the sampled pixels alone, and each
blur is one pass over the image in cache instead of a dozen torch operations on temporaries:
about 10x faster per level. The arithmetic is the torch path's, operation for operation and in
the same order (blur along x, then y; the polyphase upsampling along y, then x), so the
descriptors agree with it exactly on the same inputs; `tests/test_swd.py` checks that.

numba compiles the kernels on first use in each process, for float32 and float64 separately.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def _kernels():
    """(pyr_down, laplacian_patches), compiled on first call (numba is imported only here)."""
    from numba import njit

    @njit(inline="always")
    def mirror(i, n):  # reflect without repeating the edge sample: -1 -> 1, n -> n - 2
        if i < 0:
            i = -i
        if i > n - 1:
            i = 2 * (n - 1) - i
        return i

    @njit(nogil=True, boundscheck=False, cache=False)
    def pyr_down(g):  # pragma: no cover - compiled
        """(m, h, w) planes -> (m, (h + 1) // 2, (w + 1) // 2): [1, 4, 6, 4, 1] / 16 along x, then
        along y, with mirror padding, keeping the even samples."""
        m, h, w = g.shape
        ho, wo = (h + 1) // 2, (w + 1) // 2
        w0, w1, w2 = g.dtype.type(1.0 / 16.0), g.dtype.type(4.0 / 16.0), g.dtype.type(6.0 / 16.0)
        t = np.empty((h, wo), g.dtype)
        out = np.empty((m, ho, wo), g.dtype)
        for p in range(m):
            for y in range(h):
                row = g[p, y]
                for o in range(wo):
                    i = 2 * o
                    t[y, o] = (
                        row[mirror(i - 2, w)] * w0
                        + row[mirror(i - 1, w)] * w1
                        + row[i] * w2
                        + row[mirror(i + 1, w)] * w1
                        + row[mirror(i + 2, w)] * w0
                    )
            for o in range(ho):
                i = 2 * o
                a, b, d, e = mirror(i - 2, h), mirror(i - 1, h), mirror(i + 1, h), mirror(i + 2, h)
                for x in range(wo):
                    out[p, o, x] = t[a, x] * w0 + t[b, x] * w1 + t[i, x] * w2 + t[d, x] * w1 + t[e, x] * w0
        return out

    @njit(inline="always")
    def up_taps(i, n):  # output i of an n-sample signal upsampled x2: (even, i // 2, prev, next)
        q = i // 2
        prev = q - 1 if q >= 1 else (1 if n > 1 else 0)
        nxt = q + 1 if q + 1 < n else n - 1
        return i % 2 == 0, q, prev, nxt

    @njit(nogil=True, boundscheck=False, cache=False)
    def laplacian_patches(fine, coarse, band, ys, xs, channels, size, out):  # pragma: no cover
        """out[i, j, ch, a, b] = level[i * channels + ch, ys[i, j] + b - r, xs[i, j] + a - r], the
        level being `fine - up(coarse)` where `band`, else `fine` (the low-pass last level).

        Per neighbourhood, the coarse plane is upsampled along y once, into a table over the
        coarse columns the neighbourhood needs (at most size // 2 + 3), then along x per pixel."""
        r = size // 2
        six, eight, two = fine.dtype.type(6.0), fine.dtype.type(8.0), fine.dtype.type(2.0)
        width = coarse.shape[2]
        table = np.empty((size, size // 2 + 3), fine.dtype)
        for i in range(ys.shape[0]):
            for j in range(ys.shape[1]):
                y0, x0 = ys[i, j] - r, xs[i, j] - r
                lo = max(0, x0 // 2 - 1)
                hi = min(width - 1, (x0 + size - 1) // 2 + 1)
                for ch in range(channels):
                    p = i * channels + ch
                    if band:
                        for b in range(size):
                            even, q, prev, nxt = up_taps(y0 + b, coarse.shape[1])
                            above, below = coarse[p, prev], coarse[p, nxt]
                            for col in range(lo, hi + 1):
                                here = coarse[p, q, col]
                                if even:
                                    table[b, col - lo] = (above[col] + six * here + below[col]) / eight
                                else:
                                    table[b, col - lo] = (here + below[col]) / two
                    for a in range(size):
                        even, q, prev, nxt = up_taps(x0 + a, width)
                        for b in range(size):
                            v = fine[p, y0 + b, x0 + a]
                            if band:
                                here, after = table[b, q - lo], table[b, nxt - lo]
                                if even:
                                    v = v - (table[b, prev - lo] + six * here + after) / eight
                                else:
                                    v = v - (here + after) / two
                            out[i, j, ch, a, b] = v

    return pyr_down, laplacian_patches


def describe_planes(
    images: np.ndarray,
    centres: list[tuple[np.ndarray, np.ndarray]],
    nhood_size: int,
    out: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """(N, C, H, W) float images -> per level (N, K, C, k, k) neighbourhoods of the Laplacian
    pyramid, one level per (ys, xs) pair of (N, K) centres, fine to coarse, as `swd.describe`;
    written into `out` (C-contiguous arrays of those shapes) where given."""
    pyr_down, laplacian_patches = _kernels()
    n, c, h, w = images.shape
    fine = np.ascontiguousarray(images.reshape(n * c, h, w))
    if out is None:
        out = [np.empty((n, ys.shape[1], c, nhood_size, nhood_size), fine.dtype) for ys, _ in centres]
    for level, ((ys, xs), patches) in enumerate(zip(centres, out, strict=True)):
        last = level == len(centres) - 1
        coarse = fine[:, :1, :1] if last else pyr_down(fine)  # unused on the last level
        laplacian_patches(
            fine, coarse, not last, np.ascontiguousarray(ys), np.ascontiguousarray(xs), c, nhood_size, patches
        )
        fine = coarse
    return out
