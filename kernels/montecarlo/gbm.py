"""The ``montecarlo.gbm`` kernel: European, Asian and barrier options under risk-neutral GBM.

Output: one float64 array ``sums`` of shape ``(n_blocks, N_STATS)``, a row per block of
``BLOCK_SAMPLES`` samples (see :mod:`tessera.kernels.montecarlo.cpu` for the columns). Shard ``i``
computes the blocks ``bounds[i] .. bounds[i+1]`` (whole chunks from ``split_rows``) and
``reduce`` adds the rows column by column with ``math.fsum`` (exactly rounded, so independent of
any order). A block's row is a pure function of (params, seed, block), hence the answer is
bit-identical for every shard count, thread count and executor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numba
import numpy as np

from tessera.kernels import fastmath
from tessera.kernels.base import (
    ArraySpec,
    InputIO,
    Layout,
    Location,
    ParamError,
    ShardIO,
    ShardOutput,
    split_rows,
)
from tessera.kernels.montecarlo import closed_form
from tessera.kernels.montecarlo.cpu import (
    BLOCK_SAMPLES,
    COL_COUNT,
    COL_CROSS,
    LANES,
    N_STATS,
    NO_BARRIER,
    PRODUCT_ORDER,
    col_sum,
    col_sumsq,
    simulate_blocks,
)
from tessera.kernels.montecarlo.greeks_cpu import (
    GAMMA_BUMP,
    N_GREEK_STATS,
    greek_col,
    simulate_blocks_greeks,
)
from tessera.kernels.montecarlo.params import Params, parse, to_dict
from tessera.kernels.rng import seed_key

ARRAY = "sums"
GREEK_ARRAY = "greek_sums"  # present only when the job asks for greeks
Z95 = 1.959963984540054  # two-sided 95% normal quantile
# Default shard size: about 2**30 path-steps (1-2 s of one core at the measured throughput).
DEFAULT_SHARD_WORK = 2**30
# path-steps per second in-process, roughly (one shard, --executor local, 2 cores); for
# choosing the executor only (tessera.engine.choose), never for a result
WORK_PER_SECOND = 4e8
# Per block in flight: 8 lane-state arrays, 8 scratch rows (z), 11 accumulators, LANES wide.
_LANE_STATE_BYTES = (8 + 8 + 11) * LANES * 8
# With greeks also: the Greek accumulators, four extra sums per path set, Q and z_1, per lane.
_GREEK_LANE_BYTES = (N_GREEK_STATS + 6) * LANES * 8


def n_blocks(params: Params) -> int:
    """Number of blocks (rows of ``sums``) of a job: ceil(samples / BLOCK_SAMPLES)."""
    return -(-params.samples // BLOCK_SAMPLES)


def _paths_per_sample(params: Params) -> int:
    return 2 if params.antithetic else 1


def _block_paths(params: Params, start: int, stop: int) -> int:
    """Paths simulated by blocks ``start .. stop`` (the last block may be partial)."""
    samples = min(stop * BLOCK_SAMPLES, params.samples) - start * BLOCK_SAMPLES
    return max(samples, 0) * _paths_per_sample(params)


def _constants(params: Params) -> tuple[float, float, float, float, float, float]:
    """x0 = log spot, drift and vol per step, log barrier, strike, discount factor.

    Logs and exps come from :mod:`tessera.kernels.fastmath` so that the bits do not depend on libm.
    """
    dt = params.maturity / params.steps
    x0 = float(fastmath.log(params.spot))
    drift = (params.rate - 0.5 * params.volatility * params.volatility) * dt
    vol = params.volatility * math.sqrt(dt)
    log_barrier = NO_BARRIER if params.barrier is None else float(fastmath.log(params.barrier))
    disc = float(fastmath.exp(-params.rate * params.maturity))
    return x0, drift, vol, log_barrier, params.strike, disc


def _greek_constants(params: Params) -> np.ndarray:
    """The vector named by ``greeks_cpu.GREEK_CONSTANTS``."""
    dt = params.maturity / params.steps
    m = params.rate - 0.5 * params.volatility * params.volatility
    values = (params.spot, params.volatility, params.rate, params.maturity, dt, m, GAMMA_BUMP)
    return np.array(values, dtype=np.float64)


def _greek_flags(params: Params) -> np.ndarray:
    """The vector named by ``greeks_cpu.FLAGS``: the per-step sums only some Greeks need, and
    which products' estimators to compute."""
    lr = {"vega", "theta"} & set(params.greeks)
    arith = {"vega", "rho", "theta"} & set(params.greeks)
    with_q = bool(lr) and "barrier_up_out_call" in params.products
    with_arith = bool(arith) and "asian_arithmetic_call" in params.products
    wanted = [int(p in params.products) for p in PRODUCT_ORDER]
    return np.array([int(with_q), int(with_arith), *wanted], dtype=np.int64)


