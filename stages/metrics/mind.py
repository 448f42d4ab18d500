"""MIND-SSC distance (Heinrich et al., MICCAI 2013 "Towards realtime multimodal fusion for
image-guided interventions using self-similarity context", after MIND, MedIA 2012) between an
image and its translation.

The descriptor describes each pixel by how alike small patches around it are to each other, so
it compares anatomy across contrasts and modalities; no library pinned here offers it (MONAI
has none), so it is written here from the papers, in 2-D:

- the four neighbours of x at distance `DILATION` (up, left, down, right) and the self-similarity
  context: the 4 pairs of neighbours at distance sqrt(2) * DILATION from each other (the 2-D
  counterpart of the paper's 12 pairs of the 3-D six-neighbourhood; the centre is left out, which
  makes the descriptor robust to noise at x);
- per pair (a, b) the patch distance D_ab(x) = mean over a (2 `RADIUS` + 1)^2 box of
  (I(x + a + p) - I(x + b + p))^2, the image padded by replicating its border;
- SSC_ab(x) = exp(-(D_ab(x) - min_pairs D(x)) / V(x)), V(x) = mean over the pairs of
  D_ab(x) - min D(x) (subtracting the minimum normalises the largest entry to 1, as MIND's 1/n
  does), V clamped to [1e-3, 1e3] times its mean over the image (Heinrich's reference code) so
  flat regions do not divide by zero; a constant image has every entry 1.

The distance of two images is the mean absolute difference of their descriptors over the four
entries and every pixel (MIND's L1 similarity, Eq. 6 of the 2012 paper): 0 for identical images
and for any intensity map I -> s * I + t (s != 0, inversions included), at most 1. It is
symmetric. RADIUS 2 and DILATION 2 are Heinrich's defaults in his PyTorch MIND-SSC.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medtrans.stages.metrics._checks import as_pair_stacks

RADIUS = 2  # patch half-width: 5 x 5 box
DILATION = 2  # distance of the neighbours from the centre
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1))  # (dy, dx): up, left, down, right
# the self-similarity context: neighbour pairs at squared distance 2 (not the opposite ones)
PAIRS = tuple(
    (a, b)
    for i, a in enumerate(_NEIGHBOURS)
    for b in _NEIGHBOURS[i + 1 :]
    if (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 == 2
)
SETTINGS = {"radius": RADIUS, "dilation": DILATION, "pairs": len(PAIRS), "distance": "mean |difference|"}


def _shifted(padded: np.ndarray, offset: tuple[int, int], pad: int, shape: tuple[int, int]) -> np.ndarray:
    """I(x + offset) for every x, from the stack padded by `pad` on each side."""
    dy, dx = offset
    h, w = shape
    return padded[:, pad + dy : pad + dy + h, pad + dx : pad + dx + w]


def mind_ssc(images: np.ndarray, radius: int = RADIUS, dilation: int = DILATION) -> np.ndarray:
    """The (N, 4, H, W) MIND-SSC descriptors of an (N, H, W) stack (float64, entries in (0, 1])."""
    stack = np.asarray(images, dtype=np.float64)
    shape = stack.shape[1:]
    padded = np.pad(stack, ((0, 0), (dilation, dilation), (dilation, dilation)), mode="edge")
    box = (1, 2 * radius + 1, 2 * radius + 1)
    dist = np.stack(
        [
            ndimage.uniform_filter(
                (
                    _shifted(padded, (a[0] * dilation, a[1] * dilation), dilation, shape)
                    - _shifted(padded, (b[0] * dilation, b[1] * dilation), dilation, shape)
                )
                ** 2,
                size=box,
                mode="nearest",
            )
            for a, b in PAIRS
        ],
        axis=1,
    )
    dist -= dist.min(axis=1, keepdims=True)
    var = dist.mean(axis=1)  # (N, H, W)
    mean = var.mean(axis=(1, 2), keepdims=True)
    var = np.where(mean > 0, np.clip(var, 1e-3 * mean, 1e3 * mean), 1.0)
    return np.exp(-dist / var[:, None])


def describe(images: np.ndarray) -> np.ndarray:
    """The (N, 4, H, W) descriptors of an (N, H, W) stack: what the distance needs of one side."""
    return mind_ssc(images)


def compare(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) MIND-SSC distance of each pair of two `describe` outputs."""
    return np.abs(a - b).mean(axis=(1, 2, 3))


def mind_pairs(sources: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(N,) MIND-SSC distance of each pair of two (N, H, W) stacks (lower: structure kept)."""
    a, b = as_pair_stacks(sources, others, "mind")
    return compare(describe(a), describe(b))


def mind_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The MIND-SSC distance of two 2-D images of one shape, in [0, 1]."""
    return float(mind_pairs(a, b)[0])
