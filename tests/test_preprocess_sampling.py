"""Seeded, patient-level sampling of slices to target counts per domain and split."""

from pathlib import Path

import pytest

from medtrans.shared.config import load_study
from medtrans.shared.config.preprocess import SliceCounts
from medtrans.shared.config.study import StudyError, parse_study
from medtrans.shared.dataset import SPLITS, SliceIndex
from medtrans.shared.layout import RunLayout
from medtrans.shared.manifest import read_manifest
from medtrans.shared.stage import StageInputError
from medtrans.stages.preprocess.sampling import draw, sample_slices
from medtrans.stages.runner import run_stage

ROOT = Path(__file__).resolve().parent.parent
PER_PATIENT = {f"p{k}": list(range(10 + k)) for k in range(5)}  # 10..14 slices each


def test_draw_is_seeded_spread_across_patients_and_without_repeats():
    a = draw(PER_PATIENT, 23, 7, "t", "d", "train")
    assert a == draw(PER_PATIENT, 23, 7, "t", "d", "train")
    assert a != draw(PER_PATIENT, 23, 8, "t", "d", "train")
    assert len(set(a)) == 23
    per = {p: sum(1 for q, _ in a if q == p) for p in PER_PATIENT}
    assert set(per.values()) == {4, 5}  # round-robin: every patient 4 or 5 of 23
    everything = draw(PER_PATIENT, 60, 7, "t", "d", "train")
    assert sorted(everything) == sorted((p, s) for p, v in PER_PATIENT.items() for s in v)


def test_more_than_available_names_task_domain_split_counts_and_fix():
    available = {("ge", s): dict(PER_PATIENT) for s in SPLITS}
    with pytest.raises(StageInputError) as err:
        sample_slices("breast", available, SliceCounts(train=61), 1)
    msg = str(err.value)
    for part in ("preprocess/breast", "domain ge", "split train", "61 slices asked", "60 available",
                 "5 patients", "preprocess.sample.breast", "at most"):  # fmt: skip
        assert part in msg, part


def test_sample_record_and_untargeted_splits_keep_everything():
    available = {("ge", "train"): dict(PER_PATIENT), ("ge", "val"): {"p9": [0, 1]}, ("ge", "test"): {}}
    kept, record = sample_slices("breast", available, SliceCounts(train=12), 3)
    assert record["ge"]["train"] == {"available": 60, "kept": 12, "patients": 5, "target": 12}
    assert record["ge"]["val"]["kept"] == 2 and record["ge"]["test"]["kept"] == 0
    assert len(kept) == 14


def test_sample_names_only_study_tasks():
    data = load_study(ROOT / "studies" / "smoke.yaml").model_dump(mode="json")
    data["preprocess"]["sample"] = {"knee": {"train": 4}}
    with pytest.raises(StudyError, match="preprocess.sample names unknown task.*knee"):
        parse_study(data, "s.yaml")


def test_paper_yaml_uses_the_papers_image_counts():
    sample = load_study(ROOT / "studies" / "paper.yaml").preprocess.sample
    assert sample["breast"] == SliceCounts(train=4096, val=432, test=688)
    assert sample["spine"] == SliceCounts(train=495, val=175, test=158)


def _sampled(smoke, counts: dict):
    data = smoke.model_dump(mode="json")
    data["preprocess"]["sample"] = {"breast": counts}
    data["tasks"] = {"breast": data["tasks"]["breast"]}
    return parse_study(data, "sampled")


def test_preprocess_keeps_target_counts_and_patient_splits(smoke_study, smoke_preprocessed, tmp_path):
    study = _sampled(smoke_study, {"train": 9, "val": 3, "test": 4})
    layout = RunLayout(tmp_path / "run")
    run_stage("preprocess", study, layout)
    table = SliceIndex.for_task(layout, "breast").table
    full = SliceIndex.for_task(smoke_preprocessed, "breast").table
    extra = read_manifest(layout.preprocess("breast")).extra
    for domain in table.domain.unique():
        got = {s: int(((table.domain == domain) & (table.split == s)).sum()) for s in SPLITS}
        assert got == {"train": 9, "val": 3, "test": 4} == extra["counts"][domain]
        assert extra["sampling"][domain]["train"]["target"] == 9
        assert extra["sampling"][domain]["train"]["available"] == int(
            ((full.domain == domain) & (full.split == "train")).sum()
        )
    assert set(table.slice_id) <= set(full.slice_id)  # the same slices, a subset
    split_of = dict(zip(full.patient, full.split, strict=False))
    assert all(split_of[p] == s for p, s in zip(table.patient, table.split, strict=True))
    assert read_manifest(smoke_preprocessed.preprocess("breast")).extra["sampling"] is None
    again = RunLayout(tmp_path / "again")
    run_stage("preprocess", study, again)
    assert SliceIndex.for_task(again, "breast").table.equals(table)


def test_preprocess_refuses_a_target_above_the_available_slices(smoke_study, tmp_path):
    study = _sampled(smoke_study, {"test": 500})
    with pytest.raises(StageInputError, match=r"split test: 500 slices asked"):
        run_stage("preprocess", study, RunLayout(tmp_path / "run"))
