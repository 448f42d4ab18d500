"""The segment stage: Dice/HD95 rules, refusals of bad translated sets, resume equality,
determinism, and (on the phantom) that the UNet segments the target domain."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medtrans.shared import checkpoint
from medtrans.shared.config import parse_study
from medtrans.shared.dataset import COLUMNS, INDEX
from medtrans.shared.imageio import read_png, write_png
from medtrans.shared.layout import RunLayout
from medtrans.shared.manifest import Manifest, describe_outputs, write_manifest
from medtrans.shared.stage import StageInputError, execute
from medtrans.stages.segment.scoring import score_images, summarize
from medtrans.stages.segment.stage import plan

SIZE = 32


# ---------------------------------------------------------------- synthetic run folders


def _manifest(folder: Path, stage: str, unit: list[str]) -> None:
    write_manifest(
        folder,
        Manifest(
            stage=stage, unit=unit, stage_version="test", code_version="test", config_digest="x",
            config={}, inputs=[], outputs=describe_outputs(folder), environment={}, seeds={},
            started="t", finished="t", status="complete",
        ),
    )


def _slice(rng: np.random.Generator, size: int, k: int, inverted: bool) -> tuple[np.ndarray, np.ndarray]:
    """An ellipse (label 1) with an inner blob (label 2 when k == 2) on a noisy background."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    cy, cx = rng.uniform(0.4, 0.6, 2)
    ry, rx = rng.uniform(0.2, 0.3, 2)
    outer = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    inner = ((yy - cy) / (ry / 2)) ** 2 + ((xx - cx) / (rx / 2)) ** 2 < 1
    mask = outer.astype(np.uint8)
    if k == 2:
        mask[inner] = 2
    levels = (30, 200, 110) if not inverted else (30, 70, 230)
    image = np.choose(mask, levels[: k + 1]).astype(np.float64) + rng.normal(0, 8, mask.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def write_synthetic(layout: RunLayout, task: str, k: int, per_split=(4, 2, 2), slices=6, seed=0):
    """A preprocess/<task>/ folder per the format (index.csv, images/, masks/, manifest)."""
    folder = layout.preprocess(task)
    rng = np.random.default_rng(seed)
    rows = []
    for role in ("source", "target"):
        n = 0
        for split, count in zip(("train", "val", "test"), per_split, strict=True):
            for _ in range(count):
                patient = f"{role[0]}{n:03d}"
                n += 1
                for pos in range(slices):
                    sid = f"{patient}_{pos:03d}"
                    image, mask = _slice(rng, SIZE, k, inverted=role == "source")
                    write_png(folder / "images" / f"{sid}.png", image)
                    write_png(folder / "masks" / f"{sid}.png", mask)
                    files = (f"images/{sid}.png", f"masks/{sid}.png")
                    rows.append((sid, patient, role, role, split, pos, *files, ""))
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(folder / INDEX, index=False)
    _manifest(folder, "preprocess", [task])


def write_translator(layout: RunLayout, task: str, model: str, drop: str | None = None, size: int = SIZE):
    """A translate/<task>/<model>/ folder that 'translates' by copying the source test images."""
    index = pd.read_csv(layout.preprocess(task) / INDEX, dtype=str, keep_default_na=False)
    rows = index[(index.role == "source") & (index.split == "test")]
    folder = layout.translate(task, model)
    for sid, rel in zip(rows.slice_id, rows.image, strict=True):
        if sid == drop:
            continue
        image = read_png(layout.preprocess(task) / rel)
        if size != image.shape[0]:
            image = np.resize(image, (size, size))
        write_png(folder / "test" / f"{sid}.png", image)
    _manifest(folder, "translate", [task, model])
    return list(rows.slice_id)


def synthetic_study(**segment):
    seg = {"channels": [8, 16, 32], "strides": [2, 2], "norm": "instance", "batch_size": 8, "max_epochs": 4,
           "patience": 2, "bootstrap": 20, **segment}
    return parse_study({
        "name": "segtest", "seed": 5, "profile": "demo", "device": "cpu",
        "tasks": {
            "twoclass": {"source": {"name": "a", "modality": "MR"}, "target": {"name": "b", "modality": "MR"},
                         "structures": ["outer", "inner"], "data": {"kind": "phantom"}},
        },
        "preprocess": {"image_size": SIZE},
        "segment": seg,
    })


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory) -> RunLayout:
    layout = RunLayout(tmp_path_factory.mktemp("seg-synth"))
    write_synthetic(layout, "twoclass", 2)
    return layout


def _fresh(src: RunLayout, dest: Path) -> RunLayout:
    shutil.copytree(src.root, dest)
    return RunLayout(dest)


# ---------------------------------------------------------------- scoring rules


