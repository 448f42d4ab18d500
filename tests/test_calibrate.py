"""Calibration (stages/calibrate): each perturbation family does what it claims, severities are
graded, the suite is deterministic, `medtrans calibrate` on a generated folder, the stage unit on
the smoke study, the report's Calibration section, and the summary's indices on known input."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from medtrans.shared.catalogue import perturbations as catalogue
from medtrans.shared.config import parse_study
from medtrans.shared.imageio import write_png
from medtrans.stages.calibrate.perturb import NEEDS_MASK, perturb_set
from medtrans.stages.cli import app
from medtrans.stages.report.calibration_analysis import COLUMNS, summarise

S = 5


def _phantom(n: int = 4, size: int = 48, seed: int = 0):
    """Textured discs: label 1 a large disc, label 2 a small one inside it."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks = [], []
    for i in range(n):
        cy, cx = size / 2 + g.uniform(-3, 3, 2)
        big = (yy - cy) ** 2 + (xx - cx) ** 2 < (size * 0.32) ** 2
        small = (yy - cy - 4) ** 2 + (xx - cx + 3) ** 2 < (size * 0.12 + i) ** 2
        img = 20 + 120 * big + 80 * small + g.normal(0, 6, (size, size))
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        masks.append((big.astype(np.uint8) + (small & big)).astype(np.uint8))
    return np.stack(images), np.stack(masks)


def _mean_change(a, b) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


@pytest.mark.parametrize("name", [p.name for p in catalogue.PERTURBATIONS if p.family == "appearance"])
def test_appearance_perturbations_change_pixels_not_the_mask_and_are_graded(name):
    images, masks = _phantom()
    changes = []
    for s in range(1, S + 1):
        out, out_masks = perturb_set(images, masks, name, s, S, seed=3)
        assert out.shape == images.shape and out.dtype == np.uint8
        assert np.array_equal(out_masks, masks)
        changes.append(_mean_change(out, images))
    assert changes[-1] > 2.0, f"{name}: the strongest severity barely changes the pixels"
    assert changes[0] < 0.6 * changes[-1], f"{name}: the lowest severity is not near identity: {changes}"
    graded = all(b >= a * 0.9 for a, b in zip(changes, changes[1:], strict=False))
    assert graded, f"{name}: not graded: {changes}"


@pytest.mark.parametrize("name", [p.name for p in catalogue.PERTURBATIONS if p.family == "anatomy"])
def test_anatomy_perturbations_change_the_mask_with_the_image_and_are_graded(name):
    images, masks = _phantom()
    moved = []
    for s in range(1, S + 1):
        out, out_masks = perturb_set(images, masks, name, s, S, seed=3)
        assert out_masks.shape == masks.shape and out_masks.dtype == np.uint8
        assert set(np.unique(out_masks)) <= {0, 1, 2}
        assert _mean_change(out, images) > 0
        moved.append(float((out_masks != masks).mean()))
    assert min(moved) > 0, f"{name}: a severity leaves the mask as it was: {moved}"
    assert moved[0] < 0.7 * moved[-1], f"{name}: the lowest severity is not the mildest: {moved}"
    assert moved[-1] > 0.02


def test_erase_fills_the_structure_with_its_surroundings_and_relabels_it():
    images, masks = _phantom(1)
    out, out_masks = perturb_set(images, masks, "erase", S, S, seed=5)  # strongest: the whole structure
    gone = [k for k in (1, 2) if (masks == k).any() and not (out_masks == k).any()]
    assert gone, "the strongest erase leaves every structure"
    hole = (masks == gone[0]) & (out_masks != gone[0])
    filled = out[0][hole[0]].astype(float)
    assert abs(filled.mean() - images[0][out_masks[0] == out_masks[0][hole[0]][0]].mean()) < 40


def test_perturbations_are_deterministic_per_seed_and_differ_between_seeds():
    images, masks = _phantom()
    for name in ("gaussian_noise", "motion", "elastic", "shift"):
        a = perturb_set(images, masks, name, 3, S, seed=11)
        b = perturb_set(images, masks, name, 3, S, seed=11)
        c = perturb_set(images, masks, name, 3, S, seed=12)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        assert not np.array_equal(a[0], c[0])


