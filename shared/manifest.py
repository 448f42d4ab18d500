"""manifest.json: what a stage produced, from what, with which config and software."""

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict

from medtrans.shared.hashing import sha256_file
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


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=False) + "\n")
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


def require_manifest(folder: Path, hint: str) -> Manifest:
    """The complete manifest of an upstream folder, or an error that says how to produce it."""
    manifest = read_manifest(folder)
    if manifest is None:
        raise ManifestError(f"{Path(folder) / MANIFEST}: missing; {hint}")
    return manifest


def verify_folder(folder: Path) -> list[str]:
    """Files of one output folder that no longer match its manifest (empty list: all good)."""
    manifest = read_manifest(folder)
    if manifest is None:
        return [f"{folder / MANIFEST}: missing"]
    bad = []
    for ref in manifest.outputs:
        path = folder / ref.path
        if not path.is_file():
            bad.append(f"{path}: missing")
        elif sha256_file(path) != ref.sha256:
            bad.append(f"{path}: sha256 differs from manifest")
    return bad