def _mean_se(n: float, s: float, ss: float) -> tuple[float, float]:
    mean = s / n
    var = max(ss - s * mean, 0.0) / (n - 1)
    return mean, math.sqrt(var / n)


def _control_variate(
    n: float, sy: float, syy: float, sx: float, sxx: float, sxy: float, mu_x: float
) -> tuple[float, float, float]:
    """Regression estimate of E[Y] with control X of known mean ``mu_x``: (price, stderr, beta).

    beta = Sxy / Sxx from the same samples (centred sums); the standard error is the OLS one of
    the fitted line at x = mu_x, s * sqrt(1/n + (mean_x - mu_x)**2 / Sxx), with the residual
    variance s**2 on n - 2 degrees of freedom, so the estimation of beta is accounted for.
    """
    mean_y, mean_x = sy / n, sx / n
    cxx = max(sxx - sx * mean_x, 0.0)
    cyy = max(syy - sy * mean_y, 0.0)
    cxy = sxy - sx * mean_y
    if cxx <= 0.0 or n < 3:
        return mean_y, math.sqrt(cyy / (n - 1) / n), 0.0
    beta = cxy / cxx
    price = mean_y - beta * (mean_x - mu_x)
    resid = max(cyy - beta * cxy, 0.0) / (n - 2)
    se = math.sqrt(resid * (1.0 / n + (mean_x - mu_x) ** 2 / cxx))
    return price, se, beta


def _variant(params: Params) -> Any:
    """The module that runs a job the Philox kernel below does not: randomized Sobol
    (:mod:`qmc_gbm`) or Longstaff-Schwartz (:mod:`lsm_gbm`), or ``None``. Each provides
    ``warm``, ``shards_for_size``, ``default_shards``, ``layout``, ``compute``, ``reduce``,
    ``reduce_prefix`` and ``shard_memory_bytes`` with the kernel methods' signatures (less
    ``self``)."""
    if params.sampler.sobol:
        from tessera.kernels.montecarlo import qmc_gbm

        return qmc_gbm
    if params.has_lsm:
        from tessera.kernels.montecarlo import lsm_gbm

        return lsm_gbm
    return None


