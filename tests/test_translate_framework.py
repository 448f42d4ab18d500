"""The translator framework: pairing, schedule, data loading, foreground masks, the loop's
exact resume and determinism, and the translate stage end to end on a synthetic task.

`known_mapping_run` builds a small preprocess folder (the index.csv contract) whose target
domain is a KNOWN function of the source domain (`target_of`: intensity inversion inside
the body, background kept at 0), so translators can be checked against the right answer.
The model-specific learning tests (test_cyclegan.py, test_maskgan.py) reuse it.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medtrans.shared import checkpoint
from medtrans.shared.config import parse_study
from medtrans.shared.dataset import COLUMNS, SliceIndex
from medtrans.shared.imageio import read_png, write_png
from medtrans.shared.layout import RunLayout
from medtrans.shared.stage import Unit, execute

STRUCTURES = ("tissue", "core")


def phantom_slice(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A source-domain slice: dark background 0, body ~90 with texture, a bright core ~200.
    Returns (uint8 image, uint8 labels: 1 body outside the core, 2 core)."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    cy, cx = rng.uniform(-0.15, 0.15, 2)
    ry, rx = rng.uniform(0.55, 0.85, 2)
    body = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    ky, kx = cy + rng.uniform(-0.2, 0.2), cx + rng.uniform(-0.2, 0.2)
    r = rng.uniform(0.15, 0.3)
    core = (((yy - ky) / r) ** 2 + ((xx - kx) / (r * rng.uniform(0.7, 1.3))) ** 2 <= 1) & body
    texture = 8 * np.sin(3 * yy + rng.uniform(0, 6)) * np.cos(4 * xx + rng.uniform(0, 6))
    img = np.where(body, 90 + texture, 0.0)
    img = np.where(core, 200 + texture / 2, img)
    labels = np.where(core, 2, np.where(body, 1, 0)).astype(np.uint8)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), labels


def target_of(image: np.ndarray) -> np.ndarray:
    """The known source -> target mapping: inside the body v -> 280 - v, background stays 0."""
    v = image.astype(np.int32)
    return np.where(v > 0, np.clip(280 - v, 0, 255), 0).astype(np.uint8)


def _write_index(folder: Path, size: int, patients: int, slices: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    splits = ["train"] * (patients - 2) + ["val", "test"]
    for role, domain in (("source", "srcdom"), ("target", "tgtdom")):
        for p in range(patients):
            pid = f"{role[0]}{p:02d}"
            for s in range(slices):
                img, lab = phantom_slice(rng, size)
                if role == "target":
                    img = target_of(img)
                sid = f"{pid}_{s:03d}"
                write_png(folder / "images" / f"{sid}.png", img)
                write_png(folder / "masks" / f"{sid}.png", lab)
                present = "|".join(n for k, n in enumerate(STRUCTURES, 1) if (lab == k).any())
                rows.append(
                    [sid, pid, domain, role, splits[p], s, f"images/{sid}.png", f"masks/{sid}.png", present]
                )
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(folder / "index.csv", index=False)


def study_dict(size: int, models: dict[str, dict], seed: int = 3) -> dict:
    return {
        "name": "tsynth",
        "seed": seed,
        "profile": "demo",
        "device": "cpu",
        "tasks": {
            "synth": {
                "source": {"name": "srcdom", "modality": "MR"},
                "target": {"name": "tgtdom", "modality": "MR"},
                "structures": list(STRUCTURES),
                "data": {"kind": "phantom", "patients_per_domain": 4, "shape": [4, size, size]},
            }
        },
        "preprocess": {"image_size": size},
        "translate": {"models": list(models), **models, "sample_grid": 4, "log_every": 2},
    }


def known_mapping_run(
    root: Path, size: int = 32, patients: int = 6, slices: int = 6, seed: int = 0
) -> RunLayout:
    """A run folder whose `preprocess/synth/` is complete (manifest included), made by a
    one-off unit that writes the synthetic slices."""
    layout = RunLayout(Path(root))
    unit = Unit(
        stage="preprocess",
        name=("synth",),
        out=layout.preprocess("synth"),
        config={"synthetic": [size, patients, slices, seed]},
        build=lambda ctx: _write_index(ctx.work, size, patients, slices, seed),
    )
    execute(unit, layout)
    return layout


def tiny(**schedule) -> dict:
    return {
        "ngf": 8,
        "ndf": 8,
        "n_blocks": 2,
        "schedule": {"n_epochs": 1, "n_epochs_decay": 1, "iters_per_epoch": 3, **schedule},
    }


def held_out_error(
    model_name: str, settings: dict, root: Path, seed: int = 3, device: str = "cpu", accel=None
) -> tuple[float, float, float]:
    """Train `model_name` briefly on the known-mapping task; mean absolute error (gray
    levels) of the held-out source test slices against the known answer `target_of`:
    (untrained, trained, copying the input). `device`/`accel` run the CUDA path (test_cuda)."""
    from medtrans.shared.config.translate import TranslateConfig
    from medtrans.shared.imageio import from_unit
    from medtrans.shared.seeding import seed_everything
    from medtrans.stages.translate import infer, loop
    from medtrans.stages.translate.data import TrainData, load_split
    from medtrans.stages.translate.registry import get_model

    layout = known_mapping_run(root, size=32, patients=6, slices=6)
    index = SliceIndex.load(layout.preprocess("synth"))
    split = {
        s: load_split(index, r, s2, 32, 3, 10 / 255)
        for s, (r, s2) in {
            "a": ("source", "train"),
            "b": ("target", "train"),
            "test": ("source", "test"),
        }.items()
    }
    config = TranslateConfig.model_validate({model_name: settings}).settings(model_name)
    seed_everything(seed)
    model = get_model(model_name)(config, n_classes=3, image_size=32, device=torch.device(device), seed=seed)
    want = np.stack([target_of(from_unit(x)) for x in split["test"].images]).astype(float)
    untrained = np.abs(infer.translate_split(model, split["test"]) - want).mean()
    loop.train(model, TrainData(split["a"], split["b"]), config.schedule, root / "work", seed, accel=accel)
    trained = np.abs(infer.translate_split(model, split["test"]) - want).mean()
    copy = np.abs(from_unit(split["test"].images).astype(float) - want).mean()
    return float(untrained), float(trained), float(copy)


# ----------------------------------------------------------------------------------------
# tests


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the 2 CI cores are shared, and oversubscribed OpenMP threads
    make tiny convolutions 10-20x slower; results do not depend on it within a process."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory) -> RunLayout:
    return known_mapping_run(tmp_path_factory.mktemp("synth"), size=32, patients=5, slices=4)


def _fresh(synth_run: RunLayout, dest: Path) -> RunLayout:
    import shutil

    shutil.copytree(synth_run.root / "preprocess", dest / "preprocess")
    return RunLayout(dest)


def _unit(layout: RunLayout, model: str, **schedule):
    from medtrans.stages.translate.stage import plan

    study = parse_study(study_dict(32, {model: tiny(**schedule)}))
    (unit,) = plan(study, layout)
    return unit


def test_lr_schedule_constant_then_linear_to_zero():
    from medtrans.stages.translate.loop import lr_factor

    assert [lr_factor(e, 2, 3) for e in range(5)] == pytest.approx([1, 1, 0.75, 0.5, 0.25])
    assert lr_factor(5, 2, 3) == pytest.approx(0.0)  # the epoch after the last: zero
    assert [lr_factor(e, 3, 0) for e in range(3)] == [1, 1, 1]


def test_pairing_is_seeded_unpaired_and_covers_the_source():
    from medtrans.stages.translate.data import pair_indices

    a1, b1 = pair_indices(5, 0, n_source=10, n_target=7, iters=5, batch_size=2)
    a2, b2 = pair_indices(5, 0, n_source=10, n_target=7, iters=5, batch_size=2)
    a3, b3 = pair_indices(5, 1, n_source=10, n_target=7, iters=5, batch_size=2)
    assert a1.shape == b1.shape == (5, 2)
    assert np.array_equal(a1, a2) and np.array_equal(b1, b2)  # a pure function of (seed, epoch)
    assert sorted(a1.ravel()) == list(range(10))  # each source slice once per epoch
    assert not (np.array_equal(a1, a3) and np.array_equal(b1, b3))  # epochs differ
    assert b1.min() >= 0 and b1.max() < 7
    a4, _ = pair_indices(5, 0, n_source=3, n_target=7, iters=4, batch_size=2)  # longer epoch: wraps
    assert np.bincount(a4.ravel(), minlength=3).min() >= 2


def test_foreground_mask_threshold_opening_holes_largest_component():
    from medtrans.stages.translate.foreground import foreground_mask

    img, labels = phantom_slice(np.random.default_rng(1), 64)
    img = img.copy()
    img[labels == 2] = 0  # a hole inside the body: filled
    img[2:4, 2:4] = 200  # a speck outside: removed by the opening
    img[50:64, 0:6] = 150  # a second, smaller component: dropped
    fg = foreground_mask(img, threshold=10 / 255)
    body = labels > 0
    iou = (fg & body).sum() / (fg | body).sum()
    assert iou > 0.95
    assert not fg[2:4, 2:4].any() and not fg[55:64, 0:4].any()
    assert fg[labels == 2].all()
    assert not foreground_mask(np.zeros((32, 32), np.uint8)).any()


def test_load_split_reads_the_index_contract(synth_run):
    from medtrans.stages.translate.data import load_split

    index = SliceIndex.load(synth_run.preprocess("synth"))
    split = load_split(index, "source", "test", 32, n_classes=3, fg_threshold=10 / 255)
    assert split.ids == sorted(index.select("source", "test").slice_id)
    assert split.images.shape == (len(split), 32, 32) and split.images.dtype == np.float32
    assert split.images.min() >= -1 and split.images.max() <= 1
    assert split.masks.dtype == np.int64 and set(np.unique(split.masks)) <= {0, 1, 2}
    assert ((split.masks > 0) == (split.fg > 0)).mean() > 0.95  # foreground ~ the body
    with pytest.raises(ValueError, match="classes"):
        load_split(index, "source", "test", 32, n_classes=2)


@pytest.mark.parametrize("model", ["cyclegan", "maskgan"])
def test_outputs_match_the_source_test_split(synth_run, tmp_path, model):
    layout = _fresh(synth_run, tmp_path)
    unit = _unit(layout, model)
    execute(unit, layout)
    out = unit.out
    index = SliceIndex.load(layout.preprocess("synth"))
    ids = sorted(index.select("source", "test").slice_id)
    assert sorted(p.stem for p in (out / "test").glob("*.png")) == ids
    for sid in ids:
        img = read_png(out / "test" / f"{sid}.png")
        assert img.shape == (32, 32) and img.dtype == np.uint8
    from PIL import Image

    with Image.open(out / "test" / f"{ids[0]}.png") as im:
        assert im.mode == "L"
    losses = pd.read_csv(out / "losses.csv")
    assert list(losses.columns[:2]) == ["iteration", "epoch"]
    assert {"G_A", "G_B", "D_A", "D_B", "cycle_A", "cycle_B"} <= set(losses.columns)
    assert losses.iteration.iloc[-1] == 6 and np.isfinite(losses.iloc[:, 2:].to_numpy()).all()
    assert (out / "losses.png").is_file() and (out / "checkpoints" / "last.pt").is_file()
    grid = read_png(out / "samples.png")
    n_cols = 4 if model == "maskgan" else 2  # source, translation, [foreground, attention]
    assert grid.shape == (4 * 32 + 3 * 2, n_cols * 32 + (n_cols - 1) * 2)
    import json

    extra = json.loads((out / "manifest.json").read_text())["extra"]
    assert extra["iterations"] == 6 and extra["seconds_per_iteration"] > 0
    assert set(extra["final_losses"]) >= {"G_A", "D_A"}


class Interrupt(RuntimeError):
    pass


@pytest.mark.parametrize("model", ["cyclegan", "maskgan"])
def test_resume_continues_exactly(synth_run, tmp_path, model):
    """Interrupted by the checkpoint hook right after the epoch-1 checkpoint (3 of 6
    iterations), then rerun: the same weights, optimizer state, test images and loss log as
    one straight run."""
    straight = _fresh(synth_run, tmp_path / "straight")
    u1 = _unit(straight, model)
    execute(u1, straight)

    broken = _fresh(synth_run, tmp_path / "broken")
    u2 = _unit(broken, model)

    def stop(saved: checkpoint.Saved) -> None:
        if saved.epoch == 1:
            raise Interrupt

    with checkpoint.after_save(stop), pytest.raises(Interrupt):
        execute(u2, broken)
    partial = u2.out.parent / f".{u2.out.name}.partial"
    assert torch.load(partial / "checkpoints" / "last.pt", weights_only=False)["epoch"] == 1
    torch.manual_seed(12345)  # a resumed run must not depend on the process's RNG state
    execute(u2, broken)

    import json

    assert json.loads((u2.out / "manifest.json").read_text())["extra"]["resumed_from_iteration"] == 3
    c1 = torch.load(u1.out / "checkpoints" / "last.pt", weights_only=False)
    c2 = torch.load(u2.out / "checkpoints" / "last.pt", weights_only=False)
    for net in c1["networks"]:
        for k, v in c1["networks"][net].items():
            assert torch.equal(v, c2["networks"][net][k]), f"{net}.{k}"
    for opt in c1["optimizers"]:
        for pid, st in c1["optimizers"][opt]["state"].items():
            assert torch.equal(st["exp_avg_sq"], c2["optimizers"][opt]["state"][pid]["exp_avg_sq"])
    assert (u1.out / "losses.csv").read_bytes() == (u2.out / "losses.csv").read_bytes()
    for p in sorted((u1.out / "test").glob("*.png")):
        assert p.read_bytes() == (u2.out / "test" / p.name).read_bytes()


def test_two_runs_give_identical_outputs(synth_run, tmp_path):
    runs = []
    for name in ("one", "two"):
        layout = _fresh(synth_run, tmp_path / name)
        unit = _unit(layout, "maskgan")
        execute(unit, layout)
        runs.append(unit.out)
    files = sorted(p.relative_to(runs[0]) for p in (runs[0] / "test").glob("*.png"))
    assert files
    for rel in [*files, Path("samples.png"), Path("losses.csv")]:
        assert (runs[0] / rel).read_bytes() == (runs[1] / rel).read_bytes(), rel


def test_plan_one_unit_per_task_and_enabled_model(tmp_path):
    from medtrans.shared.config import load_study
    from medtrans.stages.translate.stage import plan

    study = load_study(Path(__file__).resolve().parent.parent / "studies" / "demo.yaml")
    layout = RunLayout(tmp_path)
    units = plan(study, layout)
    assert [u.label for u in units] == [
        f"translate/{t}/{m}" for t in study.tasks for m in study.translate.models
    ]
    assert all(u.inputs == [layout.preprocess(u.name[0])] for u in units)
    only = plan(study, layout, models=("maskgan",))
    assert [u.name for u in only] == [(t, "maskgan") for t in study.tasks]
    assert only[0].config_digest != plan(study, layout, models=("cyclegan",))[0].config_digest


def test_stage_on_the_smoke_study(smoke_preprocessed, copy_run, smoke_study):
    """End to end on the preprocess stage's real output: CycleGAN and MaskGAN for both
    tasks through the runner; translated ids = source test ids, 8-bit, image_size."""
    from medtrans.stages.runner import run_stage

    layout = copy_run(smoke_preprocessed)
    outcomes = run_stage("translate", smoke_study, layout, models=("cyclegan", "maskgan"))
    assert [o.result for o in outcomes] == ["ran"] * 4
    size = smoke_study.preprocess.image_size
    for task in smoke_study.tasks:
        ids = sorted(SliceIndex.for_task(layout, task).select("source", "test").slice_id)
        for model in ("cyclegan", "maskgan"):
            out = layout.translate(task, model)
            assert (out / "manifest.json").is_file()
            assert sorted(p.stem for p in (out / "test").glob("*.png")) == ids
            assert all(read_png(out / "test" / f"{i}.png").shape == (size, size) for i in ids)
    again = run_stage("translate", smoke_study, layout, models=("cyclegan",))
    assert [o.result for o in again] == ["skipped"] * 2
