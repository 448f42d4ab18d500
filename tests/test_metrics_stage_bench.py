"""`make bench`'s SWD and FRD benchmarks run and compare like with like (tiny sizes; no timing asserted)."""

import json

from bench import suite as bench


def test_swd_and_frd_benchmarks_and_report(tmp_path):
    s = bench.bench_swd(n_images=4, size=32, repeats=1)
    assert s["name"] == "swd" and s["levels"] == [32, 16]
    assert s["ours_s"] > 0 and s["numpy_reference_s"] > 0 and s["speedup"] > 0
    assert 0 < s["ours_value"] and 0 < s["numpy_reference_value"]
    f = bench.bench_frd_workers(n_images=3, size=32)
    assert f["same_features"] and f["speedup"] > 0
    md = bench.markdown([s, f], bench.machine_info("cpu"))
    assert "SWD, 4 images 32x32" in md and "FRD radiomics, 3 images" in md and "same features" in md
    out = tmp_path / "b.json"
    out.write_text(json.dumps({"results": [s, f]}))
    assert json.loads(out.read_text())["results"][0]["name"] == "swd"
