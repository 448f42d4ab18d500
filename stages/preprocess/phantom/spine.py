"""Synthetic lumbar spine on a sagittal grid, rendered as T2-like MRI or as CT in HU.

Grid axes are (slice patient right->left, row superior->inferior, col anterior->posterior).
Anatomy: vertebrae L1-L5 (body with cortical shell and cancellous core, pedicles, lamina,
spinous process), discs (nucleus, annulus), spinal canal (CSF, cord ending near L1-L2),
paraspinal muscle with fat marbling, abdomen with bowel gas, subcutaneous fat, skin, air.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medtrans.stages.preprocess.phantom.fields import bias_field, blur, grid, rician, smooth_noise

AIR, FAT, MUSCLE, SOFT, GAS, CSF, CORD, NUCLEUS, ANNULUS, CANCELLOUS, CORTICAL, SKIN = range(12)
LEVELS = ("L1", "L2", "L3", "L4", "L5")


@dataclass(frozen=True)
class SpineAnatomy:
    tissue: np.ndarray  # uint8 tissue codes (above)
    texture: np.ndarray  # float32 smooth field (trabecular / soft-tissue texture)
    vertebrae: np.ndarray  # uint8: 1..5 = L1..L5 (TotalSegmentator-style label map)
    marrow: float  # patient's marrow signal factor
    cancellous_hu: float
    cortical_hu: float


def _superellipse(du: np.ndarray, dv: np.ndarray, a: np.ndarray | float, c: np.ndarray | float) -> np.ndarray:
    return (np.abs(du) / a) ** 4 + (np.abs(dv) / c) ** 4 <= 1.0


@dataclass(frozen=True)
class _Column:
    """Where the vertebral column lies: centre line, body depth, lateral profile, level pitch."""

    uc: np.ndarray  # A-P centre of the bodies along v (lordosis)
    a: np.ndarray  # half depth of a body, narrowing laterally
    lat: np.ndarray  # lateral profile in [0, 1]
    dw: np.ndarray  # lateral offset from the mid-sagittal plane
    bw: float  # lateral half width
    v_start: float
    pitch: float
    height: float
    canal_front: float
    canal_back: float


def anatomy(rng: np.random.Generator, shape: tuple[int, int, int]) -> SpineAnatomy:
    """One synthetic patient's lumbar spine on a (slices, rows, cols) sagittal grid."""
    w, v, u = grid(shape)
    u_ant, u_post = rng.uniform(0.03, 0.1), rng.uniform(0.86, 0.95)
    body = (u >= u_ant) & (u <= u_post)
    u0, lord = rng.uniform(0.36, 0.42), rng.uniform(0.02, 0.06)
    uc = u0 - lord * np.sin(np.pi * v)  # lordosis: the middle of the column is more anterior
    wc, bw = 0.5 + rng.uniform(-0.04, 0.04), rng.uniform(0.32, 0.4)
    dw = w - wc
    lat = np.sqrt(np.clip(1.0 - (dw / bw) ** 2, 0.0, 1.0))
    a = rng.uniform(0.12, 0.14) * np.sqrt(lat)  # half depth of a body (A-P)
    v_start = rng.uniform(0.05, 0.09)
    pitch = rng.uniform(0.84, 0.9 - v_start + 0.05) / 5
    height = pitch * rng.uniform(0.72, 0.8)
    tissue = _soft_tissue(rng, shape, u, uc, (u_ant, u_post), body)
    canal_front = uc + a.max() + 0.012
    canal_back = canal_front + rng.uniform(0.08, 0.1)
    col = _Column(uc, a, lat, dw, bw, v_start, pitch, height, canal_front, canal_back)
    bone, levels = _vertebrae_and_discs(rng, tissue, body, (v, u), col)
    canal = body & (u >= canal_front) & (u < canal_back) & (np.abs(dw) < 0.17) & ~bone
    tissue[canal] = CSF
    cord = canal & (np.abs(u - (canal_front + canal_back) / 2) < 0.025) & (np.abs(dw) < 0.06)
    tissue[cord & (v < v_start + 1.3 * pitch)] = CORD
    tissue[bone] = CANCELLOUS
    shell = max(1, int(round(0.012 * shape[1])))
    core = ndimage.binary_erosion(bone, structure=np.ones((1, 3, 3), bool), iterations=shell)
    tissue[bone & ~core] = CORTICAL
    tissue[body & ((u - u_ant < 0.012) | (u_post - u < 0.012))] = SKIN
    return SpineAnatomy(
        tissue=tissue,
        texture=smooth_noise(rng, shape, (0.5, 1.0, 1.0)),
        vertebrae=levels,
        marrow=float(rng.uniform(0.85, 1.15)),
        cancellous_hu=float(rng.uniform(180.0, 300.0)),
        cortical_hu=float(rng.uniform(1300.0, 1700.0)),
    )


