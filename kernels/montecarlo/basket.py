"""The ``montecarlo.basket`` kernel: options on a basket of n correlated GBM assets (CPU only).

Output: one float64 array ``sums`` of shape ``(n_blocks, N_STATS)``, a row per block of
``BLOCK_SAMPLES`` samples (columns: see :mod:`tessera.kernels.montecarlo.basket_cpu`). Shard
``i`` computes the blocks ``bounds[i] .. bounds[i+1]`` and ``reduce`` adds the rows column by
column with ``math.fsum``; a block's row is a pure function of (params, seed, block), so the
answer is bit-identical for every shard count, thread count and executor. With one asset the
basket call and put are ``montecarlo.gbm``'s European call and put, to the bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numba
import numpy as np

from tessera.kernels import fastmath
from tessera.kernels.base import ArraySpec, Layout, ParamError, ShardIO, ShardOutput, split_rows
from tessera.kernels.montecarlo import basket_params, closed_form_basket, qmc
from tessera.kernels.montecarlo.basket_cpu import (
    BLOCK_SAMPLES,
    COL_COUNT,
    COL_CROSS,
    LANES,
    N_STATS,
    PRODUCT_ORDER,
    col_sum,
    col_sumsq,
    simulate_blocks,
)
from tessera.kernels.montecarlo.basket_params import Params
from tessera.kernels.montecarlo.gbm import Z95, _control_variate, _mean_se
from tessera.kernels.rng import seed_key
from tessera.kernels.sdk import BlockKernel

ARRAY = "sums"
# Default shard size: about 2**30 asset-path-steps (1-3 s of one core).
DEFAULT_SHARD_WORK = 2**30
_NO_GPU = "montecarlo.basket runs on the CPU only (it has no CUDA twin); set resources.gpus = 0"


def n_blocks(params: Params) -> int:
    """Number of blocks (rows of ``sums``) of a job: ceil(samples / BLOCK_SAMPLES)."""
    return -(-params.samples // BLOCK_SAMPLES)


def _paths_per_sample(params: Params) -> int:
    return 2 if params.antithetic else 1


def _block_paths(params: Params, start: int, stop: int) -> int:
    """Paths simulated by blocks ``start .. stop`` (the last block may be partial)."""
    samples = min(stop * BLOCK_SAMPLES, params.samples) - start * BLOCK_SAMPLES
    return max(samples, 0) * _paths_per_sample(params)


def kernel_args(params: Params) -> tuple[np.ndarray, ...]:
    """x0 (log spots), drift and vol per step, weights, the Cholesky factor, and
    [strike, discount factor], as :func:`basket_cpu.simulate_blocks` takes them.

    Per asset exactly as ``gbm._constants`` computes them (logs and exps from
    :mod:`tessera.kernels.fastmath`), so one asset reproduces ``montecarlo.gbm``'s bits."""
    dt = params.maturity / params.steps
    x0 = [float(fastmath.log(s)) for s in params.spots]
    drift = [(params.rate - 0.5 * v * v) * dt for v in params.volatilities]
    vol = [v * math.sqrt(dt) for v in params.volatilities]
    strike = 0.0 if params.strike is None else params.strike
    disc = float(fastmath.exp(-params.rate * params.maturity))
    f64 = np.float64
    return (
        np.array(x0, dtype=f64),
        np.array(drift, dtype=f64),
        np.array(vol, dtype=f64),
        np.array(params.weights, dtype=f64),
        np.ascontiguousarray(np.array(params.cholesky, dtype=f64).reshape(params.assets, -1)),
        np.array([strike, disc], dtype=f64),
    )


def geometric_reference(params: Params) -> float:
    """Closed-form price of the job's geometric basket call (the control variate's mean)."""
    return closed_form_basket.geometric_basket_call(
        params.spots,
        params.volatilities,
        params.weights,
        params.correlation,
        params.strike if params.strike is not None else 1.0,
        params.rate,
        params.maturity,
    )


