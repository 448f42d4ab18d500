"""Normalised mutual information (Studholme, Hill & Hawkes 1999) of an image and its translation.

    NMI(A, B) = (H(A) + H(B)) / H(A, B)

from the joint histogram of the two images' pixel values, `BINS` x `BINS` bins spread evenly
between each image's own minimum and maximum (as `skimage.metrics.normalized_mutual_information`
bins, which it equals). It ranges from 1 (independent values) to 2 (either image's value a
one-to-one function of the other's): any one-to-one intensity remap of either image, an
inversion included, leaves it unchanged, which is why it compares a source slice with its
translation into another modality. It is symmetric and needs no training or weights.

32 bins: the joint histogram has 1024 cells, about 4 pixels each at the demo's 64 x 64 and 64 at
256 x 256 (more bins on small images inflate NMI towards 2 through empty cells; 32 is elastix's
default for mutual information). Undefined (NaN) when both images are constant.
"""

from __future__ import annotations

import numpy as np

from medtrans.stages.metrics._checks import as_pair_stacks

BINS = 32
SETTINGS = {"bins": BINS, "binning": "equal bins from each image's minimum to its maximum"}


def _bin_index(image: np.ndarray, bins: int) -> np.ndarray:
    """Each pixel's bin among `bins` equal bins over the image's own range (last edge closed),
    as np.histogramdd assigns them; a constant image is all in one bin."""
    flat = image.reshape(-1)
    lo, hi = float(flat.min()), float(flat.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5  # np.histogramdd's range for a constant axis
    edges = np.linspace(lo, hi, bins + 1)
    idx = np.searchsorted(edges, flat, side="right") - 1
    return np.minimum(idx, bins - 1)  # the maximum falls on the last edge: last bin


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _nmi_of_bins(a: np.ndarray, b: np.ndarray, bins: int) -> float:
    joint = np.bincount(a * bins + b, minlength=bins * bins).reshape(bins, bins).astype(np.float64)
    h_ab = _entropy(joint)
    if h_ab == 0.0:
        return float("nan")
    return (_entropy(joint.sum(axis=1)) + _entropy(joint.sum(axis=0))) / h_ab


def describe(images: np.ndarray) -> np.ndarray:
    """(N, H*W) bin index of every pixel of an (N, H, W) stack: what NMI needs of one side."""
    return np.stack([_bin_index(img, BINS) for img in np.asarray(images, dtype=np.float64)])


def compare(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) NMI of each pair of two `describe` outputs."""
    return np.array([_nmi_of_bins(x, y, BINS) for x, y in zip(a, b, strict=True)], dtype=np.float64)


def nmi(a: np.ndarray, b: np.ndarray, bins: int = BINS) -> float:
    """Studholme's NMI of two 2-D images of one shape, in [1, 2]; NaN if both are constant."""
    (a,), (b,) = as_pair_stacks(a, b, "nmi")
    return _nmi_of_bins(_bin_index(a, bins), _bin_index(b, bins), bins)


def nmi_pairs(sources: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(N,) NMI of each pair of two (N, H, W) stacks (higher: more structure shared)."""
    a, b = as_pair_stacks(sources, others, "nmi")
    return compare(describe(a), describe(b))
