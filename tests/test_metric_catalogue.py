"""The metric catalogue: one declaration per metric, read by config validation, scoring,
`medtrans compare` and the report; a toy metric registered once shows up in all of them."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import toy_metric
from metrics_helpers import phantoms
from typer.testing import CliRunner

from medtrans.shared.catalogue import metrics as catalogue
from medtrans.shared.config.metrics import MetricsConfig
from medtrans.shared.imageio import write_png
from medtrans.stages.cli import app
from medtrans.stages.metrics.images import load_folder
from medtrans.stages.report import correlate, tables
from medtrans.stages.report.analysis import metric_order


@pytest.fixture
def toy():
    catalogue.register(toy_metric.SPEC)
    try:
        yield toy_metric.SPEC
    finally:
        catalogue.unregister("toy")


def test_builtin_metrics_rows_and_directions():
    assert catalogue.names() == ("fid", "kid", "is", "swd", "frd", "nmi", "mind", "ngf")
    assert catalogue.needing_weights() == ("fid", "kid", "is")
    assert catalogue.using("pairs") == ("nmi", "mind", "ngf") and catalogue.using("pixels") == ("swd",)
    assert catalogue.get("kid").rows() == ["kid", "kid_std"]
    assert catalogue.get("swd").rows((64, 32)) == ["swd", "swd_64", "swd_32"]
    assert catalogue.get("frd").rows((64,)) == ["frd", "frd_log"]
    assert [catalogue.direction(r) for r in ("fid", "is_std", "is", "swd_32", "frd_log")] == [
        -1,
        1,
        1,
        -1,
        -1,
    ]
    assert [catalogue.direction(r) for r in ("nmi", "mind", "ngf")] == [1, -1, 1]
    assert catalogue.is_spread("kid_std") and not catalogue.is_spread("frd_log")
    assert catalogue.label("swd_32") == "SWD 32" and catalogue.label("frd_log") == "FRD log"
    assert catalogue.label("other_x") == "OTHER x"  # a row no metric declares


def test_one_declaration_per_metric():
    with pytest.raises(ValueError, match="registered twice"):
        catalogue.register(catalogue.get("fid"))
    with pytest.raises(ValueError, match="unknown metric 'nope'; choose from fid, kid"):
        catalogue.get("nope")


def test_catalogue_imports_without_torch():
    code = "import sys, medtrans.shared.catalogue.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_config_validates_against_the_catalogue(toy):
    assert MetricsConfig().metrics == ("fid", "kid", "is", "swd", "frd", "nmi", "mind", "ngf")  # built-ins
    assert MetricsConfig(metrics=("swd", "toy")).metrics == ("swd", "toy")
    with pytest.raises(ValueError, match="unknown metric 'bogus'"):
        MetricsConfig(metrics=("bogus",))


def test_toy_metric_in_compare_output(toy, tmp_path):
    real, fake = tmp_path / "real", tmp_path / "fake"
    for folder, images in ((real, phantoms(5, 1, size=32)), (fake, phantoms(5, 2, size=32, noise=0.05))):
        folder.mkdir()
        for i, img in enumerate(images):
            write_png(folder / f"{i}.png", img)
    out = tmp_path / "r.json"
    args = ["compare", str(real), str(fake), "--metrics", "toy,swd", "--bootstrap", "4", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "toy_std" in result.output
    rows = {r["metric"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == ["toy", "toy_std", "swd", "swd_32", "swd_16"]
    want, spread = toy_metric.brightness_gap(load_folder(real).images, load_folder(fake).images)
    assert rows["toy"]["value"] == pytest.approx(want, rel=1e-12) and rows["toy_std"]["value"] == spread
    assert rows["toy"]["ci_low"] is not None and rows["toy"]["network_sha256"] == ""


class _Task:
    name, source_domain, target_domain, structures = "breast", "GE", "Siemens", ["breast"]


def test_toy_metric_in_the_report_tables(toy):
    assert metric_order(["swd_32", "toy", "toy_std", "fid"]) == ["fid", "toy", "swd_32", "toy_std"]
    assert correlate.expected_sign("toy", "dice") == 1 and not correlate.is_reportable("toy_std")
    results = pd.DataFrame(
        {
            "set": ["cyclegan", "unsb", "target", "source"],
            "role": ["translator", "translator", "upper", "lower"],
            "dice_breast": [0.8, 0.7, 0.9, 0.3],
            "hd95_mean": [3.0, 4.0, 2.0, 9.0],
            "fid": [50.0, 60.0, 5.0, 200.0],
            "toy": [-1.0, -3.0, -0.1, -9.0],
        }
    )
    table = tables.results_display(_Task(), results)
    assert "Toy ↑" in table.headers and "FID ↓" in table.headers
    col = table.headers.index("Toy ↑") - 1
    best = [label for label, cells in table.rows if cells[col].best]
    assert best == ["cyclegan"]  # higher is better: -1 beats -3
    assert np.isfinite(results["toy"]).all()
