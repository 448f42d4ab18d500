"""Content digests: sha256 of files and of JSON-ready config parts."""

import hashlib
import json
import time
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


_MEMO: dict[tuple, str] = {}


def sha256_checked(path: str | Path) -> str:
    """`sha256_file`, remembered in this process for a file whose inode, size, mtime and ctime
    are unchanged: a stage re-checks every upstream file it reads, and `status` every unit,
    without re-reading the same bytes several times in one command. A file changed in the last
    two seconds is always re-read (file times are coarser than a quick rewrite)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key in _MEMO:
        return _MEMO[key]
    value = sha256_file(path)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > 2_000_000_000:
        _MEMO[key] = value
    return value


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal configs give equal digests."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def digest(obj: Any) -> str:
    """sha256 of the canonical JSON of a config part."""
    return sha256_bytes(canonical_json(obj).encode())
