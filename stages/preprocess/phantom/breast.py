"""Synthetic breast MRI (T1, pre-contrast, no fat suppression) on an axial grid.

Grid axes are (slice inferior->superior, row anterior->posterior, col patient right->left).
Anatomy: two breasts in front of the chest wall (fat with fibroglandular tissue (FGT) of
patient-specific density and texture, vessels, skin), pectoral muscle, thorax (lungs, heart).
Vendor appearance differs the way scanners do: intensity non-linearity, bias field, Rician
noise level, blur, FGT-to-fat contrast.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medtrans.stages.preprocess.phantom.fields import bias_field, blur, grid, rician, smooth_noise

AIR, FAT, FGT, VESSEL, SKIN, MUSCLE, LUNG, HEART, SOFT = range(9)


@dataclass(frozen=True)
class BreastAnatomy:
    tissue: np.ndarray  # uint8 tissue codes (above)
    texture: np.ndarray  # float32 smooth field for parenchymal texture
    breast: np.ndarray  # bool: breast region (DBC "Breast" segmentation)
    dense: np.ndarray  # uint8: 1 FGT, 2 vessels (DBC "Dense_and_Vessels" segmentation)


@dataclass(frozen=True)
class Vendor:
    """How one scanner renders the same tissue."""

    manufacturer: str
    model: str
    gamma: float  # intensity non-linearity
    bias: float  # bias-field strength
    noise: float  # Rician sigma (fraction of fat signal)
    blur: float  # in-plane Gaussian sigma (voxels)
    fgt: float  # FGT signal relative to fat
    scale: float  # stored value of fat
    slope: float  # DICOM RescaleSlope used to store the values


VENDORS = {
    "source": Vendor("GE MEDICAL SYSTEMS", "SIGNA HDxt", 0.8, 0.25, 0.025, 0.7, 0.36, 1800.0, 1.0),
    "target": Vendor("SIEMENS", "Avanto", 1.25, 0.12, 0.045, 0.3, 0.28, 600.0, 2.0),
}


def _edt(mask: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """In-plane distance to the outside of `mask`, in normalised units (slices independent)."""
    out = np.zeros(mask.shape, np.float32)
    for s in range(mask.shape[0]):
        out[s] = ndimage.distance_transform_edt(mask[s], sampling=(1.0 / shape[1], 1.0 / shape[2]))
    return out


def anatomy(rng: np.random.Generator, shape: tuple[int, int, int]) -> BreastAnatomy:
    """One synthetic patient's breast anatomy on a (slices, rows, cols) grid."""
    w, v, u = grid(shape)
    vc0 = rng.uniform(0.5, 0.58)
    chest = vc0 + 0.08 * ((u - 0.5) / 0.5) ** 2  # chest wall curves backwards laterally
    breast, radial = _breasts(rng, (w, v, u), vc0, chest)
    torso = (v >= chest) & (((u - 0.5) / 0.47) ** 2 + ((v - vc0 - 0.45) / 0.62) ** 2 <= 1.0)
    body = breast | torso
    depth = _edt(body, shape)
    tissue = _torso_tissue(shape, (v, u), chest, body, torso)
    fgt = _fgt(rng, shape, breast & (depth >= 0.03) & (chest - v >= 0.02), radial)
    tissue[fgt] = FGT
    vessel = _vessels(rng, (w, v, u), breast & (depth >= 0.015))
    tissue[vessel] = VESSEL
    tissue[body & (depth < 0.012)] = SKIN
    dense = np.zeros(shape, np.uint8)
    dense[fgt] = 1
    dense[vessel] = 2
    texture = smooth_noise(rng, shape, (0.5, 1.2, 1.2))
    return BreastAnatomy(tissue=tissue, texture=texture, breast=breast, dense=dense)


