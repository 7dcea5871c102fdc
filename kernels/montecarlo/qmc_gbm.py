"""Randomized quasi-Monte Carlo in ``montecarlo.gbm``: ``sampler = "sobol"``.

The job's ``paths`` are ``replicates`` (R) independent scramblings of one Sobol sequence of
dimension ``steps``, n = paths / R points each (:mod:`tessera.kernels.montecarlo.sobol`,
:mod:`tessera.kernels.montecarlo.qmc_cpu`). Output: one float64 array ``qmc_sums`` of shape
``(n_blocks, R, N_STATS)``, a row per block of ``BLOCK_SAMPLES`` points and replicate, with the
columns of :mod:`tessera.kernels.montecarlo.cpu`. Shard ``i`` owns the blocks
``bounds[i] .. bounds[i+1]``, the same range of point indices in every replicate, which it
reaches by skip-ahead; ``split_rows`` cuts axis 0.

``reduce``: per replicate, the mean payoff over its n points (columns added with ``math.fsum``);
the price is the mean of the R replicate means and its standard error their sample standard
deviation over sqrt(R): the replicates are independent and each is an unbiased estimate, so the
error is honest however much smaller than Monte Carlo's it is. With ``control_variate``, the
arithmetic Asian's replicate means are each adjusted by the geometric Asian's closed form with
one beta from all points pooled, and the error is again the replicates' spread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numba
import numpy as np

from tessera.kernels.base import Layout, ShardIO, ShardOutput
from tessera.kernels.montecarlo import closed_form, qmc, qmc_cpu
from tessera.kernels.montecarlo.cpu import (
    BLOCK_SAMPLES,
    COL_CROSS,
    N_STATS,
    col_sum,
    col_sumsq,
)
from tessera.kernels.montecarlo.gbm import DEFAULT_SHARD_WORK, _constants
from tessera.kernels.montecarlo.params import Params

ARRAY = qmc.ARRAY
# A Sobol path-step costs about seven Philox ones (an inverse normal per coordinate, the bridge,
# no SIMD lanes): an eighth of the Philox kernel's default shard size keeps shards at 1-2 s.
DEFAULT_QMC_SHARD_WORK = DEFAULT_SHARD_WORK // 8
# path-steps per second in-process, roughly (one shard, --executor local, 2 cores); for
# choosing the executor only (tessera.engine.choose), never for a result
WORK_PER_SECOND = 1.2e8


def replicates(params: Params) -> int:
    return params.sampler.replicates


def points(params: Params) -> int:
    """Points per replicate: paths / replicates (``parse`` checks that it divides)."""
    return params.paths // replicates(params)


def n_blocks(params: Params) -> int:
    """Blocks of ``BLOCK_SAMPLES`` points per replicate (rows of axis 0)."""
    return -(-points(params) // BLOCK_SAMPLES)


def _rows(params: Params, seed: int, start: int, stop: int) -> np.ndarray:
    v, shift = qmc.scrambles(params.steps, seed, replicates(params))
    return qmc_cpu.simulate_blocks(
        start,
        stop,
        points(params),
        np.array(_constants(params), dtype=np.float64),
        v,
        shift,
        params.sampler.brownian_bridge,
        qmc.bridge_plan(params.steps),
        "asian_arithmetic_call" in params.products,
    )


# --- the kernel methods -------------------------------------------------------------------------


def warm(params: Params) -> None:
    """Compile the kernel (or load Numba's cache) on no blocks."""
    _rows(params, 0, 0, 0)


def shards_for_size(params: Params, shard_size: int) -> int:
    """Shards when each holds about ``shard_size`` paths: whole blocks of every replicate
    (a block of all replicates is ``BLOCK_SAMPLES * replicates`` paths)."""
    return qmc.shards_for_size(points(params), replicates(params), BLOCK_SAMPLES, shard_size)


def default_shards(params: Params) -> int:
    """About ``DEFAULT_QMC_SHARD_WORK`` path-steps per shard, at most one shard per block."""
    work = params.paths * params.steps
    return qmc.default_shards(points(params), BLOCK_SAMPLES, work, DEFAULT_QMC_SHARD_WORK)


def layout(params: Params, n_shards: int) -> Layout:
    """One array ``qmc_sums`` (n_blocks, replicates, N_STATS) float64, axis 0 cut by
    ``split_rows``."""
    return qmc.layout(
        points(params), replicates(params), BLOCK_SAMPLES, N_STATS, n_shards, "path-steps",
        params.steps,
    )  # fmt: skip


def compute(
    params: Params, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
) -> ShardOutput:
    """Rows ``bounds[shard] .. bounds[shard+1]`` of ``qmc_sums`` and stats ``{"blocks",
    "paths", "path_steps"}``. Raises ``ValueError`` for a shard out of range, a layout of
    another job, a GPU device (Sobol runs on the CPU) and a seed outside [0, 2**64)."""
    expected = (n_blocks(params), replicates(params), N_STATS)
    qmc.check_layout(layout, shard, expected, "cpu" if io is None else io.device)
    start, stop = layout.region(shard)[ARRAY]
    rows = _rows(params, seed, start, stop)
    paths = qmc.block_points(points(params), BLOCK_SAMPLES, start, stop) * replicates(params)
    return ShardOutput(
        arrays={ARRAY: rows},
        stats={"blocks": stop - start, "paths": paths, "path_steps": paths * params.steps},
    )


def _answer(params: Params, rows: np.ndarray, n: int) -> dict[str, Any]:
    """The answer from ``rows`` (blocks, R, N_STATS) covering ``n`` points per replicate."""
    tot = qmc.totals(rows, n)
    products: dict[str, dict[str, Any]] = {}
    extra: dict[str, Any] = {}
    for name in params.products:
        if name == "asian_arithmetic_call" and params.control_variate:
            g = "asian_geometric_call"
            mu = closed_form.geometric_asian_call(
                params.spot,
                params.strike,
                params.rate,
                params.volatility,
                params.maturity,
                params.steps,
            )
            products[name], extra["control_variate"] = qmc.controlled(
                tot, n, col_sum(name), col_sum(g), col_sumsq(g), COL_CROSS, mu
            )
        else:
            products[name] = qmc.estimate(tot, n, col_sum(name))
    sampler = qmc.sampler_entry(rows.shape[1], n, params.sampler.brownian_bridge)
    return {"products": products, "paths": n * rows.shape[1], "sampler": sampler, **extra}


def reduce(
    params: Params, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
) -> dict[str, Any]:
    """Prices, standard errors (from the replicates) and 95% intervals of the requested
    products in the job's order, ``paths``, and ``sampler`` (``name``, ``replicates``,
    ``points_per_replicate``, ``brownian_bridge``). Raises ``ValueError`` when the sums do not
    cover every point of every replicate."""
    expected = (n_blocks(params), replicates(params), N_STATS)
    return _answer(params, qmc.whole_rows(arrays, expected), points(params))


def reduce_prefix(
    params: Params,
    seed: int,
    layout: Layout,
    arrays: Mapping[str, Any],
    shards: int,
    io: ShardIO | None = None,
) -> dict[str, Any]:
    """The answer of the first ``shards`` shards alone (``[job] target_stderr``): the first
    points of every replicate, ``reduce``'s keys."""
    rows = qmc.prefix_rows(layout, arrays, shards)
    if rows is None:
        return reduce(params, seed, arrays, io)
    n = qmc.block_points(points(params), BLOCK_SAMPLES, 0, rows.shape[0])
    return _answer(params, rows, n)


def shard_memory_bytes(params: Params, layout: Layout, shard: int) -> int:
    """Projected peak bytes of one shard beyond the interpreter and compiled code: per Numba
    thread a point's words, normals and increments (steps each); the replicates' direction
    numbers and shifts, twice (built and stacked); the shard's rows twice."""
    start, stop = layout.region(shard)[ARRAY]
    r = replicates(params)
    per_thread = params.steps * (4 + 8 + 8) + 11 * 8
    directions = 2 * r * params.steps * (32 + 1) * 4
    return (
        per_thread * numba.config.NUMBA_NUM_THREADS
        + directions
        + 2 * (stop - start) * r * N_STATS * 8
    )
