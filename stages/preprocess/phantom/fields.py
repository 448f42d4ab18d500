"""Smooth random fields and shape helpers shared by the phantom anatomies (pure NumPy/SciPy)."""

import numpy as np
from scipy import ndimage


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float | tuple[float, ...]
) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to zero mean, unit std (texture, tissue density)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="reflect")
    return (field - field.mean()) / (field.std() + 1e-8)


def grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised voxel-centre coordinates in [0,1] along (slice, row, col)."""
    axes = [(np.arange(n, dtype=np.float32) + 0.5) / n for n in shape]
    return np.meshgrid(*axes, indexing="ij")


def bias_field(rng: np.random.Generator, shape: tuple[int, int, int], strength: float) -> np.ndarray:
    """A smooth multiplicative coil-sensitivity field around 1 (low-order polynomial + blob)."""
    w, v, u = grid(shape)
    c = rng.normal(0.0, 1.0, 6)
    poly = c[0] * (u - 0.5) + c[1] * (v - 0.5) + c[2] * (w - 0.5) + c[3] * (u - 0.5) * (v - 0.5)
    poly += c[4] * (u - 0.5) ** 2 + c[5] * (v - 0.5) ** 2
    poly = poly / (np.abs(poly).max() + 1e-8)
    return (1.0 + strength * poly).astype(np.float32)


def rician(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of a complex signal with Gaussian noise in both channels (MRI noise)."""
    real = signal + rng.normal(0.0, sigma, signal.shape)
    imag = rng.normal(0.0, sigma, signal.shape)
    return np.sqrt(real**2 + imag**2).astype(np.float32)


def blur(volume: np.ndarray, sigma: float) -> np.ndarray:
    """In-plane Gaussian blur (resolution loss), not across slices."""
    if sigma <= 0:
        return volume
    return ndimage.gaussian_filter(volume, (0.0, sigma, sigma), mode="nearest")
