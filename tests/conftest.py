"""Shared fixtures: the smoke study and a run folder with its preprocess stage done once per session."""

import os
import shutil
from pathlib import Path

import pytest

from medtrans.shared.config import StudyConfig, load_study
from medtrans.shared.layout import RunLayout

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MEDTRANS_PROGRESS", "0")


@pytest.fixture(scope="session")
def smoke_study() -> StudyConfig:
    return load_study(ROOT / "studies" / "smoke.yaml")


@pytest.fixture(scope="session")
def smoke_preprocessed(tmp_path_factory, smoke_study) -> RunLayout:
    """A run folder of the smoke study with `preprocess` complete. Treat it as read-only:
    copy it (`copy_run`) before running stages that write into it."""
    from medtrans.stages.runner import run_stage

    layout = RunLayout(tmp_path_factory.mktemp("smoke-run"))
    run_stage("preprocess", smoke_study, layout)
    return layout


@pytest.fixture(scope="session")
def smoke_full_run(tmp_path_factory, smoke_study):
    """The smoke study through every stage once, uninterrupted (read-only): (layout, outcomes).
    The end-to-end and crash tests compare their runs with it."""
    from medtrans.stages.runner import run_study

    layout = RunLayout(tmp_path_factory.mktemp("smoke-full"))
    return layout, run_study(smoke_study, layout)


@pytest.fixture
def copy_run(tmp_path):
    """Copy a run folder into this test's tmp dir and return its layout."""

    def _copy(layout: RunLayout) -> RunLayout:
        dest = tmp_path / "run"
        shutil.copytree(layout.root, dest, symlinks=False)
        return RunLayout(dest)

    return _copy


# A pseudonym key for tests that run real-data adapters through preprocess (which refuses to
# run without one); never a key for real data.
TEST_PSEUDONYM_KEY = "medtrans-tests-only-not-a-secret"


@pytest.fixture(scope="module")
def pseudonym_key_env():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDTRANS_PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
        yield TEST_PSEUDONYM_KEY
