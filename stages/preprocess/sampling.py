"""A seeded, patient-level sample of slices to target counts per domain and split.

Patients are assigned to splits first (splits.py); then each (domain, split) keeps its target
count of slices, drawn round-robin across that split's patients (patients in a seeded order,
each patient's slices in a seeded order), so every patient contributes about equally and the
draw is a pure function of (seed, task, domain, split) and the slices available."""

from medtrans.shared.config.preprocess import SliceCounts
from medtrans.shared.dataset import SPLITS
from medtrans.shared.seeding import rng
from medtrans.shared.stage import StageInputError

# (domain, split) -> patient pseudonym -> slice positions
Available = dict[tuple[str, str], dict[str, list[int]]]


def draw(per_patient: dict[str, list[int]], n: int, seed: int, *names: object) -> list[tuple[str, int]]:
    """n (patient, position) pairs, round-robin over the patients in a seeded order."""
    gen = rng(seed, "sample", *names)
    patients = sorted(per_patient)
    order = [patients[i] for i in gen.permutation(len(patients))]
    queues = {}
    for p in order:
        positions = sorted(per_patient[p])
        queues[p] = [positions[i] for i in gen.permutation(len(positions))]
    picked: list[tuple[str, int]] = []
    depth = 0
    while len(picked) < n:
        for p in order:
            if depth < len(queues[p]) and len(picked) < n:
                picked.append((p, queues[p][depth]))
        depth += 1
    return picked


def _shortfalls(task: str, available: Available, counts: SliceCounts) -> list[str]:
    out = []
    for (domain, split), per_patient in sorted(available.items()):
        want, have = getattr(counts, split), sum(len(v) for v in per_patient.values())
        if want is not None and want > have:
            out.append(
                f"domain {domain}, split {split}: {want} slices asked, {have} available "
                f"(from {len(per_patient)} patients)"
            )
    return out


def sample_slices(
    task: str, available: Available, counts: SliceCounts, seed: int
) -> tuple[set[tuple[str, str, int]], dict]:
    """The kept (patient, domain, position) triples and the record for the manifest
    ({domain: {split: {available, kept, patients}}}). A split without a target keeps all."""
    short = _shortfalls(task, available, counts)
    if short:
        raise StageInputError(
            f"preprocess/{task}: preprocess.sample.{task} asks for more slices than there are: "
            + "; ".join(short)
            + f". Lower preprocess.sample.{task}.<split> to at most the available count, "
            "add patients, or remove the task from preprocess.sample to keep every slice"
        )
    kept: set[tuple[str, str, int]] = set()
    record: dict[str, dict[str, dict[str, int]]] = {}
    for (domain, split), per_patient in sorted(available.items()):
        have = sum(len(v) for v in per_patient.values())
        want = getattr(counts, split)
        picked = (
            [(p, pos) for p, v in per_patient.items() for pos in v]
            if want is None
            else draw(per_patient, want, seed, task, domain, split)
        )
        kept.update((p, domain, pos) for p, pos in picked)
        record.setdefault(domain, {})[split] = {
            "available": have,
            "kept": len(picked),
            "patients": len({p for p, _ in picked}),
            "target": want,
        }
    return kept, record


def available_slices(kept_scans, key_of, split_of: dict[str, str], domains) -> Available:
    """Every (domain, split) of the task, with each patient's slice positions (empty ones too,
    so a target on a split without slices is refused)."""
    out: Available = {(d, s): {} for d in domains for s in SPLITS}
    for r in kept_scans:
        pid = key_of(r.patient)
        out[(r.domain, split_of[pid])][pid] = [pos for pos, *_ in r.slices]
    return out
