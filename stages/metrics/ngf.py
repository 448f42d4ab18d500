"""Normalised gradient fields (Haber & Modersitzki 2006, "Intensity gradient based registration
and fusion of multi-modal images"): whether an image and its translation have their edges in the
same places with the same orientation, whatever their contrast.

Per image, the normalised gradient n(x) = grad I(x) / sqrt(|grad I(x)|^2 + eta^2), central
differences (one-sided at the border, `np.gradient`), with the edge parameter eta = the image's
mean gradient magnitude: gradients well below the image's typical edge (flat regions, noise)
count little, and n does not change when the image is scaled, so eta needs no tuning per
modality. Haber & Modersitzki's alignment term is S(A, B) = mean_x (n_A(x) . n_B(x))^2 (their
distance is 1 - that integrand), which is blind to the sign of the gradient (inversions, bone
bright in CT and dark in MRI). medtrans reports

    NGF(A, B) = S(A, B) / sqrt(S(A, A) S(B, B))

the cosine of the two fields of n n^T: 1 for identical images (the raw S is below 1 wherever a
gradient is weak) and for any A, B with edges parallel everywhere and proportionally strong,
0 for edges everywhere perpendicular; symmetric. Undefined (NaN) when either image is constant.
"""

from __future__ import annotations

import numpy as np

from medtrans.stages.metrics._checks import as_pair_stacks

SETTINGS = {"gradient": "central differences", "eta": "mean gradient magnitude of each image"}


def normalised_gradients(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_y, n_x), each (N, H, W), of an (N, H, W) stack; zero for a constant image."""
    stack = np.asarray(images, dtype=np.float64)
    gy, gx = np.gradient(stack, axis=(1, 2))
    mag2 = gy * gy + gx * gx
    eta = np.sqrt(mag2).mean(axis=(1, 2), keepdims=True)
    norm = np.sqrt(mag2 + eta * eta)
    with np.errstate(invalid="ignore", divide="ignore"):
        ny, nx = np.where(norm > 0, gy / norm, 0.0), np.where(norm > 0, gx / norm, 0.0)
    return ny, nx


def describe(images: np.ndarray) -> np.ndarray:
    """(N, 2, H, W): the normalised gradients of an (N, H, W) stack, what NGF needs of one side."""
    return np.stack(normalised_gradients(images), axis=1)


def compare(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) NGF of each pair of two `describe` outputs, in [0, 1]; NaN where either is constant."""
    cross = ((a * b).sum(axis=1) ** 2).mean(axis=(1, 2))
    self_a = ((a * a).sum(axis=1) ** 2).mean(axis=(1, 2))
    self_b = ((b * b).sum(axis=1) ** 2).mean(axis=(1, 2))
    den = np.sqrt(self_a * self_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.minimum(cross / den, 1.0), np.nan)


def ngf_pairs(sources: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(N,) NGF of each pair of two (N, H, W) stacks, in [0, 1] (higher: edges kept)."""
    a, b = as_pair_stacks(sources, others, "ngf")
    return compare(describe(a), describe(b))


def ngf(a: np.ndarray, b: np.ndarray) -> float:
    """NGF of two 2-D images of one shape."""
    return float(ngf_pairs(a, b)[0])
