"""The paper study's cost: each unit's training iterations (the paper's image counts, the
references' epochs and batch sizes from studies/paper.yaml) times a step time.

"Today" uses the fp32 step times measured on an H100 with the code of 2026-11-27 (README, "GPU:
the CUDA paths"); "new" the step times `make bench-gpu` measured at the paper's settings on
CUDA, pending where it ran on a CPU. The UNet's epochs are its upper bound (max_epochs; early
stopping usually ends sooner); preprocess, translation of the test split and metrics are left
out (minutes, against hours of training).
"""

from __future__ import annotations

import math

from bench.steps import ROOT, UNET
from medtrans.shared.catalogue.stages import translator_names
from medtrans.shared.config import load_study

# train slices per domain in the paper (Konz et al. 2024): one epoch passes over this many
PAPER_TRAIN_IMAGES = {"breast": 4096, "spine": 495}
# fp32 ms per iteration at the paper's settings on an H100, today's code (README's GPU table)
TODAY_H100_MS = {"cyclegan": 123.0, "maskgan": 168.0, "unsb": 300.0, "spade": 93.0}


def iterations(model: str, task: str) -> int:
    """Training iterations of one unit at the paper's image count for `task`."""
    study = load_study(ROOT / "studies" / "paper.yaml")
    n = PAPER_TRAIN_IMAGES[task]
    if model == UNET:
        return math.ceil(n / study.segment.batch_size) * study.segment.max_epochs
    from medtrans.stages.translate.settings import task_settings

    s = task_settings(study, task, model).schedule
    per_epoch = s.iters_per_epoch or math.ceil(n / s.batch_size)
    return per_epoch * (s.n_epochs + s.n_epochs_decay)


def paper_cost(new_step_s: dict[str, float] | None, measured_today_s: dict[str, float] | None) -> dict:
    """GPU-hours per unit (task x model) and in total: today (README's H100 times; or this
    run's today-variant times where measured on CUDA) and new (None: pending)."""
    today_s = {m: ms / 1e3 for m, ms in TODAY_H100_MS.items()}
    if measured_today_s:
        today_s = {**today_s, **measured_today_s}
    units = []
    for task in PAPER_TRAIN_IMAGES:
        for model in (*translator_names(), UNET):
            its = iterations(model, task)
            t, n = today_s.get(model), (new_step_s or {}).get(model)
            units.append({
                "unit": f"{task}/{model}", "iterations": its,
                "today_gpu_hours": its * t / 3600 if t is not None else None,
                "new_gpu_hours": its * n / 3600 if n is not None else None,
            })  # fmt: skip
    return {
        "units": units,
        "today_total_gpu_hours": _total(units, "today_gpu_hours"),
        "new_total_gpu_hours": _total(units, "new_gpu_hours"),
        "today_source": "this run (CUDA, today's variant)" if measured_today_s else "README H100 fp32 table",
        "new_source": "this run (CUDA)" if new_step_s else "pending: run `make bench-gpu` on a CUDA GPU",
    }


def _total(units: list[dict], key: str) -> float | None:
    known = [u[key] for u in units if u[key] is not None]
    return sum(known) if known else None


def markdown(c: dict) -> str:
    def h(x):
        return f"{x:.1f}" if x is not None else "pending"

    lines = [
        f"Paper study cost, GPU-hours (today: {c['today_source']}; new: {c['new_source']})",
        "",
        "| unit | iterations | today | new |",
        "|---|---|---|---|",
    ]
    for u in c["units"]:
        lines.append(
            f"| {u['unit']} | {u['iterations']} | {h(u['today_gpu_hours'])} | {h(u['new_gpu_hours'])} |"
        )
    lines.append(
        f"| total (known units) | | {h(c['today_total_gpu_hours'])} | {h(c['new_total_gpu_hours'])} |"
    )
    return "\n".join(lines) + "\n"
