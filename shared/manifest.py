"""manifest.json: what a stage produced, from what, with which config and software."""

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict

from medtrans.shared import signing
from medtrans.shared.hashing import sha256_checked, sha256_file
from medtrans.shared.layout import MANIFEST

KINDS = {
    ".png": "image",
    ".jpg": "image",
    ".csv": "table",
    ".json": "json",
    ".pt": "checkpoint",
    ".pth": "checkpoint",
    ".npy": "array",
    ".npz": "arrays",
    ".nii": "volume",
    ".gz": "volume",
    ".nrrd": "volume",
    ".html": "html",
    ".md": "text",
    ".tex": "text",
    ".svg": "figure",
}


class ManifestError(RuntimeError):
    """A manifest that is missing, unreadable or incomplete."""


class SignatureError(ManifestError):
    """A manifest whose signature does not hold under the configured key."""


class InputRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str  # relative to the run root
    sha256: str  # of the upstream manifest.json


class OutputRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str  # relative to the unit's folder
    sha256: str
    kind: str
    shape: list[int] | None = None
    bytes: int


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: str
    unit: list[str]
    stage_version: str
    code_version: str
    config_digest: str
    config: Any
    inputs: list[InputRef]
    outputs: list[OutputRef]
    environment: dict[str, Any]
    seeds: dict[str, int]
    started: str
    finished: str
    status: Literal["complete"]
    extra: dict[str, Any] = {}
    signature: dict[str, str] | None = None  # only with a signing key (shared/signing.py)

    def output(self, rel: str) -> OutputRef | None:
        return next((o for o in self.outputs if o.path == rel), None)


def _shape(path: Path) -> list[int] | None:
    try:
        if path.suffix == ".png":
            with Image.open(path) as im:
                w, h = im.size
                bands = len(im.getbands())
            return [h, w] if bands == 1 else [h, w, bands]
        if path.suffix == ".npy":
            return list(np.load(path, mmap_mode="r").shape)
    except Exception:  # noqa: BLE001 - a shape is descriptive only
        return None
    return None


def describe_outputs(folder: Path) -> list[OutputRef]:
    """Hash every file under `folder` (manifest itself and dot-files excluded), sorted by path."""
    refs = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel == MANIFEST or any(part.startswith(".") for part in Path(rel).parts):
            continue
        refs.append(
            OutputRef(
                path=rel,
                sha256=sha256_file(path),
                kind=KINDS.get(path.suffix.lower(), "file"),
                shape=_shape(path),
                bytes=path.stat().st_size,
            )
        )
    return refs


def write_manifest(folder: Path, manifest: Manifest, key: bytes | None = None) -> Path:
    """Write `manifest.json`; signed when a key is given. Unsigned manifests carry no signature
    field at all, so they are byte-identical to those written before signing existed."""
    content = manifest.model_dump(mode="json")
    content.pop(signing.FIELD, None)
    if key is not None:
        content[signing.FIELD] = signing.sign(content, key)
    path = folder / MANIFEST
    path.write_text(json.dumps(content, indent=2, sort_keys=False) + "\n")
    return path


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of an output folder, or None where there is none (not yet run)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        return Manifest.model_validate_json(path.read_text())
    except Exception as err:  # noqa: BLE001
        raise ManifestError(
            f"{path}: unreadable manifest ({err.__class__.__name__}); delete the folder and rerun"
        ) from None


def read_trusted(folder: Path, key: bytes | None) -> Manifest | None:
    """`read_manifest`, and with a signing key the signature must hold (ManifestError if not)."""
    manifest = read_manifest(folder)
    if manifest is None or key is None:
        return manifest
    path = Path(folder) / MANIFEST
    why = signing.check(json.loads(path.read_text()), key)
    if why:
        raise SignatureError(f"{path}: {why}; run `medtrans verify` on the run folder")
    return manifest


def output_problems(folder: Path, manifest: Manifest) -> list[str]:
    """Outputs of `folder` that are missing or whose sha256 differs from `manifest` (each
    message names the file); empty when all hold. Hashes are remembered per process."""
    bad = []
    for ref in manifest.outputs:
        path = Path(folder) / ref.path
        if not path.is_file():
            bad.append(f"{path}: missing")
        elif sha256_checked(path) != ref.sha256:
            bad.append(f"{path}: sha256 differs from manifest")
    return bad


def unlisted_files(folder: Path, manifest: Manifest) -> list[Path]:
    """Files in an output folder that its manifest does not list (dot-files excluded, as in
    `describe_outputs`)."""
    listed = {o.path for o in manifest.outputs} | {MANIFEST}
    found = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(folder).as_posix()
        if rel not in listed and not any(part.startswith(".") for part in Path(rel).parts):
            found.append(path)
    return found


def verify_folder(folder: Path) -> list[str]:
    """Files of one output folder that no longer match its manifest (empty list: all good)."""
    manifest = read_manifest(folder)
    if manifest is None:
        return [f"{folder / MANIFEST}: missing"]
    return output_problems(folder, manifest)
