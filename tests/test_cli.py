"""The command line: help lists every command; errors are one line with exit code 2."""

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from medtrans.stages.cli import app

runner = CliRunner()


def test_help_lists_run_status_verify_and_stages():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "status", "verify", "preprocess", "translate", "segment", "metrics", "report"):
        assert command in result.output


def test_console_entry_point_runs():
    env = {**os.environ, "MEDTRANS_PROGRESS": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "medtrans.stages.cli", "translate", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0 and "cyclegan" in result.stdout


def test_bad_study_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nprofile: demo\nseed: 1\ntasks: {}\n")
    result = runner.invoke(app, ["status", str(bad)])
    assert result.exit_code == 2
    assert "tasks" in result.output


def test_unknown_model_is_refused(tmp_path):
    args = ["translate", "pix2pix", "--study", "studies/smoke.yaml", "--run", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "cyclegan" in result.output


def test_a_stage_image_without_another_extra_still_runs_and_says_how_to_get_it():
    """A stage image installs only its own extra (the translators' has no pydicom): the CLI must
    still start, and `compare` there must say which extra it needs instead of a traceback."""
    code = (
        "import sys; sys.modules['pydicom'] = None\n"
        "from medtrans.stages.cli import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['translate', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['compare', 'a', 'b'])\n"
        "print(r.exit_code); print(r.output)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    exit_code, _, message = out.stdout.partition("\n")
    assert exit_code == "2"
    assert "medtrans[metrics]" in message and "pydicom" in message


# -- medtrans plan ----------------------------------------------------------------------------

PAPER_TIMES = {"cyclegan": 0.2, "maskgan": 0.5, "unsb": 0.4, "spade": 0.3, "unet": 0.05}


def _plan_rows(output: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in output.splitlines() if line[:1].isalpha()}


def test_plan_costs_the_paper_before_any_data_from_a_step_times_file(tmp_path):
    """The paper's counts (preprocess.sample) and schedules: cyclegan 200 epochs x 4096,
    maskgan 80 x 4096 / 4, unsb 400 x 4096, spade 50 x 4096, the UNet <= 100 x 4096 / 8."""
    import json
    from pathlib import Path

    times = tmp_path / "step-times.json"
    times.write_text(json.dumps(PAPER_TIMES))
    paper = Path(__file__).resolve().parent.parent / "studies" / "paper.yaml"
    result = runner.invoke(
        app, ["plan", str(paper), "--step-times", str(times), "--run", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    rows = _plan_rows(result.output)
    expected = {
        "translate/breast/cyclegan": 819_200, "translate/breast/maskgan": 81_920,
        "translate/breast/unsb": 1_638_400, "translate/breast/spade": 204_800,
        "translate/spine/cyclegan": 200 * 495, "translate/spine/maskgan": 80 * 124,
        "translate/spine/unsb": 400 * 495, "translate/spine/spade": 50 * 495,
    }  # fmt: skip
    total = 0.0
    for unit, iterations in expected.items():
        its, seconds, origin, hours = rows[unit]
        assert int(its.replace(",", "")) == iterations and origin == "given"
        assert float(hours) == pytest.approx(iterations * PAPER_TIMES[unit.split("/")[2]] / 3600, abs=0.006)
        total += float(hours)
    assert rows["segment/breast"][:2] == ["<=", "51,200"]
    total += float(rows["segment/breast"][-1]) + float(rows["segment/spine"][-1])
    assert float(rows["total"][0]) == pytest.approx(total, abs=0.03)
    assert "warm-up" not in result.output


def test_plan_measures_what_a_file_lacks_and_reads_index_counts(smoke_preprocessed, smoke_study, tmp_path):
    """The warm-up at the study's settings on this CPU (SPADE with a random VGG19 when its
    weights are absent); train counts from the preprocess index once it exists."""
    import json

    from medtrans.shared.config.study import parse_study
    from medtrans.shared.dataset import SliceIndex
    from medtrans.stages import plan

    data = smoke_study.model_dump(mode="json")
    data["translate"]["spade"]["vgg_loss"] = True
    study = parse_study(data)
    measured = plan.step_times(
        study, ["spade", "unet", "cyclegan"], {"cyclegan": 1.0}, plan.warmup(study, "cpu")
    )
    assert measured["cyclegan"] == (1.0, "given")
    for key in ("spade", "unet"):
        seconds, origin = measured[key]
        assert origin == "measured" and 0 < seconds < 60
    counts = plan.train_counts(smoke_study, smoke_preprocessed, "breast")
    table = SliceIndex.for_task(smoke_preprocessed, "breast").table
    assert counts.origin == "index"
    assert counts.target == int(((table.role == "target") & (table.split == "train")).sum())
    units = {u.unit: u for u in plan.plan_units(smoke_study, smoke_preprocessed)}
    assert units["segment/breast"].iterations == 3 * -(-counts.target // 8)
    assert units["translate/breast/unsb"].iterations == 2 * 4  # the smoke's iters_per_epoch
    times = tmp_path / "t.json"
    times.write_text(json.dumps({"cyclegan": 0.1, "maskgan": 0.1, "unsb": 0.1, "spade": 0.1}))
    result = runner.invoke(
        app, ["plan", "studies/smoke.yaml", "--step-times", str(times), "--run", str(smoke_preprocessed.root)]
    )
    assert result.exit_code == 0, result.output
    assert (
        "warm-up on cpu: unet" in result.output and "measured" in _plan_rows(result.output)["segment/breast"]
    )


def test_plan_refuses_a_bad_step_times_file_naming_it(tmp_path):
    bad = tmp_path / "times.json"
    bad.write_text('{"cyclegan": -1}')
    result = runner.invoke(
        app, ["plan", "studies/smoke.yaml", "--step-times", str(bad), "--run", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert str(bad) in result.output and "cyclegan" in result.output


def test_plan_on_cuda_without_a_gpu_says_how_to_measure(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    result = runner.invoke(app, ["plan", "studies/paper.yaml", "--run", str(tmp_path)])
    assert result.exit_code == 2 and "--device cpu" in result.output and "--step-times" in result.output