def test_empty_mask_conventions_and_values():
    ref = np.zeros((4, 10, 10), np.uint8)
    pred = np.zeros_like(ref)
    ref[1, 2:6, 2:6] = 1  # image 1: structure present, missed
    pred[2, 2:6, 2:6] = 1  # image 2: hallucinated
    ref[3, 2:6, 2:6] = 1  # image 3: found, shifted by one column
    pred[3, 2:6, 3:7] = 1
    dice, hd = score_images(pred, ref, 1)
    diag = np.hypot(10, 10)
    assert dice[:, 0].tolist() == pytest.approx([1.0, 0.0, 0.0, 2 * 12 / 32])
    assert hd[:3, 0].tolist() == pytest.approx([0.0, diag, diag])
    assert hd[3, 0] == pytest.approx(1.0)


def test_summary_uses_shared_bootstrap():
    from medtrans.shared.bootstrap import percentile_ci, resample_indices

    ids = [f"s{i}" for i in range(5)]
    table = pd.DataFrame({"set": "target", "slice_id": ids[::-1], "structure": "mean",
                          "dice": [0.1, 0.5, 0.2, 0.9, 0.7], "hd95": [1, 2, 3, 4, 5]})
    out = summarize(table, 3, "t", 50).set_index("metric")
    values = np.array([0.7, 0.9, 0.2, 0.5, 0.1])  # sorted by slice id
    lo, hi = percentile_ci(values[resample_indices(3, "t", 5, 50)].mean(axis=1))
    assert out.loc["dice", "ci_low"] == pytest.approx(lo) and out.loc["dice", "ci_high"] == pytest.approx(hi)
    assert out.loc["dice", "mean"] == pytest.approx(0.48) and out.loc["dice", "n"] == 5


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("fault", ["missing", "size"])
def test_bad_translated_set_is_refused(synthetic_run, tmp_path, fault):
    layout = _fresh(synthetic_run, tmp_path / "run")
    ids = write_translator(layout, "twoclass", "cyclegan", drop=None if fault == "size" else "missing")
    if fault == "missing":
        victim = ids[1]
        (layout.translate("twoclass", "cyclegan") / "test" / f"{victim}.png").unlink()
        expect = victim
    else:
        victim = ids[2]
        small = np.zeros((16, 16), np.uint8)
        write_png(layout.translate("twoclass", "cyclegan") / "test" / f"{victim}.png", small)
        # a translator that wrote a wrong size (its manifest agrees): the stage's own shape check
        _manifest(layout.translate("twoclass", "cyclegan"), "translate", ["twoclass", "cyclegan"])
        expect = "16x16"
    (unit,) = plan(synthetic_study(), layout)
    assert layout.translate("twoclass", "cyclegan") in unit.inputs
    with pytest.raises(StageInputError) as err:
        execute(unit, layout)
    assert victim in str(err.value) and expect in str(err.value) and "cyclegan" in str(err.value)
    assert not (layout.segment("twoclass") / "summary.csv").exists()


# ---------------------------------------------------------------- outputs, resume, determinism


@pytest.fixture(scope="module")
def segmented(synthetic_run, tmp_path_factory) -> RunLayout:
    layout = _fresh(synthetic_run, tmp_path_factory.mktemp("seg-full") / "run")
    write_translator(layout, "twoclass", "unsb")
    (unit,) = plan(synthetic_study(max_epochs=5), layout)
    assert execute(unit, layout) == "ran"
    return layout


def test_outputs_follow_the_format(segmented):
    out = segmented.segment("twoclass")
    dice = pd.read_csv(out / "dice.csv", dtype={"slice_id": str})
    assert list(dice.columns) == ["set", "slice_id", "structure", "dice", "hd95"]
    assert list(dict.fromkeys(dice.set)) == ["target", "source", "unsb"]
    assert set(dice.structure) == {"outer", "inner", "mean"}
    assert dice[["dice", "hd95"]].notna().all().all()
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == ["set", "structure", "metric", "mean", "std", "ci_low", "ci_high", "n"]
    assert set(summary.metric) == {"dice", "hd95"}
    # the identity "translator" gives exactly the source scores
    src = dice[dice.set == "source"].drop(columns="set").reset_index(drop=True)
    idt = dice[dice.set == "unsb"].drop(columns="set").reset_index(drop=True)
    pd.testing.assert_frame_equal(src, idt)
    for name in ("target", "source", "unsb"):
        n = len(dice[(dice.set == name) & (dice.structure == "mean")])
        assert len(list((out / "predictions" / name).glob("*.png"))) == n
    training = pd.read_csv(out / "training.csv")
    assert list(training.columns) == ["epoch", "train_loss", "val_dice", "lr"]
    assert (out / "training.png").is_file() and (out / "model.pt").is_file()
    assert not (out / ".checkpoint").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [i["path"] for i in manifest["inputs"]] == [
        "preprocess/twoclass/manifest.json", "translate/twoclass/unsb/manifest.json"]
    # the synthetic target domain is easy: the model must have learnt it
    means = summary[(summary.structure == "mean") & (summary.metric == "dice")].set_index("set")["mean"]
    assert means["target"] > 0.8


