"""The stage contract: a unit of work writes into a partial folder, gets a manifest, and is
renamed into place only when complete; an up-to-date unit is skipped.

A stage describes its work as `Unit`s (one per output folder). `execute` runs one; `state`
says whether it is done, stale or missing and why. The partial folder survives a crash, so
a stage that checkpoints inside it (translators, UNet training) resumes where it stopped;
its key file records the config and input digests, so a partial made under another config
is discarded rather than resumed.
"""

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medtrans.shared.hashing import digest, sha256_file
from medtrans.shared.layout import MANIFEST, RunLayout
from medtrans.shared.log import get_logger
from medtrans.shared.manifest import (
    InputRef,
    Manifest,
    ManifestError,
    SignatureError,
    describe_outputs,
    output_problems,
    read_manifest,
    read_trusted,
    write_manifest,
)
from medtrans.shared.provenance import code_version, environment
from medtrans.shared.seeding import derive_seed, seed_everything
from medtrans.shared.signing import SigningKeyError, signing_key

PARTIAL_KEY = ".partial.json"
log = get_logger("medtrans.stage")


class StageInputError(RuntimeError):
    """An input the stage cannot trust; the message names the file and what to do."""


@dataclass
class UnitContext:
    """What a unit's build function gets: where to write, and whether it resumes."""

    unit: "Unit"
    layout: RunLayout
    work: Path
    resumed: bool
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Unit:
    """One output folder of one stage: what it depends on and how to build it."""

    stage: str
    name: tuple[str, ...]
    out: Path
    config: Any
    build: Callable[[UnitContext], None]
    inputs: list[Path] = field(default_factory=list)
    version: str = "1"
    seeds: dict[str, int] = field(default_factory=dict)
    hint: str = ""  # how to produce missing inputs, for error messages
    # True for units whose build checkpoints inside ctx.work and can pick up from it
    # (training); others always start from an empty partial folder.
    resumable: bool = False

    @property
    def label(self) -> str:
        return "/".join((self.stage, *self.name))

    @property
    def config_digest_seed(self) -> int:
        return int(self.config_digest[:8], 16)

    @property
    def config_digest(self) -> str:
        return digest({"version": self.version, "config": self.config})


@dataclass(frozen=True)
class State:
    status: str  # done | stale | corrupt | missing | blocked
    reason: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def rebuild_command(manifest: Manifest) -> str:
    """The command that rebuilds the unit a manifest describes."""
    model = f" {manifest.unit[-1]}" if manifest.stage == "translate" and manifest.unit else ""
    return f"`medtrans {manifest.stage}{model} --study <study file>`"


