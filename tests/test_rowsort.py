"""Row sorting for SWD (rowsort.py): columnsort must equal np.sort exactly, whatever the values."""

import numpy as np
import pytest
import torch

from medtrans.stages.metrics import rowsort


@pytest.mark.parametrize("n", [513, 1000, 1024, 4096, 5120, 8000, 8192])
def test_columnsort_shape_is_valid_and_tight(n):
    r, s = rowsort.columnsort_shape(n, 4)
    assert r * s >= n and r <= 512 and r % s == 0 and r >= 2 * (s - 1) ** 2
    assert r * s - n < max(s, r * s // 16)  # little padding


def test_columnsort_shape_limits():
    assert rowsort.columnsort_shape(512, 4) is None  # one network sort
    assert rowsort.columnsort_shape(256, 8) is None
    assert rowsort.columnsort_shape(8192, 4) == (512, 16)
    assert rowsort.columnsort_shape(8193, 4) is None  # beyond columnsort with 512-element columns
    assert rowsort.columnsort_shape(3000, 8) is not None


def _rows(rng, n):
    """Rows that stress an oblivious sort: random, ties, 0/1 at every density (the 0-1
    principle), sorted, reversed, constant, organ-pipe, blocks, signed zeros, infinities."""
    out = [rng.standard_normal(n), rng.integers(0, 3, n), np.zeros(n), np.arange(n), np.arange(n)[::-1]]
    out += [(rng.random(n) < p).astype(float) for p in (0.001, 0.01, 0.1, 0.5, 0.9, 0.99)]
    out += [np.concatenate([np.arange(n // 2), np.arange(n - n // 2)[::-1]])]
    out += [np.repeat(rng.standard_normal(-(-n // 300)), 300)[:n]]
    out += [np.sort(rng.standard_normal(n))[np.argsort(np.arange(n) % 16, kind="stable")]]  # strided runs
    out += [np.where(rng.random(n) < 0.5, -0.0, 0.0), np.where(rng.random(n) < 0.1, np.inf, -np.inf)]
    return np.stack(out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [100, 512, 600, 2048, 3000, 8192])
def test_columnsort_equals_np_sort(dtype, n):
    rng = np.random.default_rng(n)
    x = _rows(rng, n).astype(dtype)
    expected = np.sort(x, axis=1)
    got = x.copy()
    rowsort.sort_block_(got, True)
    np.testing.assert_array_equal(got, expected)  # -0.0 == 0.0: signed zeros may swap places


def test_nan_is_sorted_last_like_np_sort():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1000)).astype(np.float32)
    x[0, rng.integers(0, 1000, 20)] = np.nan
    x[1, 5] = np.inf
    x[1, 7] = np.nan
    got = x.copy()
    rowsort.sort_block_(got, True)
    np.testing.assert_array_equal(got, np.sort(x, axis=1))


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_sort_rows_in_place_any_workers(workers):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((70, 8192)).astype(np.float32)
    expected = np.sort(x, axis=1)
    before = torch.get_num_threads()
    torch.set_num_threads(workers)
    try:
        with rowsort.own_threads():
            assert torch.get_num_threads() == 1 and rowsort.cpu_workers() == workers
            assert rowsort.sort_rows_(x) is x
        assert torch.get_num_threads() == workers
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(x, expected)


def test_sort_rows_refuses_views():
    with pytest.raises(ValueError, match="C-contiguous"):
        rowsort.sort_rows_(np.zeros((4, 10))[:, ::2])


def test_columnsort_sorts_many_zero_one_rows():
    """By the 0-1 principle an oblivious sort that sorts every 0/1 row sorts everything; these
    are random densities plus patterns aligned with the columns and with the transposed view."""
    rng = np.random.default_rng(2)
    r, s = 512, 16
    n = r * s
    i = np.arange(n)
    rows = [rng.random(n) < rng.random() for _ in range(300)]
    for t in range(1, s):
        rows += [(i % s) < t, (i // r) < t, (i % r) < t * r // s, ((i % s) < t) ^ ((i // r) % 2 == 1)]
    x = np.stack(rows).astype(np.float32)
    got = x.copy()
    rowsort.columnsort_(got, r, s)
    np.testing.assert_array_equal(got, np.sort(x, axis=1))
