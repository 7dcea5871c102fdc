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

import functools
import math
from collections.abc import Mapping
from typing import Any

import numba
import numpy as np

from tessera.kernels.base import ArraySpec, Layout, ParamError, ShardIO, ShardOutput, split_rows
from tessera.kernels.montecarlo import closed_form, qmc_cpu, sobol
from tessera.kernels.montecarlo.cpu import (
    BLOCK_SAMPLES,
    COL_COUNT,
    COL_CROSS,
    N_STATS,
    col_sum,
    col_sumsq,
)
from tessera.kernels.montecarlo.gbm import DEFAULT_SHARD_WORK, Z95, _constants
from tessera.kernels.montecarlo.params import Params

ARRAY = "qmc_sums"
# A Sobol path-step costs about seven Philox ones (an inverse normal per coordinate, the bridge,
# no SIMD lanes): an eighth of the Philox kernel's default shard size keeps shards at 1-2 s.
DEFAULT_QMC_SHARD_WORK = DEFAULT_SHARD_WORK // 8


def replicates(params: Params) -> int:
    return params.sampler.replicates


def points(params: Params) -> int:
    """Points per replicate: paths / replicates (``parse`` checks that it divides)."""
    return params.paths // replicates(params)


def n_blocks(params: Params) -> int:
    """Blocks of ``BLOCK_SAMPLES`` points per replicate (rows of axis 0)."""
    return -(-points(params) // BLOCK_SAMPLES)


def _block_points(params: Params, start: int, stop: int) -> int:
    """Points per replicate in blocks ``start .. stop`` (the last block may be partial)."""
    return max(min(stop * BLOCK_SAMPLES, points(params)) - start * BLOCK_SAMPLES, 0)


@functools.lru_cache(maxsize=4)
def _scrambles(steps: int, seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The scrambled direction numbers ``(count, steps, 32)`` and shifts ``(count, steps)``."""
    pairs = [sobol.scrambled(steps, seed, r) for r in range(count)]
    v = np.ascontiguousarray(np.stack([p[0] for p in pairs]))
    shift = np.ascontiguousarray(np.stack([p[1] for p in pairs]))
    v.setflags(write=False)
    shift.setflags(write=False)
    return v, shift


@functools.lru_cache(maxsize=8)
def _plan(steps: int) -> tuple[np.ndarray, ...]:
    return sobol.bridge_plan(steps)


def _rows(params: Params, seed: int, start: int, stop: int) -> np.ndarray:
    v, shift = _scrambles(params.steps, seed, replicates(params))
    return qmc_cpu.simulate_blocks(
        start,
        stop,
        points(params),
        np.array(_constants(params), dtype=np.float64),
        v,
        shift,
        params.sampler.brownian_bridge,
        _plan(params.steps),
        "asian_arithmetic_call" in params.products,
    )


# --- the kernel methods -------------------------------------------------------------------------


def warm(params: Params) -> None:
    """Compile the kernel (or load Numba's cache) on no blocks."""
    _rows(params, 0, 0, 0)


def shards_for_size(params: Params, shard_size: int) -> int:
    """Shards when each holds about ``shard_size`` paths: whole blocks of every replicate
    (a block of all replicates is ``BLOCK_SAMPLES * replicates`` paths)."""
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ParamError("shard_size", f"expected a number of paths >= 1, got {shard_size!r}")
    per_replicate = max(shard_size // replicates(params), 1)
    return -(-n_blocks(params) // -(-per_replicate // BLOCK_SAMPLES))


def default_shards(params: Params) -> int:
    """About ``DEFAULT_QMC_SHARD_WORK`` path-steps per shard, at most one shard per block."""
    work = params.paths * params.steps
    return max(1, min(n_blocks(params), -(-work // DEFAULT_QMC_SHARD_WORK)))


def layout(params: Params, n_shards: int) -> Layout:
    """One array ``qmc_sums`` (n_blocks, replicates, N_STATS) float64, axis 0 cut by
    ``split_rows``."""
    rows, r = n_blocks(params), replicates(params)
    chunk, bounds = split_rows(rows, n_shards)
    work = tuple(
        _block_points(params, a, b) * r * params.steps for a, b in zip(bounds[:-1], bounds[1:])
    )
    return Layout(
        arrays=(ArraySpec(ARRAY, (rows, r, N_STATS), "float64", (chunk, r, N_STATS)),),
        bounds=(bounds,),
        shard_work=work,
        work_unit="path-steps",
        regular=True,
    )


def compute(
    params: Params, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
) -> ShardOutput:
    """Rows ``bounds[shard] .. bounds[shard+1]`` of ``qmc_sums`` and stats ``{"blocks",
    "paths", "path_steps"}``. Raises ``ValueError`` for a shard out of range, a layout of
    another job, a GPU device (Sobol runs on the CPU) and a seed outside [0, 2**64)."""
    if not 0 <= shard < layout.n_shards:
        raise ValueError(f"shard {shard} is out of range for {layout.n_shards} shards")
    expected = (n_blocks(params), replicates(params), N_STATS)
    spec = layout.arrays[0]
    if spec.name != ARRAY or spec.shape != expected:
        raise ValueError(
            f"layout array {spec.name} {spec.shape} does not match these params "
            f"({ARRAY} {expected})"
        )
    if io is not None and io.device != "cpu":
        raise ValueError(
            'sampler = "sobol" runs on the CPU only (the CUDA twin draws Philox normals); '
            'set resources.gpus = 0 or sampler = "philox"'
        )
    start, stop = layout.region(shard)[ARRAY]
    rows = _rows(params, seed, start, stop)
    paths = _block_points(params, start, stop) * replicates(params)
    return ShardOutput(
        arrays={ARRAY: rows},
        stats={"blocks": stop - start, "paths": paths, "path_steps": paths * params.steps},
    )


def _spread(means: list[float]) -> tuple[float, float]:
    """Mean of the replicate estimates and its standard error (their spread / sqrt(R))."""
    r = len(means)
    price = math.fsum(means) / r
    var = math.fsum((m - price) ** 2 for m in means) / (r - 1)
    return price, math.sqrt(var / r)


def _answer(params: Params, rows: np.ndarray, n: int) -> dict[str, Any]:
    """The answer from ``rows`` (blocks, R, N_STATS) covering ``n`` points per replicate."""
    r = rows.shape[1]
    tot = [[math.fsum(rows[:, q, c].tolist()) for c in range(N_STATS)] for q in range(r)]
    for q in range(r):
        if tot[q][COL_COUNT] != n:
            raise ValueError(
                f"{ARRAY} covers {tot[q][COL_COUNT]:.0f} points of replicate {q}, expected {n}"
            )
    products: dict[str, dict[str, Any]] = {}
    extra: dict[str, Any] = {}
    for name in params.products:
        means = [tot[q][col_sum(name)] / n for q in range(r)]
        price, se = _spread(means)
        if name == "asian_arithmetic_call" and params.control_variate:
            price, se, extra["control_variate"] = _controlled(params, tot, n, se)
        products[name] = {
            "price": price,
            "stderr": se,
            "ci95": [price - Z95 * se, price + Z95 * se],
        }
    sampler = {
        "name": "sobol",
        "replicates": r,
        "points_per_replicate": n,
        "brownian_bridge": params.sampler.brownian_bridge,
    }
    return {"products": products, "paths": n * r, "sampler": sampler, **extra}


def _controlled(
    params: Params, tot: list[list[float]], n: int, plain_se: float
) -> tuple[float, float, dict[str, float]]:
    """The arithmetic Asian adjusted by the geometric Asian's closed form: beta from the
    centred sums of all points pooled, applied to each replicate's means."""
    a, g = "asian_arithmetic_call", "asian_geometric_call"
    r = len(tot)
    total = float(n * r)
    sy = math.fsum(t[col_sum(a)] for t in tot)
    sx = math.fsum(t[col_sum(g)] for t in tot)
    sxx = math.fsum(t[col_sumsq(g)] for t in tot)
    sxy = math.fsum(t[COL_CROSS] for t in tot)
    cxx = max(sxx - sx * sx / total, 0.0)
    beta = (sxy - sx * sy / total) / cxx if cxx > 0.0 else 0.0
    mu = closed_form.geometric_asian_call(
        params.spot, params.strike, params.rate, params.volatility, params.maturity, params.steps
    )
    means = [(t[col_sum(a)] - beta * (t[col_sum(g)] - n * mu)) / n for t in tot]
    price, se = _spread(means)
    return price, se, {"beta": beta, "stderr_without": plain_se}


def reduce(
    params: Params, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
) -> dict[str, Any]:
    """Prices, standard errors (from the replicates) and 95% intervals of the requested
    products in the job's order, ``paths``, and ``sampler`` (``name``, ``replicates``,
    ``points_per_replicate``, ``brownian_bridge``). Raises ``ValueError`` when the sums do not
    cover every point of every replicate."""
    rows = np.asarray(arrays[ARRAY][...], dtype=np.float64)
    expected = (n_blocks(params), replicates(params), N_STATS)
    if rows.shape != expected:
        raise ValueError(f"{ARRAY} has shape {rows.shape}, expected {expected}")
    return _answer(params, rows, points(params))


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
    if not 1 <= shards <= layout.n_shards:
        raise ValueError(f"shards must be in 1..{layout.n_shards}, got {shards}")
    if shards == layout.n_shards:
        return reduce(params, seed, arrays, io)
    stop = layout.bounds[0][shards]
    rows = np.asarray(arrays[ARRAY][0:stop], dtype=np.float64)
    return _answer(params, rows, _block_points(params, 0, stop))


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
