"""What ran: code version, Python, torch, CUDA, GPU, package versions, container image."""

import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import medtrans

PACKAGES = (
    "torch",
    "monai",
    "numpy",
    "scipy",
    "pandas",
    "pydicom",
    "nibabel",
    "SimpleITK",
    "pydantic",
    "typer",
    "torch-fidelity",
    "frd-score",
    "pyradiomics-bhklab",
    "TotalSegmentator",
)


@lru_cache(maxsize=1)
def code_version() -> str:
    """medtrans version plus the git revision when run from a checkout (or MEDTRANS_REVISION)."""
    rev = os.environ.get("MEDTRANS_REVISION", "")
    if not rev:
        root = Path(__file__).resolve().parent.parent
        try:
            rev = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            rev = ""
    return f"{medtrans.__version__}+{rev}" if rev else medtrans.__version__


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def environment() -> dict:
    """A JSON-ready description of the software and hardware this process runs on."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "packages": {name: v for name in PACKAGES if (v := _version(name))},
        "image_id": os.environ.get("MEDTRANS_IMAGE_ID") or None,
        "container": bool(os.environ.get("MEDTRANS_IMAGE_ID")),
        "code_version": code_version(),
    }
