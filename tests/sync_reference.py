"""A short CPU training of every translator and of the segment UNet's epoch loop, printed as JSON
(losses.csv bytes, each network's and optimizer's state digest): `test_step_sync.py` runs it
with the code of the commit before losses stayed on the device and with the current code, and
compares. Run as `python sync_reference.py STUDY WORKDIR` with PYTHONPATH choosing the code."""

import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch


def _digest(obj) -> str:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def _state_digest(state: dict) -> str:
    """Tensors by their bytes, in key order (independent of pickle's framing)."""
    h = hashlib.sha256()
    for k, v in sorted(state.items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes() if torch.is_tensor(v) else repr(v).encode())
    return h.hexdigest()


def _split(rng, n: int, size: int, n_classes: int):
    from medtrans.stages.translate.data import Split

    images = rng.uniform(-1, 1, (n, size, size)).astype(np.float32)
    masks = rng.integers(0, n_classes, (n, size, size)).astype(np.int64)
    fg = (images > 0).astype(np.float32)
    return Split([f"s{i}" for i in range(n)], images, masks, fg)


def translators(study_file: Path, work: Path) -> dict:
    from medtrans.shared.config import load_study
    from medtrans.shared.seeding import seed_everything
    from medtrans.stages.translate import loop
    from medtrans.stages.translate.data import TrainData
    from medtrans.stages.translate.registry import get_model
    from medtrans.stages.translate.settings import task_settings

    study = load_study(study_file)
    out = {}
    for name in study.translate.models:
        settings = task_settings(study, "breast", name)
        rng = np.random.default_rng(3)
        data = TrainData(_split(rng, 6, 32, 3), _split(rng, 5, 32, 3))
        cls = get_model(name)
        seed_everything(11)
        model = cls(settings, n_classes=3, image_size=32, device=torch.device("cpu"), seed=11)
        folder = work / name
        folder.mkdir(parents=True)
        result = loop.train(model, data, settings.schedule, folder, 11, accel=settings.accel, log_every=3)
        out[name] = {
            "losses_csv": (folder / "losses.csv").read_text(),
            "final": result.final_losses,
            "networks": {k: _state_digest(n.state_dict()) for k, n in model.networks().items()},
            "optimizers": {k: _digest(o.state_dict()) for k, o in model.optimizers().items()},
        }
    return out


def segment_epoch() -> dict:
    from medtrans.stages.segment.model import IMAGE, LABEL, build_loss
    from medtrans.stages.segment.train import _fit_epoch

    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(6)
    loader = [
        {
            IMAGE: torch.rand(4, 1, 16, 16, generator=gen),
            LABEL: torch.randint(0, 3, (4, 1, 16, 16), generator=gen),
        }
        for _ in range(5)
    ]
    losses = [_fit_epoch(net, loader, build_loss(), opt, torch.device("cpu")) for _ in range(3)]
    return {"losses": [repr(x) for x in losses], "weights": _state_digest(net.state_dict())}


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(
        json.dumps(
            {"translators": translators(Path(sys.argv[1]), Path(sys.argv[2])), "segment": segment_epoch()}
        )
    )
