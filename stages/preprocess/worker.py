"""Turn one case into 2D slices (runs in the process pool; imports no torch).

Read the image (DICOM series chosen by description, NIfTI, NRRD), refuse non-finite voxels,
reorient to RAS+, put the masks on the image grid (nearest neighbour), then slice along the
task's plane, apply the anatomy-skip rule, scale intensities to [0,255] and resize.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medtrans.shared.config.preprocess import ForegroundConfig
from medtrans.shared.volumes.dicom import read_dicom_series, scan_dicom
from medtrans.shared.volumes.errors import VolumeError
from medtrans.shared.volumes.files import read_file, read_volume
from medtrans.shared.volumes.grid import resample_nearest
from medtrans.shared.volumes.volume import Volume, require_finite
from medtrans.shared.volumes.windowing import PLANE_AXIS
from medtrans.stages.preprocess.cases import Case, MaskRef, Sliced
from medtrans.stages.preprocess.foreground import volume_foreground
from medtrans.stages.preprocess.slicing import slice_volume


@dataclass(frozen=True)
class Settings:
    """What the worker needs from the study (picklable)."""

    structures: tuple[str, ...]
    plane: str
    image_size: int
    mri_percentiles: tuple[float, float]
    ct_window: tuple[float, float]
    skip_rule: str
    min_fraction: float
    totalseg_rois: tuple[str, ...] = ()
    totalseg_device: str = "cpu"
    foreground: ForegroundConfig | None = None  # None: no foreground masks shipped


def _dicom_image(case: Case, rejected: list) -> tuple[Volume, str, str | None, str | None]:
    """The chosen series of a DICOM case: (volume, patient id, domain, modality)."""
    series = scan_dicom(Path(case.image), rejected)
    for s in series:
        if not s.has_pixels:
            rejected.append(
                (str(s.files[0].parent), f"series without pixel data ({len(s.files)} files, not an image)")
            )
    series = [s for s in series if s.has_pixels]
    if case.series_pattern:
        pattern = re.compile(case.series_pattern)
        series = [s for s in series if pattern.search(s.description)]
        if not series:
            raise VolumeError(case.image, "no image series matches the series pattern")
        if len(series) > 1:
            raise VolumeError(case.image, f"{len(series)} image series match the series pattern (ambiguous)")
    elif len(series) > 1:
        raise VolumeError(
            case.image, f"mixed series in one folder ({len(series)} image series; expected one)"
        )
    if not series:
        raise VolumeError(case.image, "no DICOM image series found")
    chosen = series[0]
    domain = case.domain
    if domain is None:
        maker = chosen.manufacturer.upper()
        domain = next((d for sub, d in case.manufacturers if sub.upper() in maker), None)
        if domain is None:
            raise VolumeError(case.image, f"manufacturer {chosen.manufacturer!r} matches no domain")
    modality = case.modality or ("CT" if chosen.modality == "CT" else "MR")
    return read_dicom_series(chosen, rejected), chosen.patient_id or case.key, domain, modality


def _read_mask(ref: MaskRef) -> Volume:
    return read_volume(Path(ref.path))


def labels_from(masks: list[tuple[MaskRef, np.ndarray]], shape: tuple[int, ...]) -> np.ndarray:
    """Combine mask volumes (on the image grid) into one exclusive label map."""
    out = np.zeros(shape, np.uint8)
    for ref, data in masks:
        values = np.rint(data).astype(np.int64)
        for raw, label in ref.labels:
            sel = values != 0 if raw == "*" else values == int(raw)
            out[sel] = label
    return out


def load_case(
    case: Case, settings: Settings, rejected: list
) -> tuple[Volume, np.ndarray | None, str, str | None, str]:
    """Image (canonical), label map on its grid (or None), patient id, domain, modality."""
    if case.kind == "dicom":
        image, patient, domain, modality = _dicom_image(case, rejected)
    else:
        image = read_file(Path(case.image))
        patient, domain, modality = case.key, case.domain, case.modality or "MR"
    require_finite(case.image, image.data)
    image = image.canonical()
    label = None
    if case.masks:
        layers = []
        for ref in case.masks:
            mask = _read_mask(ref)
            if not np.isfinite(mask.data).all():
                raise VolumeError(ref.path, "NaN or infinite values in the mask")
            layers.append((ref, resample_nearest(mask.canonical(), image, ref.path)))
        label = labels_from(layers, image.data.shape)
        if not label.any():
            raise VolumeError(case.masks[0].path, "empty mask (no labelled voxel)")
    elif case.totalseg:
        from medtrans.stages.preprocess.totalseg import segment_vertebrae

        label = segment_vertebrae(
            image, settings.totalseg_rois, len(settings.structures), settings.totalseg_device
        )
        if not label.any():
            raise VolumeError(case.image, "TotalSegmentator found none of the requested structures")
    elif case.mask_required:
        raise VolumeError(case.image, "no mask for this case")
    return image, label, case.patient or patient, domain, modality


def process_case(args: tuple[Case, Settings]) -> Sliced:
    """One case -> its slices, or its rejection (never raises for bad data)."""
    case, settings = args
    rejected: list[tuple[str, str]] = []
    try:
        image, label, patient, domain, modality = load_case(case, settings, rejected)
        out = Sliced(
            key=case.key,
            patient=patient,
            domain=domain,
            rejected=rejected,
            read=image.data.shape[PLANE_AXIS[settings.plane]],
        )
        fg = None
        if settings.foreground is not None:
            fg = volume_foreground(image.data, image.affine, modality, settings.foreground)
        out.slices, out.constant = slice_volume(image.data, label, modality, settings, fg)
        if not out.slices:
            rejected.append((case.image, f"no usable slices (none of {out.read} has anatomy)"))
        return out
    except VolumeError as err:
        rejected.append((err.file, err.reason))
    except MemoryError:
        rejected.append((case.image, "out of memory reading the volume"))
    except Exception as err:  # noqa: BLE001 - one bad case must not stop the stage
        rejected.append((case.image, f"unexpected error ({type(err).__name__}: {str(err)[:200]})"))
    return Sliced(key=case.key, patient=case.patient or case.key, domain=case.domain, rejected=rejected)
