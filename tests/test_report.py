"""The report stage on a hand-made run folder whose every upstream output has a real manifest
(written by running trivial Units through the stage contract). The numbers are checked
against scipy.stats computed here, independently of the report's code."""

import html.parser
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from medtrans.shared.bootstrap import percentile_ci, resample_indices, subsample_indices
from medtrans.shared.dataset import COLUMNS
from medtrans.shared.imageio import read_png, write_png
from medtrans.shared.intervals import contain, rate_scale, recentred, subsample_interval
from medtrans.shared.layout import RunLayout
from medtrans.shared.stage import Unit, execute, state
from medtrans.stages.report import correlate as C
from medtrans.stages.report.analysis import analyse
from medtrans.stages.report.gather import gather
from medtrans.stages.report.stage import plan

MODELS = ("cyclegan", "maskgan", "unsb", "spade")
QUALITY = {  # per task: the translators' true quality (drives Dice and the metrics)
    "breast": {"cyclegan": 0.62, "maskgan": 0.80, "unsb": 0.71, "spade": 0.55},
    "spine": {"cyclegan": 0.40, "maskgan": 0.66, "unsb": 0.58, "spade": 0.75},
}
FAKE_IDS = ("DOE^JOHN", "MRN-98765432", "PATIENT-4711-SMITH")  # must never reach the report
SIZE = 32
N_TEST = 6
R_METRICS = 20


def _pseudo(task: str, role: str, k: int) -> str:
    """A pseudonym, as preprocessing would write it (never a raw identifier)."""
    return f"ps{task[:2]}{role[0]}{k:02d}"