def _trusted_input(folder: Path, unit: Unit, layout: RunLayout, key: bytes | None) -> Path:
    """The upstream manifest of `folder` once it parses, its signature holds (with a key) and
    every output it lists still has its sha256: what a consumer may read."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        hint = unit.hint or "run the upstream stage first"
        raise StageInputError(f"{path}: missing upstream manifest for {unit.label}; {hint}")
    try:
        manifest = read_trusted(Path(folder), key)
    except ManifestError as err:
        raise StageInputError(str(err)) from None
    assert manifest is not None
    bad = output_problems(Path(folder), manifest)
    if bad:
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        raise StageInputError(
            f"{bad[0]}{more}: an input of {unit.label} no longer matches {layout.rel(path)}; "
            f"see `medtrans verify {layout.root}` and rebuild it with {rebuild_command(manifest)}"
        )
    return path


def input_refs(unit: Unit, layout: RunLayout) -> list[InputRef]:
    """Digests of the upstream manifests, after checking every upstream output against its
    manifest (one contract for every stage: a consumer never reads an altered file); an error
    naming the file where one is missing, altered or unsigned."""
    try:
        key = signing_key(layout.root)
    except SigningKeyError as err:
        raise StageInputError(str(err)) from None
    refs = []
    for folder in unit.inputs:
        path = _trusted_input(Path(folder), unit, layout, key)
        refs.append(InputRef(path=layout.rel(path), sha256=sha256_file(path)))
    return refs


def state(unit: Unit, layout: RunLayout) -> State:
    """Done (complete and current), stale (complete but config or inputs changed), corrupt (an
    output or the signature no longer matches), missing, or blocked (an input is not usable)."""
    try:
        refs = input_refs(unit, layout)
        manifest = read_trusted(unit.out, signing_key(layout.root))
    except StageInputError as err:
        return State("blocked", str(err))
    except SignatureError as err:
        return State("corrupt", str(err))
    except ManifestError as err:
        return State("stale", str(err))
    if manifest is None:
        partial = _partial(unit.out)
        return State("missing", "interrupted; will resume" if partial.exists() else "not run yet")
    if manifest.config_digest != unit.config_digest:
        return State("stale", "study config changed")
    if [r.model_dump() for r in manifest.inputs] != [r.model_dump() for r in refs]:
        return State("stale", "an upstream output changed")
    lost = [o.path for o in manifest.outputs if not (unit.out / o.path).is_file()]
    if lost:
        return State("stale", f"output missing: {lost[0]}")
    bad = output_problems(unit.out, manifest)
    if bad:
        return State("corrupt", f"{bad[0]}; rerun to rebuild it ({rebuild_command(manifest)})")
    return State("done", "up to date")


def _partial(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def _partial_key(unit: Unit, refs: list[InputRef]) -> dict:
    return {"config": unit.config_digest, "inputs": [r.model_dump() for r in refs]}


def execute(unit: Unit, layout: RunLayout, force: bool = False) -> str:
    """Run one unit under the contract. Returns 'skipped' or 'ran'."""
    refs = input_refs(unit, layout)
    current = state(unit, layout)
    if current.status == "done" and not force:
        log.info("skip %s: %s", unit.label, current.reason)
        return "skipped"
    if current.status in ("stale", "corrupt"):
        log.info("rerun %s: %s", unit.label, current.reason)
    partial, resumed = _open_partial(unit, refs)

    # Global RNGs start from the unit's own seed, so its outputs never depend on what ran
    # before it in the same process (the local runner) or not (a container per stage).
    seed_everything(derive_seed(unit.config_digest_seed, *unit.name))
    started = _now()
    t0 = time.perf_counter()
    ctx = UnitContext(unit=unit, layout=layout, work=partial, resumed=resumed)
    try:
        unit.build(ctx)
    except StageInputError:
        if not unit.resumable:  # refused input: nothing half-made stays behind
            shutil.rmtree(partial, ignore_errors=True)
        raise
    _seal(ctx, refs, started, seconds=time.perf_counter() - t0)
    log.info("done %s in %.1fs", unit.label, time.perf_counter() - t0)
    return "ran"


def _open_partial(unit: Unit, refs: list[InputRef]) -> tuple[Path, bool]:
    """The unit's partial folder, and whether it resumes: an interrupted run's folder is kept
    only when it was made from the same inputs and config and the unit can resume."""
    partial = _partial(unit.out)
    key = _partial_key(unit, refs)
    resumed = False
    if partial.exists():
        old = None
        try:
            old = json.loads((partial / PARTIAL_KEY).read_text())
        except (OSError, ValueError):
            pass
        if old == key and unit.resumable:
            resumed = True
            log.info("resume %s from %s", unit.label, partial)
        else:
            shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    (partial / PARTIAL_KEY).write_text(json.dumps(key))
    return partial, resumed


def _seal(ctx: UnitContext, refs: list[InputRef], started: str, seconds: float) -> None:
    """Write the signed manifest of the finished partial folder and move it into place."""
    unit, partial = ctx.unit, ctx.work
    (partial / PARTIAL_KEY).unlink()
    manifest = Manifest(
        stage=unit.stage,
        unit=list(unit.name),
        stage_version=unit.version,
        code_version=code_version(),
        config_digest=unit.config_digest,
        config=unit.config,
        inputs=refs,
        outputs=describe_outputs(partial),
        environment=environment(),
        seeds=unit.seeds,
        started=started,
        finished=_now(),
        status="complete",
        extra={**ctx.extra, "seconds": round(seconds, 3)},
    )
    write_manifest(partial, manifest, signing_key(ctx.layout.root))
    _replace(partial, unit.out)


def _replace(partial: Path, out: Path) -> None:
    """Rename the finished partial folder into place; an older output is moved aside first."""
    if out.exists():
        trash = out.parent / f".{out.name}.old-{os.getpid()}-{time.time_ns()}"
        os.rename(out, trash)
        os.rename(partial, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(partial, out)


def complete_translators(layout: RunLayout, task: str, models: tuple[str, ...], stage: str) -> list[str]:
    """Translator names whose `translate/<task>/<model>/` has a complete, readable manifest:
    the translated sets a downstream stage picks up (a broken one is logged and left out)."""
    found = []
    for model in models:
        folder = layout.translate(task, model)
        if not (folder / MANIFEST).is_file():
            continue
        try:
            read_manifest(folder)
        except ManifestError as err:
            log.warning("%s/%s: %s; translator %s left out", stage, task, err, model)
            continue
        found.append(model)
    return found
