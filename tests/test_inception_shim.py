"""Test-only workaround: import torchvision-based references (pytorch-fid, torch-fidelity) here.

PyPI's torchvision beside this CPU torch fails to import ("operator torchvision::nms does not
exist": its compiled ops do not load, and its Python side then registers fake kernels for two
ops that were never declared). If the plain import fails, declare the two missing operator
schemas with torch.library and import again. medtrans itself never imports torchvision; this
module is used only by the parity tests. Where torchvision works, nothing is changed.
"""

import importlib
import sys

import torch

_LIB = None  # keeps the torch.library registration alive for the session
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)


def _declared(op: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{op}", "")
        return True
    except RuntimeError:
        return False


def import_torchvision():
    """Import torchvision, declaring the missing operator schemas first when that is needed."""
    global _LIB
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    missing = [s for s in _SCHEMAS if not _declared(s.split("(")[0])]
    if missing:
        _LIB = torch.library.Library("torchvision", "DEF")
        for schema in missing:
            _LIB.define(schema)
    return importlib.import_module("torchvision")


def references():
    """(pytorch_fid.inception, pytorch_fid.fid_score, torch_fidelity) with torchvision importable."""
    import_torchvision()
    import pytorch_fid.fid_score as fid_score
    import pytorch_fid.inception as pfi
    import torch_fidelity

    return pfi, fid_score, torch_fidelity


def test_shim_makes_references_importable():
    pfi, fid_score, tfid = references()
    assert hasattr(pfi, "FIDInceptionA") and hasattr(fid_score, "calculate_frechet_distance")
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    assert FeatureExtractorInceptionV3.INPUT_IMAGE_SIZE == 299
    # the parts of torchvision pytorch-fid builds on are usable
    import torchvision

    net = torchvision.models.inception_v3(
        num_classes=1008, aux_logits=False, weights=None, init_weights=False
    )
    assert net.fc.out_features == 1008
