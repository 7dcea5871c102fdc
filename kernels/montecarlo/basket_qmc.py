"""Randomized quasi-Monte Carlo in ``montecarlo.basket``: ``sampler = "sobol"``.

A path of n assets over ``steps`` steps takes n ``steps`` coordinates of a Sobol point (the
array and the standard errors as in :mod:`tessera.kernels.montecarlo.qmc`). With
``brownian_bridge`` (default) coordinate ``i n + a`` is normal ``i`` of asset a's bridge, so the
first n coordinates set every asset's end point, the next n their midpoints, and so on; without
it, coordinate ``j n + a`` is the independent normal of asset a at step j (the Philox stream's
order). Per step the increments are correlated by the Cholesky factor, ``e = L z``, and the log
prices move as in :mod:`tessera.kernels.montecarlo.basket_cpu`, with its payoffs and columns.
``control_variate`` adjusts the basket call by the geometric basket's closed form with one
beta from all points pooled, per replicate (:func:`qmc.controlled`).
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
from tessera.kernels.montecarlo.basket_cpu import (
    BLOCK_SAMPLES,
    COL_CROSS,
    N_STATS,
    col_sum,
    col_sumsq,
)
from tessera.kernels.montecarlo.basket_params import Params
from tessera.kernels.montecarlo.sobol import advance, bridge, normals, point

ARRAY = qmc.ARRAY
# An asset-path-step of a Sobol basket: an inverse normal, a bridge step and a row of L z.
DEFAULT_QMC_SHARD_WORK = 2**27
# asset-path-steps per second in-process, roughly (one shard, --executor local, 2 cores);
# for choosing the executor only (tessera.engine.choose), never for a result
WORK_PER_SECOND = 8e7
_N_ACC = N_STATS - 1


@njit(**NJIT)
def _block(b, n_points, steps, x0, drift, vol, weights, chol, kd, v, shift, use_bridge, plan, row):
    """Row of sums of block ``b`` of one replicate (direction numbers ``v``, shift ``shift``)."""
    n = x0.shape[0]
    strike, disc = kd[0], kd[1]
    first = b * BLOCK_SAMPLES
    last = min(first + BLOCK_SAMPLES, n_points)
    words = np.empty(n * steps, dtype=np.uint32)
    z_all = np.empty(n * steps)
    tails = np.empty(n * steps, dtype=np.int64)
    scratch = np.empty(n * steps)
    z = np.empty(steps)
    dw = np.empty((n, steps))
    x = np.empty(n)
    acc = np.zeros(_N_ACC)
    if first < last:
        point(v, shift, first, words)
    for i in range(first, last):
        if i > first:
            advance(v, i - 1, words)
        normals(words, z_all, tails, scratch)
        for a in range(n):
            for k in range(steps):
                z[k] = z_all[k * n + a]
            if use_bridge:
                bridge(plan, z, dw[a])
            else:
                dw[a, :] = z
        for a in range(n):
            x[a] = x0[a]
        for j in range(steps):
            for a in range(n):
                e = chol[a, 0] * dw[0, j]
                for c in range(1, a + 1):
                    e = e + chol[a, c] * dw[c, j]
                x[a] = x[a] + (drift[a] + vol[a] * e)
        s0 = exp(x[0])
        s1 = s0
        basket = weights[0] * s0
        log_g = weights[0] * x[0]
        for a in range(1, n):
            st = exp(x[a])
            if a == 1:
                s1 = st
            basket = basket + weights[a] * st
            log_g = log_g + weights[a] * x[a]
        call = disc * max(basket - strike, 0.0)
        put = disc * max(strike - basket, 0.0)
        geo = disc * max(exp(log_g) - strike, 0.0)
        exchange = disc * max(s0 - s1, 0.0) if n >= 2 else 0.0
        acc[0] += call
        acc[1] += call * call
        acc[2] += put
        acc[3] += put * put
        acc[4] += geo
        acc[5] += geo * geo
        acc[6] += exchange
        acc[7] += exchange * exchange
        acc[8] += call * geo
    row[0] = float(max(last - first, 0))
    for k in range(_N_ACC):
        row[1 + k] = acc[k]


@njit(**NJIT_PARALLEL)
def simulate_blocks(
    block_start, block_stop, n_points, steps, x0, drift, vol, weights, chol, kd, v, shift,
    use_bridge, plan,
):  # fmt: skip
    """Rows of sums ``(block_stop - block_start, replicates, N_STATS)`` (the Philox kernel's
    columns); ``x0 .. chol`` as :func:`basket_cpu.simulate_blocks` takes them, ``kd`` =
    [strike, discount factor], ``v``/``shift`` the replicates' scrambles of dimension
    n ``steps``, ``plan`` a bridge plan of ``steps``. (block, replicate) pairs over threads."""
    m = block_stop - block_start
    replicates = v.shape[0]
    out = np.zeros((m, replicates, N_STATS))
    for t in prange(m * replicates):
        i, r = t // replicates, t % replicates
        _block(
            block_start + i, n_points, steps, x0, drift, vol, weights, chol, kd, v[r], shift[r],
            use_bridge, plan, out[i, r],
        )  # fmt: skip
    return out


def _replicates(params: Params) -> int:
    return params.sampler.replicates


def points(params: Params) -> int:
    return params.paths // _replicates(params)


def n_blocks(params: Params) -> int:
    return -(-points(params) // BLOCK_SAMPLES)


def _rows(params: Params, seed: int, start: int, stop: int) -> np.ndarray:
    from tessera.kernels.montecarlo.basket import kernel_args

    x0, drift, vol, weights, chol, kd = kernel_args(params)
    v, shift = qmc.scrambles(params.assets * params.steps, seed, _replicates(params))
    return simulate_blocks(
        start, stop, points(params), params.steps, x0, drift, vol, weights, chol, kd, v, shift,
        params.sampler.brownian_bridge, qmc.bridge_plan(params.steps),
    )  # fmt: skip


def _work(params: Params, start: int, stop: int) -> int:
    paths = qmc.block_points(points(params), BLOCK_SAMPLES, start, stop) * _replicates(params)
    return paths * params.steps * params.assets


# --- the kernel methods (BasketKernel's, for a Sobol job) ---------------------------------------


def warm(params: Params) -> None:
    """Compile the kernel (or load Numba's cache) on no blocks."""
    _rows(params, 0, 0, 0)


def shards_for_size(params: Params, shard_size: int) -> int:
    """Shards when each holds about ``shard_size`` paths (whole blocks of every replicate)."""
    return qmc.shards_for_size(points(params), _replicates(params), BLOCK_SAMPLES, shard_size)


def default_shards(params: Params) -> int:
    """About ``DEFAULT_QMC_SHARD_WORK`` asset-path-steps per shard, at most one per block."""
    work = params.paths * params.steps * params.assets
    return qmc.default_shards(points(params), BLOCK_SAMPLES, work, DEFAULT_QMC_SHARD_WORK)


def layout(params: Params, n_shards: int) -> Layout:
    """``qmc_sums`` (n_blocks, replicates, N_STATS), axis 0 cut by ``split_rows``."""
    return qmc.layout(
        points(params), _replicates(params), BLOCK_SAMPLES, N_STATS, n_shards,
        "asset-path-steps", params.steps * params.assets,
    )  # fmt: skip


def compute(
    params: Params, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
) -> ShardOutput:
    """Rows ``bounds[shard] .. bounds[shard+1]`` of ``qmc_sums``, stats ``{"blocks",
    "paths", "asset_path_steps"}``. Raises ``ValueError`` for a shard out of range, a layout
    of another job or a GPU device."""
    expected = (n_blocks(params), _replicates(params), N_STATS)
    qmc.check_layout(layout, shard, expected, "cpu" if io is None else io.device)
    start, stop = layout.region(shard)[ARRAY]
    rows = _rows(params, seed, start, stop)
    paths = qmc.block_points(points(params), BLOCK_SAMPLES, start, stop) * _replicates(params)
    return ShardOutput(
        arrays={ARRAY: rows},
        stats={
            "blocks": stop - start,
            "paths": paths,
            "asset_path_steps": _work(params, start, stop),
        },
    )


def _answer(params: Params, rows: np.ndarray, n: int) -> dict[str, Any]:
    from tessera.kernels.montecarlo.basket import geometric_reference

    tot = qmc.totals(rows, n)
    products: dict[str, dict[str, Any]] = {}
    extra: dict[str, Any] = {}
    for name in params.products:
        if name == "basket_call" and params.control_variate:
            g = "geometric_basket_call"
            products[name], extra["control_variate"] = qmc.controlled(
                tot, n, col_sum(name), col_sum(g), col_sumsq(g), COL_CROSS,
                geometric_reference(params),
            )  # fmt: skip
        else:
            products[name] = qmc.estimate(tot, n, col_sum(name))
    return {
        "products": products,
        "paths": n * rows.shape[1],
        "assets": params.assets,
        "sampler": qmc.sampler_entry(rows.shape[1], n, params.sampler.brownian_bridge),
        **extra,
    }


def reduce(
    params: Params, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
) -> dict[str, Any]:
    """Prices with errors from the replicates, ``paths``, ``assets``, ``sampler`` (and
    ``control_variate``). Raises ``ValueError`` when the sums do not cover every point."""
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
    """Per Numba thread a point's words, the n x steps increments and a step vector; the
    scrambles twice; the shard's rows twice."""
    start, stop = layout.region(shard)[ARRAY]
    r, d = _replicates(params), params.assets * params.steps
    per_thread = d * (4 + 8) + params.steps * 8 + (params.assets + _N_ACC) * 8
    rows = 2 * (stop - start) * r * N_STATS * 8
    return per_thread * numba.config.NUMBA_NUM_THREADS + 2 * r * d * 33 * 4 + rows
