"""The preprocess stage: raw scans -> `preprocess/<task>/` (index.csv, images/, masks/,
foreground/), optionally sampled to target counts per domain and split.

One unit per task. The phantom source is first written as raw files under the run's cache
(`.cache/raw/<task>/`, never part of an output), then read through the same adapters as
real data. Bad input is recorded (file, reason) in the manifest's `rejected` list, with
patient ids replaced by pseudonyms; the unit fails only when a domain or split ends up
with fewer slices than `min_slices_per_split`.
"""

import time
from collections import Counter
from pathlib import Path

import pandas as pd

from medtrans.shared.config import StudyConfig, TaskConfig
from medtrans.shared.config.data import PhantomSource
from medtrans.shared.dataset import COLUMNS, FOREGROUND, INDEX, OPTIONAL, SPLITS
from medtrans.shared.imageio import write_png
from medtrans.shared.layout import RunLayout
from medtrans.shared.log import get_logger
from medtrans.shared.stage import StageInputError, Unit, UnitContext
from medtrans.stages.preprocess.adapters import SourceError, collect
from medtrans.stages.preprocess.cases import Sliced
from medtrans.stages.preprocess.phantom import generate as phantom
from medtrans.stages.preprocess.pool import parallel_map, worker_count
from medtrans.stages.preprocess.sampling import available_slices, sample_slices
from medtrans.stages.preprocess.splits import assign_splits, key_id, pseudonym, pseudonym_key
from medtrans.stages.preprocess.worker import Settings, process_case

STAGE_VERSION = "2"  # 2: foreground masks shipped with the slices; sampling
log = get_logger("medtrans.preprocess")


def plan(
    study: StudyConfig, layout: RunLayout, tasks: tuple[str, ...] | None = None, **_filters
) -> list[Unit]:
    """One unit per task of the study (refused at once for real data without a pseudonym key)."""
    units = []
    for name, task in study.tasks.items():
        if tasks and name not in tasks:
            continue
        key = pseudonym_key(study.name, study.seed, phantom=isinstance(task.data, PhantomSource))
        prep = study.part("preprocess")
        prep.pop("workers", None)  # how many processes does not change the output
        prep.pop("sample", None)  # only this task's counts below
        config = {
            "task": study.part("tasks", name),
            "preprocess": prep,
            "seed": study.seed,
            "pseudonym_key": key_id(key),
        }
        if name in study.preprocess.sample:
            config["sample"] = study.preprocess.sample[name].model_dump(mode="json")
        if isinstance(task.data, PhantomSource):  # new phantom code, new raw data: rerun
            config["phantom_generator"] = phantom.GENERATOR_VERSION
        units.append(
            Unit(
                stage="preprocess",
                name=(name,),
                out=layout.preprocess(name),
                config=config,
                build=_builder(study, name, task),
                version=STAGE_VERSION,
                seeds={"split": study.seed, "phantom": study.seed},
            )
        )
    return units


def _builder(study: StudyConfig, name: str, task: TaskConfig):
    def build(ctx: UnitContext) -> None:
        build_task(study, name, task, ctx)

    return build


def settings_for(study: StudyConfig, task: TaskConfig, rois: tuple[str, ...] = ()) -> Settings:
    p = study.preprocess
    return Settings(
        structures=tuple(task.structures),
        plane=task.plane,
        image_size=p.image_size,
        mri_percentiles=tuple(p.mri_percentiles),
        ct_window=tuple(p.ct_window),
        skip_rule=p.skip_rule,
        min_fraction=p.min_anatomy_fraction,
        totalseg_rois=rois,
        totalseg_device="cuda" if study.device == "cuda" else "cpu",
        foreground=p.foreground,
    )


def resolve_source(study: StudyConfig, name: str, task: TaskConfig, layout: RunLayout, workers: int):
    """The adapter config for a task; the phantom is (re)generated under the run cache first."""
    src = task.data
    if not isinstance(src, PhantomSource):
        return src, None
    raw = layout.cache("raw", name)
    if not phantom.is_current(study.seed, task, raw):
        t0 = time.perf_counter()
        mapper = lambda fn, jobs: parallel_map(fn, jobs, workers, f"phantom {name}")  # noqa: E731
        phantom.generate(study.seed, name, task, raw, mapper=mapper)
        log.info(
            "phantom %s: %d patients per domain written in %.1fs",
            name,
            src.patients_per_domain,
            time.perf_counter() - t0,
        )
    return phantom.source_for(task, raw), raw


