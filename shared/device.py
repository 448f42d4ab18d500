"""Choosing the torch device from the study's `device` setting."""

import torch


def resolve_device(setting: str = "auto") -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without a GPU is a clear error."""
    if setting == "cpu":
        return torch.device("cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("study asks for device: cuda but no CUDA GPU is visible; use device: cpu")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def host_floats(values: list) -> list[float]:
    """Floats and 0-dim tensors (any device) as Python floats, the tensors in one transfer: a
    loop that keeps its losses on the GPU reads them here every N steps instead of waiting for
    the device after each step. float32 values read as the same doubles as `float(t)`."""
    tensors = [v.detach().reshape(()).float() for v in values if torch.is_tensor(v)]
    read = iter(torch.stack(tensors).cpu().tolist()) if tensors else iter(())
    return [float(next(read)) if torch.is_tensor(v) else float(v) for v in values]


def fuse_optimizers(optimizers) -> None:
    """Adam/AdamW on CUDA with the fused kernel (one launch per step for all parameters instead
    of a few per tensor); the update is the same formula. Others are left as they are."""
    for opt in optimizers:
        if not isinstance(opt, torch.optim.Adam | torch.optim.AdamW):
            continue
        params = [p for g in opt.param_groups for p in g["params"]]
        if params and all(p.is_cuda and p.dtype.is_floating_point for p in params):
            for group in opt.param_groups:
                group["foreach"], group["fused"] = None, True
            opt.defaults["foreach"], opt.defaults["fused"] = None, True