def test_structure_edits_need_masks():
    images, _ = _phantom(2)
    for name in NEEDS_MASK:
        with pytest.raises(ValueError, match="needs masks"):
            perturb_set(images, None, name, 1, S, seed=0)
    out, none = perturb_set(images, None, "elastic", 1, S, seed=0)
    assert none is None and out.shape == images.shape


def _table(responses: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    rows = [("none", "none", 0, m, 0.0, 0.9, 0.9, "") for m in responses]
    for metric, per in responses.items():
        for pert, values in per.items():
            fam = catalogue.family(pert)
            for s, v in enumerate(values, 1):
                rows.append((pert, fam, s, metric, v, 0.9, 0.9 - 0.1 * s, ""))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_summary_indices_on_known_responses():
    up = [1.0, 2.0, 3.0, 4.0, 5.0]
    table = _table({
        "fid": {"gaussian_noise": [0.0] * 5, "blur": [0.0] * 5, "elastic": up, "erase": up},  # anatomy only
        "swd": {"gaussian_noise": up, "blur": up, "elastic": [0.0] * 5, "erase": [0.0] * 5},  # appearance
        "kid": {"gaussian_noise": up, "blur": up[::-1], "elastic": up, "erase": up},
    })  # fmt: skip
    s = summarise(table).set_index("metric")
    assert s.loc["fid", "asi_severity"] == pytest.approx(1.0)
    assert s.loc["fid", "asi_dice"] == pytest.approx(1.0)
    assert s.loc["fid", "monotonicity_anatomy"] == pytest.approx(1.0)
    assert np.isnan(s.loc["fid", "monotonicity_appearance"])  # no response: no order
    assert s.loc["swd", "asi_severity"] == pytest.approx(-1.0)
    assert s.loc["kid", "monotonicity_appearance"] == pytest.approx(0.0)  # one up, one down
    assert s.loc["kid", "monotonicity_anatomy"] == pytest.approx(1.0)


def test_is_higher_is_better_so_a_falling_is_is_a_positive_response():
    table = _table(
        {"is": {"gaussian_noise": [5.0, 4.0, 3.0, 2.0, 1.0], "elastic": [5.0, 4.0, 3.0, 2.0, 1.0]}}
    )
    table.loc[table.severity == 0, "value"] = 6.0
    s = summarise(table).set_index("metric")
    assert s.loc["is", "monotonicity_appearance"] == pytest.approx(1.0)
    assert s.loc["is", "direction"] == "higher"


def _folder(tmp_path, n=4, size=32):
    images, masks = _phantom(n, size, seed=2)
    for i, (im, m) in enumerate(zip(images, masks, strict=True)):
        write_png(tmp_path / "real" / f"s{i}.png", im)
        write_png(tmp_path / "masks" / f"s{i}.png", m)
    return tmp_path / "real", tmp_path / "masks"


def test_command_on_a_generated_folder_writes_the_long_table_summary_and_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTRANS_WEIGHTS", str(tmp_path / "no-weights"))
    real, masks = _folder(tmp_path)
    out = tmp_path / "out"
    args = ["calibrate", str(real), "--masks", str(masks), "--out", str(out), "--severities", "3",
            "--perturbations", "gaussian_noise,erase", "--metrics", "is,swd,frd", "--nhood-sizes", "3,7",
            "--device", "cpu", "--frd-workers", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "calibration.csv")
    assert tuple(table.columns) == COLUMNS
    assert COLUMNS[:7] == ("perturbation", "family", "severity", "metric", "value", "dice_perturbed_gt",
                           "dice_original_gt")  # fmt: skip
    assert set(table.perturbation) == {"none", "gaussian_noise", "erase"}
    assert set(table.metric) == {"is", "swd", "frd", "frd_log", "swd_nhood3", "swd_nhood7"}
    assert len(table) == 6 * (1 + 2 * 3)
    assert (
        table[table.metric == "is"].value.isna().all()
        and table[table.metric == "is"].note.str.contains("weights").all()
    )
    pert = table[(table.severity > 0) & table.metric.isin(["swd", "frd"])]
    assert pert.value.notna().all() and (pert.value > 0).all()
    swd = table[table.metric == "swd"].set_index(["perturbation", "severity"]).value
    assert 0 < swd[("none", 0)] < swd.max()  # the floor: SWD's sampling noise, below the perturbations'
    assert table[table.metric == "swd_nhood7"].value.tolist() == swd.tolist()  # the study's size reused
    frd = table[table.metric == "frd"].set_index(["perturbation", "severity"]).value
    assert abs(frd[("none", 0)]) < 1e-3 * frd.max()  # the same features: no floor
    summary = pd.read_csv(out / "summary.csv")
    assert summary.metric.tolist() == ["is", "swd", "frd", "frd_log", "swd_nhood3", "swd_nhood7"]
    assert (out / "figures" / "response_appearance.png").is_file()
    assert (out / "figures" / "response_anatomy.png").is_file()


def test_command_refuses_bad_masks_and_unet_without_masks(tmp_path):
    real, masks = _folder(tmp_path, n=3)
    (masks / "s1.png").unlink()
    result = CliRunner().invoke(app, ["calibrate", str(real), "--masks", str(masks), "--metrics", "swd"])
    assert result.exit_code == 2 and "s1.png" in result.output and "no mask" in result.output
    result = CliRunner().invoke(app, ["calibrate", str(real), "--unet", str(tmp_path / "model.pt")])
    assert result.exit_code == 2 and "--unet needs --masks" in result.output


def test_a_study_switches_calibration_off(smoke_study, tmp_path):
    from medtrans.shared.layout import RunLayout
    from medtrans.stages.calibrate.stage import plan

    data = smoke_study.model_dump(mode="json")
    assert len(plan(smoke_study, RunLayout(tmp_path))) == len(smoke_study.tasks)
    data["calibrate"] = {"enabled": False}
    assert plan(parse_study(data), RunLayout(tmp_path)) == []
    data["calibrate"] = {"perturbations": ["noise"]}
    with pytest.raises(ValueError, match="calibrate.perturbations"):
        parse_study(data)
    data["calibrate"] = {"severities": 2}
    with pytest.raises(ValueError, match="calibrate.severities"):
        parse_study(data)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, smoke_study, smoke_preprocessed):
    """The smoke run with preprocess, calibrate, segment and metrics done (no translators: the
    calibration sets are scored alone), and a second calibrate of a copy."""
    import shutil

    from medtrans.shared.layout import RunLayout
    from medtrans.stages.runner import run_stage

    layout = RunLayout(tmp_path_factory.mktemp("calibrate-run"))
    shutil.copytree(smoke_preprocessed.root, layout.root, dirs_exist_ok=True)
    first = run_stage("calibrate", smoke_study, layout)
    again = RunLayout(tmp_path_factory.mktemp("calibrate-again"))
    shutil.copytree(layout.root, again.root, dirs_exist_ok=True)
    run_stage("calibrate", smoke_study, again, force=True)
    run_stage("segment", smoke_study, layout)
    run_stage("metrics", smoke_study, layout)
    return layout, again, first


