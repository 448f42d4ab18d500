"""Study files: the shipped ones validate; a bad one is one line naming the field."""

from pathlib import Path

import pytest
import yaml

from medtrans.shared.config import StudyError, load_study

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["demo", "paper", "smoke"])
def test_shipped_studies_validate(name):
    study = load_study(ROOT / "studies" / f"{name}.yaml")
    assert study.name == name
    assert set(study.tasks) == {"breast", "spine"}


def _write(tmp_path, mutate) -> Path:
    data = yaml.safe_load((ROOT / "studies" / "smoke.yaml").read_text())
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _error(path) -> str:
    with pytest.raises(StudyError) as info:
        load_study(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_key_names_the_field(tmp_path):
    path = _write(tmp_path, lambda d: d["segment"].update(learning_rate=0.1))
    message = _error(path)
    assert "segment.learning_rate" in message and "unknown key" in message


def test_wrong_type_names_the_field_and_allowed_values(tmp_path):
    path = _write(tmp_path, lambda d: d["tasks"]["breast"].update(plane="oblique"))
    message = _error(path)
    assert "tasks.breast.plane" in message
    assert "axial" in message and "sagittal" in message


def test_wrong_number_type(tmp_path):
    path = _write(tmp_path, lambda d: d["segment"].update(batch_size="eight"))
    assert "segment.batch_size" in _error(path)


def test_missing_tasks(tmp_path):
    path = _write(tmp_path, lambda d: d.pop("tasks"))
    message = _error(path)
    assert "tasks" in message and "missing" in message


def test_empty_tasks(tmp_path):
    path = _write(tmp_path, lambda d: d.update(tasks={}))
    assert "tasks" in _error(path)


def test_bad_data_kind_lists_allowed(tmp_path):
    path = _write(tmp_path, lambda d: d["tasks"]["spine"]["data"].update(kind="pacs"))
    message = _error(path)
    assert "tasks.spine.data" in message and "phantom" in message


def test_not_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("name: [unclosed\n")
    assert "not valid YAML" in _error(bad)
    assert "no such study file" in _error(tmp_path / "nope.yaml")