class Redactor:
    """Rejected-file paths relative to the source root, with any patient id or case name (the
    first path part under the root) replaced by its pseudonym."""

    def __init__(self, roots: list[Path], key: bytes, ids: set[str]):
        self.roots = [Path(r).resolve() for r in roots]
        self.key = key
        self.ids = sorted((i for i in ids if len(i) >= 3), key=len, reverse=True)

    def text(self, s: str) -> str:
        for i in self.ids:
            s = s.replace(i, pseudonym(self.key, i))
        return s

    def path(self, p: str) -> str:
        path = Path(p).resolve()
        for root in self.roots:
            try:
                rel = path.relative_to(root)
            except ValueError:
                continue
            parts = list(rel.parts)
            if parts:
                first = parts[0]
                stem = first.split(".")[0]
                parts[0] = pseudonym(self.key, stem) + first[len(stem) :]
            return self.text("/".join([root.name, *parts]))
        return self.text(path.name)


def _source_roots(src) -> list[Path]:
    fields = ("root", "masks", "mri", "ct", "mri_masks", "ct_masks")
    return [Path(getattr(src, f)) for f in fields if getattr(src, f, None) is not None]


def _cases(task: TaskConfig, src) -> tuple[list, list[tuple[str, str]], tuple[str, ...]]:
    """The cases of a task, what the adapter rejected, and the TotalSegmentator rois (whose
    weights are checked first, before any case is read)."""
    try:
        cases, rejected = collect(task, src)
    except SourceError as err:
        raise StageInputError(str(err)) from None
    rois = tuple(getattr(src, "rois", ()))
    if any(c.totalseg for c in cases):
        from medtrans.stages.preprocess.totalseg import WeightsMissing, check_weights

        try:
            check_weights(rois)
        except WeightsMissing as err:
            raise StageInputError(str(err)) from None
    return cases, rejected, rois


def _one_scan_each(results: list[Sliced], key: bytes, roles: dict, rejected: list) -> list[Sliced]:
    """The first scan of each patient and domain; later ones are rejected."""
    seen: set[tuple[str, str]] = set()
    kept: list[Sliced] = []
    for r in results:
        if not (r.slices and r.domain in roles):
            continue
        pid = pseudonym(key, r.patient)
        if (pid, r.domain) in seen:
            rejected.append((r.key, "a second scan of the same patient and domain (only the first is used)"))
            continue
        seen.add((pid, r.domain))
        kept.append(r)
    return kept


def _write_slices(
    work: Path, kept: list[Sliced], key: bytes, roles: dict, split_of: dict, chosen: set | None
) -> pd.DataFrame:
    """Every kept slice (of the sample, when `chosen` is one) as image, mask and foreground
    PNGs, and the index table (written too)."""
    rows = []
    for r in kept:
        pid = pseudonym(key, r.patient)
        for pos, img, mask, fg, present in r.slices:
            if chosen is not None and (pid, r.domain, pos) not in chosen:
                continue
            sid = f"{pid}_{r.domain}_{pos:03d}"
            write_png(work / "images" / f"{sid}.png", img)
            mask_rel = fg_rel = ""
            if mask is not None:
                write_png(work / "masks" / f"{sid}.png", mask)
                mask_rel = f"masks/{sid}.png"
            if fg is not None:
                write_png(work / FOREGROUND / f"{sid}.png", fg)
                fg_rel = f"{FOREGROUND}/{sid}.png"
            rows.append(
                {
                    "slice_id": sid,
                    "patient": pid,
                    "domain": r.domain,
                    "role": roles[r.domain],
                    "split": split_of[pid],
                    "position": pos,
                    "image": f"images/{sid}.png",
                    "mask": mask_rel,
                    "foreground": fg_rel,
                    "structures": "|".join(present),
                }
            )
    table = pd.DataFrame(rows, columns=[*COLUMNS, *OPTIONAL]).sort_values("slice_id")
    table.to_csv(work / INDEX, index=False)
    return table