def test_stage_unit_per_task_writes_calibration_sets_with_their_own_masks(calibrated, smoke_study):
    from medtrans.shared.calibration import NONE, CalibrationSets
    from medtrans.shared.manifest import read_manifest, verify_folder

    layout, _, outcomes = calibrated
    assert [o.unit for o in outcomes] == [f"calibrate/{t}" for t in smoke_study.tasks]
    cfg = smoke_study.calibrate
    for task in smoke_study.tasks:
        folder = layout.calibrate(task)
        manifest = read_manifest(folder)
        assert [i.path for i in manifest.inputs] == [f"preprocess/{task}/manifest.json"]  # nothing else
        assert "sets.csv" in {o.path for o in manifest.outputs}
        verify_folder(folder)
        sets = CalibrationSets.read(layout, task)
        assert sets.reference.name == NONE and len(sets.reference.slice_ids) == cfg.images
        assert len(sets.perturbed) == len(cfg.perturbations) * cfg.severities
        _, original = sets.reference.read(smoke_study.preprocess.image_size)
        for s in sets.perturbed:
            images, masks = s.read(smoke_study.preprocess.image_size)
            assert images.shape == masks.shape == original.shape
            if s.family == "appearance":
                assert (masks == original).all()  # the anatomy is unchanged


def test_segment_and_metrics_score_the_calibration_sets(calibrated, smoke_study):
    from medtrans.stages.report.calibration_analysis import long_table

    layout, _, _ = calibrated
    for task in smoke_study.tasks:
        dice = pd.read_csv(layout.segment(task) / "calibration.csv")
        scores = pd.read_csv(layout.metrics(task) / "calibration.csv")
        table = long_table(scores, dice)
        assert set(table.perturbation) == {"none", *smoke_study.calibrate.perturbations}
        assert sorted(set(table.severity)) == [0, 1, 2, 3]
        assert table.dice_perturbed_gt.notna().all() and table.dice_original_gt.notna().all()
        appearance = table[table.family == "appearance"]
        assert (appearance.dice_perturbed_gt == appearance.dice_original_gt).all()  # the mask is unchanged
        anatomy = table[(table.family == "anatomy") & (table.severity == 3)]
        assert (anatomy.dice_perturbed_gt != anatomy.dice_original_gt).any()
        assert set(table.metric) == {
            *smoke_study.calibrate.metrics,
            *(f"swd_nhood{k}" for k in smoke_study.calibrate.nhood_sizes),
        }
        swd = table[(table.metric == "swd") & (table.severity > 0)].value
        assert swd.notna().all() and (swd > 0).all()
        metrics = pd.read_csv(layout.metrics(task) / "metrics.csv")
        assert not set(metrics.set) & set(scores.set)  # the translators' table holds no calibration set


