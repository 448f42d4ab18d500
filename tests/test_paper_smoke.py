"""studies/paper-smoke.yaml: paper.yaml's settings exactly, on the phantom, with only the
iteration, epoch and sample counts capped, through every stage on a CPU.

SPADE's VGG loss runs on a VGG19 with random weights the test generates (named by its own
sha256 prefix, as torchvision names its files); FID, KID and IS find no Inception weights in
the test's weights folder and are reported missing, as in the smoke study."""

import copy
import hashlib
from pathlib import Path

import pytest
import torch
import yaml

from medtrans.shared.config import load_study
from medtrans.shared.config.study import parse_study
from medtrans.shared.dataset import FOREGROUND, SliceIndex
from medtrans.shared.imageio import read_png
from medtrans.shared.layout import MANIFEST, RunLayout
from medtrans.shared.manifest import read_manifest
from medtrans.stages.runner import STAGES, run_study

ROOT = Path(__file__).resolve().parent.parent
STUDIES = ROOT / "studies"
pytestmark = pytest.mark.slow

# what paper-smoke may change: the data and device, and counts only
CAPPED_SCHEDULE = ("n_epochs", "n_epochs_decay", "iters_per_epoch")
CAPPED = (
    ("name",), ("device",), ("preprocess", "sample"), ("preprocess", "min_slices_per_split"),
    ("segment", "max_epochs"), ("calibrate", "images"),
)  # fmt: skip


def _drop(tree: dict, path: tuple[str, ...]) -> None:
    for key in path[:-1]:
        tree = tree.get(key, {})
    tree.pop(path[-1], None)


def _uncapped(path: Path) -> dict:
    data = copy.deepcopy(yaml.safe_load(path.read_text()))
    for p in CAPPED:
        _drop(data, p)
    for task in data["tasks"].values():
        task.pop("data")
    for model in ("cyclegan", "maskgan", "unsb", "spade"):
        for key in CAPPED_SCHEDULE:
            _drop(data, ("translate", model, "schedule", key))
        schedule = data["translate"].get(model, {}).get("schedule", {})
        if model == "maskgan" and schedule.get("batch_size") == 4:  # its default, restated
            schedule.pop("batch_size")
        if data["translate"].get(model, {}).get("schedule") == {}:
            data["translate"][model].pop("schedule")
        if data["translate"].get(model) == {}:
            data["translate"].pop(model)
    return data


def test_paper_smoke_is_paper_apart_from_the_capped_counts():
    """So the two cannot drift: every setting but the data, device and counts is paper.yaml's."""
    assert _uncapped(STUDIES / "paper-smoke.yaml") == _uncapped(STUDIES / "paper.yaml")
    paper, smoke = load_study(STUDIES / "paper.yaml"), load_study(STUDIES / "paper-smoke.yaml")
    assert smoke.profile == paper.profile == "paper" and smoke.device == "cpu"
    assert all(t.data.kind == "phantom" for t in smoke.tasks.values())
    assert set(smoke.preprocess.sample) == set(paper.preprocess.sample) == set(smoke.tasks)
    for m in smoke.translate.models:
        a, b = smoke.translate.settings(m), paper.translate.settings(m)
        assert a.model_copy(update={"schedule": b.schedule}) == b  # widths, blocks, losses, augment
        assert a.schedule.batch_size == b.schedule.batch_size


def _random_vgg19(folder: Path) -> str:
    """A VGG19 features state dict with random weights, named vgg19-<its sha256[:8]>.pth."""
    from medtrans.stages.translate.spade_nets import VGG19Features

    torch.manual_seed(0)
    tmp = folder / "vgg19.tmp"
    torch.save(VGG19Features().state_dict(), tmp)
    name = f"vgg19-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(folder / name)
    return name


# The whole run took 6 min 20 s on a quiet 2-core machine (README, Study files): one training
# step of each translator at the references' widths and batch sizes is most of it.
@pytest.fixture(scope="module")
def paper_smoke_run(tmp_path_factory):
    weights = tmp_path_factory.mktemp("weights")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDTRANS_WEIGHTS", str(weights))
        data = load_study(STUDIES / "paper-smoke.yaml").model_dump(mode="json")
        data["translate"]["spade"]["vgg_weights"] = _random_vgg19(weights)
        study = parse_study(data, "paper-smoke (test VGG19)")
        layout = RunLayout(tmp_path_factory.mktemp("paper-smoke"))
        outcomes = run_study(study, layout)
    return study, layout, outcomes