def test_new_translator_makes_segment_stale(segmented, tmp_path):
    from medtrans.shared.stage import state

    layout = _fresh(segmented, tmp_path / "run")
    (unit,) = plan(synthetic_study(max_epochs=5), layout)
    assert state(unit, layout).status == "done"
    write_translator(layout, "twoclass", "spade")
    (unit,) = plan(synthetic_study(max_epochs=5), layout)
    assert state(unit, layout).status == "stale"


def test_two_runs_give_identical_summary(segmented, tmp_path):
    layout = _fresh(segmented, tmp_path / "run")
    (unit,) = plan(synthetic_study(max_epochs=5), layout)
    assert execute(unit, layout, force=True) == "ran"
    for name in ("summary.csv", "dice.csv", "training.csv"):
        first = (segmented.segment("twoclass") / name).read_bytes()
        assert (layout.segment("twoclass") / name).read_bytes() == first, name


class Interrupt(RuntimeError):
    pass


def test_resume_gives_the_same_weights(synthetic_run, tmp_path):
    """Interrupt after epoch 2, rerun: the same weights as a run never interrupted."""
    study = synthetic_study(max_epochs=4, patience=10, scheduler="cosine")
    a = _fresh(synthetic_run, tmp_path / "a")
    (unit,) = plan(study, a)
    execute(unit, a)

    b = _fresh(synthetic_run, tmp_path / "b")

    def stop(saved: checkpoint.Saved) -> None:
        if saved.epoch == 2:
            raise Interrupt

    (unit,) = plan(study, b)
    with checkpoint.after_save(stop), pytest.raises(Interrupt):
        execute(unit, b)
    assert (b.root / "segment" / ".twoclass.partial" / ".checkpoint" / "last.pt").is_file()
    (unit,) = plan(study, b)
    execute(unit, b)
    manifest = json.loads((b.segment("twoclass") / "manifest.json").read_text())
    assert manifest["extra"]["resumed"] is True and manifest["extra"]["epochs"] == 4

    wa = torch.load(a.segment("twoclass") / "model.pt", weights_only=False)
    wb = torch.load(b.segment("twoclass") / "model.pt", weights_only=False)
    assert wa["epoch"] == wb["epoch"]
    assert wa["state_dict"].keys() == wb["state_dict"].keys()
    for key, value in wa["state_dict"].items():
        assert torch.equal(value, wb["state_dict"][key]), key
    for name in ("training.csv", "summary.csv"):
        assert (a.segment("twoclass") / name).read_bytes() == (b.segment("twoclass") / name).read_bytes()


# ---------------------------------------------------------------- the phantom


@pytest.mark.slow
def test_phantom_target_is_segmentable_and_spine_source_is_not(smoke_study, smoke_preprocessed, copy_run):
    """Dice > 0.85 on the real target test set of each phantom task (the phantom is
    segmentable), and clearly lower on the untranslated spine MRI (MRI is not CT)."""
    layout = copy_run(smoke_preprocessed)
    data = smoke_study.model_dump(mode="json")
    data["segment"].update(channels=[16, 32, 64], batch_size=4, max_epochs=20, patience=5)
    study = parse_study(data)
    means = {}
    for unit in plan(study, layout):
        execute(unit, layout)
        summary = pd.read_csv(unit.out / "summary.csv")
        rows = summary[(summary.structure == "mean") & (summary.metric == "dice")]
        means[unit.name[0]] = rows.set_index("set")["mean"].to_dict()
    for task in ("breast", "spine"):
        assert means[task]["target"] > 0.85, (task, means[task])
    assert means["spine"]["source"] < means["spine"]["target"] - 0.3, means["spine"]


def test_source_without_masks_scores_only_the_target(synthetic_run, tmp_path):
    layout = _fresh(synthetic_run, tmp_path / "run")
    path = layout.preprocess("twoclass") / INDEX
    index = pd.read_csv(path, dtype=str, keep_default_na=False)
    index.loc[index.role == "source", "mask"] = ""
    index.to_csv(path, index=False)
    # a preprocess that wrote no source masks (its manifest agrees, so the contract accepts it)
    _manifest(layout.preprocess("twoclass"), "preprocess", ["twoclass"])
    write_translator(layout, "twoclass", "maskgan")
    (unit,) = plan(synthetic_study(max_epochs=1), layout)
    execute(unit, layout)
    dice = pd.read_csv(layout.segment("twoclass") / "dice.csv")
    assert set(dice.set) == {"target"}
