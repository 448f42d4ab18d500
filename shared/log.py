"""One logger for all stages; progress bars go through tqdm on stderr."""

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_CONFIGURED = False


def get_logger(name: str = "medtrans") -> logging.Logger:
    """The medtrans logger, configured once (level from MEDTRANS_LOG, default INFO)."""
    global _CONFIGURED
    if not _CONFIGURED:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        root = logging.getLogger("medtrans")
        root.addHandler(handler)
        root.setLevel(os.environ.get("MEDTRANS_LOG", "INFO").upper())
        root.propagate = False
        _CONFIGURED = True
    return logging.getLogger(name)


def progress(items: Iterable[T], desc: str, total: int | None = None, **kw) -> Iterator[T]:
    """A progress bar for a loop a person waits for (hidden when MEDTRANS_PROGRESS=0)."""
    disable = os.environ.get("MEDTRANS_PROGRESS", "1") == "0"
    return tqdm(items, desc=desc, total=total, disable=disable, dynamic_ncols=True, leave=False, **kw)
