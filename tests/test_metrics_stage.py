"""The metrics stage on a tiny run folder written in the run-folder formats."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
from metrics_helpers import make_run, random_inception_file, with_metrics

from medtrans.shared.bootstrap import subsample_indices
from medtrans.shared.hashing import sha256_file
from medtrans.shared.imageio import read_png
from medtrans.shared.intervals import rate_scale, subsample_interval
from medtrans.shared.stage import StageInputError, execute, state
from medtrans.stages.metrics import stage as metrics_stage
from medtrans.stages.metrics.features import Features
from medtrans.stages.metrics.fid import fid_from_features
from medtrans.stages.metrics.pairs import pair_values
from medtrans.stages.metrics.results import BOOTSTRAP_COLUMNS, COLUMNS
from medtrans.stages.metrics.scoring import SetFeatures
from medtrans.stages.runner import run_stage

N_TEST = 5
PAIRS = ("nmi", "mind", "ngf")


def _one_task(study):
    data = study.model_dump(mode="json")
    data["tasks"] = {"breast": data["tasks"]["breast"]}
    return type(study).model_validate(data)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return random_inception_file(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, smoke_study, net):
    """One task, one translator, every metric with a random Inception given explicitly."""
    study = with_metrics(
        _one_task(smoke_study), extractor=str(net), is_splits=2, bootstrap=4, kid_subset_size=4
    )
    layout = make_run(tmp_path_factory.mktemp("run"), study, n_test=N_TEST)
    run_stage("metrics", study, layout)
    return study, layout


def test_metrics_csv_has_every_set_and_metric(full_run, net):
    study, layout = full_run
    out = layout.metrics("breast")
    rows = _rows(out / "metrics.csv")
    assert tuple(rows[0]) == COLUMNS
    assert {r["set"] for r in rows} == {"cyclegan", "source", "target_train"}
    expected = {"fid", "kid", "kid_std", "is", "is_std", "swd", "swd_32", "swd_16", "frd", "frd_log"}
    for name in ("cyclegan", "source", "target_train"):
        got = {r["metric"]: r for r in rows if r["set"] == name}
        assert set(got) == expected | set(PAIRS)
        for metric, r in got.items():
            if metric in PAIRS and name == "target_train":  # real slices: no source to pair with
                assert r["value"] == r["ci_low"] == "" and r["note"].startswith("not applicable: "), r
                continue
            assert r["value"] not in ("", "nan", "inf", "-inf"), (name, metric, r["note"])
            assert np.isfinite(float(r["value"]))
            assert r["n"] == str(N_TEST)  # target_train drawn to the translated sets' size
            sha = sha256_file(net) if metric.split("_")[0] in ("fid", "kid", "is") else ""
            assert r["network_sha256"] == sha
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extra"]["network"] == {
        "available": True,
        "file": str(net),
        "sha256": sha256_file(net),
        "standard": False,
    }
    assert manifest["config"]["network_sha256"] == sha256_file(net)


def test_bootstrap_replicates_recompute_from_cached_features(full_run):
    study, layout = full_run
    out = layout.metrics("breast")
    boot = _rows(out / "bootstrap.csv")
    assert tuple(boot[0]) == BOOTSTRAP_COLUMNS
    assert {int(r["replicate"]) for r in boot} == set(range(study.metrics.bootstrap))
    ref = SetFeatures.load(out / "features" / "target_test.npz")
    fake = SetFeatures.load(out / "features" / "cyclegan.npz")
    assert fake.ids == sorted(fake.ids)
    R = study.metrics.bootstrap
    idx = subsample_indices(study.seed, "breast", len(fake), R)
    ref_idx = subsample_indices(study.seed, "breast", len(ref), R, "reference")
    assert idx.shape == (R, len(fake) // 2) and all(len(set(row)) == len(row) for row in idx)  # no duplicates
    for r in range(R):
        row = next(
            b for b in boot if b["set"] == "cyclegan" and b["metric"] == "fid" and int(b["replicate"]) == r
        )
        half_set = Features(fake.inception.pool[idx[r]], fake.inception.logits[idx[r]])
        want = fid_from_features(ref.inception.pool[ref_idx[r]], half_set)
        assert float(row["value"]) == pytest.approx(want, rel=1e-12)
    rows = {(r["set"], r["metric"]): r for r in _rows(out / "metrics.csv")}
    values = [float(b["value"]) for b in boot if b["set"] == "source" and b["metric"] == "swd"]
    point = float(rows[("source", "swd")]["value"])
    lo, hi = float(rows[("source", "swd")]["ci_low"]), float(rows[("source", "swd")]["ci_high"])
    want = subsample_interval(point, np.array(values), rate_scale(len(fake), len(fake) // 2))
    assert (lo, hi) == pytest.approx(want, rel=1e-12)
    for r in rows.values():  # every interval holds its point estimate
        if r["ci_low"]:
            assert float(r["ci_low"]) <= float(r["value"]) <= float(r["ci_high"]), r


def test_pair_metrics_pair_each_translation_with_its_source_slice(full_run):
    """Per-pair values (cached in the features) = score_pairs of each source test slice and its
    translation read back from the run folder; the mean is the row, replicates the mean over the
    shared resample positions; `source` against itself is the optimum."""
    study, layout = full_run
    out = layout.metrics("breast")
    index = pd.read_csv(layout.preprocess("breast") / "index.csv", dtype=str)
    ids = sorted(index[(index.role == "source") & (index.split == "test")].slice_id)
    size = study.preprocess.image_size
    sources = np.stack([read_png(layout.preprocess("breast") / "images" / f"{i}.png", size) for i in ids])
    translated = np.stack(
        [read_png(layout.translate("breast", "cyclegan") / "test" / f"{i}.png", size) for i in ids]
    )
    want = pair_values(PAIRS, sources, translated)
    feats = SetFeatures.load(out / "features" / "cyclegan.npz")
    assert feats.ids == ids and set(feats.pairs) == set(PAIRS)
    rows = {(r["set"], r["metric"]): r for r in _rows(out / "metrics.csv")}
    boot = _rows(out / "bootstrap.csv")
    idx = subsample_indices(study.seed, "breast", N_TEST, study.metrics.bootstrap)
    for name in PAIRS:
        assert np.array_equal(feats.pairs[name], want[name])
        assert float(rows[("cyclegan", name)]["value"]) == pytest.approx(want[name].mean(), rel=1e-12)
        reps = sorted(
            (int(b["replicate"]), float(b["value"]))
            for b in boot
            if b["set"] == "cyclegan" and b["metric"] == name
        )
        assert [v for _, v in reps] == pytest.approx(want[name][idx].mean(axis=1), rel=1e-12)
        lo, hi = float(rows[("cyclegan", name)]["ci_low"]), float(rows[("cyclegan", name)]["ci_high"])
        point = want[name].mean()
        scale = rate_scale(N_TEST, N_TEST // 2)
        assert (lo, hi) == pytest.approx(subsample_interval(point, np.array([v for _, v in reps]), scale))
        assert lo <= point <= hi
    identity = {"nmi": 2.0, "mind": 0.0, "ngf": 1.0}
    for name, value in identity.items():
        assert float(rows[("source", name)]["value"]) == pytest.approx(value, abs=1e-12)
    assert SetFeatures.load(out / "features" / "target_train.npz").pairs is None
    manifest = json.loads((out / "manifest.json").read_text())
    assert (
        manifest["extra"]["pairs"]["nmi"]["bins"] == 32
        and manifest["config"]["pairs"] == manifest["extra"]["pairs"]
    )


def test_rerun_is_skipped_and_other_weights_rerun(full_run, tmp_path):
    study, layout = full_run
    (unit,) = metrics_stage.plan(study, layout)
    assert state(unit, layout).status == "done"
    other = tmp_path / "other.pth"
    other.write_bytes(open(study.metrics.extractor, "rb").read() + b"\0")
    (changed,) = metrics_stage.plan(with_metrics(study, extractor=str(other)), layout)
    assert state(changed, layout).status == "stale"


def test_missing_weights_give_notes_and_other_metrics(smoke_study, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTRANS_WEIGHTS", str(tmp_path / "no-weights"))
    study = with_metrics(_one_task(smoke_study), metrics=["fid", "kid", "is", "swd"], bootstrap=3)
    layout = make_run(tmp_path / "run", study, n_test=4)
    run_stage("metrics", study, layout)
    rows = _rows(layout.metrics("breast") / "metrics.csv")
    expected = tmp_path / "no-weights" / "pt_inception-2015-12-05-6726825d.pth"
    for r in rows:
        if r["metric"].split("_")[0] in ("fid", "kid", "is"):
            assert r["value"] == "" and r["ci_low"] == ""
            assert r["note"] == f"unavailable: weights missing (expected {expected}; run `make weights`)"
        else:
            assert float(r["value"]) > 0
    boot = _rows(layout.metrics("breast") / "bootstrap.csv")
    assert all(b["value"] == "" for b in boot if b["metric"] == "fid")
    assert all(float(b["value"]) > 0 for b in boot if b["metric"] == "swd")


def test_collapsed_translator_is_a_note_not_nan(smoke_study, tmp_path):
    study = with_metrics(_one_task(smoke_study), metrics=["swd", "frd", "nmi", "ngf"], bootstrap=2)
    layout = make_run(tmp_path / "run", study, n_test=4, translated=lambda model, imgs: np.zeros_like(imgs))
    run_stage("metrics", study, layout)
    rows = {(r["set"], r["metric"]): r for r in _rows(layout.metrics("breast") / "metrics.csv")}
    for metric in ("swd", "frd", "ngf"):  # NGF: a constant image has no edges, undefined
        r = rows[("cyclegan", metric)]
        assert r["value"] == "" and r["note"].startswith("unavailable:"), r
    assert float(rows[("cyclegan", "nmi")]["value"]) == 1.0  # a constant image shares no information
    assert float(rows[("source", "swd")]["value"]) > 0
    text = (layout.metrics("breast") / "bootstrap.csv").read_text().lower()
    assert "nan" not in text and "inf" not in text


def test_only_complete_translators_and_missing_slices(smoke_study, tmp_path):
    study = with_metrics(_one_task(smoke_study), metrics=["swd"], bootstrap=0)
    layout = make_run(tmp_path / "run", study, models=("cyclegan", "unsb"), n_test=4)
    (layout.translate("breast", "unsb") / "manifest.json").rename(
        layout.translate("breast", "unsb") / "x.json"
    )
    (unit,) = metrics_stage.plan(study, layout)
    assert unit.config["sets"] == ["cyclegan", "source", "target_train"]
    victim = sorted((layout.translate("breast", "cyclegan") / "test").glob("*.png"))[0]
    victim.unlink()
    with pytest.raises(StageInputError, match=victim.name):
        execute(unit, layout)
