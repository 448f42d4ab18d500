"""`make bench-gpu` at the tiniest size on a CPU: every translator of the catalogue and the UNet
timed, FLOPs counted, one step profiled, the result files written, the paper study costed."""

import json

import torch
from bench import cost, gpu
from bench.steps import UNET, VARIANTS

from medtrans.shared.catalogue.stages import translator_names


def test_bench_gpu_runs_at_tiny_size_and_writes_its_files(tmp_path):
    out = tmp_path / "gpu-bench.json"
    payload = gpu.run(out, torch.device("cpu"), tiny=True, warmup=0, iters=1)
    models = [*translator_names(), UNET]
    assert [r["model"] for r in payload["results"]] == models
    for r in payload["results"]:
        assert r["flops_per_step"] > 0 and r["used_seconds_per_step"] > 0, r["model"]
        assert len(r["variants"]) == len(VARIANTS)
        today = r["variants"][0]
        assert today["fraction_of_peak"] is None and today["tflops"] > 0  # a CPU: no peak figure
        assert all("skipped" in v for v in r["variants"][1:])  # CUDA only
        assert r["profile"]["top"] and r["profile"]["gaps"] is None
    times = json.loads((tmp_path / "step-times.json").read_text())
    assert list(times) == models and all(t > 0 for t in times.values())
    assert "| cyclegan |" in out.with_suffix(".md").read_text()
    assert payload["paper_cost"]["new_total_gpu_hours"] is None  # tiny CPU steps cost nothing real


def test_paper_cost_from_step_times():
    """GPU-hours = iterations x seconds per step; today's from the README's H100 table."""
    c = cost.paper_cost(None, None)
    unit = next(u for u in c["units"] if u["unit"] == "breast/cyclegan")
    assert unit["today_gpu_hours"] == unit["iterations"] * cost.TODAY_H100_MS["cyclegan"] / 1e3 / 3600
    assert unit["iterations"] % cost.PAPER_TRAIN_IMAGES["breast"] == 0  # batch 1: whole epochs of 4096
    halved = cost.paper_cost({m: ms / 2e3 for m, ms in cost.TODAY_H100_MS.items()}, None)
    assert abs(halved["new_total_gpu_hours"] * 2 - c["today_total_gpu_hours"]) < 1e-9
    assert "pending" in cost.markdown(c)
