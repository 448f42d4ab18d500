"""`make bench`: run every benchmark and write a JSON file and a Markdown table beside it.

PYTHONPATH=tests python -m bench --out bench-results/bench.json [--quick]
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer

from bench.suite import machine_info, markdown, run_all

app = typer.Typer(add_completion=False, help="medtrans' metrics against the tools people would use instead.")


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="JSON results; the Markdown table goes beside it.")] = Path(
        "bench-results/bench.json"
    ),
    quick: Annotated[
        bool, typer.Option(help="Tiny sizes: checks the bench runs, numbers meaningless.")
    ] = False,
    device: Annotated[str, typer.Option(help="Device of the Inception throughput benchmark.")] = "cpu",
) -> None:
    """Every benchmark, side by side in one run."""
    os.environ.setdefault("MEDTRANS_PROGRESS", "0")
    machine = machine_info(device)
    typer.echo(f"medtrans bench on {machine['cpus']} CPUs ({machine['processor']})")
    start = time.perf_counter()
    results = run_all(quick=quick, device=device)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine, "quick": quick, "seconds": time.perf_counter() - start, "results": results}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    table = markdown(results, machine)
    out.with_suffix(".md").write_text(table)
    typer.echo(table)
    typer.echo(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    app()
