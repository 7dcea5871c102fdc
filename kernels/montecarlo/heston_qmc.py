"""Randomized quasi-Monte Carlo in ``montecarlo.heston``: ``sampler = "sobol"``.

A path takes 2 ``steps`` coordinates of a Sobol point (the array and the standard errors as
in :mod:`tessera.kernels.montecarlo.qmc`): coordinate ``2 i`` drives the log price's part
independent of the variance, coordinate ``2 i + 1`` the variance of step ``i``.

* The variance's coordinate is a uniform u_i used step by step: ``zv_i = Phi^-1(u_i)`` feeds
  QE's quadratic branch (and Euler), and u_i itself QE's exponential branch, as in Andersen's
  scheme (one uniform per variance step). It is not reordered by a bridge: the variance is not
  a Brownian motion, and QE needs the uniform of each step.
* The log price's normals ``zx`` are, with ``brownian_bridge`` (default), the increments of a
  Brownian bridge built from coordinates 0, 2, 4, ...: coordinate 0 sets the end of the
  independent driver, coordinate 2 its midpoint and so on; without it, ``zx_i`` is
  ``Phi^-1`` of coordinate ``2 i``.

The step arithmetic is :func:`heston_cpu.step_advance`'s (the same scheme constants); delta,
gamma and vega are the Philox kernel's per-path estimators (:func:`heston_cpu._finish`), so
each gets its error from the replicates too. Blocks of ``heston_cpu.BLOCK_SAMPLES`` points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from tessera.kernels.base import Layout, ShardIO, ShardOutput
from tessera.kernels.config import NJIT, NJIT_PARALLEL
from tessera.kernels.fastmath import exp
from tessera.kernels.montecarlo import qmc
from tessera.kernels.montecarlo.heston_cpu import (
    BLOCK_SAMPLES,
    N_ACC,
    N_EST,
    N_STATS,
    NO_MAX,
    _finish,
    col_sum,
    step_advance,
)
from tessera.kernels.montecarlo.heston_params import Params
from tessera.kernels.montecarlo.sobol import advance, bridge, normals, point, to_uniform

ARRAY = qmc.ARRAY
# A Sobol Heston path-step: two inverse normals and a branching QE step per scenario.
DEFAULT_QMC_SHARD_WORK = 2**26
# path-steps per second in-process, roughly (one shard, --executor local, 2 cores); for
# choosing the executor only (tessera.engine.choose), never for a result
WORK_PER_SECOND = 2.5e7


@njit(**NJIT)
def _block(b, n_points, steps, c, kc, flags, v, shift, use_bridge, plan, row):
    """Row of sums of block ``b`` of one replicate (direction numbers ``v``, shift ``shift``)."""
    scheme, asian, vega = flags[0], flags[2] != 0, flags[3] != 0
    n_scen = 3 if vega else 1
    v0s = (kc[1], kc[2], kc[3])
    first = b * BLOCK_SAMPLES
    last = min(first + BLOCK_SAMPLES, n_points)
    words = np.empty(2 * steps, dtype=np.uint32)
    z_all = np.empty(2 * steps)
    tails = np.empty(2 * steps, dtype=np.int64)
    scratch = np.empty(2 * steps)
    zx_raw = np.empty(steps)
    zx = np.empty(steps)
    zv = np.empty(steps)
    u = np.empty(steps)
    xs, vs = np.empty((6, 1)), np.empty((6, 1))
    ss, mx = np.empty((6, 1)), np.empty((6, 1))
    est = np.empty(N_EST)
    acc = np.zeros(N_ACC)
    if first < last:
        point(v, shift, first, words)
    for i in range(first, last):
        if i > first:
            advance(v, i - 1, words)
        normals(words, z_all, tails, scratch)
        for j in range(steps):
            zx_raw[j] = z_all[2 * j]
            zv[j] = z_all[2 * j + 1]
            u[j] = to_uniform(words[2 * j + 1])
        if use_bridge:
            bridge(plan, zx_raw, zx)
        else:
            zx[:] = zx_raw
        for scen in range(n_scen):
            x, var, s_sum, x_max = kc[0], v0s[scen], 0.0, NO_MAX
            for j in range(steps):
                x, var = step_advance(x, var, zv[j], zx[j], u[j], 1.0, c, scheme)
                x_max = max(x_max, x)
                if asian:
                    s_sum += exp(x)
            xs[scen, 0], vs[scen, 0], ss[scen, 0], mx[scen, 0] = x, var, s_sum, x_max
        _finish(0, xs, ss, mx, kc, False, vega, est)
        for k in range(N_EST):
            acc[2 * k] += est[k]
            acc[2 * k + 1] += est[k] * est[k]
    row[0] = float(max(last - first, 0))
    for k in range(N_ACC):
        row[1 + k] = acc[k]


@njit(**NJIT_PARALLEL)
def simulate_blocks(
    block_start, block_stop, n_points, steps, c, kc, flags, v, shift, use_bridge, plan
):
    """Rows of sums ``(block_stop - block_start, replicates, N_STATS)`` (the Philox kernel's
    columns); ``c``, ``kc``, ``flags`` as :func:`heston_cpu.simulate_blocks` takes them (its
    antithetic flag ignored), ``v``/``shift`` the replicates' scrambles of dimension
    2 ``steps``, ``plan`` a bridge plan of ``steps``. (block, replicate) pairs over threads."""
    n = block_stop - block_start
    replicates = v.shape[0]
    out = np.zeros((n, replicates, N_STATS))
    for t in prange(n * replicates):
        i, r = t // replicates, t % replicates
        _block(
            block_start + i, n_points, steps, c, kc, flags, v[r], shift[r], use_bridge, plan,
            out[i, r],
        )  # fmt: skip
    return out


def _replicates(params: Params) -> int:
    return params.sampler.replicates


def points(params: Params) -> int:
    return params.paths // _replicates(params)


def n_blocks(params: Params) -> int:
    return -(-points(params) // BLOCK_SAMPLES)


def _rows(params: Params, seed: int, start: int, stop: int) -> np.ndarray:
    from tessera.kernels.montecarlo.heston import kernel_args

    c, kc, flags, _ = kernel_args(params, seed)
    v, shift = qmc.scrambles(2 * params.steps, seed, _replicates(params))
    return simulate_blocks(
        start, stop, points(params), params.steps, c, kc, flags, v, shift,
        params.sampler.brownian_bridge, qmc.bridge_plan(params.steps),
    )  # fmt: skip


# --- the kernel methods (HestonKernel's, for a Sobol job) ---------------------------------------


def warm(params: Params) -> None:
    """Compile the kernel (or load Numba's cache) on no blocks."""
    _rows(params, 0, 0, 0)


def shards_for_size(params: Params, shard_size: int) -> int:
    """Shards when each holds about ``shard_size`` paths (whole blocks of every replicate)."""
    return qmc.shards_for_size(points(params), _replicates(params), BLOCK_SAMPLES, shard_size)


def default_shards(params: Params) -> int:
    """About ``DEFAULT_QMC_SHARD_WORK`` path-steps per shard, at most one per block."""
    work = params.paths * params.steps
    return qmc.default_shards(points(params), BLOCK_SAMPLES, work, DEFAULT_QMC_SHARD_WORK)


def layout(params: Params, n_shards: int) -> Layout:
    """``qmc_sums`` (n_blocks, replicates, N_STATS), axis 0 cut by ``split_rows``."""
    return qmc.layout(
        points(params), _replicates(params), BLOCK_SAMPLES, N_STATS, n_shards, "path-steps",
        params.steps,
    )  # fmt: skip


def compute(
    params: Params, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
) -> ShardOutput:
    """Rows ``bounds[shard] .. bounds[shard+1]`` of ``qmc_sums``, stats ``{"blocks",
    "paths", "path_steps"}``. Raises ``ValueError`` for a shard out of range, a layout of
    another job or a GPU device."""
    expected = (n_blocks(params), _replicates(params), N_STATS)
    qmc.check_layout(layout, shard, expected, "cpu" if io is None else io.device)
    start, stop = layout.region(shard)[ARRAY]
    rows = _rows(params, seed, start, stop)
    paths = qmc.block_points(points(params), BLOCK_SAMPLES, start, stop) * _replicates(params)
    return ShardOutput(
        arrays={ARRAY: rows},
        stats={"blocks": stop - start, "paths": paths, "path_steps": paths * params.steps},
    )


def _answer(params: Params, rows: np.ndarray, n: int) -> dict[str, Any]:
    tot = qmc.totals(rows, n)
    products: dict[str, dict[str, Any]] = {}
    for name in params.products:
        entry = qmc.estimate(tot, n, col_sum(name, "price"))
        if params.greeks:
            greeks = {}
            for greek in params.greeks:
                g = qmc.estimate(tot, n, col_sum(name, greek))
                greeks[greek] = {"value": g["price"], "stderr": g["stderr"]}
            entry["greeks"] = greeks
        products[name] = entry
    return {
        "products": products,
        "paths": n * rows.shape[1],
        "scheme": params.scheme,
        "sampler": qmc.sampler_entry(rows.shape[1], n, params.sampler.brownian_bridge),
    }


def reduce(
    params: Params, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
) -> dict[str, Any]:
    """Prices (and Greeks) with errors from the replicates, ``paths``, ``scheme`` and
    ``sampler``. Raises ``ValueError`` when the sums do not cover every point."""
    expected = (n_blocks(params), _replicates(params), N_STATS)
    return _answer(params, qmc.whole_rows(arrays, expected), points(params))


def reduce_prefix(
    params: Params,
    seed: int,
    layout: Layout,
    arrays: Mapping[str, Any],
    shards: int,
    io: ShardIO | None = None,
) -> dict[str, Any]:
    """The answer of the first ``shards`` shards: the first points of every replicate."""
    rows = qmc.prefix_rows(layout, arrays, shards)
    if rows is None:
        return reduce(params, seed, arrays, io)
    n = qmc.block_points(points(params), BLOCK_SAMPLES, 0, rows.shape[0])
    return _answer(params, rows, n)


def shard_memory_bytes(params: Params, layout: Layout, shard: int) -> int:
    """Per Numba thread a point's words and five step vectors; the scrambles twice; the
    shard's rows twice."""
    start, stop = layout.region(shard)[ARRAY]
    r = _replicates(params)
    per_thread = params.steps * (8 + 4 * 8) + (N_ACC + N_EST) * 8
    scrambles = 2 * r * 2 * params.steps * 33 * 4
    rows = 2 * (stop - start) * r * N_STATS * 8
    return per_thread * numba.config.NUMBA_NUM_THREADS + scrambles + rows
