"""`make bench-gpu`: each translator's and the UNet's training step, today's and each
optimisation side by side in one run, with FLOPs per step, achieved TFLOP/s and the fraction
of the device's peak, a profile of one step (top kernels, the gaps where the device waits for
the host), and the paper study's cost from the step times.

    PYTHONPATH=tests python -m bench.gpu --out bench-results/gpu-bench.json [--tiny]

On CUDA the steps run at the paper's settings (studies/paper.yaml, 256 px); on a CPU (or with
--tiny) at the smoke study's tiny sizes, so CI runs every line of it. Writes gpu-bench.json,
gpu-bench.md and step-times.json ({"cyclegan": seconds per iteration, ..., "unet": ...}: the
variant the stages use on this device, which `medtrans plan` reads) beside --out.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import torch
import typer

from bench import cost
from bench.steps import TODAY, VARIANTS, Sizes, Step, Variant, batch_size, names

# Dense peak TFLOP/s by device name (NVIDIA data sheets): (TF32 tensor cores, bf16 tensor cores).
# fp32 eager steps run convolutions in TF32 (cuDNN's default), so they are measured against TF32.
PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "H200": (494.7, 989.4),
    "H100 SXM": (494.7, 989.4),
    "H100 80GB HBM3": (494.7, 989.4),
    "H100 PCIe": (378.0, 756.0),
    "H100": (494.7, 989.4),
    "A100": (156.0, 312.0),
    "L40S": (183.0, 362.0),
    "L4": (60.0, 121.0),
    "A10": (62.5, 125.0),
    "RTX 4090": (82.6, 165.2),
}
TOP_KERNELS = 12


def peak(device: torch.device, bf16: bool) -> float | None:
    """The device's dense peak for the variant's precision, or None (a CPU, an unknown GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (tf32, b16) in PEAK_TFLOPS.items():  # most specific names first
        if key in name:
            return b16 if bf16 else tf32
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(step: Step, device: torch.device, warmup: int, iters: int) -> float:
    """Seconds per step over `iters` steps after `warmup` (compilation, cuDNN autotuning)."""
    for _ in range(warmup):
        step.step()
    step.flush()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        step.step()
    step.flush()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def count_flops(name: str, sizes: Sizes, device: torch.device) -> int:
    """FLOPs of one eager fp32 step (forward and backward), torch.utils.flop_counter's count."""
    from torch.utils.flop_counter import FlopCounterMode

    step = Step(name, TODAY, sizes, device)
    step.step()  # pools and lazy state filled, as in a running training
    with FlopCounterMode(display=False) as counter:
        step.step()
    return int(counter.get_total_flops())


def profile_step(name: str, variant: Variant, sizes: Sizes, device: torch.device) -> dict:
    """One profiled step after two warm-up steps: the top kernels (device time on CUDA, CPU
    self time on a CPU) and, on CUDA, the idle gaps between kernels (the host not keeping up)."""
    from torch.profiler import ProfilerActivity, profile

    step = Step(name, variant, sizes, device)
    for _ in range(2):
        step.step()
    step.flush()
    _sync(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        step.step()
        step.flush()
        _sync(device)
    cuda = device.type == "cuda"
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    rows = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0.0), reverse=True)
    top = [
        {"name": e.key[:90], "calls": e.count, "self_us": round(float(getattr(e, key, 0.0)), 1)}
        for e in rows[:TOP_KERNELS]
    ]
    return {"variant": variant.name, "by": "device time" if cuda else "CPU self time", "top": top,
            "gaps": _gaps(prof) if cuda else None}  # fmt: skip


def _gaps(prof) -> dict:
    """Kernel time vs the span from the first kernel's start to the last one's end on the device."""
    from torch.autograd import DeviceType

    spans = sorted(
        (e.time_range.start, e.time_range.end)
        for e in prof.events()
        if e.device_type == DeviceType.CUDA and e.time_range.end > e.time_range.start
    )
    if not spans:
        return {"kernels": 0}
    busy, gaps, end = 0.0, [], spans[0][0]
    for s, e in spans:
        if s > end:
            gaps.append(s - end)
        busy += e - max(s, end) if e > end else 0.0
        end = max(end, e)
    span = end - spans[0][0]
    return {
        "kernels": len(spans),
        "span_us": round(span, 1),
        "busy_us": round(busy, 1),
        "idle_fraction": round(1 - busy / span, 3) if span else 0.0,
        "gaps_over_10us": sum(1 for g in gaps if g > 10),
        "largest_gaps_us": [round(g, 1) for g in sorted(gaps, reverse=True)[:5]],
    }


