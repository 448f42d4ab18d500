"""The calibration perturbations, each declared once: its name, its family and what it does.

The study config validates `calibrate.perturbations` against this list, the calibrate stage
implements each name (`medtrans.stages.calibrate.perturb`, checked against this list at import),
and the report reads the families from here. Standard library only, no image code.

Families: `appearance` changes pixels and leaves the anatomy (the mask) as it is; `anatomy`
changes the anatomy and the mask with it, so the ground truth of what changed is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["appearance", "anatomy"]
FAMILIES: tuple[Family, ...] = ("appearance", "anatomy")


@dataclass(frozen=True)
class PerturbationSpec:
    name: str
    family: Family
    summary: str  # what severity 1.0 (the strongest) does, for the README and the report


_A, _N = "appearance", "anatomy"
PERTURBATIONS: tuple[PerturbationSpec, ...] = (
    PerturbationSpec("gaussian_noise", _A, "additive Gaussian noise, std 0.2 of the range (TorchIO Noise)"),
    PerturbationSpec("rician_noise", _A, "Rician noise, std 0.2 of the range (MONAI RandRicianNoise)"),
    PerturbationSpec("blur", _A, "Gaussian blur, sigma 3 px per 64 px of side (TorchIO Blur)"),
    PerturbationSpec("gamma", _A, "gamma 3 (TorchIO Gamma)"),
    PerturbationSpec("contrast", _A, "contrast compressed to 20% around the image mean"),
    PerturbationSpec("intensity_scale", _A, "intensities times 0.4 (MONAI ScaleIntensity)"),
    PerturbationSpec("bias_field", _A, "smooth multiplicative bias field, order 3 (TorchIO BiasField)"),
    PerturbationSpec("ghosting", _A, "MR ghosting, 4 ghosts of strength 1 (TorchIO Ghosting)"),
    PerturbationSpec("spike", _A, "k-space spikes (herringbone), intensity 1.5 (TorchIO Spike)"),
    PerturbationSpec("motion", _A, "k-space motion: 2 moves of 6 deg, 3% of the side (TorchIO Motion)"),
    PerturbationSpec("gibbs", _A, "Gibbs ringing, k-space truncation alpha 0.85 (MONAI GibbsNoise)"),
    PerturbationSpec("elastic", _N, "elastic warp of image and mask (MONAI Rand2DElastic)"),
    PerturbationSpec("affine", _N, "rotation 20 deg, scale 20%, shift 10% of image and mask (MONAI Affine)"),
    PerturbationSpec("erase", _N, "a structure erased, filled with its surrounding texture (biharmonic)"),
    PerturbationSpec("shift", _N, "a structure moved by a quarter of the side, its old place inpainted"),
    PerturbationSpec("duplicate", _N, "a structure copied a quarter of the side away"),
)


def names() -> tuple[str, ...]:
    return tuple(p.name for p in PERTURBATIONS)


def get(name: str) -> PerturbationSpec:
    for p in PERTURBATIONS:
        if p.name == name:
            return p
    raise ValueError(f"unknown perturbation {name!r}; choose from {', '.join(names())}")


def family(name: str) -> Family:
    return get(name).family