def test_same_run_twice_gives_the_same_sets(calibrated, smoke_study):
    layout, again, _ = calibrated
    for task in smoke_study.tasks:
        for path in sorted(layout.calibrate(task).rglob("*")):
            if path.is_file() and path.name != "manifest.json":
                twin = again.calibrate(task) / path.relative_to(layout.calibrate(task))
                assert path.read_bytes() == twin.read_bytes()


def test_rerun_skips_and_switching_off_plans_nothing(calibrated, smoke_study):
    from medtrans.shared.layout import RunLayout
    from medtrans.stages.metrics.stage import plan as metrics_plan
    from medtrans.stages.runner import run_stage

    layout, _, _ = calibrated
    assert {o.result for o in run_stage("calibrate", smoke_study, layout)} == {"skipped"}
    study = Path(__file__).resolve().parent.parent / "studies" / "smoke.yaml"
    result = CliRunner().invoke(
        app, ["calibrate", "--study", str(study), "--run", str(layout.root), "-t", "spine"]
    )
    assert result.exit_code == 0 and "skipped  calibrate/spine" in result.output, result.output
    off = parse_study({**smoke_study.model_dump(mode="json"), "calibrate": {"enabled": False}})
    unit = metrics_plan(off, RunLayout(layout.root))[0]
    assert layout.calibrate(unit.name[0]) not in unit.inputs and "calibration" not in unit.config


def test_report_has_a_calibration_section_from_the_segment_and_metrics_outputs(calibrated, smoke_study):
    from medtrans.shared.manifest import read_manifest
    from medtrans.stages.runner import run_stage

    layout, _, _ = calibrated
    run_stage("report", smoke_study, layout)
    html = (layout.report() / "report.html").read_text()
    assert 'id="calibration"' in html and "Calibration" in html and "ASI (severity)" in html
    for task in smoke_study.tasks:
        assert (layout.report() / "figures" / f"calibration_{task}_appearance.png").is_file()
        summary = pd.read_csv(layout.report() / "tables" / f"calibration_{task}.csv")
        assert "swd_nhood3" in set(summary.metric)
    # the scores come from segment and metrics; the sets' own folder is an input for provenance only
    # (the report names the image that made every upstream output)
    inputs = [i.path for i in read_manifest(layout.report()).inputs]
    assert "metrics/breast/manifest.json" in inputs and "calibrate/breast/manifest.json" in inputs
    assert "calibrate/breast" in html.split('id="provenance"')[1]


