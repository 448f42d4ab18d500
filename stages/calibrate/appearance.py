"""Appearance perturbations: the pixels change, the anatomy (the mask) does not.

Each takes a float32 image in [0, 1] of shape (H, W), a severity t in (0, 1] (1: the strongest,
see the perturbation catalogue) and a NumPy generator seeded for this slice and severity, and
returns the perturbed image (not yet clipped). TorchIO and MONAI transforms are used with fixed
parameters (their non-random classes, or a random one with its own seeded state), so the
result depends on nothing but the arguments.
"""

from __future__ import annotations

import numpy as np
import torch
import torchio as tio
from monai.transforms import GibbsNoise, RandRicianNoise, ScaleIntensity


def _tio(image: np.ndarray, transform) -> np.ndarray:
    """Apply a TorchIO transform to a 2-D image (TorchIO's layout: C, W, H, D with D = 1)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, :, :, None]
    out = transform(tio.ScalarImage(tensor=tensor, affine=np.eye(4)))
    return out.data[0, :, :, 0].numpy().astype(np.float32)


def _seed32(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


def gaussian_noise(image: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    return _tio(image, tio.Noise(mean=0.0, std=0.2 * t, seed=_seed32(rng)))


def rician_noise(image: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    noise = RandRicianNoise(prob=1.0, std=0.2 * t, sample_std=False)
    noise.set_random_state(seed=_seed32(rng))
    return np.asarray(noise(image[None].astype(np.float32)))[0]


def blur(image: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    sigma = 3.0 * t * image.shape[0] / 64
    return _tio(image, tio.Blur(std=(sigma, sigma, 0.0)))


def gamma(image: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    return _tio(image, tio.Gamma(gamma=float(3.0**t)))


def contrast(image: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    mean = float(image.mean())
    return mean + (image - mean) * (1.0 - 0.8 * t)


def intensity_scale(image: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    scale = ScaleIntensity(minv=None, maxv=None, factor=-0.6 * t)
    return np.asarray(scale(image[None].astype(np.float32)))[0]


def bias_field(image: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    """Order-3 polynomial log-field; only the terms in x and y (a slice has one z position).
    Random directions, fixed size: the coefficient vector has norm 1.2 t."""
    # monomials x^i y^j z^k with i + j + k <= 3, in TorchIO's order
    powers = [(i, j, k) for i in range(4) for j in range(4 - i) for k in range(4 - i - j)]
    coefficients = np.zeros(len(powers))
    planar = [n for n, (_, _, k) in enumerate(powers) if k == 0]
    draw = rng.normal(size=len(planar))
    coefficients[planar] = 1.2 * t * draw / np.linalg.norm(draw)
    return _tio(image, tio.BiasField(coefficients=coefficients.tolist(), order=3))


def ghosting(image: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    axis = int(rng.integers(0, 2))
    return _tio(image, tio.Ghosting(num_ghosts=4, axis=axis, intensity=float(t), restore=0.02))


def spike(image: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    positions = np.zeros((2, 3))
    positions[:, :2] = rng.uniform(0.05, 0.2, (2, 2)) * rng.choice([-1.0, 1.0], (2, 2))
    return _tio(image, tio.Spike(spikes_positions=positions, intensity=1.5 * t))


def motion(image: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    """Two in-plane moves (rotation about the slice normal, shift in the plane) part way through
    the k-space acquisition."""
    degrees = np.zeros((2, 3))
    degrees[:, 2] = 6.0 * t * rng.choice([-1.0, 1.0], 2)
    translation = np.zeros((2, 3))
    translation[:, :2] = 0.03 * t * image.shape[0] * rng.choice([-1.0, 1.0], (2, 2))
    times = np.sort(rng.uniform(0.3, 0.7, 2))
    return _tio(
        image, tio.Motion(degrees=degrees, translation=translation, times=times, image_interpolation="linear")
    )


def gibbs(image: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(GibbsNoise(alpha=0.85 * t)(image[None].astype(np.float32)))[0]


APPEARANCE = {
    f.__name__: f
    for f in (
        gaussian_noise, rician_noise, blur, gamma, contrast, intensity_scale, bias_field, ghosting, spike,
        motion, gibbs,
    )
}  # fmt: skip
