"""Sorting every row of a 2-D float32 array on the CPU, fast, for SWD's projections.

NumPy sorts float32 with x86-simd-sort. Rows of up to 512 floats it sorts in registers at about
1.3 ns per element; longer rows go through vectorised quicksort partitions, which on AMD Zen 4
cost about 14 ns per element for 8192 floats (its AVX-512 compress-store to memory is
microcoded: numpy/x86-simd-sort issue 6), and torch.sort is slower still (about 67 ns). SWD
sorts 42 million such projections for two sets of 64 images.

Here each row is sorted by an LSD radix sort, compiled with numba: the floats are mapped to
unsigned integers in the same order (negative floats bit-inverted, the sign bit set on the
others), three counting passes of 11 bits sort those, and the inverse map writes the floats
back. About 4 ns per element for rows of 4096 or more on this project's 2-core EPYC (5.5 at
1024, where NumPy's 5.7 is as fast: shorter rows take `np.sort`), against 5.2 for the best
NumPy-only way (Leighton's columnsort of register-sized pieces, which this module used before).
The result is the row sorted, exactly: the sorted sequence of a multiset is unique, and the map
is strictly monotone, except that -0.0 sorts before +0.0 (NumPy compares them equal and may
order them either way) and every NaN is mapped above +inf, where NumPy puts NaN. For SWD's
scoring the same kernel also sums |sorted row - the other set's sorted row| while the row is
still in the cache.

Where NumPy's own sort is as fast (a CPU whose AVX-512 compress-store is fast), a one-off timing
on the first call picks `np.sort` instead, so the choice only ever changes speed, never a value;
float64 rows (SWD's parity mode) always take `np.sort`. numba compiles the kernels on first use
in each process (about 1 s, no cache written, so nothing is stored beside the package).

Rows are sorted by blocks of `BLOCK_ROWS` in a thread pool (the kernel, like NumPy's sort,
releases the GIL); `own_threads` and `parallel_map` let SWD run its other CPU work the same way.
"""

from __future__ import annotations

import functools
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch

BLOCK_ROWS = 64  # rows per task: fewer, larger GEMMs; 64 x 8192 float32 is 2 MiB
RADIX_MIN = 1024  # shorter rows: NumPy's in-register sort is faster than three counting passes

_POOL: ThreadPoolExecutor | None = None
_OWN: dict = {}  # {'workers': n} while inside `own_threads`


@functools.cache
def numba_available() -> bool:
    """Whether numba imports; where it does not, SWD warns once and takes the NumPy and torch
    ways instead: the same values, several times slower."""
    try:
        import numba  # noqa: F401
    except ImportError:
        warnings.warn(
            "numba is not installed, so SWD runs without its compiled CPU kernels (the same values, "
            "several times slower); install medtrans[metrics], which pins numba",
            stacklevel=2,
        )
        return False
    return True


@functools.cache
def _kernels():
    """(radix_rows_, row_distance), compiled by numba on first call."""
    from numba import njit

    @njit("float64(float32[::1], float32[::1])", nogil=True, boundscheck=False, fastmath=True, cache=False)
    def row_distance(a, b):  # pragma: no cover - compiled: numba runs it, coverage does not see it
        """sum |a - b| in float64; fastmath lets LLVM vectorise the sum (the same order every run)."""
        total = 0.0
        for i in range(a.shape[0]):
            total += abs(np.float64(a[i]) - np.float64(b[i]))
        return total

    signature = "void(uint32[:, ::1], float32[:, ::1], float32[:, ::1], float64[::1])"

    @njit(signature, nogil=True, boundscheck=False, cache=False)
    def radix_rows_(keys, values, against, sums):  # pragma: no cover - compiled
        """Sort each row of `keys` (a uint32 view of the float32 `values`); with rows in `against`,
        also sums[r] = sum |sorted row r - against[r]|, while the row is in the cache."""
        rows, n = keys.shape
        a = np.empty(n, np.uint32)
        b = np.empty(n, np.uint32)
        h = np.zeros((3, 2048), np.uint32)  # uint32: measurably faster than int32 here
        for r in range(rows):
            row = keys[r]
            h[:] = 0
            for i in range(n):  # to ordered integers (in int64, branch-free), and the histograms
                u = np.int64(row[i])
                k = u ^ ((u >> 31) * 0x7FFFFFFF | 0x80000000)  # negative: bits flipped; else: sign set
                k |= -np.int64((u & 0x7FFFFFFF) > 0x7F800000) & 0xFFFFFFFF  # NaN: last, as np.sort
                a[i] = k
                h[0, k & 2047] += 1
                h[1, (k >> 11) & 2047] += 1
                h[2, k >> 22] += 1
            for p in range(3):  # counts -> start offsets
                total = 0
                for j in range(2048):
                    c = h[p, j]
                    h[p, j] = total
                    total += c
            for i in range(n):
                k = np.int64(a[i])
                d = k & 2047
                b[h[0, d]] = k
                h[0, d] += 1
            for i in range(n):
                k = np.int64(b[i])
                d = (k >> 11) & 2047
                a[h[1, d]] = k
                h[1, d] += 1
            for i in range(n):  # last digit, back to floats, into the row
                k = np.int64(a[i])
                d = k >> 22
                row[h[2, d]] = k ^ ((1 - (k >> 31)) * 0x7FFFFFFF | 0x80000000)
                h[2, d] += 1
            if against.shape[0]:
                sums[r] = row_distance(values[r], against[r])

    return radix_rows_, row_distance