class BasketPhiloxKernel(BlockKernel):
    """``montecarlo.basket`` on Philox normals (``sampler = "philox"``); ``BasketKernel`` below
    hands Sobol jobs to :mod:`tessera.kernels.montecarlo.basket_qmc`."""

    name = "montecarlo.basket"
    uses_every_core = True  # a shard's blocks run on every core (Numba's threads)
    work_unit = "asset-path-steps"
    array = ARRAY
    block_items = BLOCK_SAMPLES
    columns: ClassVar[tuple[str, ...]] = (
        ("count",) + tuple(f"{p}.{m}" for p in PRODUCT_ORDER for m in ("sum", "sumsq")) + ("cross",)
    )
    count_column = "count"
    work_per_second = 4e8  # asset-path-steps a core does per second, roughly (as heston's)

    def parse_params(self, raw: Mapping[str, Any]) -> Params:
        """Validate ``[params]``; ``ParamError`` naming the key (down to the list entry)."""
        return basket_params.parse(raw)

    def params_to_dict(self, params: Params) -> dict[str, Any]:
        """Canonical params: every key, defaults filled in (``strike`` only when given)."""
        return basket_params.to_dict(params)

    def items(self, params: Params) -> int:
        """Samples: paths, or antithetic pairs."""
        return params.samples

    def compute_blocks(
        self, params: Params, seed: int, first: int, last: int, block_items: int, n_items: int
    ) -> np.ndarray:
        """Rows of sums of blocks ``first .. last`` (``warm`` calls it on none)."""
        if block_items != BLOCK_SAMPLES or n_items != params.samples:
            raise ValueError(f"blocks hold {BLOCK_SAMPLES} of {params.samples} samples")
        x0, drift, vol, weights, chol, kd = kernel_args(params)
        key = np.array(seed_key(seed), dtype=np.uint64)
        return simulate_blocks(
            first,
            last,
            params.samples,
            params.steps,
            x0,
            drift,
            vol,
            weights,
            chol,
            float(kd[0]),
            float(kd[1]),
            key,
            params.antithetic,
        )

    def _work(self, params: Params, start: int, stop: int) -> int:
        return _block_paths(params, start, stop) * params.steps * params.assets

    def shards_for_size(self, params: Params, shard_size: int) -> int:
        """Shards when each holds ``shard_size`` paths (rounded up to whole blocks of
        ``BLOCK_SAMPLES`` samples). Raises ``ParamError`` for ``shard_size < 1``."""
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
            raise ParamError("shard_size", f"expected a number of paths >= 1, got {shard_size!r}")
        samples = max(shard_size // _paths_per_sample(params), 1)
        blocks_per_shard = -(-samples // BLOCK_SAMPLES)
        return -(-n_blocks(params) // blocks_per_shard)

    def default_shards(self, params: Params) -> int:
        """About ``DEFAULT_SHARD_WORK`` asset-path-steps per shard, at most one per block."""
        work = params.paths * params.steps * params.assets
        return max(1, min(n_blocks(params), -(-work // DEFAULT_SHARD_WORK)))

    def layout(self, params: Params, n_shards: int) -> Layout:
        """One array ``sums`` (n_blocks, N_STATS) float64, cut by ``split_rows``; work in
        asset-path-steps."""
        rows = n_blocks(params)
        chunk, bounds = split_rows(rows, n_shards)
        work = tuple(self._work(params, a, b) for a, b in zip(bounds[:-1], bounds[1:]))
        return Layout(
            arrays=(ArraySpec(ARRAY, (rows, N_STATS), "float64", (chunk, N_STATS)),),
            bounds=(bounds,),
            shard_work=work,
            work_unit=self.work_unit,
            regular=True,
        )

    def compute(
        self, params: Params, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
    ) -> ShardOutput:
        """Rows ``bounds[shard] .. bounds[shard+1]`` of ``sums``, and stats ``{"blocks",
        "paths", "asset_path_steps"}``. CPU only: raises ``ValueError`` when the engine lends
        a GPU (``io.device == "cuda"``), and for a shard out of range or a layout of another
        job."""
        if io is not None and io.device != "cpu":
            raise ValueError(f"{_NO_GPU} (the engine lent device {io.device!r})")
        if not 0 <= shard < layout.n_shards:
            raise ValueError(f"shard {shard} is out of range for {layout.n_shards} shards")
        spec = layout.arrays[0]
        if spec.name != ARRAY or spec.shape != (n_blocks(params), N_STATS):
            raise ValueError(
                f"layout array {spec.name} {spec.shape} does not match these params "
                f"({ARRAY} {(n_blocks(params), N_STATS)})"
            )
        start, stop = layout.region(shard)[ARRAY]
        rows = self.compute_blocks(params, seed, start, stop, BLOCK_SAMPLES, params.samples)
        stats: dict[str, Any] = {
            "blocks": stop - start,
            "paths": _block_paths(params, start, stop),
            "asset_path_steps": self._work(params, start, stop),
        }
        return ShardOutput(arrays={ARRAY: rows}, stats=stats)

    def finish(self, params: Params, totals: dict[str, float]) -> dict[str, Any]:
        """Price, standard error and 95% interval of each requested product (in the job's
        order), ``paths`` (those the totals count) and ``assets``; with ``control_variate``
        the basket call is the regression estimate on the geometric basket call (closed form
        known) and ``control_variate`` holds ``beta`` and ``stderr_without``."""
        tot = list(totals.values())
        n = tot[COL_COUNT]
        products: dict[str, dict[str, Any]] = {}
        extra: dict[str, Any] = {}
        for name in params.products:
            s, ss = tot[col_sum(name)], tot[col_sumsq(name)]
            price, se = _mean_se(n, s, ss)
            if name == "basket_call" and params.control_variate:
                g = "geometric_basket_call"
                plain_se = se
                price, se, beta = _control_variate(
                    n,
                    s,
                    ss,
                    tot[col_sum(g)],
                    tot[col_sumsq(g)],
                    tot[COL_CROSS],
                    geometric_reference(params),
                )
                extra["control_variate"] = {"beta": beta, "stderr_without": plain_se}
            products[name] = {
                "price": price,
                "stderr": se,
                "ci95": [price - Z95 * se, price + Z95 * se],
            }
        paths = int(n) * _paths_per_sample(params)
        return {"products": products, "paths": paths, "assets": params.assets, **extra}

    def shard_memory_bytes(self, params: Params, layout: Layout, shard: int) -> int:
        """Projected peak bytes of one shard beyond the interpreter and compiled code: one
        block's lane state per Numba thread (3 n + 14 arrays of LANES float64, the
        accumulators included), plus the shard's rows twice (the result and the copy the store
        encodes)."""
        start, stop = layout.region(shard)[ARRAY]
        lanes = (3 * params.assets + 14 + 9) * LANES * 8
        return lanes * numba.config.NUMBA_NUM_THREADS + 2 * (stop - start) * N_STATS * 8


class BasketKernel(qmc.SobolSwitch, BasketPhiloxKernel):
    """``montecarlo.basket``: see :mod:`tessera.kernels.montecarlo.basket_params` for the
    params and products, :mod:`tessera.kernels.montecarlo.basket_cpu` for the simulation. A
    ``sampler = "sobol"`` job runs on :mod:`tessera.kernels.montecarlo.basket_qmc`, any other
    on ``BasketPhiloxKernel``."""

    sobol_module = "tessera.kernels.montecarlo.basket_qmc"


KERNEL = BasketKernel()
