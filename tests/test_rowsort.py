"""Row sorting for SWD (rowsort.py): the radix sort must equal np.sort exactly, whatever the values."""

import numpy as np
import pytest
import torch

from medtrans.stages.metrics import rowsort


def _rows(rng, n):
    """Rows that stress a sort: random, ties, 0/1 at every density, sorted, reversed, constant,
    organ-pipe, blocks, signed zeros, infinities, subnormals, the extremes of float32, and values
    whose keys differ only in one radix digit."""
    out = [rng.standard_normal(n), rng.integers(0, 3, n), np.zeros(n), np.arange(n), np.arange(n)[::-1]]
    out += [(rng.random(n) < p).astype(float) for p in (0.001, 0.01, 0.1, 0.5, 0.9, 0.99)]
    out += [np.concatenate([np.arange(n // 2), np.arange(n - n // 2)[::-1]])]
    out += [np.repeat(rng.standard_normal(-(-n // 300)), 300)[:n]]
    out += [np.sort(rng.standard_normal(n))[np.argsort(np.arange(n) % 16, kind="stable")]]  # strided runs
    out += [np.where(rng.random(n) < 0.5, -0.0, 0.0), np.where(rng.random(n) < 0.1, np.inf, -np.inf)]
    tiny, big = np.finfo(np.float32).smallest_subnormal, np.finfo(np.float32).max
    out += [rng.choice([tiny, -tiny, 0.0, big, -big, 1.0, -1.0], n)]
    out += [(rng.integers(0, 2**11, n) * 2.0**-20 + 1.0) * rng.choice([-1.0, 1.0], n)]  # low digit only
    out += [rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n)]  # every exponent
    return np.stack(out)


@pytest.mark.parametrize("n", [1, 2, 100, 1024, 3000, 8192])
def test_radix_sort_equals_np_sort(n):
    rng = np.random.default_rng(n)
    x = _rows(rng, n).astype(np.float32)
    expected = np.sort(x, axis=1)
    got = x.copy()
    rowsort.radix_sort_(got)
    np.testing.assert_array_equal(got, expected)  # -0.0 == 0.0: signed zeros may swap places
    for row in got:  # here -0.0 always sorts before +0.0
        negative = np.signbit(row[row == 0])
        assert not np.any(negative[1:] & ~negative[:-1])


def test_nan_is_sorted_last_like_np_sort():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2000)).astype(np.float32)
    x[0, rng.integers(0, 2000, 20)] = np.nan
    x[1, 5] = np.inf
    x[1, 7] = -np.nan  # a NaN with the sign bit set
    x[2, 9] = np.nan
    got = x.copy()
    rowsort.radix_sort_(got)
    np.testing.assert_array_equal(got, np.sort(x, axis=1))  # NaN compares equal to NaN here


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_radix", [True, False, None])
def test_sort_block_equals_np_sort_whichever_way(dtype, use_radix):
    x = _rows(np.random.default_rng(5), 4096).astype(dtype)
    got = x.copy()
    rowsort.sort_block_(got, use_radix)
    np.testing.assert_array_equal(got, np.sort(x, axis=1))


def test_radix_sort_refuses_what_it_cannot_sort():
    for bad in (np.zeros((2, 8)), np.zeros(8, np.float32), np.zeros((4, 10), np.float32)[:, ::2]):
        with pytest.raises(ValueError, match="float32"):
            rowsort.radix_sort_(bad)


def test_radix_pays_is_a_timed_choice():
    assert isinstance(rowsort.radix_pays(), bool)


def test_abs_diff_row_sums_equals_numpy():
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal((7, 3000)).astype(np.float32) for _ in range(2))
    expected = np.abs(a.astype(np.float64) - b.astype(np.float64)).sum(axis=1)
    np.testing.assert_allclose(rowsort.abs_diff_row_sums(a, b), expected, rtol=1e-6)
    assert not rowsort.abs_diff_row_sums(a, a.copy()).any()  # identical rows: exactly 0
    with pytest.raises(ValueError, match="one shape"):
        rowsort.abs_diff_row_sums(a, b[:, :10])


@pytest.mark.parametrize("use_radix", [True, False])
def test_sort_with_distance_to_sorted_rows(use_radix):
    """SWD's fused step: sort the rows and sum |sorted row - other sorted row| per row."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 4096)).astype(np.float32)
    other = np.sort(rng.standard_normal((9, 4096)).astype(np.float32), axis=1)
    expected = np.abs(np.sort(x, axis=1).astype(np.float64) - other).sum(axis=1)
    got = x.copy()
    sums = rowsort.sort_block_(got, use_radix, against=other)
    np.testing.assert_array_equal(got, np.sort(x, axis=1))
    np.testing.assert_allclose(sums, expected, rtol=1e-12)
    assert not rowsort.sort_block_(other.copy(), use_radix, against=other).any()  # same rows: exactly 0
    with pytest.raises(ValueError, match="shape"):
        rowsort.radix_sort_(x.copy(), against=other[:, :100].copy())


def test_without_numba_the_same_values(monkeypatch):
    """Where numba is missing, SWD warns and sorts with np.sort: the same numbers."""
    monkeypatch.setattr(rowsort, "numba_available", lambda: False)
    rowsort.radix_pays.cache_clear()
    try:
        x = _rows(np.random.default_rng(3), 8192).astype(np.float32)
        got = x.copy()
        rowsort.sort_block_(got)
        np.testing.assert_array_equal(got, np.sort(x, axis=1))
        assert rowsort.radix_pays() is False
    finally:
        rowsort.radix_pays.cache_clear()


def test_numba_missing_warns_with_the_fix(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_numba(name, *args, **kwargs):
        if name == "numba":
            raise ImportError("No module named 'numba'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_numba)
    rowsort.numba_available.cache_clear()
    try:
        with pytest.warns(UserWarning, match=r"medtrans\[metrics\]"):
            assert rowsort.numba_available() is False
    finally:
        monkeypatch.undo()
        rowsort.numba_available.cache_clear()
    assert rowsort.numba_available() is True


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


@pytest.mark.parametrize("workers", [1, 2])
def test_in_background_returns_the_result(workers):
    before = torch.get_num_threads()
    torch.set_num_threads(workers)
    try:
        with rowsort.own_threads():
            job = rowsort.in_background(lambda a, b: (a + b, torch.get_num_threads()), 2, 3)
            assert rowsort.parallel_map(lambda v: v * 2, [1, 2, 3]) == [2, 4, 6]  # overlaps the job
            assert job.result() == (5, 1)  # torch single-threaded inside, as in parallel_map
    finally:
        torch.set_num_threads(before)