def _breasts(rng: np.random.Generator, wvu, vc0: float, chest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both breasts as half-ellipsoids in front of the chest wall, fading out towards the first
    and last slices (slices without anatomy exist), and each voxel's radial position in its breast."""
    w, v, u = wvu
    sep = rng.uniform(0.2, 0.24)
    wc = rng.uniform(0.45, 0.55)
    prof = np.sqrt(np.clip(1.0 - ((w - wc) / 0.5) ** 2, 1e-4, 1.0))
    breast = np.zeros(w.shape, bool)
    radial = np.full(w.shape, 2.0, np.float32)
    for side in (-1, 1):
        uc = 0.5 + side * (sep + rng.uniform(-0.02, 0.02))
        a = rng.uniform(0.17, 0.21) * prof
        b = min(rng.uniform(0.3, 0.42), vc0 - 0.06) * prof
        r = np.sqrt(((u - uc) / a) ** 2 + ((chest - v) / b) ** 2)
        breast |= (r <= 1.0) & (v <= chest)
        radial = np.minimum(radial, np.where(v <= chest, r, 2.0))
    return breast, radial


def _torso_tissue(shape, vu, chest: np.ndarray, body: np.ndarray, torso: np.ndarray) -> np.ndarray:
    """Fat everywhere in the body; in the torso subcutaneous fat, the pectoral muscle behind the
    chest wall, and the thorax (soft tissue, lungs, heart) behind that."""
    v, u = vu
    tissue = np.zeros(shape, np.uint8)
    tissue[body] = FAT
    tdepth = _edt(torso, shape)
    behind = v - chest
    thorax = torso & (tdepth >= 0.05) & (behind >= 0.06)
    tissue[torso & (tdepth >= 0.03) & (behind < 0.06)] = MUSCLE
    tissue[thorax] = SOFT
    for side in (-1, 1):
        lung = ((u - 0.5 - side * 0.22) / 0.17) ** 2 + ((v - chest - 0.27) / 0.2) ** 2 <= 1.0
        tissue[thorax & lung] = LUNG
    heart = ((u - 0.45) / 0.13) ** 2 + ((v - chest - 0.2) / 0.13) ** 2 <= 1.0
    tissue[thorax & heart] = HEART
    return tissue


def _fgt(rng: np.random.Generator, shape, inner: np.ndarray, radial: np.ndarray) -> np.ndarray:
    """Fibroglandular tissue: textured, denser towards the centre of each breast, inside `inner`
    (away from skin and chest wall), a random fraction of it."""
    field = smooth_noise(rng, shape, (0.8, shape[1] / 40, shape[2] / 40)) + 2.2 * (
        1.0 - np.clip(radial, 0, 1)
    )
    density = rng.uniform(0.3, 0.6)
    if not inner.any():
        return np.zeros(shape, bool)
    cut = np.quantile(field[inner], 1.0 - density)
    return ndimage.binary_opening(inner & (field > cut), structure=np.ones((1, 3, 3), bool))


def _vessels(rng: np.random.Generator, wvu, allowed: np.ndarray) -> np.ndarray:
    """A few thin tortuous lines from the chest wall towards the nipple, inside `allowed`."""
    w, v, u = wvu
    vessel = np.zeros(w.shape, bool)
    for _ in range(int(rng.integers(3, 7))):
        u0 = rng.uniform(0.2, 0.8)
        amp, freq, phase = rng.uniform(0.01, 0.04), rng.uniform(8, 20), rng.uniform(0, 6.3)
        drift = rng.uniform(-0.05, 0.05)
        w0 = rng.uniform(0.1, 0.9)
        line = u0 + amp * np.sin(freq * v + phase) + drift * (w - w0) * 4
        near = (np.abs(u - line) < 0.007) & (np.abs(w - w0) < rng.uniform(0.15, 0.35))
        vessel |= near & allowed
    return vessel


def render(anat: BreastAnatomy, vendor: Vendor, rng: np.random.Generator) -> np.ndarray:
    """Scanner values (float, before storage) of one anatomy as `vendor` would acquire it."""
    base = np.array([0.0, 1.0, vendor.fgt, 0.55, 0.55, 0.32, 0.04, 0.45, 0.4], np.float32)
    img = base[anat.tissue]
    tex = anat.texture
    img = np.where(anat.tissue == FGT, img * (1.0 + 0.18 * tex), img)
    img = np.where(anat.tissue == FAT, img * (1.0 + 0.04 * tex), img)
    img = ndimage.gaussian_filter(img, (0.0, 0.5, 0.5))  # partial volume
    img = img * bias_field(rng, img.shape, vendor.bias)
    img = np.clip(img, 0.0, None) ** vendor.gamma
    img = blur(img, vendor.blur)
    img = rician(rng, img, vendor.noise)
    return img * vendor.scale
