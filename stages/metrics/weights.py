"""Locating and verifying the Inception weights; the only code that may download them.

The standard file is pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`: the 8 hex digits in
its name are the start of its sha256. The first `make weights` records the full sha256 in the
committed lock file `weights.lock.json` next to this module; every later load then checks the
full hash, so a corrupted or substituted file is refused instead of silently giving other numbers.
A user's own extractor (e.g. a RadImageNet Inception converted to this layout) is accepted only
through an explicit flag; its sha256 is recorded and it is marked as not the standard network.

    python -m medtrans.stages.metrics.weights fetch  [--dir DIR]   # download + verify (+ lock)
    python -m medtrans.stages.metrics.weights verify [--dir DIR]   # offline check
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from medtrans.shared.hashing import sha256_file

STANDARD_NAME = "pt_inception-2015-12-05-6726825d.pth"
STANDARD_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + STANDARD_NAME
# fetched beside it by `make weights`, checked and locked the same way: SPADE's VGG19 loss
# (torchvision's ImageNet VGG19; translate reads it from the weights folder)
ALSO_FETCHED = {"vgg19-dcbb9e9d.pth": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"}
LOCK_PATH = Path(__file__).with_name("weights.lock.json")
ENV_DIR = "MEDTRANS_WEIGHTS"
_PREFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


@dataclass(frozen=True)
class VerifiedFile:
    """A weights file whose sha256 has been checked (standard) or recorded (custom)."""

    path: Path
    sha256: str
    standard: bool

    @property
    def label(self) -> str:
        kind = "standard FID Inception" if self.standard else "custom (not the standard FID network)"
        return f"{kind}: {self.path.name} sha256 {self.sha256}"


class WeightsMissing(RuntimeError):
    """The standard weights file is not in the weights folder."""

    def __init__(self, expected: Path) -> None:
        self.expected = Path(expected)
        super().__init__(
            f"Inception weights missing: expected {self.expected}; run `make weights` "
            f"(or set {ENV_DIR} / --weights to the folder that holds {STANDARD_NAME})"
        )


class WeightsMismatch(RuntimeError):
    """A weights file whose sha256 is not the one its name or the lock file promises."""


def weights_dir() -> Path:
    """The weights folder: $MEDTRANS_WEIGHTS, else ./weights."""
    env = os.environ.get(ENV_DIR)
    return Path(env) if env else Path.cwd() / "weights"


_default_weights_dir = weights_dir  # `locate_inception`'s argument shadows the name


def name_prefix(name: str) -> str:
    """The hex digest prefix a file name promises (`...-6726825d.pth` -> '6726825d')."""
    m = _PREFIX.search(name)
    if not m:
        raise ValueError(f"{name!r} carries no sha256 prefix (expected NAME-<hex>.ext)")
    return m.group(1)


def read_lock(lock: Path | None = None) -> dict[str, dict]:
    """{file name: {"sha256", "url", "size"}}; empty before the first fetch."""
    lock = LOCK_PATH if lock is None else Path(lock)
    if not lock.exists():
        return {}
    return json.loads(lock.read_text()).get("files", {})


def record_lock(name: str, sha256: str, url: str, size: int, lock: Path | None = None) -> None:
    """Add one file's full hash to the lock file (only ever adds; never overwrites a pin)."""
    lock = LOCK_PATH if lock is None else Path(lock)
    files = read_lock(lock)
    if name in files and files[name]["sha256"] != sha256:
        raise WeightsMismatch(f"{lock} already pins {name} to {files[name]['sha256']}, not {sha256}")
    files[name] = {"sha256": sha256, "size": size, "url": url}
    lock.write_text(json.dumps({"files": files}, indent=2, sort_keys=True) + "\n")


def check_digest(name: str, sha256: str, lock: Path | None = None, where: str | Path = "") -> None:
    """Refuse a digest that differs from the lock's pin, or from the prefix in the name."""
    where = where or name
    pinned = read_lock(lock).get(name, {}).get("sha256")
    if pinned and sha256 != pinned:
        raise WeightsMismatch(
            f"{where}: sha256 {sha256} differs from the pin {pinned} in {lock or LOCK_PATH}; "
            "the file is corrupt or not the published one: delete it and run `make weights`"
        )
    prefix = name_prefix(name)
    if not sha256.startswith(prefix):
        raise WeightsMismatch(
            f"{where}: sha256 {sha256} does not start with {prefix} as its name promises; "
            "the file is corrupt or not the published one: delete it and run `make weights`"
        )


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def _sha256_cached(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) so repeated loads hash once."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = sha256_file(path)
    return _HASH_CACHE[key]