def bench_model(name: str, sizes: Sizes, device: torch.device, warmup: int, iters: int) -> dict:
    flops = count_flops(name, sizes, device)
    rows = []
    for variant in VARIANTS:
        if variant.cuda_only and device.type != "cuda":
            rows.append({"variant": variant.name, "skipped": "CUDA only (a CPU run does nothing new)"})
            continue
        try:
            seconds = time_step(Step(name, variant, sizes, device), device, warmup, iters)
        except Exception as err:  # noqa: BLE001 - one variant failing (compile) says why, the rest run
            rows.append({"variant": variant.name, "skipped": f"{type(err).__name__}: {str(err)[:200]}"})
            continue
        top = peak(device, variant.bf16)
        tflops = flops / seconds / 1e12
        rows.append({
            "variant": variant.name, "seconds_per_step": seconds, "tflops": tflops,
            "peak_tflops": top, "fraction_of_peak": (tflops / top) if top else None,
        })  # fmt: skip
    timed = [r for r in rows if "seconds_per_step" in r]
    best = min(timed, key=lambda r: r["seconds_per_step"])
    chosen = used_variant(device)
    used = next((r for r in timed if r["variant"] == chosen.name), timed[0])
    return {
        "model": name, "batch_size": batch_size(sizes, name), "image_size": sizes.image_size,
        "flops_per_step": flops, "variants": rows, "fastest": best["variant"],
        "used": used["variant"], "used_seconds_per_step": used["seconds_per_step"],
        "today_seconds_per_step": timed[0]["seconds_per_step"],
        "profile": profile_step(name, TODAY, sizes, device),
    }  # fmt: skip


def used_variant(device: torch.device) -> Variant:
    """What the stages now run on this device: on CUDA the loop's no-sync, resident, fused path
    (bf16 and channels_last stay the study's choice, off by default); on a CPU today's."""
    return VARIANTS[1] if device.type == "cuda" else TODAY


def machine(device: torch.device) -> dict:
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_before": list(os.getloadavg()),
    }


def run(out: Path, device: torch.device, tiny: bool, warmup: int, iters: int) -> dict:
    sizes = Sizes.for_device(device, tiny)
    results = [bench_model(n, sizes, device, warmup, iters) for n in names()]
    step_times = {r["model"]: r["used_seconds_per_step"] for r in results}
    paper_scale = device.type == "cuda" and not tiny
    payload = {
        "machine": {**machine(device), "load_after": list(os.getloadavg())},
        "settings": {"study": f"studies/{sizes.study.name}", "image_size": sizes.image_size,
                     "warmup": warmup, "iters": iters},
        "results": results,
        "paper_cost": cost.paper_cost(step_times if paper_scale else None,
                                      {r["model"]: r["today_seconds_per_step"] for r in results}
                                      if paper_scale else None),
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(payload))
    (out.parent / "step-times.json").write_text(json.dumps(step_times, indent=2) + "\n")
    return payload


def markdown(payload: dict) -> str:
    m = payload["machine"]
    lines = [
        f"Device {m['device_name']} ({m['device']}), torch {m['torch']}, {m['threads']} threads; "
        f"settings {payload['settings']['study']} at {payload['settings']['image_size']} px; "
        f"load {m['load_before'][0]:.2f} -> {m['load_after'][0]:.2f}.",
        "",
        "| model | batch | GFLOP/step | variant | ms/step | TFLOP/s | of peak |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in payload["results"]:
        for v in r["variants"]:
            if "skipped" in v:
                cells = f"{v['variant']} | skipped: {v['skipped'][:60]} | | "
            else:
                frac = f"{v['fraction_of_peak']:.1%}" if v["fraction_of_peak"] is not None else "n/a"
                cells = f"{v['variant']} | {v['seconds_per_step'] * 1e3:.2f} | {v['tflops']:.3g} | {frac}"
            lines.append(f"| {r['model']} | {r['batch_size']} | {r['flops_per_step'] / 1e9:.3g} | {cells} |")
    lines += ["", "Profile of one step (today's path): top kernels, and the device's idle gaps", ""]
    for r in payload["results"]:
        p = r["profile"]
        top = ", ".join(f"{k['name']} {k['self_us']:.0f} us x{k['calls']}" for k in p["top"][:5])
        gaps = p["gaps"]
        idle = (f"device idle {gaps['idle_fraction']:.0%} of the step ({gaps['gaps_over_10us']} gaps > 10 us)"
                if gaps and gaps.get("kernels") else "no device timeline (CPU)")  # fmt: skip
        lines.append(f"- {r['model']} ({p['by']}): {idle}; {top}")
    lines += ["", cost.markdown(payload["paper_cost"])]
    return "\n".join(lines) + "\n"


app = typer.Typer(add_completion=False)


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="JSON results; .md and step-times.json go beside it.")] = Path(
        "bench-results/gpu-bench.json"
    ),
    tiny: Annotated[bool, typer.Option(help="The smoke study's tiny sizes even on CUDA.")] = False,
    warmup: Annotated[int, typer.Option(min=0)] = 5,
    iters: Annotated[int, typer.Option(min=1)] = 20,
) -> None:
    """Training steps, today's and each optimisation's, side by side."""
    os.environ.setdefault("MEDTRANS_PROGRESS", "0")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        warmup, iters = min(warmup, 1), min(iters, 3)  # tiny sizes: the numbers show the code runs
    payload = run(out, device, tiny, warmup, iters)
    typer.echo(markdown(payload))
    typer.echo(f"wrote {out}, {out.with_suffix('.md')} and {out.parent / 'step-times.json'}")


if __name__ == "__main__":
    app()
