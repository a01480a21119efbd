"""Keyed random numbers: reproducible per jet, independent of batching, normally distributed."""

from __future__ import annotations

import numpy as np

from agcframe.analyses.agc_ttbar.analysis import jet_pt_resolution_factors
from agcframe.rng import keyed_normal


def _keys(n: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    return (
        np.ones(n, np.uint32),
        rng.integers(1, 5000, n).astype(np.uint32),
        rng.integers(1, 2**40, n).astype(np.uint64),
        rng.integers(0, 12, n),
    )


def test_value_depends_only_on_the_key() -> None:
    keys = _keys(10_000)
    whole = keyed_normal(3, *keys)
    order = np.random.default_rng(1).permutation(10_000)
    shuffled = keyed_normal(3, *(k[order] for k in keys))
    np.testing.assert_array_equal(shuffled, whole[order])
    pieces = np.concatenate([keyed_normal(3, *(k[i : i + 777] for k in keys)) for i in range(0, 10_000, 777)])
    np.testing.assert_array_equal(pieces, whole)


def test_seed_and_each_key_component_matter() -> None:
    run, lumi, event, index = (np.array([1]) for _ in range(4))
    base = keyed_normal(1, run, lumi, event, index)
    assert keyed_normal(2, run, lumi, event, index) != base
    for position in range(4):
        changed = [run, lumi, event, index]
        changed[position] = changed[position] + 1
        assert keyed_normal(1, *changed) != base


def test_standard_normal() -> None:
    z = keyed_normal(5, *_keys(200_000))
    assert abs(z.mean()) < 0.01
    assert abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.005


def test_resolution_factors() -> None:
    factors = jet_pt_resolution_factors(42, *_keys(100_000))
    assert factors.dtype == np.float32
    assert abs(factors.mean() - 1) < 0.001
    assert abs(factors.std() - 0.05) < 0.001
