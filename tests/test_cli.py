"""The command line: help lists every command; errors are one line with exit code 2."""

import os
import subprocess
import sys

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