def test_every_stage_ran_with_complete_manifests(paper_smoke_run):
    study, layout, outcomes = paper_smoke_run
    assert {o.unit.split("/")[0] for o in outcomes} == set(STAGES)
    assert all(o.result == "ran" for o in outcomes)
    manifests = sorted(p.parent for p in layout.root.rglob(MANIFEST) if ".cache" not in p.parts)
    assert len(manifests) >= len(outcomes)
    for folder in manifests:
        m = read_manifest(folder)
        assert m.status == "complete" and m.outputs, folder
    for task in study.tasks:
        counts = read_manifest(layout.preprocess(task)).extra["counts"]
        target = study.preprocess.sample[task]
        assert all(per == target.model_dump() for per in counts.values())
        for model in study.translate.models:
            extra = read_manifest(layout.translate(task, model)).extra
            assert extra["iterations"] == 1 and extra["n_test"] == target.test
    assert (layout.report() / "report.html").is_file()


@pytest.mark.parametrize("task", ["breast", "spine"])
def test_translations_and_label_maps_are_not_degenerate(paper_smoke_run, task):
    study, layout, _ = paper_smoke_run
    size = study.preprocess.image_size
    index = SliceIndex.for_task(layout, task)
    test = index.select("source", "test")
    for model in study.translate.models:
        folder = layout.translate(task, model) / "test"
        for sid in test.slice_id:
            img = read_png(folder / f"{sid}.png", size)
            assert img.shape == (size, size) and img.max() > img.min(), f"{task}/{model}: {sid} is constant"
    # the label maps SPADE painted from: breast's masks, spine's foreground masks
    column = "mask" if study.translate.spade.label_source_tasks.get(task, "masks") == "masks" else FOREGROUND
    for rel in test[column]:
        assert rel and read_png(index.path(rel), size).any(), f"{task}: blank {column} map {rel}"
    for rel in index.table[FOREGROUND]:  # MaskGAN's foreground, shipped for every slice
        fg = read_png(index.path(rel), size)
        assert fg.any() and not fg.all()


# -- what the run's cost was cut by (each recomputed work at the paper's settings) ---------------
def test_unsb_sample_panel_runs_one_generator_step_not_all():
    """samples.png's "step 1" panel is the trajectory's first x1_hat: the T-1 later generator
    steps it used to run again (5-step inference of the sample rows at 256 px) are not needed,
    and the panel is the same."""
    from medtrans.shared.config.translate import UNSBConfig
    from medtrans.stages.translate.registry import get_model

    cfg = UNSBConfig(ngf=8, ndf=8, n_blocks=2, nce_layers=[0, 4, 8, 12, 13], num_patches=64)
    model = get_model("unsb")(cfg, n_classes=3, image_size=32, device=torch.device("cpu"), seed=1)
    a = torch.rand(2, 1, 32, 32) * 2 - 1
    full = model.trajectory(a)
    calls = []
    hook = model.G.register_forward_hook(lambda *_: calls.append(1))
    panel = model.panels(a)["step 1"]
    hook.remove()
    assert len(calls) == 1 and cfg.num_timesteps > 1
    assert torch.equal(panel, full[0])


def _radiomics_set(gen, n: int, ids: list[str]):
    from medtrans.stages.metrics.frd import RadiomicsFeatures
    from medtrans.stages.metrics.scoring import SetFeatures

    names = [f"f{i}" for i in range(6)]
    nmi = gen.random(n)  # a pair metric's per-image values
    return SetFeatures(ids, radiomics=RadiomicsFeatures(names, gen.random((n, 6))), pairs={"nmi": nmi})


def test_bootstrap_scores_each_distinct_half_sample_once_with_the_same_values():
    """paper-smoke's 4 test images have 6 distinct half-samples: the paper's 1000 replicates of
    a set against its reference hold at most 36 distinct pairs, which are scored once each
    (1000 times before, the metrics unit's largest cost); every replicate's value is the one
    scoring it alone gives."""
    import numpy as np

    from medtrans.shared.bootstrap import subsample_indices
    from medtrans.stages.metrics.bootstrap import replicate_values
    from medtrans.stages.metrics.scoring import Scorer, ScoreSettings

    gen = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(4)]
    real = _radiomics_set(gen, 4, ids)
    sets = {name: _radiomics_set(gen, 4, ids) for name in ("a", "b")}
    scorer = Scorer(real, ScoreSettings(metrics=("frd", "nmi")))
    R = 1000
    idx = subsample_indices(1338, "breast", 4, R)
    ref = subsample_indices(1338, "breast", 4, R, "reference")
    calls = []
    evaluate = scorer.evaluate
    scorer.evaluate = lambda *a, **k: calls.append(1) or evaluate(*a, **k)
    out = replicate_values(scorer, [(n, f, idx) for n, f in sets.items()], ref)
    assert len(calls) <= 2 * 36
    for r in (0, 1, 17, R - 1):
        for name, feats in sets.items():
            want = evaluate(feats, index=idx[r], ref_index=ref[r]).values
            assert {row: out[name][row][r] for row in want} == pytest.approx(want, rel=0, abs=0)