def _check_minimum(name: str, counts: dict, clean: list[tuple[str, str]], minimum: int) -> None:
    """Fail the unit, with the rejected list, when a domain or split has too few slices."""
    low = [f"{d}/{s}: {n} slices" for d, per in counts.items() for s, n in per.items() if n < minimum]
    if low:
        listing = "\n".join(f"  rejected {f}: {why}" for f, why in clean) or "  (nothing rejected)"
        raise StageInputError(
            f"preprocess/{name}: below min_slices_per_split={minimum} in "
            f"{', '.join(low)}; add data or lower the minimum.\n{listing}"
        )


def build_task(study: StudyConfig, name: str, task: TaskConfig, ctx: UnitContext) -> None:
    """Read and slice every case, keep one scan per patient and domain, split by patient,
    write the slices and index, and record counts and the (pseudonymised) rejected list."""
    p = study.preprocess
    workers = worker_count(p.workers)
    t_start = time.perf_counter()
    src, _raw = resolve_source(study, name, task, ctx.layout, workers)
    cases, rejected, rois = _cases(task, src)
    settings = settings_for(study, task, rois)
    t0 = time.perf_counter()
    results: list[Sliced] = list(
        parallel_map(process_case, [(c, settings) for c in cases], workers, f"preprocess {name}")
    )
    for r in results:
        rejected += r.rejected
    key = pseudonym_key(study.name, study.seed, phantom=isinstance(task.data, PhantomSource))
    roles = {task.source.name: "source", task.target.name: "target"}
    kept = _one_scan_each(results, key, roles, rejected)
    by_domain: dict[str, list[str]] = {task.source.name: [], task.target.name: []}
    for r in kept:
        by_domain[r.domain].append(pseudonym(key, r.patient))
    split_of = assign_splits(by_domain, tuple(p.split), study.seed, name)
    chosen, sampling = None, None
    if name in p.sample:
        available = available_slices(kept, lambda pat: pseudonym(key, pat), split_of, by_domain)
        chosen, sampling = sample_slices(name, available, p.sample[name], study.seed)
    table = _write_slices(ctx.work, kept, key, roles, split_of, chosen)
    seconds = time.perf_counter() - t0

    ids = {r.patient for r in results} | {r.key for r in results} | {c.key for c in cases}
    redact = Redactor(_source_roots(src), key, ids)
    clean = sorted({(redact.path(f), redact.text(why)) for f, why in rejected})
    counts = {
        d: {s: int(((table.domain == d) & (table.split == s)).sum()) for s in SPLITS} for d in by_domain
    }
    patients = {d: dict(Counter(split_of[pid] for pid in by_domain[d])) for d in by_domain}
    ctx.extra.update(
        {
            "cases": len(cases),
            "slices": len(table),
            "slices_read": sum(r.read for r in results),
            "counts": counts,
            "patients": patients,
            "sampling": sampling,  # None: every slice kept
            "rejected": [{"file": f, "reason": why} for f, why in clean],
            "workers": workers,
            "slices_per_second": round(len(table) / seconds, 2) if seconds > 0 else None,
            "seconds_total": round(time.perf_counter() - t_start, 3),
            "source": task.data.kind,
        }
    )
    _summary(name, counts, clean, sum(r.constant for r in results))
    _check_minimum(name, counts, clean, p.min_slices_per_split)


def _summary(name: str, counts: dict, rejected: list[tuple[str, str]], constant: int) -> None:
    parts = ", ".join(f"{d} " + "/".join(str(per[s]) for s in SPLITS) for d, per in counts.items())
    log.info("preprocess %s: slices train/val/test per domain: %s; %d rejected", name, parts, len(rejected))
    if constant:
        log.info("preprocess %s: %d slice(s) skipped as constant after windowing", name, constant)
    for f, why in rejected:
        log.warning("rejected %s: %s", f, why)
