"""`medtrans phantom`: write the phantom study's raw files (DICOM, NIfTI, NRRD) to a folder, to
look at them in a viewer or to try the real-data adapters on them."""

import json
from pathlib import Path
from typing import Annotated

import typer

from medtrans.shared.cli import StudyOpt, friendly
from medtrans.shared.config import load_study
from medtrans.shared.config.data import PhantomSource


def register(app: typer.Typer) -> None:
    @app.command("phantom")
    @friendly
    def phantom_cmd(
        study: StudyOpt,
        out: Annotated[
            Path, typer.Option("--out", "-o", help="Folder for the raw files (one sub-folder per task).")
        ],
        task: Annotated[
            list[str] | None, typer.Option("--task", help="Only these tasks (repeatable).")
        ] = None,
        workers: Annotated[int, typer.Option(help="Processes; 0: one per CPU.")] = 0,
    ) -> None:
        """Write the phantom raw data of STUDY's phantom tasks (deterministic from its seed).

        The files carry fake identifying DICOM tags on purpose: they test that preprocessing
        never lets an identifier through."""
        from medtrans.stages.preprocess.phantom import generate
        from medtrans.stages.preprocess.pool import parallel_map, worker_count

        cfg = load_study(study)
        n = worker_count(workers)
        for name, spec in cfg.tasks.items():
            if task and name not in task:
                continue
            if not isinstance(spec.data, PhantomSource):
                typer.echo(f"skip {name}: data source is {spec.data.kind}, not phantom")
                continue
            dest = out / name
            generate.generate(
                cfg.seed, name, spec, dest, mapper=lambda f, jobs, d=name: parallel_map(f, jobs, n, d)
            )
            src = generate.source_for(spec, dest)
            files = sum(1 for p in dest.rglob("*") if p.is_file())
            typer.echo(
                f"{name}: {spec.data.patients_per_domain} patients per domain, {files} files -> {dest}"
            )
            data = {"kind": src.kind, **src.model_dump(mode="json", exclude_defaults=True)}
            typer.echo(f"  read it as data: {json.dumps(data)}")
