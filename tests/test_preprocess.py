"""The preprocess stage on the smoke phantom: the slice-index contract, patient-level splits,
determinism, throughput, and no identifier anywhere in the run folder or the logs."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from medtrans.shared.dataset import COLUMNS, OPTIONAL, SPLITS, SliceIndex
from medtrans.shared.imageio import read_png
from medtrans.shared.layout import RunLayout
from medtrans.shared.manifest import read_manifest
from medtrans.stages.preprocess.phantom import generate as phantom
from medtrans.stages.runner import run_stage


@pytest.mark.parametrize("task", ["breast", "spine"])
def test_index_follows_the_contract(smoke_preprocessed, smoke_study, task):
    index = SliceIndex.for_task(smoke_preprocessed, task)
    table = index.table
    assert list(table.columns) == [*COLUMNS, *OPTIONAL]
    assert table.slice_id.is_unique and (table.slice_id.sort_values().values == table.slice_id.values).all()
    cfg = smoke_study.tasks[task]
    assert set(table.domain) == {cfg.source.name, cfg.target.name}
    assert set(table[table.domain == cfg.source.name].role) == {"source"}
    assert set(table[table.domain == cfg.target.name].role) == {"target"}
    size = smoke_study.preprocess.image_size
    k = len(cfg.structures)
    for row in table.itertuples():
        img = read_png(index.path(row.image), size)
        mask = read_png(index.path(row.mask), size)
        assert img.max() > 0 and mask.max() <= k and mask.any()
        present = [cfg.structures[v - 1] for v in np.unique(mask) if v > 0]
        assert row.structures == "|".join(present)
        assert row.slice_id == f"{row.patient}_{row.domain}_{row.position:03d}"
    for domain in table.domain.unique():
        for split in SPLITS:
            n = len(table[(table.domain == domain) & (table.split == split)])
            assert n >= smoke_study.preprocess.min_slices_per_split


@pytest.mark.parametrize("task", ["breast", "spine"])
def test_no_patient_in_two_splits(smoke_preprocessed, task):
    table = SliceIndex.for_task(smoke_preprocessed, task).table
    splits_per_patient = table.groupby("patient").split.nunique()
    assert (splits_per_patient == 1).all()
    assert table.patient.str.fullmatch(r"p[0-9a-f]{10}").all()


def test_manifest_records_throughput_and_counts(smoke_preprocessed):
    for task in ("breast", "spine"):
        extra = read_manifest(smoke_preprocessed.preprocess(task)).extra
        assert extra["rejected"] == []
        assert extra["slices_per_second"] > 0 and extra["workers"] >= 1
        total = sum(n for per in extra["counts"].values() for n in per.values())
        assert total == extra["slices"] == len(SliceIndex.for_task(smoke_preprocessed, task).table)
        assert extra["slices"] <= extra["slices_read"]
        if task == "spine":  # lateral sagittal slices miss the vertebrae: the anatomy rule skips them
            assert extra["slices"] < extra["slices_read"]
        assert extra["cases"] == 12


def test_same_study_twice_gives_identical_outputs(smoke_preprocessed, smoke_study, tmp_path):
    """Another run folder, one worker instead of a pool: byte-identical slices and index."""
    study = smoke_study.model_copy(
        update={"preprocess": smoke_study.preprocess.model_copy(update={"workers": 1})}
    )
    layout = RunLayout(tmp_path / "again")
    run_stage("preprocess", study, layout)
    for task in ("breast", "spine"):
        a = read_manifest(smoke_preprocessed.preprocess(task))
        b = read_manifest(layout.preprocess(task))
        assert [(o.path, o.sha256) for o in a.outputs] == [(o.path, o.sha256) for o in b.outputs]
        assert a.config_digest == b.config_digest


def _identifiers(study) -> set[str]:
    values = set()
    for name, task in study.tasks.items():
        for who in phantom.identities(study.seed, name, task):
            for key in ("name", "patient_id", "birth_date", "accession", "institution", "physician"):
                values.add(who[key])
            values.update(part for part in who["name"].split("^") if len(part) > 3)
    return values


def _leaks(root: Path, values: set[str], skip: Path | None = None) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if skip is not None and skip in path.parents:
            continue
        rel = path.relative_to(root).as_posix()
        found += [f"name {rel}: {v}" for v in values if v.lower() in rel.lower()]
        if path.is_file():
            data = path.read_bytes().lower()
            found += [f"{rel}: {v}" for v in values if v.lower().encode() in data]
    return found


def test_no_identifier_in_the_run_folder(smoke_preprocessed, smoke_study):
    values = _identifiers(smoke_study)
    raw = smoke_preprocessed.cache("raw")
    assert _leaks(raw, values), "the raw phantom must carry the fake identifiers (else this test is void)"
    assert _leaks(smoke_preprocessed.root, values, skip=raw) == []


def test_no_identifier_in_logs_or_rejected_list(smoke_study, tmp_path):
    """Bad files named after a patient, inside its folder: the rejected list and the log name
    them by pseudonym only."""
    study = smoke_study.model_copy(update={"tasks": {"breast": smoke_study.tasks["breast"]}})
    layout = RunLayout(tmp_path / "run")
    raw = layout.cache("raw", "breast")
    phantom.generate(study.seed, "breast", study.tasks["breast"], raw)
    pid = sorted((raw / "images").iterdir())[0].name
    series = next((raw / "images" / pid).glob(f"*/*{phantom.PRE_SERIES}"))
    (series / f"{pid}-broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")
    (raw / "images" / f"{pid}_notes.txt").write_text("not an image")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep()
    logging.getLogger("medtrans").addHandler(handler)
    try:
        run_stage("preprocess", study, layout)
    finally:
        logging.getLogger("medtrans").removeHandler(handler)
    rejected = read_manifest(layout.preprocess("breast")).extra["rejected"]
    assert len(rejected) == 2, rejected
    values = _identifiers(study)
    assert pid in values
    text = "\n".join(records) + json.dumps(rejected)
    assert "rejected" in text and not [v for v in values if v.lower() in text.lower()]
    assert _leaks(layout.root, values, skip=layout.cache("raw")) == []