def test_pair_metrics_go_through_score_pairs_only_when_registered(monkeypatch):
    """A metric with inputs == "pairs" is scored by `medtrans.stages.metrics.pairs.score_pairs` on
    each original image and its perturbed one (a stand-in module here: the real one is another
    engineer's), the others through the pipeline."""
    import sys
    import types

    import torch

    from medtrans.shared.catalogue import metrics as metric_catalogue
    from medtrans.stages.metrics.calibration import CalibrationSettings, Calibrator
    from medtrans.stages.metrics.extract import Network
    from medtrans.stages.metrics.pipeline import FeatureSettings
    from medtrans.stages.metrics.scoring import ScoreSettings
    from medtrans.stages.metrics.swd import SWDParams

    calls = []

    def score_pairs(names, sources, others):
        calls.append((tuple(names), sources.shape, others.shape))
        return {"toypair": float(np.abs(sources.astype(float) - others).mean())}

    monkeypatch.setitem(
        sys.modules, "medtrans.stages.metrics.pairs", types.SimpleNamespace(score_pairs=score_pairs)
    )
    spec = metric_catalogue.MetricSpec("toypair", "Toy", "lower", "pairs", False, "none:None")
    metric_catalogue.register(spec)
    try:
        images, masks = _phantom(4, 32)
        params = SWDParams(nhoods_per_image=16, dirs_per_repeat=16)
        settings = CalibrationSettings(
            FeatureSettings("pytorch-fid", 8, torch.device("cpu"), params),
            ScoreSettings(metrics=("swd", "toypair"), swd=params), (3,), seed=1,
        )  # fmt: skip
        cal = Calibrator(images, [str(i) for i in range(4)], settings, Network(None, note="none"))
        assert cal.reference_scores()["toypair"] == (0.0, "")
        noisy, _ = perturb_set(images, masks, "gaussian_noise", 3, 3, seed=0)
        (scores,) = cal.score([("noisy", noisy)])
        assert scores["toypair"][0] == pytest.approx(_mean_change(images, noisy))
        assert scores["swd"][0] > 0 and "swd_nhood3" in scores
        assert calls and calls[-1] == (("toypair",), images.shape, noisy.shape)
    finally:
        metric_catalogue.unregister("toypair")


def test_real_pair_metrics_score_each_original_against_its_perturbed_copy():
    """The structure metrics of the catalogue (NMI, MIND-SSC, NGF) through the real
    `metrics.pairs`: the unperturbed set scores their optimum, a noisy copy moves every one of
    them away from it."""
    import torch

    from medtrans.stages.metrics.calibration import CalibrationSettings, Calibrator
    from medtrans.stages.metrics.extract import Network
    from medtrans.stages.metrics.pipeline import FeatureSettings
    from medtrans.stages.metrics.scoring import ScoreSettings
    from medtrans.stages.metrics.swd import SWDParams

    images, masks = _phantom(4, 32)
    params = SWDParams(nhoods_per_image=16, dirs_per_repeat=16)
    settings = CalibrationSettings(
        FeatureSettings("pytorch-fid", 8, torch.device("cpu"), params),
        ScoreSettings(metrics=("nmi", "mind", "ngf"), swd=params), (), seed=1,
    )  # fmt: skip
    cal = Calibrator(images, [str(i) for i in range(4)], settings, Network(None, note="none"))
    floor = cal.reference_scores()
    assert (floor["nmi"][0], floor["mind"][0], floor["ngf"][0]) == pytest.approx((2.0, 0.0, 1.0))
    noisy, _ = perturb_set(images, masks, "gaussian_noise", 3, 3, seed=0)
    (scores,) = cal.score([("noisy", noisy)])
    assert scores["nmi"][0] < 2.0 and scores["mind"][0] > 0.0 and scores["ngf"][0] < 1.0