class GbmKernel:
    """``montecarlo.gbm``: see DESIGN.md, "Kernels", and
    :mod:`tessera.kernels.montecarlo.params`."""

    name = "montecarlo.gbm"
    uses_every_core = True  # a shard's blocks run on every core (Numba's threads)
    work_unit = "path-steps"

    def parse_params(self, raw: Mapping[str, Any]) -> Params:
        """Validate ``[params]``; ``ParamError`` naming the key on bad input."""
        return parse(raw)

    def prepare(self, params: Params, io: InputIO) -> Params:
        """No inputs to resolve: ``params`` unchanged."""
        return params

    def warm(self, params: Params) -> None:
        """The CPU kernel on no blocks: compiles it (or loads Numba's cache)."""
        if (variant := _variant(params)) is not None:
            return variant.warm(params)
        k0, k1 = seed_key(0)
        key = np.array([k0, k1], dtype=np.uint64)
        consts = np.array(_constants(params), dtype=np.float64)
        arith = "asian_arithmetic_call" in params.products
        if params.greeks:
            simulate_blocks_greeks(
                0,
                0,
                params.samples,
                params.steps,
                consts,
                _greek_constants(params),
                key,
                params.antithetic,
                arith,
                _greek_flags(params),
            )
        else:
            simulate_blocks(
                0, 0, params.samples, params.steps, consts, key, params.antithetic, arith
            )

    def locations(self, params: Params) -> tuple[Location, ...]:
        """None: the kernel touches only its store."""
        return ()

    def params_to_dict(self, params: Params) -> dict[str, Any]:
        """Canonical params: every key, defaults filled in (``barrier`` only when given)."""
        return to_dict(params)

    def shards_for_size(self, params: Params, shard_size: int) -> int:
        """Shards when each holds ``shard_size`` paths (rounded up to whole blocks of
        ``BLOCK_SAMPLES`` samples). Raises ``ParamError`` for ``shard_size < 1``."""
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
            raise ParamError("shard_size", f"expected a number of paths >= 1, got {shard_size!r}")
        if (variant := _variant(params)) is not None:
            return variant.shards_for_size(params, shard_size)
        samples = max(shard_size // _paths_per_sample(params), 1)
        blocks_per_shard = -(-samples // BLOCK_SAMPLES)
        return -(-n_blocks(params) // blocks_per_shard)

    def default_shards(self, params: Params) -> int:
        """About ``DEFAULT_SHARD_WORK`` path-steps per shard, at most one shard per block."""
        if (variant := _variant(params)) is not None:
            return variant.default_shards(params)
        work = params.paths * params.steps
        return max(1, min(n_blocks(params), -(-work // DEFAULT_SHARD_WORK)))

    def layout(self, params: Params, n_shards: int) -> Layout:
        """One array ``sums`` (n_blocks, N_STATS) float64, cut by ``split_rows`` (a shard may
        get several blocks; asking for more shards than blocks gives one block per shard); with
        ``greeks`` also ``greek_sums`` (n_blocks, N_GREEK_STATS), cut the same way."""
        if (variant := _variant(params)) is not None:
            return variant.layout(params, n_shards)
        rows = n_blocks(params)
        chunk, bounds = split_rows(rows, n_shards)
        work = tuple(
            _block_paths(params, a, b) * params.steps for a, b in zip(bounds[:-1], bounds[1:])
        )
        arrays = [ArraySpec(ARRAY, (rows, N_STATS), "float64", (chunk, N_STATS))]
        if params.greeks:
            shape = (rows, N_GREEK_STATS)
            arrays.append(ArraySpec(GREEK_ARRAY, shape, "float64", (chunk, N_GREEK_STATS)))
        return Layout(
            arrays=tuple(arrays),
            bounds=(bounds,) * len(arrays),
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
        (:mod:`tessera.kernels.montecarlo.gpu`, imported only then) when the engine lends a GPU
        (``resources.gpus > 0``); without ``io``, on the CPU. Raises ``ValueError`` for a shard
        index out of range, a layout of another job, a seed outside [0, 2**64) or an unknown
        device, and ``tessera.kernels.cuda_device.NoDeviceError`` when a GPU is asked for and none
        is usable."""
        if not 0 <= shard < layout.n_shards:
            raise ValueError(f"shard {shard} is out of range for {layout.n_shards} shards")
        if (variant := _variant(params)) is not None:
            return variant.compute(params, seed, layout, shard, io)
        spec = layout.arrays[0]
        if spec.name != ARRAY or spec.shape != (n_blocks(params), N_STATS):
            raise ValueError(
                f"layout array {spec.name} {spec.shape} does not match these params "
                f"({ARRAY} {(n_blocks(params), N_STATS)})"
            )
        if params.greeks and [a.name for a in layout.arrays] != [ARRAY, GREEK_ARRAY]:
            raise ValueError(f"layout has no {GREEK_ARRAY} array for the params' greeks")
        k0, k1 = seed_key(seed)
        start, stop = layout.region(shard)[ARRAY]
        arith = "asian_arithmetic_call" in params.products
        consts = np.array(_constants(params), dtype=np.float64)
        key = np.array([k0, k1], dtype=np.uint64)
        args = (start, stop, params.samples, params.steps, consts, key, params.antithetic, arith)
        device = "cpu" if io is None else io.device
        outputs: dict[str, Any] = {}
        if params.greeks and device != "cpu":
            raise ValueError(
                "greeks are computed by the CPU kernel only (the CUDA twin prices without "
                "them); set resources.gpus = 0 or drop params.greeks"
            )
        if params.greeks:
            rows, outputs[GREEK_ARRAY] = simulate_blocks_greeks(
                *args[:5], _greek_constants(params), *args[5:], _greek_flags(params)
            )
        elif device == "cpu":
            rows = simulate_blocks(*args)
        elif device == "cuda":
            from tessera.kernels.montecarlo import gpu  # imports numba.cuda: GPU jobs only

            rows = gpu.simulate_blocks(*args)
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
        return ShardOutput(arrays={ARRAY: rows, **outputs}, stats=stats)

    def reduce(
        self, params: Params, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
    ) -> dict[str, Any]:
        """Prices, standard errors and 95% intervals of the requested products, in the order
        the job lists them, plus ``paths``. Columns are summed with ``math.fsum``. Raises
        ``ValueError`` when the sums do not cover every sample (a missing or foreign shard)."""
        if (variant := _variant(params)) is not None:
            return variant.reduce(params, seed, arrays, io)
        rows = np.asarray(arrays[ARRAY][...], dtype=np.float64)
        if rows.shape != (n_blocks(params), N_STATS):
            raise ValueError(
                f"{ARRAY} has shape {rows.shape}, expected {(n_blocks(params), N_STATS)}"
            )
        return self._reduce_rows(params, arrays, rows)

    def reduce_prefix(
        self,
        params: Params,
        seed: int,
        layout: Layout,
        arrays: Mapping[str, Any],
        shards: int,
        io: ShardIO | None = None,
    ) -> dict[str, Any]:
        """The answer of the first ``shards`` shards alone (``[job] target_stderr``): the
        same keys as ``reduce``, over their blocks, with ``paths`` the paths they hold."""
        if (variant := _variant(params)) is not None:
            return variant.reduce_prefix(params, seed, layout, arrays, shards, io)
        if shards == layout.n_shards:
            return self.reduce(params, seed, arrays, io)
        stop = layout.bounds[0][shards]
        prefix = replace(params, paths=_block_paths(params, 0, stop))
        rows = np.asarray(arrays[ARRAY][0:stop], dtype=np.float64)
        sliced = {name: _Rows(arrays[name], stop) for name in arrays}
        return self._reduce_rows(prefix, sliced, rows)

    def _reduce_rows(
        self, params: Params, arrays: Mapping[str, Any], rows: np.ndarray
    ) -> dict[str, Any]:
        tot = [math.fsum(rows[:, c].tolist()) for c in range(N_STATS)]
        n = tot[COL_COUNT]
        if n != params.samples:
            raise ValueError(f"{ARRAY} covers {n:.0f} samples, expected {params.samples}")
        products: dict[str, dict[str, Any]] = {}
        extra: dict[str, Any] = {}
        for name in params.products:
            s, ss = tot[col_sum(name)], tot[col_sumsq(name)]
            price, se = _mean_se(n, s, ss)
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
                plain_se = se
                price, se, beta = _control_variate(
                    n, s, ss, tot[col_sum(g)], tot[col_sumsq(g)], tot[COL_CROSS], mu
                )
                extra["control_variate"] = {"beta": beta, "stderr_without": plain_se}
            products[name] = {
                "price": price,
                "stderr": se,
                "ci95": [price - Z95 * se, price + Z95 * se],
            }
        if params.greeks:
            self._greeks(params, arrays, n, products)
        return {"products": products, "paths": params.paths, **extra}

    def _greeks(
        self,
        params: Params,
        arrays: Mapping[str, Any],
        n: float,
        products: dict[str, dict[str, Any]],
    ) -> None:
        """``products[p]["greeks"]``: each asked-for Greek's value and standard error."""
        rows = np.asarray(arrays[GREEK_ARRAY][...], dtype=np.float64)
        if rows.shape != (n_blocks(params), N_GREEK_STATS):
            raise ValueError(
                f"{GREEK_ARRAY} has shape {rows.shape}, "
                f"expected {(n_blocks(params), N_GREEK_STATS)}"
            )
        for name in params.products:
            greeks: dict[str, dict[str, float]] = {}
            for greek in params.greeks:
                c = greek_col(name, greek)
                value, se = _mean_se(
                    n, math.fsum(rows[:, c].tolist()), math.fsum(rows[:, c + 1].tolist())
                )
                greeks[greek] = {"value": value, "stderr": se}
            products[name]["greeks"] = greeks

    def projected_seconds(self, params: Params, layout: Layout, shard: int) -> float:
        """Seconds ``shard`` takes on one core, roughly: its path-steps at the job's sampler's
        measured rate (``WORK_PER_SECOND`` here, in :mod:`qmc_gbm` and :mod:`lsm_gbm`)."""
        rate = getattr(_variant(params), "WORK_PER_SECOND", WORK_PER_SECOND)
        return layout.shard_work[shard] / rate

    def shard_memory_bytes(self, params: Params, layout: Layout, shard: int) -> int:
        """Projected peak bytes of one shard beyond the interpreter and compiled code: the lane
        state of one block per Numba thread, plus the shard's rows twice (the result and the
        copy the store encodes). Independent of ``paths`` for a fixed number of rows."""
        if (variant := _variant(params)) is not None:
            return variant.shard_memory_bytes(params, layout, shard)
        start, stop = layout.region(shard)[ARRAY]
        width = N_STATS + (N_GREEK_STATS if params.greeks else 0)
        rows_bytes = (stop - start) * width * 8
        lanes = _LANE_STATE_BYTES + (_GREEK_LANE_BYTES if params.greeks else 0)
        return lanes * numba.config.NUMBA_NUM_THREADS + 2 * rows_bytes


class _Rows:
    """The first ``stop`` rows of a lazy array: what ``reduce`` reads for a prefix."""

    def __init__(self, array: Any, stop: int) -> None:
        self.array, self.stop = array, stop

    def __getitem__(self, selection: Any) -> np.ndarray:
        return np.asarray(self.array[0 : self.stop])[selection]


KERNEL = GbmKernel()
