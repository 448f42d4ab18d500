"""The Inception/Frechet benchmark functions run and compare like with like (tiny sizes here)."""

import pytest
from bench.inception import bench_frechet, bench_inception_throughput


def test_bench_frechet_same_value():
    r = bench_frechet(d=96, n=40, repeats=1)
    assert r["method"] == "low-rank" and r["rel_diff"] < 1e-6
    assert (
        r["ours_s"] > 0
        and r["scipy_sqrtm_s"] > 0
        and r["speedup"] == pytest.approx(r["scipy_sqrtm_s"] / r["ours_s"])
    )


def test_bench_throughput_same_features():
    # 5 images in one batch: torch-fidelity runs 5 at once, ours micro-batches of 4 and 1
    r = bench_inception_throughput(n_images=5, batch_size=5, image_size=32, repeats=1, warmup=False)
    assert r["network_micro_batch"] == 4
    assert r["max_abs_feature_diff"] == 0.0  # same weights, same convention: the same features
    assert r["torch_fidelity_img_s"] > 0 and r["ours_pytorch_fid_convention_img_s"] > 0 and r["ratio"] > 0
    assert r["torch_fidelity_at_micro_batch_img_s"] > 0
