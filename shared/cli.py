"""The CLI root's shared pieces: the `--study/--run` options and error reporting.

Every stage command takes the same two options so a container can run exactly one stage.
"""

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from medtrans.shared.config import StudyConfig, StudyError, load_study
from medtrans.shared.layout import RunLayout
from medtrans.shared.manifest import ManifestError
from medtrans.shared.stage import StageInputError

StudyOpt = Annotated[
    Path,
    typer.Option("--study", "-s", help="Study file (YAML), e.g. studies/demo.yaml.", show_default=False),
]
RunOpt = Annotated[
    Path | None,
    typer.Option("--run", "-r", help="Run folder. Default: runs/<study name>/.", show_default=False),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Recompute even when up to date.")]

F = TypeVar("F", bound=Callable)


class UserError(RuntimeError):
    """An error the user can fix; printed as one line, exit code 2."""


def open_study(study: Path, run: Path | None) -> tuple[StudyConfig, RunLayout]:
    cfg = load_study(study)
    return cfg, RunLayout.for_study(cfg.name, run)


def friendly(func: F) -> F:
    """Turn expected failures (bad study, untrusted input) into one line and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (StudyError, StageInputError, ManifestError, UserError) as err:
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]
