"""TotalSegmentator on CT volumes (vertebrae L1-L5 by default), strictly offline.

Weights come from the weights volume: `$TOTALSEG_HOME_DIR/nnunet/results/<Dataset...>` (or
`$TOTALSEG_WEIGHTS_PATH`), as `make weights` stores them (`totalseg_download_weights -t
total`). Before any call the required folders are checked; TotalSegmentator's own download
function is replaced by one that refuses, and its usage statistics are switched off (config
`send_usage_stats: false`, and the sender replaced by a no-op).
"""

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from medtrans.shared.volumes.grid import resample_nearest
from medtrans.shared.volumes.volume import Volume

HINT = "run `make weights` on a machine with internet (it stores them in the weights volume)"
TASK = "total"
CROP_MODEL = 298  # the 6 mm model TotalSegmentator uses to crop around a roi_subset


class WeightsMissing(RuntimeError):
    """TotalSegmentator weights are not where they must be; names the path and `make weights`."""


def home() -> Path:
    """TotalSegmentator's home (config.json, weights): $TOTALSEG_HOME_DIR, else its default."""
    from totalsegmentator.config import get_totalseg_dir

    return Path(get_totalseg_dir())


def required_weights(rois: tuple[str, ...], fast: bool = False) -> list[Path]:
    """The weight folders a `total` run with this roi subset loads (all parts are fetched by
    TotalSegmentator before it narrows to the parts holding the rois, so all are needed)."""
    from totalsegmentator.config import get_weights_dir
    from totalsegmentator.libs import TASK_ID_WEIGHTS_CONFIGS
    from totalsegmentator.python_api import get_task_config

    cfg = get_task_config(
        TASK, fast=fast, fastest=False, quiet=True, robust_crop=False, plans="nnUNetPlans", model_size="big"
    )
    ids = cfg["task_id"] if isinstance(cfg["task_id"], list) else [cfg["task_id"]]
    if rois:
        ids = [*ids, CROP_MODEL]
    out = []
    for task_id in ids:
        info = TASK_ID_WEIGHTS_CONFIGS[task_id]
        folder = Path(info.get("rel_path") or "") / info["foldername"]
        out.append(Path(get_weights_dir()) / folder)
    return out


def check_weights(rois: tuple[str, ...], fast: bool = False) -> None:
    """Raise `WeightsMissing` naming every missing folder, the home and `make weights`."""
    missing = [p for p in required_weights(rois, fast) if not p.is_dir()]
    if missing:
        listing = ", ".join(str(p) for p in missing)
        raise WeightsMissing(
            f"TotalSegmentator weights missing: expected {listing} "
            f"(TOTALSEG_HOME_DIR={home()}); {HINT}. medtrans never downloads at run time."
        )


def _offline() -> None:
    """Usage statistics off and downloads refused, in this process."""
    import totalsegmentator.config as ts_config
    import totalsegmentator.python_api as ts_api

    config = home() / "config.json"
    try:
        data = (
            json.loads(config.read_text())
            if config.is_file()
            else {"totalseg_id": "medtrans", "prediction_counter": 0}
        )
        if data.get("send_usage_stats") is not False or not data.get("statistics_disclaimer_shown"):
            data.update(send_usage_stats=False, statistics_disclaimer_shown=True)
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(json.dumps(data, indent=4))
    except OSError:
        pass  # a read-only home: the no-op sender below still keeps statistics off

    def _no_stats(*_args, **_kwargs) -> None:
        return None

    def _refuse_download(task_id) -> None:
        from totalsegmentator.config import get_weights_dir
        from totalsegmentator.libs import TASK_ID_WEIGHTS_CONFIGS

        path = Path(get_weights_dir()) / TASK_ID_WEIGHTS_CONFIGS[task_id]["foldername"]
        if not path.is_dir():
            raise WeightsMissing(f"TotalSegmentator weights missing: expected {path}; {HINT}")

    ts_api.send_usage_stats = _no_stats
    ts_config.send_usage_stats = _no_stats
    ts_api.download_pretrained_weights = _refuse_download


def roi_labels() -> dict[str, int]:
    from totalsegmentator.map_to_binary import class_map

    return {name: idx for idx, name in class_map[TASK].items()}


def segment_vertebrae(
    image: Volume, rois: tuple[str, ...], n_structures: int, device: str = "cpu"
) -> np.ndarray:
    """Label map on `image`'s grid: with one task structure every roi is label 1, else roi i is
    label i+1. `image` holds Hounsfield units (canonical orientation)."""
    from totalsegmentator.python_api import totalsegmentator

    os.environ.setdefault("TOTALSEG_HOME_DIR", str(home()))
    check_weights(rois)
    _offline()
    ids = roi_labels()
    unknown = [r for r in rois if r not in ids]
    if unknown:
        raise ValueError(f"unknown TotalSegmentator rois {unknown}")
    img = nib.Nifti1Image(image.data.astype(np.float32), image.affine)
    seg = totalsegmentator(
        img,
        None,
        ml=True,
        task=TASK,
        roi_subset=list(rois),
        device="gpu" if device == "cuda" else "cpu",
        quiet=True,
        skip_saving=True,
        nr_thr_saving=1,
    )
    data = np.asarray(seg.dataobj)
    if data.shape != image.data.shape or not np.allclose(seg.affine, image.affine, atol=1e-3):
        data = resample_nearest(Volume(data, seg.affine).canonical(), image, "TotalSegmentator output")
    out = np.zeros(image.data.shape, np.uint8)
    for i, roi in enumerate(rois):
        out[data == ids[roi]] = 1 if n_structures == 1 else min(i + 1, n_structures)
    return out
