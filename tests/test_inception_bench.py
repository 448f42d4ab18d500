"""The Inception/Frechet benchmark functions run and compare like with like (tiny sizes here)."""

import pytest

from medtrans.stages.metrics.bench_inception import bench_frechet, bench_inception_throughput


def test_bench_frechet_same_value():
    r = bench_frechet(d=96, n=40, repeats=1)
    assert r["method"] == "low-rank" and r["rel_diff"] < 1e-6
    assert (
        r["ours_s"] > 0
        and r["scipy_sqrtm_s"] > 0
        and r["speedup"] == pytest.approx(r["scipy_sqrtm_s"] / r["ours_s"])
    )


def test_bench_throughput_same_features():
    r = bench_inception_throughput(n_images=1, batch_size=1, image_size=32, repeats=1, warmup=False)
    assert r["max_abs_feature_diff"] <= 1e-5  # same weights, same convention: same features
    assert r["torch_fidelity_img_s"] > 0 and r["ours_pytorch_fid_convention_img_s"] > 0 and r["ratio"] > 0
