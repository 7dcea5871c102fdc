"""Sobol points (kernels/montecarlo/sobol.py) against scipy, the independent reference: the
unscrambled points bit for bit, skip-ahead against sequential generation, the scramble's net
properties, the inverse normal and the Brownian bridge's covariance."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from scipy.special import ndtri
from scipy.stats import qmc

from tessera.kernels.montecarlo import sobol


@njit
def _sequential(v, shift, start, n):
    """Points start .. start + n by one skip-ahead, then Gray-code steps."""
    out = np.empty((n, v.shape[0]), np.uint32)
    x = np.empty(v.shape[0], np.uint32)
    sobol.point(v, shift, start, x)
    for i in range(n):
        out[i] = x
        sobol.advance(v, start + i, x)
    return out


@njit
def _skipped(v, shift, start, n):
    """Points start .. start + n, each by skip-ahead on its own."""
    out = np.empty((n, v.shape[0]), np.uint32)
    for i in range(n):
        sobol.point(v, shift, start + i, out[i])
    return out


@njit
def _icdf(p):
    out = np.empty_like(p)
    for i in range(p.size):
        out[i] = sobol.normal_icdf(p[i])
    return out


@njit
def _both(words):
    one = np.empty(words.size)
    for i in range(words.size):
        one[i] = sobol.normal_icdf(sobol.to_uniform(words[i]))
    passes = np.empty(words.size)
    sobol.normals(words, passes, np.empty(words.size, np.int64), np.empty(words.size))
    return one, passes


@njit
def _bridge(plan, z):
    dw = np.empty(z.shape[0])
    sobol.bridge(plan, z, dw)
    return dw


@pytest.mark.parametrize("d", [1, 7, 252])
def test_unscrambled_points_equal_scipy_bit_for_bit(d: int) -> None:
    n = 2**16
    reference = qmc.Sobol(d, scramble=False, bits=32).random(n) * 2.0**32
    assert np.all(reference == np.floor(reference))  # scipy's 32-bit points are exact words
    v, zero = sobol.directions(d), np.zeros(d, np.uint32)
    assert np.array_equal(_sequential(v, zero, 0, n), reference.astype(np.uint32))
    assert np.array_equal(_skipped(v, zero, 0, n), reference.astype(np.uint32))


def test_default_30_bit_points_of_scipy_are_the_top_bits() -> None:
    v, zero = sobol.directions(252), np.zeros(252, np.uint32)
    ours = _skipped(v, zero, 0, 1024) >> np.uint32(2)
    assert np.array_equal(ours / 2.0**30, qmc.Sobol(252, scramble=False).random(1024))


def test_skip_ahead_equals_sequential_generation_far_into_the_sequence() -> None:
    v, shift = sobol.scrambled(12, seed=5, replicate=3)
    start = 2**40 + 12345
    assert np.array_equal(_sequential(v, shift, start, 5000), _skipped(v, shift, start, 5000))
    engine = qmc.Sobol(12, scramble=False, bits=32)
    engine.fast_forward(77777)
    reference = (engine.random(300) * 2.0**32).astype(np.uint32)
    v0 = sobol.directions(12)
    assert np.array_equal(_sequential(v0, np.zeros(12, np.uint32), 77777, 300), reference)


def test_a_scrambled_set_is_still_a_net() -> None:
    """The first 2^12 scrambled points: every coordinate puts one point in each interval of
    width 2^-12, and the first two coordinates (t = 0 in base 2) one in each 2^-6 x 2^-6
    box."""
    v, shift = sobol.scrambled(8, seed=42, replicate=0)
    x = _skipped(v, shift, 0, 2**12)
    for j in range(8):
        assert len(np.unique(x[:, j] >> np.uint32(20))) == 2**12
    boxes = (x[:, 0] >> np.uint32(26)).astype(np.int64) * 64 + (x[:, 1] >> np.uint32(26))
    assert len(np.unique(boxes)) == 2**12
    assert not np.array_equal(x, _skipped(sobol.directions(8), np.zeros(8, np.uint32), 0, 2**12))


def test_scrambles_depend_on_seed_and_replicate_but_not_on_the_dimension_count() -> None:
    v3, s3 = sobol.scrambled(3, 42, 0)
    v5, s5 = sobol.scrambled(5, 42, 0)
    assert np.array_equal(v5[:3], v3) and np.array_equal(s5[:3], s3)
    assert not np.array_equal(sobol.scrambled(3, 42, 1)[0], v3)
    assert not np.array_equal(sobol.scrambled(3, 43, 0)[0], v3)
    assert np.array_equal(sobol.scrambled(3, 42, 0)[0], v3)  # a pure function


def test_scrambled_points_are_unbiased_within_their_standard_error() -> None:
    """E[prod_j 12^(1/2) (u_j - 1/2) + 1] = 1 over 32 replicates of 1024 points in 6
    dimensions: the replicate means scatter around 1 as their standard error says."""
    means = []
    for r in range(32):
        v, shift = sobol.scrambled(6, 9, r)
        u = (_skipped(v, shift, 0, 1024).astype(np.float64) + 0.5) / 2.0**32
        means.append(np.prod(1.0 + np.sqrt(12.0) * (u - 0.5), axis=1).mean())
    mean, se = np.mean(means), np.std(means, ddof=1) / np.sqrt(len(means))
    assert se > 0
    assert abs(mean - 1.0) < 4 * se


def test_normal_quantile_matches_scipy_to_rounding() -> None:
    p = np.concatenate(
        [
            np.linspace(1e-6, 1 - 1e-6, 100_001),
            2.0 ** -np.arange(1, 60),
            1 - 2.0 ** -np.arange(1, 33),
            [1e-300, 1e-100, 1e-20, 0.5 * 2.0**-32],
        ]
    )
    reference = ndtri(p)
    ours = _icdf(p)
    rel = np.abs(ours - reference) / np.maximum(np.abs(reference), 1e-300)
    assert rel.max() < 5e-15


def test_the_vectorised_quantile_has_the_bits_of_the_scalar_one() -> None:
    rng = np.random.default_rng(1)
    edges = [0, 1, 2, 2**31 - 1, 2**31, 2**31 + 1, 2**32 - 2, 2**32 - 1]
    words = np.concatenate(
        [rng.integers(0, 2**32, 2**20, dtype=np.uint64), np.array(edges, np.uint64)]
    ).astype(np.uint32)
    one, passes = _both(words)
    assert np.array_equal(one.view(np.uint64), passes.view(np.uint64))
    tails = np.abs((words.astype(np.float64) + 0.5) / 2.0**32 - 0.5) > 0.425
    assert 0.14 < tails.mean() < 0.16  # both branches are exercised


@pytest.mark.parametrize("n", [1, 2, 3, 7, 50, 64, 252])
def test_the_bridge_gives_independent_unit_increments(n: int) -> None:
    """The bridge is linear, dw = M z; its increments are i.i.d. N(0, 1) exactly when
    M M^T = I."""
    plan = sobol.bridge_plan(n)
    assert sorted(plan[0].tolist()) == list(range(n))
    assert plan[0][0] == n - 1  # normal 0 sets the end point
    m = np.column_stack([_bridge(plan, np.eye(n)[k]) for k in range(n)])
    assert np.abs(m @ m.T - np.eye(n)).max() < 1e-12
    # the end point W(n) = sum of the increments is sqrt(n) z_0 alone
    assert np.allclose(m.sum(axis=0), np.sqrt(n) * np.eye(n)[0], atol=1e-12)


def test_bad_dimensions_are_refused() -> None:
    with pytest.raises(ValueError, match="1..21201"):
        sobol.directions(21202)
    with pytest.raises(ValueError, match="n >= 1"):
        sobol.bridge_plan(0)
    with pytest.raises(ValueError, match="replicate"):
        sobol.scrambled(3, 1, -1)