def locate_inception(
    weights_dir: Path | None = None, custom: Path | None = None, lock: Path | None = None
) -> VerifiedFile:
    """The verified standard file from the weights folder, or the user's explicit custom file.

    Raises WeightsMissing (standard file absent), WeightsMismatch (wrong hash) or
    FileNotFoundError (custom file absent)."""
    if custom is not None:
        custom = Path(custom)
        if not custom.is_file():
            raise FileNotFoundError(f"custom feature-extractor weights not found: {custom}")
        return VerifiedFile(custom, _sha256_cached(custom), standard=False)
    folder = _default_weights_dir() if weights_dir is None else Path(weights_dir)
    path = folder / STANDARD_NAME
    if not path.is_file():
        raise WeightsMissing(path)
    sha = _sha256_cached(path)
    check_digest(STANDARD_NAME, sha, lock, where=path)
    return VerifiedFile(path, sha, standard=True)


def fetch(
    folder: Path,
    url: str = STANDARD_URL,
    name: str = STANDARD_NAME,
    lock: Path | None = None,
    timeout: float = 120.0,
) -> VerifiedFile:
    """Download `url` to folder/name unless a verified copy is there; pin its full sha256.

    The download goes to a `.partial` file and is renamed only after its hash checks out."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / name
    if dest.is_file():
        sha = sha256_file(dest)
        check_digest(name, sha, lock, where=dest)
    else:
        part = dest.with_name(dest.name + ".partial")
        h = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:  # noqa: S310
                while chunk := resp.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
            sha = h.hexdigest()
            check_digest(name, sha, lock, where=url)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        part.replace(dest)
    if name not in read_lock(lock):
        record_lock(name, sha, url, dest.stat().st_size, lock)
    return VerifiedFile(dest, sha, standard=(name == STANDARD_NAME))


def verify(folder: Path, lock: Path | None = None) -> tuple[VerifiedFile, bool]:
    """Offline check of the standard file; also says whether its full hash is pinned yet."""
    f = locate_inception(folder, lock=lock)
    return f, STANDARD_NAME in read_lock(lock)


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The FID Inception weights: download once, verify offline.",
)
DirOption = Annotated[
    Path | None, typer.Option("--dir", help=f"Weights folder (default ${ENV_DIR} or ./weights).")
]
LockOption = Annotated[Path | None, typer.Option(help=f"Lock file (default {LOCK_PATH}).")]


def _fail(err: Exception) -> None:
    """Exit 1 for missing weights (run fetch), 2 for a wrong or unreadable file."""
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(1 if isinstance(err, WeightsMissing) else 2)


@app.command("fetch")
def fetch_cmd(
    folder: DirOption = None,
    url: Annotated[str, typer.Option(help="Download source.")] = STANDARD_URL,
    lock: LockOption = None,
) -> None:
    """Download and verify the standard file (and record its full sha256 on first use)."""
    try:
        had_pin = STANDARD_NAME in read_lock(lock)
        folder = folder if folder is not None else weights_dir()
        f = fetch(folder, url, lock=lock)
        how = "matches the pin in" if had_pin else "full sha256 recorded in; commit"
        typer.echo(f"ok {f.path} sha256 {f.sha256} ({how} {lock or LOCK_PATH})")
        for name, extra_url in ALSO_FETCHED.items():
            g = fetch(folder, extra_url, name=name, lock=lock)
            typer.echo(f"ok {g.path} sha256 {g.sha256} (locked in {lock or LOCK_PATH})")
    except (WeightsMissing, WeightsMismatch, OSError) as err:
        _fail(err)


@app.command("verify")
def verify_cmd(folder: DirOption = None, lock: LockOption = None) -> None:
    """Offline check of the standard file (and VGG19, where present) against the pinned sha256."""
    try:
        folder = folder if folder is not None else weights_dir()
        f, pinned = verify(folder, lock=lock)
        how = "matches the full pin" if pinned else "prefix only; full hash not pinned yet (run fetch)"
        typer.echo(f"ok {f.path} sha256 {f.sha256} ({how})")
        for name in ALSO_FETCHED:
            path = folder / name
            if path.is_file():
                check_digest(name, _sha256_cached(path), lock, where=path)
                typer.echo(f"ok {path}")
            else:
                typer.echo(f"note: no {path} (SPADE's vgg_loss needs it: `make weights`)")
    except (WeightsMissing, WeightsMismatch, OSError) as err:
        _fail(err)


if __name__ == "__main__":
    app()
