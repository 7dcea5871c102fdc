"""The ``montecarlo.heston`` kernel: European, arithmetic Asian and up-and-out barrier calls under
the Heston stochastic-volatility model, with delta, gamma and vega (d/dv0).

Output: one float64 array ``sums`` of shape ``(n_blocks, N_STATS)``, a row per block of
``BLOCK_SAMPLES`` samples (columns in :mod:`tessera.kernels.montecarlo.heston_cpu`). Shard ``i``
computes blocks ``bounds[i] .. bounds[i+1]`` and ``reduce`` adds the rows column by column with
``math.fsum`` (exactly rounded, so independent of any order). A block's row is a pure function of
(params, seed, block), hence the answer is bit-identical for every shard count, thread count and
executor. Random streams and schemes: see :mod:`tessera.kernels.montecarlo.heston_cpu`.

Greek estimators (each a per-sample estimator, so its standard error comes from the same sums):

- delta. S0 enters only through x0 = log S0, and every fixing S_i scales with S0. European
  call/put and the arithmetic Asian: pathwise, D 1{payoff > 0} dPayoff/dS0 (= D 1{S_T > K} S_T/S0,
  -D 1{S_T < K} S_T/S0, D 1{A > K} A/S0): unbiased (up to the time discretisation). The
  up-and-out barrier: the knock-out indicator makes the pathwise estimator biased, so a
  common-random-number central difference (f(S0 (1 + h)) - f(S0 (1 - h))) / (2 h S0) in which
  f(S0 lam) is computed exactly from the same path (lam S_T, max x + log lam): no extra
  simulation. Bias (h S0)**2 / 6 * |d3V/dS3| + O(h**4).
- gamma. Central difference, on the same path, of the pathwise delta at S0 (1 +- h) (European,
  Asian), or the second difference of the payoff for the barrier; h = ``SPOT_BUMP`` (1 %), no
  extra simulation. Bias (h S0)**2 / 12 * |d4V/dS4| (second difference) or (h S0)**2 / 6 *
  |d4V/dS4| (difference of deltas), + O(h**4).
- vega (d/dv0, per 1.0 of variance). Common-random-number central difference: the path is
  simulated again from v0 (1 +- k), k = ``VEGA_BUMP`` (1 %), on the same draws, (f_up - f_dn) /
  (2 k v0): two extra path simulations per path (no extra random numbers). Bias
  (k v0)**2 / 6 * |d3V/dv0^3| + O(k**4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numba
import numpy as np

from tessera.kernels import fastmath
from tessera.kernels.base import ArraySpec, Layout, ParamError, ShardIO, ShardOutput, split_rows
from tessera.kernels.montecarlo import heston_params, qmc
from tessera.kernels.montecarlo.gbm import Z95, _mean_se
from tessera.kernels.montecarlo.heston_cpu import (
    BLOCK_SAMPLES,
    COL_COUNT,
    ESTIMATORS,
    LANES,
    N_EST,
    N_STATS,
    NO_BARRIER,
    PRODUCT_ORDER,
    SCHEME_EULER,
    SCHEME_QE,
    SCHEME_QE_M,
    SPOT_BUMP,
    VEGA_BUMP,
    col_sum,
    simulate_blocks,
    step_constants,
)
from tessera.kernels.montecarlo.heston_params import Params
from tessera.kernels.rng import seed_key
from tessera.kernels.sdk import BlockKernel

ARRAY = "sums"
# Default shard size: about 2**28 path-steps (a few seconds of one core).
DEFAULT_SHARD_WORK = 2**28
# Per block in flight: the lane accumulators and the estimator scratch.
_BLOCK_STATE_BYTES = (2 * N_EST * LANES + N_EST) * 8


def n_blocks(params: Params) -> int:
    """Number of blocks (rows of ``sums``) of a job: ceil(samples / BLOCK_SAMPLES)."""
    return -(-params.samples // BLOCK_SAMPLES)


def _paths_per_sample(params: Params) -> int:
    return 2 if params.antithetic else 1


def _block_paths(params: Params, start: int, stop: int) -> int:
    """Paths simulated by blocks ``start .. stop`` (the last block may be partial)."""
    samples = min(stop * BLOCK_SAMPLES, params.samples) - start * BLOCK_SAMPLES
    return max(samples, 0) * _paths_per_sample(params)


def scheme_code(params: Params) -> int:
    """The ``heston_cpu`` scheme constant of the params."""
    if params.scheme == "euler":
        return SCHEME_EULER
    return SCHEME_QE_M if params.martingale_correction else SCHEME_QE


def kernel_args(params: Params, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(c, kc, flags, key)`` of ``heston_cpu.simulate_blocks``: the step constants of
    dt = maturity / steps, the vector named by ``KERNEL_CONSTANTS``, the flags named by
    ``FLAGS`` and the Philox key words. Logs and exps come from ``fastmath``."""
    dt = params.maturity / params.steps
    c = step_constants(dt, params.kappa, params.theta, params.xi, params.rho, params.rate)
    h, k = SPOT_BUMP, VEGA_BUMP
    v_up, v_dn = params.v0 * (1.0 + k), params.v0 * (1.0 - k)
    log_b = NO_BARRIER if params.barrier is None else float(fastmath.log(params.barrier))
    kc = np.array(
        [
            float(fastmath.log(params.spot)),
            params.v0,
            v_up,
            v_dn,
            params.strike,
            log_b,
            float(fastmath.exp(-params.rate * params.maturity)),
            1.0 / params.steps,
            1.0 + h,
            1.0 - h,
            float(fastmath.log(1.0 + h)),
            float(fastmath.log(1.0 - h)),
            1.0 / params.spot,
            params.spot * ((1.0 + h) - (1.0 - h)),
            (params.spot * h) ** 2,
            v_up - v_dn,
        ],
        dtype=np.float64,
    )
    flags = np.array(
        [
            scheme_code(params),
            int(params.antithetic),
            int("asian_arithmetic_call" in params.products),
            int("vega" in params.greeks),
        ],
        dtype=np.int64,
    )
    key = np.array(seed_key(seed), dtype=np.uint64)
    return c, kc, flags, key


