"""Choosing the torch device from the study's `device` setting."""

import torch


def resolve_device(setting: str = "auto") -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without a GPU is a clear error."""
    if setting == "cpu":
        return torch.device("cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("study asks for device: cuda but no CUDA GPU is visible; use device: cpu")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
