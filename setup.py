"""Packaging shim: map the top-level folders `shared/` and `stages/` to `medtrans.shared` and
`medtrans.stages`, so imports read `medtrans...` while the folder still says where a module lives."""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent


def _packages(folder: str) -> dict[str, str]:
    found = {}
    for init in sorted((ROOT / folder).rglob("__init__.py")):
        rel = init.parent.relative_to(ROOT)
        if "_package" in rel.parts:
            continue
        found["medtrans." + ".".join(rel.parts)] = rel.as_posix()
    return found


PACKAGE_DIRS = {**_packages("shared"), **_packages("stages")}

setup(
    packages=["medtrans", *PACKAGE_DIRS],
    package_dir={"medtrans": "shared/_package", **PACKAGE_DIRS},
    # data files next to the code (e.g. stages/metrics/weights.lock.json) must reach the wheel that
    # the container images install, not only the editable checkout
    package_data={"": ["*.json"], "medtrans.shared": ["data/*", "locks/*"]},
)