def _phantom(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    r = 8 + k % 4
    outer = (yy - 16) ** 2 + (xx - 16) ** 2 < r**2
    inner = (yy - 16) ** 2 + (xx - 14) ** 2 < (r // 2) ** 2
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[outer] = 1
    mask[inner & outer] = 2
    img = (mask * 90 + rng.integers(0, 30, (SIZE, SIZE))).clip(0, 255).astype(np.uint8)
    return img, mask


def _ids(task: str, role: str, split: str) -> list[str]:
    n = {"train": 8, "val": 2, "test": N_TEST}[split]
    base = {"train": 0, "val": 20, "test": 40}[split]
    return [f"{_pseudo(task, role, i)}_{base + i:03d}" for i in range(n)]


def _structures(task: str) -> tuple[str, ...]:
    return ("breast", "fgt") if task == "breast" else ("vertebrae",)


def write_preprocess(work: Path, task: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    k = 0
    for role, domain in (("source", "src"), ("target", "tgt")):
        for split in ("train", "val", "test"):
            for sid in _ids(task, role, split):
                img, mask = _phantom(rng, k)
                k += 1
                if len(_structures(task)) == 1:
                    mask = (mask > 0).astype(np.uint8)
                write_png(work / "images" / f"{sid}.png", img)
                write_png(work / "masks" / f"{sid}.png", mask)
                rows.append(
                    {
                        "slice_id": sid,
                        "patient": sid.split("_")[0],
                        "domain": domain,
                        "role": role,
                        "split": split,
                        "position": int(sid.split("_")[1]),
                        "image": f"images/{sid}.png",
                        "mask": f"masks/{sid}.png",
                        "structures": "|".join(_structures(task)),
                    }
                )
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(work / "index.csv", index=False)


def _per_image_dice(task: str, set_name: str, structures) -> dict[str, np.ndarray]:
    """Hand-made per-image Dice: a set's quality plus fixed per-image noise."""
    rng = np.random.default_rng(len(set_name) * 31 + len(task))
    q = {"target": 0.9, "source": 0.2, **QUALITY[task]}[set_name]
    out = {}
    for j, s in enumerate(structures):
        out[s] = np.clip(q - 0.05 * j + rng.normal(0, 0.08, N_TEST), 0, 1)
    return out


def write_segment(work: Path, task: str, seed: int, models) -> None:
    structures = _structures(task)
    rows, summary = [], []
    for set_name in ("target", "source", *models):
        role = "target" if set_name == "target" else "source"
        ids = sorted(_ids(task, role, "test"))
        per = _per_image_dice(task, set_name, structures)
        per["mean"] = np.mean([per[s] for s in structures], axis=0)
        for s, vals in per.items():
            hd = 20 * (1 - vals) + 1
            for sid, d, h in zip(ids, vals, hd, strict=True):
                rows.append({"set": set_name, "slice_id": sid, "structure": s, "dice": d, "hd95": h})
            idx = resample_indices(seed, task, len(ids), 50)
            for metric, v in (("dice", vals), ("hd95", hd)):
                lo, hi = percentile_ci(v[idx].mean(axis=1))
                summary.append(
                    {
                        "set": set_name,
                        "structure": s,
                        "metric": metric,
                        "mean": v.mean(),
                        "std": v.std(),
                        "ci_low": lo,
                        "ci_high": hi,
                        "n": len(v),
                    }
                )
        for sid in ids:
            mask = np.zeros((SIZE, SIZE), np.uint8)
            mask[10:22, 9:23] = 1
            if len(structures) > 1:
                mask[13:19, 12:18] = 2
            write_png(work / "predictions" / set_name / f"{sid}.png", mask)
    pd.DataFrame(rows).to_csv(work / "dice.csv", index=False)
    pd.DataFrame(summary).to_csv(work / "summary.csv", index=False)
    pd.DataFrame(
        {"epoch": [1, 2, 3], "train_loss": [1.0, 0.7, 0.5], "val_dice": [0.4, 0.6, 0.7], "lr": [0.01] * 3}
    ).to_csv(work / "training.csv", index=False)
    (work / "model.pt").write_bytes(b"not a real checkpoint")


def _metric_values(task: str, q: float, per_image: np.ndarray) -> dict[str, float]:
    """A metric set that depends on the set's quality and on which images are in it."""
    m = float(per_image.mean())
    return {
        "fid": 150 * (1 - q) + 10 * m,
        "kid": 0.05 * (1 - q) + 0.002 * m,
        "kid_std": 0.001,
        "is": 1 + q + 0.1 * m,
        "is_std": 0.05,
        "swd": 800 * (1 - q) * (1 + 0.3 * m),
        "swd_32": 700 * (1 - q) + 50 * m,
        "swd_16": 900 * (1 - q) - 30 * m,
        "frd": (30 * (1 - q) + 4 * m) if task == "breast" else 25 - 10 * q + 8 * m,
        "frd_log": np.log((30 * (1 - q) + 4 * m) ** 2),
        "nmi": 1.1 + 0.6 * q + 0.02 * m,
        "mind": 0.45 * (1 - q) + 0.01 * m if task == "breast" else 0.2 + 0.1 * q + 0.01 * m,
        "ngf": 0.3 + 0.6 * q - 0.02 * m,
    }


PAIRS = ("nmi", "mind", "ngf")
NOT_APPLICABLE = "not applicable: this set is not a translation of the source slices"


def write_metrics(work: Path, task: str, seed: int, models) -> None:
    rows, boot = [], []
    for set_name in (*models, "source", "target_train"):
        q = {"source": 0.2, "target_train": 0.95, **QUALITY[task]}.get(set_name)
        per_image = np.random.default_rng(len(set_name) + 100 * len(task)).uniform(-1, 1, N_TEST)
        point = _metric_values(task, q, per_image)
        reps = {k: [] for k in point}
        if set_name != "target_train":
            for r, pos in enumerate(subsample_indices(seed, task, N_TEST, R_METRICS)):
                for k, v in _metric_values(task, q, per_image[pos]).items():
                    reps[k].append(v)
                    boot.append({"set": set_name, "metric": k, "replicate": r, "value": v})
        for k, v in point.items():
            scale = rate_scale(N_TEST, N_TEST // 2)
            lo, hi = subsample_interval(v, np.array(reps[k]), scale) if reps[k] else (np.nan, np.nan)
            unavailable = k == "kid" and set_name == "target_train"
            not_applicable = k in PAIRS and set_name == "target_train"  # the floor has no source pairs
            empty = unavailable or not_applicable
            note = "unavailable: subset larger than the set" if unavailable else ""
            rows.append(
                {
                    "set": set_name,
                    "metric": k,
                    "value": "" if empty else f"{v:.6g}",
                    "ci_low": "" if empty or not np.isfinite(lo) else f"{lo:.6g}",
                    "ci_high": "" if empty or not np.isfinite(hi) else f"{hi:.6g}",
                    "n": N_TEST,
                    "network_sha256": "ab" * 32 if k in ("fid", "kid", "is") else "",
                    "note": NOT_APPLICABLE if not_applicable else note,
                }
            )
    pd.DataFrame(rows).to_csv(work / "metrics.csv", index=False)
    pd.DataFrame(boot).to_csv(work / "bootstrap.csv", index=False)


def write_translate(work: Path, task: str, model: str, pre: Path) -> None:
    index = pd.read_csv(pre / "index.csv", dtype=str)
    test = index[(index.role == "source") & (index.split == "test")]
    for sid in test.slice_id:
        img = read_png(pre / "images" / f"{sid}.png")
        write_png(work / "test" / f"{sid}.png", (255 - img // (2 + MODELS.index(model))).astype(np.uint8))
    n = 40
    it = np.arange(n)
    pd.DataFrame(
        {
            "iteration": it,
            "epoch": it // 10,
            "loss_g": 2 * np.exp(-it / 20) + 0.1,
            "loss_d": 0.5 + 0.01 * np.sin(it),
        }
    ).to_csv(work / "losses.csv", index=False)
    (work / "checkpoints").mkdir()
    (work / "checkpoints" / "last.pt").write_bytes(b"x")


def _run_unit(layout, stage, name, out, inputs, fn, extra=None, config=None):
    def build(ctx):
        fn(ctx.work)
        if extra:
            ctx.extra.update(extra)

    unit = Unit(stage=stage, name=name, out=out, config=config or {"fake": True}, build=build, inputs=inputs)
    assert execute(unit, layout) == "ran"


def make_run(root: Path, study, drop_translator=None, drop_metrics=None) -> RunLayout:
    """The hand-made run folder; `drop_*` = (task, ...) to leave pieces out (a partial run)."""
    layout = RunLayout(root)
    for task in study.tasks:
        pre = layout.preprocess(task)
        _run_unit(
            layout,
            "preprocess",
            (task,),
            pre,
            [],
            lambda w, t=task: write_preprocess(w, t, study.seed),
            extra={"raw_names": {FAKE_IDS[0]: "1", FAKE_IDS[1]: "2"}, "patients": [FAKE_IDS[2]]},
            config={"root": f"/data/raw/{FAKE_IDS[2]}"},
        )
        models = [m for m in MODELS if (task, m) != drop_translator]
        for m in models:
            _run_unit(
                layout,
                "translate",
                (task, m),
                layout.translate(task, m),
                [pre],
                lambda w, t=task, mm=m, p=pre: write_translate(w, t, mm, p),
                extra={"weights": {"vgg_sha256": "cd" * 32}} if m == "spade" else None,
            )
        trans = [layout.translate(task, m) for m in models]
        _run_unit(
            layout,
            "segment",
            (task,),
            layout.segment(task),
            [pre, *trans],
            lambda w, t=task, ms=models: write_segment(w, t, study.seed, ms),
        )
        if task != drop_metrics:
            _run_unit(
                layout,
                "metrics",
                (task,),
                layout.metrics(task),
                [pre, *trans],
                lambda w, t=task, ms=models: write_metrics(w, t, study.seed, ms),
            )
    return layout


def run_report(study, layout) -> Path:
    units = plan(study, layout)
    assert len(units) == 1
    execute(units[0], layout)
    return layout.report()


@pytest.fixture(scope="module")
def full(tmp_path_factory, smoke_study):
    layout = make_run(tmp_path_factory.mktemp("report-run"), smoke_study)
    return smoke_study, layout, run_report(smoke_study, layout)


# ---- the maths ------------------------------------------------------------------------


def test_correlation_rows_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    y = rng.normal(size=(30, 4))
    x[3] = [1, 1, 2, 3]  # ties
    y[5] = [2, 2, 2, 1]
    for method, fn in (
        ("pearson", stats.pearsonr),
        ("spearman", stats.spearmanr),
        ("kendall", stats.kendalltau),
    ):
        got = C.correlation_rows(x, y, method)
        want = np.array([fn(a, b).statistic for a, b in zip(x, y, strict=True)])
        np.testing.assert_allclose(got, want, atol=1e-12, err_msg=method)


def test_expected_signs():
    assert C.expected_sign("fid", "dice") == -1
    assert C.expected_sign("swd_32", "dice") == -1
    assert C.expected_sign("frd_log", "dice") == -1
    assert C.expected_sign("is", "dice") == 1
    assert C.expected_sign("fid", "hd95") == 1
    assert C.expected_sign("is", "hd95") == -1


def _dice_means(layout, task, models):
    summ = pd.read_csv(layout.segment(task) / "summary.csv")
    s = summ[(summ.structure == "mean") & (summ.metric == "dice")].set_index("set")["mean"]
    return np.array([s[m] for m in models])


def _metric_points(layout, task, metric, models):
    met = pd.read_csv(layout.metrics(task) / "metrics.csv")
    s = met[met.metric == metric].set_index("set")["value"]
    return np.array([s[m] for m in models], dtype=float)


def test_correlations_match_scipy(full):
    study, layout, report = full
    corr = pd.read_csv(report / "correlations.csv")
    R = min(study.report.bootstrap, R_METRICS)
    for task in study.tasks:
        dice = _dice_means(layout, task, MODELS)
        dice_img = pd.read_csv(layout.segment(task) / "dice.csv", dtype={"slice_id": str})
        boot = pd.read_csv(layout.metrics(task) / "bootstrap.csv")
        idx = subsample_indices(study.seed, task, N_TEST, R_METRICS)[:R]
        scale = rate_scale(N_TEST, idx.shape[1])
        dice_rep = []
        for m in MODELS:
            v = dice_img[(dice_img.set == m) & (dice_img.structure == "mean")].sort_values("slice_id")["dice"]
            dice_rep.append(recentred(v.mean(), v.to_numpy()[idx].mean(axis=1), scale))
        dice_rep = np.stack(dice_rep, axis=1)
        for metric in ("fid", "is", "swd_16", "frd", "nmi", "mind"):
            x = _metric_points(layout, task, metric, MODELS)
            x_rep = np.stack(
                [
                    recentred(
                        point,
                        boot[(boot.set == m) & (boot.metric == metric)]
                        .sort_values("replicate")["value"]
                        .to_numpy()[:R],
                        scale,
                    )
                    for m, point in zip(MODELS, x, strict=True)
                ],
                axis=1,
            )
            for method, fn in (
                ("pearson", stats.pearsonr),
                ("spearman", stats.spearmanr),
                ("kendall", stats.kendalltau),
            ):
                row = corr[
                    (corr.scope == task)
                    & (corr.metric == metric)
                    & (corr.anatomy == "dice")
                    & (corr.method == method)
                ].iloc[0]
                want = fn(x, dice)
                assert row.r == pytest.approx(want.statistic, abs=1e-9), (task, metric, method)
                assert row.p == pytest.approx(want.pvalue, abs=1e-9)
                assert row.n == 4
                reps = np.array([fn(a, b).statistic for a, b in zip(x_rep, dice_rep, strict=True)])
                lo, hi = contain(*np.percentile(reps[np.isfinite(reps)], [2.5, 97.5]), want.statistic)
                assert row.ci_low == pytest.approx(lo, abs=1e-9) and row.ci_high == pytest.approx(
                    hi, abs=1e-9
                )
                sign = 1 if metric in ("is", "nmi", "ngf") else -1
                assert row.expected_sign == ("+" if sign > 0 else "-")
                assert row.agrees == ("yes" if sign * want.statistic > 0 else "no")
    # pooled: z-scored within task, then scipy on the concatenation
    for metric in ("fid", "kid"):
        xs = np.concatenate([stats.zscore(_metric_points(layout, t, metric, MODELS)) for t in study.tasks])
        ys = np.concatenate([stats.zscore(_dice_means(layout, t, MODELS)) for t in study.tasks])
        row = corr[
            (corr.scope == "pooled")
            & (corr.metric == metric)
            & (corr.anatomy == "dice")
            & (corr.method == "pearson")
        ].iloc[0]
        assert row.r == pytest.approx(stats.pearsonr(xs, ys).statistic, abs=1e-9)
        assert row.n == 8


def test_hd95_and_rank_agreement(full):
    study, layout, report = full
    corr = pd.read_csv(report / "correlations.csv")
    ranks = pd.read_csv(report / "tables" / "rank_agreement.csv")
    summ = pd.read_csv(layout.segment("spine") / "summary.csv")
    hd = summ[(summ.structure == "mean") & (summ.metric == "hd95")].set_index("set")["mean"]
    x = _metric_points(layout, "spine", "fid", MODELS)
    row = corr[
        (corr.scope == "spine")
        & (corr.metric == "fid")
        & (corr.anatomy == "hd95")
        & (corr.method == "spearman")
    ].iloc[0]
    assert row.r == pytest.approx(stats.spearmanr(x, [hd[m] for m in MODELS]).statistic)
    assert row.expected_sign == "+"
    # rank agreement: tau of -FID vs Dice; top-1: is the lowest-FID translator the best by Dice?
    dice = _dice_means(layout, "spine", MODELS)
    r = ranks[(ranks.task == "spine") & (ranks.metric == "fid")].iloc[0]
    assert r.tau == pytest.approx(stats.kendalltau(-x, dice).statistic)
    assert r.top1 == ("yes" if np.argmin(x) == np.argmax(dice) else "no")
    assert r.metric_order.split(" > ")[0] == MODELS[int(np.argmin(x))]
    assert r.dice_order.split(" > ")[0] == MODELS[int(np.argmax(dice))]
    assert (
        0 <= r.metric_order_kept <= 1
        and 0 <= r.top1_kept <= 1
        and r.replicates == min(study.report.bootstrap, R_METRICS)
    )


class _Parser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.srcs, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for key in ("src", "href"):
            if a.get(key) is not None:
                self.srcs.append(a[key])


def test_html_self_contained_and_complete(full):
    study, layout, report = full
    text = (report / "report.html").read_text(encoding="utf-8")
    p = _Parser()
    p.feed(text)
    p.close()
    assert "script" not in p.tags and "link" not in p.tags
    figures = sorted((report / "figures").glob("*.png"))
    names = {f.stem for f in figures}
    for task in study.tasks:
        assert {f"scatter_{task}", f"dice_{task}", f"grid_{task}", f"training_{task}"} <= names
    assert "agreement" in names
    assert {f.stem for f in (report / "figures").glob("*.svg")} == names
    import base64

    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in p.imgs}
    assert all(s.startswith("data:image/png;base64,") for s in p.imgs)
    for f in figures:
        assert f.read_bytes() in embedded, f.name
    for s in p.srcs:
        assert s.startswith("data:") or s.startswith("#"), s
    stripped = re.sub(r"data:[^\"']*", "", text)
    for bad in ("http://", "https://", "//cdn", "url(", "@import"):
        assert bad not in stripped.lower(), bad
    for task in study.tasks:
        met = pd.read_csv(layout.metrics(task) / "metrics.csv", dtype=str, keep_default_na=False)
        for v in met["value"]:
            if v:
                assert v in text, (task, v)
        assert "unavailable: subset larger than the set" in text
    assert "ab" * 32 in text and "cd" * 32 in text  # network and weights digests
    assert study.name in text and "study digest" in text


def test_tables_and_summary(full):
    study, layout, report = full
    for task in study.tasks:
        tex = (report / "tables" / f"results_{task}.tex").read_text()
        assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
        md = (report / "tables" / f"results_{task}.md").read_text()
        res = pd.read_csv(report / "tables" / f"results_{task}.csv")
        trans = res[res.role == "translator"]
        assert list(trans.set) == list(MODELS)
        best = trans.set.iloc[int(np.argmax(trans.dice_mean))]
        best_line = next(line for line in md.splitlines() if line.startswith(f"| {best} |"))
        best_fid = trans.set.iloc[int(np.argmin(trans.fid))]
        fid_col = md.splitlines()[2].split(" | ").index("FID ↓")
        fid_line = next(line for line in md.splitlines() if line.startswith(f"| {best_fid} |"))
        assert fid_line.split(" | ")[fid_col].startswith("**")
        header = "Dice mean ↑" if task == "breast" else "Dice vertebrae ↑"  # one structure: no extra mean
        dice_col = md.splitlines()[2].split(" | ").index(header)
        assert best_line.split(" | ")[dice_col].startswith("**")
        assert r"\textbf{" in tex
        for b in ("target", "source"):
            assert b in set(res.set)
    summary = (report / "summary.md").read_text()
    assert "FID" in summary and "Spearman" in summary and "## pooled" in summary
    assert "4 points" in summary and "4 points" in (report / "report.html").read_text()


def test_pair_metrics_in_tables_without_a_floor_value(full):
    """NMI, MIND-SSC and NGF get their columns with their directions; the real-vs-real floor has
    no pairs: an en dash, and not listed as unavailable."""
    study, _, report = full
    for task in study.tasks:
        md = (report / "tables" / f"results_{task}.md").read_text().splitlines()
        header = [h.strip(" |") for h in md[2].split(" | ")]
        for label in ("NMI ↑", "MIND-SSC ↓", "NGF ↑"):
            assert label in header, (task, header)
        res = pd.read_csv(report / "tables" / f"results_{task}.csv")
        trans = res[res.role == "translator"]
        best_mind = trans.set.iloc[int(np.argmin(trans.mind))]  # lower is better
        col = header.index("MIND-SSC ↓")
        line = next(x for x in md if x.startswith(f"| {best_mind} |"))
        assert line.split(" | ")[col].startswith("**")
        target = next(x for x in md if x.startswith("| target |"))
        assert target.split(" | ")[col].strip(" |") == "–"
        assert np.isnan(res[res.set == "target"].nmi).all() and res[res.set == "source"].nmi.notna().all()
        assert any("compare each source test slice with its translation" in x for x in md)
    unavailable = pd.read_csv(report / "tables" / "unavailable_metrics.csv")
    assert set(unavailable.metric) == {"kid"}
    assert "NMI, MIND-SSC, NGF compare each translation with its own source slice" in (
        report / "report.html"
    ).read_text(encoding="utf-8")
    corr = pd.read_csv(report / "correlations.csv")
    signs = corr[corr.anatomy == "dice"].groupby("metric").expected_sign.first()
    assert (signs["nmi"], signs["mind"], signs["ngf"]) == ("+", "-", "+")


def test_every_interval_holds_its_point_estimate(full):
    """Results tables (Dice, HD95, every metric), correlations and rank agreement."""
    study, _, report = full
    checked = 0
    for task in study.tasks:
        res = pd.read_csv(report / "tables" / f"results_{task}.csv")
        for col in [c[: -len("_ci_low")] for c in res.columns if c.endswith("_ci_low")]:
            ok = res[[col, f"{col}_ci_low", f"{col}_ci_high"]].dropna()
            assert (ok[f"{col}_ci_low"] <= ok[col] + 1e-12).all() and (
                ok[col] <= ok[f"{col}_ci_high"] + 1e-12
            ).all()
            checked += len(ok)
    corr = pd.read_csv(report / "correlations.csv").dropna(subset=["r", "ci_low"])
    assert ((corr.ci_low <= corr.r + 1e-12) & (corr.r <= corr.ci_high + 1e-12)).all() and len(corr)
    ranks = pd.read_csv(report / "tables" / "rank_agreement.csv").dropna(subset=["tau", "tau_ci_low"])
    assert ((ranks.tau_ci_low <= ranks.tau + 1e-12) & (ranks.tau <= ranks.tau_ci_high + 1e-12)).all()
    assert checked > 50


def test_scatter_error_bars_are_drawn_on_their_points():
    from medtrans.stages.report.figures import _err

    assert _err(5.0, 4.0, 7.0) == [[1.0], [2.0]]
    assert _err(5.0, float("nan"), 7.0) is None
    with pytest.raises(ValueError, match="does not hold its point"):
        _err(3.0, 4.0, 7.0)  # the old interval beside its point: no longer drawn


def test_translator_level_uncertainty_in_the_report(full):
    study, _, report = full
    corr = pd.read_csv(report / "correlations.csv")
    rank_rows = corr[corr.method.isin(["spearman", "kendall"]) & (corr.scope != "pooled")]
    assert (rank_rows.p_exact_method == "enumeration").all()
    # 4 translators: the exact p-values are multiples of 1/4!
    assert np.allclose((rank_rows.p_exact * 24).round(), rank_rows.p_exact * 24)
    task_rows = corr[corr.scope != "pooled"].dropna(subset=["loo_min"])
    assert (task_rows.loo_min <= task_rows.loo_max).all() and len(task_rows)
    agreement = pd.read_csv(report / "tables" / "agreement.csv")
    assert set(agreement.scope) == {*study.tasks, "pooled"} and set(agreement.agrees) <= {"yes", "no"}
    html_text = (report / "report.html").read_text()
    summary = (report / "summary.md").read_text()
    for text in (html_text, summary):
        assert "stated rule" in text
    assert "Two uncertainties, two questions" in html_text and "test images" in html_text
    assert "agree with Dice only if" in html_text


def test_no_patient_identifier_in_report(full):
    _, _, report = full
    files = [p for p in report.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for ident in FAKE_IDS:
            assert ident.encode() not in data, (path, ident)


def test_deterministic(full):
    """The numbers depend only on the run folder and the seed: recomputed, they are identical."""
    study, layout, report = full
    cfg = study.report
    first = analyse(gather(study, layout), study.seed, cfg.bootstrap, cfg.pooled, cfg.ci_level)
    again = analyse(gather(study, layout), study.seed, cfg.bootstrap, cfg.pooled, cfg.ci_level)
    pd.testing.assert_frame_equal(first.correlations, again.correlations)
    pd.testing.assert_frame_equal(first.ranks, again.ranks)
    written = pd.read_csv(report / "correlations.csv", keep_default_na=False, na_values=[""])
    np.testing.assert_allclose(written["r"], first.correlations["r"], rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(written["ci_low"], first.correlations["ci_low"], rtol=1e-9, equal_nan=True)


def test_partial_run_lists_missing(tmp_path, smoke_study):
    layout = make_run(tmp_path / "run", smoke_study, drop_translator=("spine", "unsb"), drop_metrics="spine")
    shutil.rmtree(layout.segment("breast"))
    report = run_report(smoke_study, layout)
    text = (report / "report.html").read_text()
    summary = (report / "summary.md").read_text()
    for line in ("translate/spine/unsb", "metrics/spine", "segment/breast"):
        assert line in summary and line in text
    assert "No correlation could be computed" in text  # breast lacks Dice, spine lacks metrics
    res = pd.read_csv(report / "tables" / "results_spine.csv")
    assert "unsb" not in set(res.set) and res.dice_mean.notna().all()
    res_b = pd.read_csv(report / "tables" / "results_breast.csv")
    assert res_b.fid.notna().any() and res_b.dice_mean.isna().all()
    # the missing piece appears: the report becomes stale and reruns
    _run_unit(
        layout,
        "metrics",
        ("spine",),
        layout.metrics("spine"),
        [layout.preprocess("spine")] + [layout.translate("spine", m) for m in MODELS if m != "unsb"],
        lambda w: write_metrics(w, "spine", smoke_study.seed, [m for m in MODELS if m != "unsb"]),
    )
    assert state(plan(smoke_study, layout)[0], layout).status == "stale"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def test_screenshot_in_headless_browser(full, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium not installed (Debian: apt-get install -y chromium); screenshot test skipped")
    _, _, report = full
    shot = tmp_path / "report.png"
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2400",
        f"--screenshot={shot}",
        (report / "report.html").resolve().as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.is_file() and shot.stat().st_size > 10_000
    from PIL import Image

    arr = np.asarray(Image.open(shot).convert("L"))
    assert arr.shape[1] == 1280 and arr.std() > 10  # rendered content, not a blank page


def test_pooling_within_task():
    a = (np.array([3.0, 1.0, 2.0, 5.0]), np.array([0.2, 0.9, 0.5, 0.1]))
    b = (np.array([300.0, 100.0, 250.0]), np.array([0.7, 0.8, 0.75]))
    x, y = C.pool([a, b], "zscore")
    np.testing.assert_allclose(x, np.concatenate([stats.zscore(a[0]), stats.zscore(b[0])]))
    np.testing.assert_allclose(y, np.concatenate([stats.zscore(a[1]), stats.zscore(b[1])]))
    x, _ = C.pool([a, b], "rank")
    np.testing.assert_allclose(x, np.concatenate([stats.rankdata(a[0]), stats.rankdata(b[0])]))
    # a constant task contributes zeros instead of NaN
    x, _ = C.pool([(np.ones(3), np.arange(3.0))], "zscore")
    assert (x == 0).all()