def _soft_tissue(rng: np.random.Generator, shape, u, uc, front_back, body) -> np.ndarray:
    """Soft tissue with marbled paraspinal muscle behind the column, bowel gas in front of it
    and a fat layer at the front and back of the body."""
    u_ant, u_post = front_back
    tissue = np.zeros(shape, np.uint8)
    tissue[body] = SOFT
    tissue[body & (u > uc + 0.12)] = MUSCLE
    marbling = smooth_noise(rng, shape, (0.7, shape[1] / 50, shape[2] / 50))
    tissue[body & (u > uc + 0.12) & (marbling > 1.4)] = FAT
    gas = smooth_noise(rng, shape, (1.0, shape[1] / 30, shape[2] / 30))
    tissue[body & (u < uc - 0.2) & (gas > 1.6)] = GAS
    tissue[body & (u - u_ant < 0.06)] = FAT
    tissue[body & (u_post - u < 0.07)] = FAT
    return tissue


def _vertebrae_and_discs(
    rng: np.random.Generator, tissue: np.ndarray, body: np.ndarray, vu, col: _Column
) -> tuple[np.ndarray, np.ndarray]:
    """L1-L5 (body, pedicles, lamina, spinous process; their level numbers) and the discs
    between them, above L1 and below L5 too (annulus and nucleus written into `tissue`)."""
    v, u = vu
    uc, a, lat, dw, height = col.uc, col.a, col.lat, col.dw, col.height
    bone = np.zeros(tissue.shape, bool)
    levels = np.zeros(tissue.shape, np.uint8)
    for i in range(-1, 6):
        top = col.v_start + i * col.pitch
        if 0 <= i < 5:
            mid = top + height / 2
            vb = _superellipse(u - uc, v - mid, np.maximum(a, 1e-3), height / 2 * (0.85 + 0.15 * lat)) & (
                lat > 0
            )
            arch = (np.abs(v - mid) < height * 0.4) & (u >= col.canal_front - 0.01)
            pedicle = arch & (u < col.canal_back) & (np.abs(dw) > 0.17) & (np.abs(dw) < 0.27)
            lamina = arch & (u >= col.canal_back) & (u < col.canal_back + 0.04) & (np.abs(dw) < 0.27)
            spin_len = rng.uniform(0.12, 0.16)
            spinous = (
                (v - mid > -height * 0.3)
                & (v - mid < height * 0.5)
                & (u >= col.canal_back)
                & (u < col.canal_back + spin_len)
                & (np.abs(dw) < 0.07)
            )
            vert = body & (vb | pedicle | lamina | spinous)
            bone |= vert
            levels[vert] = i + 1
        d_top, d_bot = top + height, top + col.pitch
        dmid, dh = (d_top + d_bot) / 2, (d_bot - d_top) / 2
        disc = _superellipse(u - uc, v - dmid, np.maximum(a * 1.04, 1e-3), dh + 0.004) & (lat > 0) & ~bone
        nucleus = disc & (np.abs(u - uc) < 0.6 * a) & (np.abs(dw) < 0.6 * col.bw)
        tissue[body & disc] = ANNULUS
        tissue[body & nucleus] = NUCLEUS
    return bone, levels


def render_mri(anat: SpineAnatomy, rng: np.random.Generator) -> np.ndarray:
    """T2-like magnitude image: bright CSF and disc nucleus, dark cortical bone, bright fat."""
    base = np.array([0.0, 0.78, 0.18, 0.32, 0.02, 1.0, 0.45, 0.85, 0.25, 0.5, 0.04, 0.4], np.float32)
    base[CANCELLOUS] *= anat.marrow
    img = base[anat.tissue] * (1.0 + 0.08 * anat.texture)
    img = ndimage.gaussian_filter(img, (0.0, 0.5, 0.5))
    img = img * bias_field(rng, img.shape, 0.3)
    img = blur(img, 0.4)
    return rician(rng, img, 0.03) * 1000.0


def render_ct(anat: SpineAnatomy, rng: np.random.Generator) -> np.ndarray:
    """CT in Hounsfield units: air -1000, fat ~-100, soft tissue ~40, cancellous 180-300,
    cortical bone 1300-1700, with trabecular texture, scanner blur and Gaussian noise."""
    hu = np.array([-1000, -100, 50, 40, -950, 8, 35, 75, 95, 0, 0, 30], np.float32)
    hu[CANCELLOUS] = anat.cancellous_hu
    hu[CORTICAL] = anat.cortical_hu
    img = hu[anat.tissue]
    tex = anat.texture
    img = img + np.where(anat.tissue == CANCELLOUS, 45.0, 10.0) * tex
    img = blur(img, 0.4)
    img = img + rng.normal(0.0, 12.0, img.shape).astype(np.float32)
    return np.clip(img, -1024.0, 3071.0)