class HestonPhiloxKernel(BlockKernel):
    """``montecarlo.heston`` on Philox normals (``sampler = "philox"``); ``HestonKernel`` below
    hands Sobol jobs to :mod:`tessera.kernels.montecarlo.heston_qmc`."""

    name = "montecarlo.heston"
    uses_every_core = True  # a shard's blocks run on every core (Numba's threads)
    work_unit = "path-steps"
    array = ARRAY
    block_items = BLOCK_SAMPLES
    columns: ClassVar[tuple[str, ...]] = ("count",) + tuple(
        f"{p}.{e}.{m}" for p in PRODUCT_ORDER for e in ESTIMATORS for m in ("sum", "sumsq")
    )
    count_column = "count"
    # path-steps one core does per second, roughly: 1e8 for one product without Greeks, 4e7
    # with every product and three Greeks (one shard, --executor local, 2 cores)
    work_per_second = 6e7

    def parse_params(self, raw: Mapping[str, Any]) -> Params:
        """Validate ``[params]``; ``ParamError`` naming the key on bad input."""
        return heston_params.parse(raw)

    def params_to_dict(self, params: Params) -> dict[str, Any]:
        """Canonical params: every key, defaults filled in (``barrier`` only when given)."""
        return heston_params.to_dict(params)

    def items(self, params: Params) -> int:
        """Samples: paths, or antithetic pairs."""
        return params.samples

    def compute_blocks(
        self, params: Params, seed: int, first: int, last: int, block_items: int, n_items: int
    ) -> np.ndarray:
        """Rows of sums of blocks ``first .. last`` on the CPU (``warm`` calls it on none)."""
        if block_items != BLOCK_SAMPLES or n_items != params.samples:
            raise ValueError(f"blocks hold {BLOCK_SAMPLES} of {params.samples} samples")
        c, kc, flags, key = kernel_args(params, seed)
        return simulate_blocks(first, last, params.samples, params.steps, c, kc, flags, key)

    def shards_for_size(self, params: Params, shard_size: int) -> int:
        """Shards when each holds ``shard_size`` paths (rounded up to whole blocks of
        ``BLOCK_SAMPLES`` samples). Raises ``ParamError`` for ``shard_size < 1``."""
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
            raise ParamError("shard_size", f"expected a number of paths >= 1, got {shard_size!r}")
        samples = max(shard_size // _paths_per_sample(params), 1)
        blocks_per_shard = -(-samples // BLOCK_SAMPLES)
        return -(-n_blocks(params) // blocks_per_shard)

    def default_shards(self, params: Params) -> int:
        """About ``DEFAULT_SHARD_WORK`` path-steps per shard, at most one shard per block."""
        work = params.paths * params.steps
        return max(1, min(n_blocks(params), -(-work // DEFAULT_SHARD_WORK)))

    def layout(self, params: Params, n_shards: int) -> Layout:
        """One array ``sums`` (n_blocks, N_STATS) float64, cut by ``split_rows``; work in
        path-steps (the vega re-simulations are not counted)."""
        rows = n_blocks(params)
        chunk, bounds = split_rows(rows, n_shards)
        work = tuple(
            _block_paths(params, a, b) * params.steps for a, b in zip(bounds[:-1], bounds[1:])
        )
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
        """Rows ``bounds[shard] .. bounds[shard+1]`` of ``sums``, and stats
        ``{"blocks", "paths", "path_steps"}`` (plus ``"device": "cuda"`` on a GPU).

        Runs on the device ``io.device`` names: the CPU kernel, or its CUDA twin
        (:mod:`tessera.kernels.montecarlo.heston_gpu`, imported only then); without ``io``, on
        the CPU. Raises ``ValueError`` for a shard out of range, a layout of another job, a
        seed outside [0, 2**64) or an unknown device, and ``NoDeviceError`` when a GPU is asked
        for and none is usable."""
        if not 0 <= shard < layout.n_shards:
            raise ValueError(f"shard {shard} is out of range for {layout.n_shards} shards")
        spec = layout.arrays[0]
        if spec.name != ARRAY or spec.shape != (n_blocks(params), N_STATS):
            raise ValueError(
                f"layout array {spec.name} {spec.shape} does not match these params "
                f"({ARRAY} {(n_blocks(params), N_STATS)})"
            )
        start, stop = layout.region(shard)[ARRAY]
        device = "cpu" if io is None else io.device
        if device == "cpu":
            rows = self.compute_blocks(params, seed, start, stop, BLOCK_SAMPLES, params.samples)
        elif device == "cuda":
            from tessera.kernels.montecarlo import heston_gpu  # imports numba.cuda: GPU jobs only

            c, kc, flags, key = kernel_args(params, seed)
            rows = heston_gpu.simulate_blocks(
                start, stop, params.samples, params.steps, c, kc, flags, key
            )
        else:
            raise ValueError(f"unknown device {device!r}; expected 'cpu' or 'cuda'")
        paths = _block_paths(params, start, stop)
        stats: dict[str, Any] = {
            "blocks": stop - start,
            "paths": paths,
            "path_steps": paths * params.steps,
        }
        if device != "cpu":
            stats["device"] = device
        return ShardOutput(arrays={ARRAY: rows}, stats=stats)

    def finish(self, params: Params, totals: dict[str, float]) -> dict[str, Any]:
        """Price, standard error and 95% interval of each requested product (in the job's
        order), its requested Greeks (value, standard error), ``paths`` (those the totals
        count) and ``scheme``."""
        cols = list(totals.values())
        n = cols[COL_COUNT]
        products: dict[str, dict[str, Any]] = {}
        for name in params.products:
            c = col_sum(name, "price")
            price, se = _mean_se(n, cols[c], cols[c + 1])
            entry: dict[str, Any] = {
                "price": price,
                "stderr": se,
                "ci95": [price - Z95 * se, price + Z95 * se],
            }
            if params.greeks:
                greeks = {}
                for greek in params.greeks:
                    c = col_sum(name, greek)
                    value, gse = _mean_se(n, cols[c], cols[c + 1])
                    greeks[greek] = {"value": value, "stderr": gse}
                entry["greeks"] = greeks
            products[name] = entry
        paths = int(n) * _paths_per_sample(params)
        return {"products": products, "paths": paths, "scheme": params.scheme}

    def shard_memory_bytes(self, params: Params, layout: Layout, shard: int) -> int:
        """Projected peak bytes of one shard beyond the interpreter and compiled code: one
        block's accumulators per Numba thread, plus the shard's rows twice (the result and the
        copy the store encodes). Independent of ``paths`` for a fixed number of rows."""
        start, stop = layout.region(shard)[ARRAY]
        return (
            _BLOCK_STATE_BYTES * numba.config.NUMBA_NUM_THREADS + 2 * (stop - start) * N_STATS * 8
        )


class HestonKernel(qmc.SobolSwitch, HestonPhiloxKernel):
    """``montecarlo.heston``: see DESIGN.md, "Kernels", and
    :mod:`tessera.kernels.montecarlo.heston_params`. A ``sampler = "sobol"`` job runs on
    :mod:`tessera.kernels.montecarlo.heston_qmc`, any other on ``HestonPhiloxKernel``."""

    sobol_module = "tessera.kernels.montecarlo.heston_qmc"


KERNEL = HestonKernel()
