"""The one list of stages and translators, shared/catalogue/stages.py, and everything that lists
them: the local runner, the translate config, the translator registry, compose.yaml and the
Dockerfile's targets (generated from it and committed), the Makefile and the docker scripts
(which read it). No Docker engine needed."""

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from test_compose import FAKE_DOCKER, _compose_binary

from medtrans.shared.catalogue import stages as catalogue
from medtrans.shared.config.base import Config
from medtrans.shared.config.translate import MODELS, TranslateConfig
from medtrans.stages import runner
from medtrans.stages.translate.registry import check_catalogue, registered

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "shared" / "catalogue" / "stages.py"
GENERATE = ROOT / "docker" / "scripts" / "generate.py"


def _generate_module():
    spec = importlib.util.spec_from_file_location("medtrans_generate", GENERATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _host_python(*args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    """Run with -I -S: no site-packages, so only the standard library can be imported."""
    return subprocess.run([python, "-I", "-S", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_committed_compose_and_dockerfile_targets_are_generated_from_the_catalogue():
    run = _host_python(str(GENERATE), "check")
    assert run.returncode == 0, run.stderr + "\n(run `make generate` and commit the result)"


def test_catalogue_scripts_need_only_the_standard_library_of_python_3_9():
    for path in (CATALOGUE, GENERATE):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))
    run = _host_python(str(CATALOGUE), "json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == json.loads(json.dumps(catalogue.as_json()))
    images = _host_python(str(CATALOGUE), "images").stdout.split()
    assert images == [i.name for i in catalogue.images()]
    bad = _host_python(str(CATALOGUE), "image", "nosuch", "extra")
    assert bad.returncode == 2 and "unknown image 'nosuch'" in bad.stderr and "cyclegan" in bad.stderr


def test_catalogue_runs_on_the_oldest_python_a_host_may_have():
    python = shutil.which("python3.9")
    answers = (
        python and subprocess.run([python, "-c", "pass"], capture_output=True, check=False).returncode == 0
    )
    if not answers:
        pytest.skip("no python3.9 runs on this machine (the syntax is checked against 3.9 above)")
    for script, arg in ((CATALOGUE, "json"), (GENERATE, "check")):
        run = _host_python(str(script), arg, python=python)
        assert run.returncode == 0, run.stderr


def test_runner_config_and_registry_agree_with_the_catalogue():
    assert runner.STAGES == catalogue.stage_names()
    for stage in runner.STAGES:
        assert callable(importlib.import_module(f"medtrans.stages.{stage}.stage").plan), stage
    assert MODELS == catalogue.translator_names()
    settings = {
        name
        for name, field in TranslateConfig.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, Config)
    }
    assert settings == set(MODELS), "each translator needs its settings field in TranslateConfig"
    config = TranslateConfig()
    assert all(isinstance(config.settings(m), Config) for m in MODELS)
    check_catalogue()
    assert set(registered()) == set(MODELS)


def test_a_study_naming_an_unknown_translator_is_told_the_known_ones():
    with pytest.raises(
        ValidationError, match=r"unknown translator\(s\) toygan; choose from cyclegan, maskgan"
    ):
        TranslateConfig(models=("cyclegan", "toygan"))


def test_catalogue_refuses_a_stage_that_reads_a_later_one(monkeypatch):
    late = catalogue.Stage("early", extra="report", gpu=False, after=("report",), description="reads report")
    monkeypatch.setattr(catalogue, "STAGES", (late, *catalogue.STAGES))
    with pytest.raises(ValueError, match="stage 'early' comes after"):
        catalogue.check()


def _code(path: Path) -> str:
    """A file without its comments and, for the Dockerfile, without the generated targets."""
    text = path.read_text()
    generate = _generate_module()
    if path.name == "Dockerfile" and generate.TARGETS_MARK in text:
        text = text[: text.index(generate.TARGETS_MARK)]
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_no_list_of_translators_written_by_hand_outside_the_catalogue():
    scripts = [
        ROOT / "Makefile",
        *sorted((ROOT / "docker").rglob("*.sh")),
        *(ROOT / "docker").rglob("Dockerfile"),
    ]
    scripts += [p for p in (ROOT / "docker" / "scripts").glob("*.py")]
    for path in scripts:
        code = _code(path)
        for name in MODELS:
            assert not re.search(rf"\b{name}\b", code), f"{path.relative_to(ROOT)} names {name!r}"
    pair = re.compile(r"""["']cyclegan["']\s*,\s*["']maskgan["']""")
    for path in [*(ROOT / "shared").rglob("*.py"), *(ROOT / "stages").rglob("*.py")]:
        if path != CATALOGUE:
            assert not pair.search(path.read_text()), f"{path.relative_to(ROOT)} lists the translators"


def test_makefile_stage_images_are_the_catalogues():
    run = subprocess.run(
        ["make", "--no-print-directory", "-f", "Makefile", "-f", "-", "print-images"],
        input="print-images:\n\t@echo $(STAGE_IMAGES)\n",
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [i.name for i in catalogue.images()]


def _with_toy_translator(monkeypatch):
    generate = _generate_module()
    cat = generate.load_catalogue()
    toy = cat.Translator("toygan", "trains a toy translator")
    monkeypatch.setattr(cat, "TRANSLATORS", (*cat.TRANSLATORS, toy))
    cat.check()
    return generate, cat


def test_a_new_translator_is_one_catalogue_entry_for_compose_and_the_dockerfile(monkeypatch, tmp_path):
    generate, cat = _with_toy_translator(monkeypatch)
    assert "toygan" in [i.name for i in cat.images()]
    compose = tmp_path / "compose.yaml"
    compose.write_text(generate.compose_text(cat, generate.project_version()))
    env = {**os.environ, "MEDTRANS_STUDY": str(ROOT / "studies" / "smoke.yaml"), "MEDTRANS_GPU_TOYGAN": "5"}
    services = {}
    for profile in ("cpu", "gpu"):
        out = subprocess.run(
            [
                str(_compose_binary()),
                "--file",
                str(compose),
                "--profile",
                profile,
                "config",
                "--format",
                "json",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        services.update(json.loads(out.stdout)["services"])
    assert set(services["toygan"]["depends_on"]) == {"preprocess"}
    assert (
        "toygan" in services["segment"]["depends_on"]
        and "toygan-gpu" in services["metrics-gpu"]["depends_on"]
    )
    devices = services["toygan-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["device_ids"] == ["5"] and devices[0]["capabilities"] == ["gpu"]
    assert services["toygan"]["image"].startswith("medtrans/toygan:")
    assert services["toygan"]["environment"] == {"MEDTRANS_IMAGE_ID": "", "MEDTRANS_SIGNING_KEY": ""}
    dockerfile = generate.dockerfile_text(cat, generate.DOCKERFILE.read_text())
    assert (
        'FROM stage AS toygan\nENTRYPOINT ["/opt/venv/bin/medtrans", "translate", "toygan"]\n' in dockerfile
    )
    assert dockerfile.count("FROM stage AS ") == len(cat.images())
    assert cat.image("toygan").extra == "translate" and cat.image("toygan").command == ("translate", "toygan")


def test_archive_saves_every_catalogue_image(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker").write_text(FAKE_DOCKER)
    (fake / "docker").chmod(0o755)
    (tmp_path / "wheelhouse").mkdir()
    (tmp_path / "wheelhouse" / "SHA256SUMS").write_text("")
    env = {
        **os.environ,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "DOCKER_LOG": str(tmp_path / "docker.log"),
        "FAIL_AT": "-",
        "PYTHON": sys.executable,
        "TAG": "9.9.9-cpu",
        "WHEELHOUSE": str(tmp_path / "wheelhouse"),
        "WEIGHTS": str(tmp_path / "weights"),
    }
    out = tmp_path / "archive"
    run = subprocess.run(
        ["bash", "docker/scripts/archive.sh", str(out)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    archived = [line.split("\t")[0] for line in (out / "images.tsv").read_text().splitlines()]
    stage_images = [f"medtrans/{i.name}:9.9.9-cpu" for i in catalogue.images()]
    assert archived[-len(stage_images) :] == stage_images and "medtrans/base:9.9.9-cpu" in archived
    save = next(
        line for line in (tmp_path / "docker.log").read_text().splitlines() if line.startswith("save")
    )
    assert all(image in save.split() for image in stage_images)


def test_compose_yaml_services_are_the_catalogue_images():
    """Without the compose binary: the committed file's services, GPU reservations and order."""
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    names = [i.name for i in catalogue.images()]
    assert list(services) == names + [n + "-gpu" for n in names]
    for img in catalogue.images():
        gpu = services[img.name + "-gpu"]
        assert ("deploy" in gpu) == img.gpu, img.name
        assert set(gpu.get("depends_on", {})) == {u + "-gpu" for u in img.after}
        assert set(services[img.name].get("depends_on", {})) == set(img.after)
