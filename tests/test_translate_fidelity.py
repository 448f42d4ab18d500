"""The paper profile's fidelity to the reference code (issue 16): units that would translate
from blank source label maps are refused when planned; the references' resize-crop-flip
augmentation (seeded, per model, per task); SPADE's epoch over the target pairs; its VGG
loss on in paper.yaml and refused before training without the weights."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_translate_framework import known_mapping_run, study_dict, tiny

from medtrans.shared.config import StudyError, load_study, parse_study
from medtrans.shared.config.translate import Augment, Schedule, TranslateConfig
from medtrans.shared.layout import RunLayout
from medtrans.stages.translate import augment as aug
from medtrans.stages.translate import loop
from medtrans.stages.translate.base import Translator
from medtrans.stages.translate.data import Split, TrainData, pair_indices
from medtrans.stages.translate.labels import MissingSourceMasks
from medtrans.stages.translate.settings import task_settings
from medtrans.stages.translate.spade import VGGWeightsMissing
from medtrans.stages.translate.stage import plan

ROOT = Path(__file__).resolve().parent.parent
SPADE_TINY = {"ngf": 4, "ndf": 8, "spade_hidden": 16, "schedule": {"n_epochs": 1, "n_epochs_decay": 0}}


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def spine_study(spade: dict, mri_masks: str | None = None) -> dict:
    data = {"kind": "spine", "mri": "/nowhere/mri", "ct": "/nowhere/ct"}
    if mri_masks:
        data["mri_masks"] = mri_masks
    return {
        "name": "spinecheck",
        "profile": "paper",
        "tasks": {
            "spine": {
                "source": {"name": "mri", "modality": "MR"},
                "target": {"name": "ct", "modality": "CT"},
                "structures": ["vertebrae"],
                "plane": "sagittal",
                "data": data,
            }
        },
        "translate": {"models": ["spade", "cyclegan"], "spade": spade},
    }


# -- item 1: source label maps ------------------------------------------------------------
def test_spade_on_masks_without_source_masks_is_refused_when_planned(tmp_path):
    layout = RunLayout(tmp_path)
    with pytest.raises(MissingSourceMasks) as info:
        plan(parse_study(spine_study({})), layout)
    msg = str(info.value)
    assert "spine/spade" in msg and "mri_masks" in msg and "total_mr" in msg
    assert "label_source_tasks: {spine: foreground}" in msg
    # each fix is accepted: MRI masks given, or the foreground label source for the task
    assert len(plan(parse_study(spine_study({}, mri_masks="/nowhere/masks")), layout)) == 2
    assert len(plan(parse_study(spine_study({"label_source_tasks": {"spine": "foreground"}})), layout)) == 2
    assert len(plan(parse_study(spine_study({"label_source": "foreground"})), layout)) == 2
    # translators that never read source masks are not affected
    assert len(plan(parse_study(spine_study({})), layout, models=("cyclegan",))) == 1


def test_unmasked_source_test_slices_in_the_index_are_named(tmp_path):
    layout = known_mapping_run(tmp_path, size=32, patients=4, slices=3)
    index = layout.preprocess("synth") / "index.csv"
    table = pd.read_csv(index, dtype=str, keep_default_na=False)
    blank = (table.role == "source") & (table.split == "test")
    table.loc[blank, "mask"] = ""
    table.to_csv(index, index=False)
    study = parse_study(study_dict(32, {"spade": SPADE_TINY}))
    with pytest.raises(MissingSourceMasks) as info:
        plan(study, layout)
    ids = sorted(table[blank].slice_id)
    msg = str(info.value)
    assert f"{len(ids)} of {len(ids)} have no mask" in msg and ids[0] in msg and "index.csv" in msg
    fg = study_dict(32, {"spade": {**SPADE_TINY, "label_source": "foreground"}})
    assert len(plan(parse_study(fg), layout)) == 1


def test_paper_study_gives_spade_real_label_maps_and_its_vgg_loss(tmp_path, monkeypatch):
    study = load_study(ROOT / "studies" / "paper.yaml")
    assert study.translate.spade.vgg_loss is True
    assert task_settings(study, "spine", "spade").label_source == "foreground"
    assert task_settings(study, "breast", "spade").label_source == "masks"
    monkeypatch.setenv("MEDTRANS_WEIGHTS", str(tmp_path))
    with pytest.raises(VGGWeightsMissing, match=r"vgg19-dcbb9e9d\.pth.*make weights"):
        plan(study, RunLayout(tmp_path / "run"), models=("spade",))
    # a caller that only lists or costs the units can skip the checks
    assert len(plan(study, RunLayout(tmp_path / "run"), models=("spade",), preflight=False)) == 2
    (tmp_path / "vgg19-dcbb9e9d.pth").write_bytes(b"present")  # the plan checks presence only
    assert len(plan(study, RunLayout(tmp_path / "run"), models=("spade",))) == 2


# -- item 3: augmentation -------------------------------------------------------------------
def test_each_model_defaults_to_its_reference_augmentation():
    t = TranslateConfig()
    for model in ("cyclegan", "unsb", "spade"):
        assert t.settings(model).augment == Augment(crop=True, flip=True)
    assert t.maskgan.augment == Augment(crop=True, flip=False)
    assert aug.load_size(256, t.cyclegan.augment.load_ratio) == 286
    assert aug.load_size(64, t.cyclegan.augment.load_ratio) == 72
    for name in ("demo", "smoke"):  # kept unaugmented: their outputs stay as they were
        study = load_study(ROOT / "studies" / f"{name}.yaml")
        assert all(not aug.active(study.translate.settings(m).augment) for m in study.translate.models)


def test_per_task_switch_turns_flips_off():
    study = load_study(ROOT / "studies" / "paper.yaml")
    assert study.translate.no_flip == ("spine",)
    assert task_settings(study, "spine", "cyclegan").augment.flip is False
    assert task_settings(study, "breast", "cyclegan").augment.flip is True
    bad = study_dict(32, {"cyclegan": tiny()})
    bad["translate"]["no_flip"] = ["spline"]
    with pytest.raises(StudyError, match="no_flip.*spline"):
        plan(parse_study(bad), RunLayout(Path("/nonexistent")))


def test_draws_are_seeded_per_epoch_and_cover_crops_and_flips():
    cfg = Augment()
    d = aug.epoch_draws(cfg, 32, 7, 3, "source", 200, 2)
    again = aug.epoch_draws(cfg, 32, 7, 3, "source", 200, 2)
    assert all(np.array_equal(getattr(d, k), getattr(again, k)) for k in ("top", "left", "flip"))
    other = aug.epoch_draws(cfg, 32, 7, 4, "source", 200, 2)
    assert not np.array_equal(d.top, other.top)
    assert not np.array_equal(d.top, aug.epoch_draws(cfg, 32, 7, 3, "target", 200, 2).top)
    assert d.top.min() == 0 and d.top.max() == 36 - 32 and 0.35 < d.flip.mean() < 0.65
    off = aug.epoch_draws(Augment(crop=False, flip=False), 32, 7, 3, "source", 50, 1)
    assert off.top.max() == 0 and off.left.max() == 0 and not off.flip.any()


def test_apply_crops_and_flips_image_and_masks_together():
    size = 32
    img = torch.full((1, 1, size, size), -1.0)
    img[0, 0, 8:20, 4:12] = 1.0
    mask = (img[:, 0] > 0).long() * 2
    fg = (img[:, 0] > 0).float()
    cfg = Augment()
    i, m, f = aug.apply(img, mask, fg, cfg, np.array([4]), np.array([0]), np.array([True]))
    assert i.shape == img.shape and m.shape == mask.shape and f.shape == fg.shape
    assert m.dtype == torch.int64 and set(m.unique().tolist()) <= {0, 2}
    inside = m[0] > 0
    # the mask follows its image (up to the bicubic edge): bright inside, dark outside
    assert inside.any() and i[0, 0][inside].mean() > 0.8 and i[0, 0][~inside].mean() < -0.9
    assert torch.equal((m[0] > 0).float(), f[0])
    # flipped: the bright box sits in the right half (it was in the left)
    assert inside[:, size // 2 :].sum() > 0 and inside[:, : size // 2].sum() == 0
    # no crop, no flip: the batch unchanged
    same = aug.apply(
        img, mask, fg, Augment(crop=False, flip=False), np.zeros(1), np.zeros(1), np.zeros(1, bool)
    )
    assert torch.equal(same[0], img) and torch.equal(same[1], mask) and torch.equal(same[2], fg)


class _Recorder(Translator):
    """Records the batches the loop feeds it."""

    name = "recorder"

    def __init__(self):
        super().__init__(None, n_classes=3, image_size=16, device=torch.device("cpu"), seed=0)
        self.net = torch.nn.Linear(1, 1)
        self.opt = torch.optim.Adam(self.net.parameters())
        self.seen: list[dict] = []

    def networks(self):
        return {"net": self.net}

    def optimizers(self):
        return {"opt": self.opt}

    def train_step(self, batch, progress):
        self.seen.append({k: v.clone() for k, v in batch.items()})
        self.opt.step()  # no gradients: nothing changes, the schedulers see a step
        return {"x": 0.0}


def _split(n: int, size: int, offset: int) -> Split:
    rng = np.random.default_rng(offset)
    images = rng.uniform(-1, 1, (n, size, size)).astype(np.float32)
    return Split(
        [f"{offset}_{i}" for i in range(n)],
        images,
        (images > 0).astype(np.int64),
        (images > 0).astype(np.float32),
    )


def test_the_loop_trains_on_augmented_batches(tmp_path):
    data = TrainData(_split(4, 16, 1), _split(3, 16, 2))
    schedule = Schedule(n_epochs=1, n_epochs_decay=0, iters_per_epoch=5)
    plain, augmented = _Recorder(), _Recorder()
    loop.train(plain, data, schedule, tmp_path / "p", 9)
    loop.train(augmented, data, schedule, tmp_path / "a", 9, augment=Augment())
    d_src, d_tgt = (aug.epoch_draws(Augment(), 16, 9, 0, dom, 5, 1) for dom in ("source", "target"))
    for i, (raw, got) in enumerate(zip(plain.seen, augmented.seen, strict=True)):
        want = aug.augment_batch(raw, Augment(), (d_src, d_tgt), i)
        assert all(torch.equal(want[k], got[k]) for k in raw)
    assert any(not torch.equal(r["a"], g["a"]) for r, g in zip(plain.seen, augmented.seen, strict=True))


# -- item 6: SPADE's epoch ------------------------------------------------------------------
def test_spade_epoch_is_one_pass_over_the_target_pairs():
    from medtrans.stages.translate.registry import get_model

    assert get_model("spade").epoch_over == "target" and get_model("cyclegan").epoch_over == "both"
    data = TrainData(_split(10, 8, 1), _split(4, 8, 2))
    assert data.iters_per_epoch(1, None, "target") == 4 and data.iters_per_epoch(1, None) == 10
    assert data.iters_per_epoch(3, None, "target") == 2
    src, tgt = pair_indices(5, 0, 10, 4, 4, 1, "target")
    assert sorted(tgt.ravel()) == [0, 1, 2, 3]  # every target pair exactly once
    assert src.min() >= 0 and src.max() < 10
    # the unpaired default is unchanged: source permutations, random targets
    src, tgt = pair_indices(5, 0, 10, 4, 10, 1)
    assert sorted(src.ravel()) == list(range(10))


# -- item 4: `make weights` fetches SPADE's VGG19 ---------------------------------------------
def test_make_weights_fetches_and_locks_the_vgg19_file(tmp_path, monkeypatch):
    """The weights command fetches the VGG19 file beside the Inception one (its name's sha256
    prefix checked, its full sha256 locked); verify checks it and names what is missing."""
    import hashlib
    import json

    from medtrans.stages.metrics import weights as W

    def named(stem: str, payload: bytes) -> Path:
        path = tmp_path / "src" / f"{stem}-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(payload)
        return path

    assert "vgg19-dcbb9e9d.pth" in W.ALSO_FETCHED
    vgg = named("vgg19", b"v" * 100)
    monkeypatch.setattr(W, "ALSO_FETCHED", {vgg.name: vgg.as_uri()})
    real_fetch = W.fetch
    inception = W.VerifiedFile(tmp_path / W.STANDARD_NAME, "0" * 64, standard=True)  # not under test

    def fetch(folder, url=W.STANDARD_URL, name=W.STANDARD_NAME, lock=None):
        return inception if name == W.STANDARD_NAME else real_fetch(folder, url, name=name, lock=lock)

    monkeypatch.setattr(W, "fetch", fetch)
    monkeypatch.setattr(W, "verify", lambda folder, lock=None: (inception, True))
    from typer.testing import CliRunner

    def run(*args: str):
        return CliRunner().invoke(W.app, list(args))

    dest, lock = tmp_path / "weights", tmp_path / "lock.json"
    assert run("fetch", "--dir", str(dest), "--lock", str(lock)).exit_code == 0
    assert (dest / vgg.name).read_bytes() == vgg.read_bytes()
    pins = json.loads(lock.read_text())["files"]
    assert pins[vgg.name]["sha256"] == hashlib.sha256(vgg.read_bytes()).hexdigest()
    (dest / vgg.name).unlink()
    result = run("verify", "--dir", str(dest), "--lock", str(lock))
    assert result.exit_code == 0
    assert f"no {dest / vgg.name}" in result.output.replace("\n", "")
    (dest / vgg.name).write_bytes(b"tampered")
    assert run("verify", "--dir", str(dest), "--lock", str(lock)).exit_code == 2