_NO_ROWS = np.zeros((0, 0), np.float32)


def _check_rows(x: np.ndarray, name: str) -> None:
    if x.dtype != np.float32 or x.ndim != 2 or not x.flags.c_contiguous:
        raise ValueError(f"{name} needs C-contiguous 2-D float32 arrays")


def radix_sort_(x: np.ndarray, against: np.ndarray | None = None) -> np.ndarray | None:
    """Sort the rows of the C-contiguous 2-D float32 array `x` in place (LSD radix sort). With
    `against` (sorted rows of the same shape), return per row the float64 sum of |x - against|,
    taken right after each row is sorted."""
    _check_rows(x, "radix_sort_")
    if x.shape[1] >= 2**32:
        raise ValueError("radix_sort_ sorts rows of fewer than 2**32 elements")
    sums = np.zeros(x.shape[0])
    if against is not None:
        _check_rows(against, "radix_sort_")
        if against.shape != x.shape:
            raise ValueError(f"radix_sort_: against has shape {against.shape}, the rows {x.shape}")
    if x.size:
        _kernels()[0](x.view(np.uint32), x, _NO_ROWS if against is None else against, sums)
    return None if against is None else sums


def abs_diff_row_sums(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the float64 sum of |a - b| for two float32 arrays of one shape: one pass, no
    temporaries (NumPy's `np.abs(a - b).sum(1, dtype=float64)` makes two and converts in buffers)."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"abs_diff_row_sums needs two 2-D arrays of one shape, got {a.shape} and {b.shape}")
    compiled = a.flags.c_contiguous and b.flags.c_contiguous and numba_available()
    if a.dtype == b.dtype == np.float32 and compiled:
        row_distance = _kernels()[1]
        return np.array([row_distance(x, y) for x, y in zip(a, b, strict=True)])
    return np.abs(a.astype(np.float64) - b).sum(axis=1)


def sort_block_(x: np.ndarray, use_radix: bool | None = None, against: np.ndarray | None = None):
    """Sort the rows of `x` (C-contiguous, 2-D) in place, by radix sort where that is faster.
    With `against` (sorted rows of x's shape), return per row the sum of |sorted x - against|."""
    if x.dtype != np.float32 or x.shape[1] < RADIX_MIN:
        use_radix = False
    elif use_radix is None:
        use_radix = radix_pays()
    if use_radix:
        return radix_sort_(x, against)
    x.sort(axis=1)
    return None if against is None else abs_diff_row_sums(x, against)


@functools.cache
def radix_pays() -> bool:
    """Whether the radix sort beats NumPy's own on this CPU (timed once, float32 rows of 8192)."""
    if not numba_available():
        return False
    _kernels()  # compile first
    sample = np.random.default_rng(0).standard_normal((8, 8192)).astype(np.float32)
    best = {True: float("inf"), False: float("inf")}
    for _ in range(3):
        for choice in best:
            x = sample.copy()
            start = time.perf_counter()
            sort_block_(x, choice)
            best[choice] = min(best[choice], time.perf_counter() - start)
    return best[True] < 0.9 * best[False]


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL._max_workers != workers:  # noqa: SLF001
        _POOL = ThreadPoolExecutor(workers, thread_name_prefix="medtrans-cpu")
    return _POOL


def cpu_workers() -> int:
    """Threads for CPU work: torch's intra-op setting (outside `own_threads`), as the user set it."""
    return _OWN.get("workers") or max(1, torch.get_num_threads())


def _single_torch_thread() -> None:
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@contextmanager
def own_threads():
    """Parallelism by our own threads instead of torch's: inside, torch runs single-threaded and
    `parallel_map` spreads independent pieces of work over `cpu_workers()` threads.

    Why: SWD's tensors are a few MiB, so torch's OpenMP threads spend their time waiting at the end
    of each operation (libgomp spins), and a spinning thread takes the core that a sorting thread
    needs; independent work items in threads use both cores for the whole time instead. The torch
    setting of the calling thread is restored on exit."""
    if "workers" in _OWN:  # nested: already inside
        yield
        return
    workers = max(1, torch.get_num_threads())
    _OWN["workers"] = workers
    if workers > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if workers > 1:
            torch.set_num_threads(workers)
        del _OWN["workers"]


def parallel_map(fn, items: list) -> list:
    """[fn(item) for item in items], over `cpu_workers()` threads (each with one torch thread)."""
    workers = cpu_workers()
    if workers == 1 or len(items) < 2:
        return [fn(item) for item in items]

    def run(item):
        _single_torch_thread()
        return fn(item)

    return list(_pool(workers).map(run, items))


def in_background(fn, *args) -> Future:
    """Start fn(*args) on one of the `cpu_workers()` threads and return its future (run at once,
    in this thread, where there is only one worker): independent serial work then overlaps the
    `parallel_map` calls that follow."""
    if cpu_workers() == 1:
        done: Future = Future()
        done.set_result(fn(*args))
        return done

    def run():
        _single_torch_thread()
        return fn(*args)

    return _pool(cpu_workers()).submit(run)


def sort_rows_(x: np.ndarray) -> np.ndarray:
    """Sort every row of the C-contiguous 2-D float array `x` in place (and return it)."""
    if x.ndim != 2 or not x.flags.c_contiguous or not x.flags.writeable:
        raise ValueError("sort_rows_ needs a writeable C-contiguous 2-D array")
    parallel_map(sort_block_, [x[i : i + BLOCK_ROWS] for i in range(0, x.shape[0], BLOCK_ROWS)])
    return x
