"""A process pool over volumes, sized to the CPUs, with a progress bar; serial when one worker."""

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from medtrans.shared.log import progress

PRELOAD = ("medtrans.stages.preprocess.worker", "medtrans.stages.preprocess.phantom.generate")
T = TypeVar("T")
R = TypeVar("R")


def worker_count(setting: int) -> int:
    """0: one per CPU available to this process."""
    if setting > 0:
        return setting
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int, desc: str) -> Iterator[R]:
    """fn over items in order. Workers start from a fork server (a clean process, no inherited
    threads), so the pool is safe beside torch in the same program."""
    n = min(workers, len(items))
    if n <= 1:
        yield from progress(map(fn, items), desc=desc, total=len(items))
        return
    ctx = multiprocessing.get_context("forkserver")
    # the server must not import __main__ (the CLI, torch): preload only the light workers
    ctx.set_forkserver_preload(list(PRELOAD))
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        yield from progress(pool.map(fn, items, chunksize=1), desc=desc, total=len(items))
