"""American and Bermudan options in ``montecarlo.gbm`` by Longstaff-Schwartz: a two-stage job.

Products (:mod:`tessera.kernels.montecarlo.params`): ``american_put`` and ``american_call``
may be exercised at every fixing t_i = i * maturity / steps, i = 1..steps (the discrete
approximation of an American option: Longstaff and Schwartz (2001) used 50 dates a year);
``bermudan_put`` at the ``exercise_dates`` dates maturity * k / exercise_dates,
k = 1..exercise_dates. Time 0 is never an exercise date, so a price is that of an option
first exercisable at t_1 (below the intrinsic value only for a deep in-the-money spot, where
exercising at once would be optimal). ``american_call`` on this non-dividend stock is worth
the European call. The job may also price ``european_call`` / ``european_put`` on the same
pricing paths.

Stages (``Layout.stages``): ``calibrate`` (shard 0) then ``price`` (shards 1..n); the shard
count a job asks for is the number of pricing shards, so a job of ``shards = 7`` has 8.

* calibrate: ``lsm.calibration_paths`` = M independent paths (Philox counter domain 1 of the
  job's key, see :mod:`tessera.kernels.montecarlo.lsm_cpu`; the pricing paths use domain 0),
  their S at every date of the exercise grid (every fixing when an American is listed, else
  the Bermudan's dates) kept in memory: M x dates float64. Backward from the last date but
  one to the first, each product regresses the discounted realised cash flows of its
  in-the-money paths on the basis (``lsm.basis``, ``lsm.degree``, in x = S / strike) by
  Householder QR, and a path's cash flow becomes the payoff where that is >= the fitted
  continuation value. The coefficients are the rows of ``lsm_coefficients`` (n_lsm, dates,
  degree + 1) and the in-sample sums of the time-0 cash flows ``lsm_calibration``
  (n_lsm, 3), both row-cut arrays that shard 0 owns whole (every other shard owns an empty
  region): the engine writes them, checks their shape and counts their bytes as for any
  shard's rows, and a calibrate shard needs no lent I/O.
* price: blocks of ``BLOCK_SAMPLES`` samples of fresh paths (the European kernel's own
  samples of the same seed; with ``antithetic`` a sample is a pair driven by z and -z, each
  path exercising on its own, the sample their mean), rows of ``lsm_sums`` (n_blocks,
  N_STATS) of discounted payoff sums and sums of squares. A path exercises at the first date
  where its payoff is > 0 and >= the fitted continuation value, and at maturity if in the
  money. The exercise rule comes from other paths, so the estimator is a low-biased price
  with an honest standard error (a suboptimal rule is still a rule).

LSM products use the fixed order ``LSM_PRODUCTS`` in the arrays whatever the job's listing.
A pricing row is a pure function of (params, seed, block) and the coefficients (themselves a
pure function of params and seed, computed with no BLAS), so ``result.json`` is byte-identical
for any number of pricing shards, executor, thread count and resume. No upper bound (Andersen
and Broadie's duality) is computed.
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
    Layout,
    ParamError,
    ShardIO,
    ShardOutput,
    Stage,
    split_rows,
)
from tessera.kernels.montecarlo import lsm_cpu
from tessera.kernels.montecarlo.cpu import BLOCK_SAMPLES, LANES
from tessera.kernels.montecarlo.gbm import DEFAULT_SHARD_WORK, Z95, _mean_se
from tessera.kernels.montecarlo.lsm_cpu import N_STATS, col_sum, col_sumsq
from tessera.kernels.montecarlo.params import LSM_PRODUCTS, Params
from tessera.kernels.rng import seed_key

SUMS = "lsm_sums"
COEFFICIENTS = "lsm_coefficients"
CALIBRATION = "lsm_calibration"
N_CALIBRATION = 3  # sum, sum of squares of the in-sample time-0 cash flows, paths
STAGES = ("calibrate", "price")
# The pricing loop does several times the European kernel's work per path-step (an exp and a
# fitted polynomial at every exercise date): a quarter of its default shard size.
DEFAULT_PRICE_SHARD_WORK = DEFAULT_SHARD_WORK // 4
# path-steps per second in-process, roughly (one shard, --executor local, 2 cores); for
# choosing the executor only (tessera.engine.choose), never for a result
WORK_PER_SECOND = 3e7
# Per pricing block in flight: z (4), x (2), S (1), value and alive (2 x 2 x n_lsm), 10 sums.
_LANE_ROWS = 4 + 2 + 1 + 10


def lsm_products(params: Params) -> tuple[str, ...]:
    """The job's LSM products in the fixed order of the arrays (``LSM_PRODUCTS``)."""
    return tuple(p for p in LSM_PRODUCTS if p in params.products)


def grid_dates(params: Params) -> int:
    """Dates of the exercise grid: every fixing when an American is listed, else the
    Bermudan's ``exercise_dates``."""
    if any(p.startswith("american_") for p in params.products):
        return params.steps
    assert params.exercise_dates is not None
    return params.exercise_dates


def n_blocks(params: Params) -> int:
    """Pricing blocks (rows of ``lsm_sums``): ceil(samples / BLOCK_SAMPLES)."""
    return -(-params.samples // BLOCK_SAMPLES)


def _degree(params: Params) -> int:
    assert params.lsm is not None
    return params.lsm.degree


def _calibration_paths(params: Params) -> int:
    assert params.lsm is not None
    return params.lsm.calibration_paths


def _block_paths(params: Params, start: int, stop: int) -> int:
    samples = min(stop * BLOCK_SAMPLES, params.samples) - start * BLOCK_SAMPLES
    return max(samples, 0) * (2 if params.antithetic else 1)


def _consts(params: Params) -> np.ndarray:
    """x0, drift and vol per step, strike (``lsm_cpu.CONSTANTS``), as the European kernel's."""
    dt = params.maturity / params.steps
    x0 = float(fastmath.log(params.spot))
    drift = (params.rate - 0.5 * params.volatility * params.volatility) * dt
    vol = params.volatility * math.sqrt(dt)
    return np.array([x0, drift, vol, params.strike], dtype=np.float64)


def _key(seed: int) -> np.ndarray:
    return np.array(seed_key(seed), dtype=np.uint64)


def _product_arrays(params: Params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per LSM product: payoff sign (+1 call, -1 put), sum column, exercise mask per date."""
    products = lsm_products(params)
    dates = grid_dates(params)
    signs = np.array([1.0 if p.endswith("_call") else -1.0 for p in products])
    cols = np.array([col_sum(p) for p in products], dtype=np.int64)
    masks = np.ones((len(products), dates), dtype=np.int64)
    for q, name in enumerate(products):
        if name == "bermudan_put":
            assert params.exercise_dates is not None
            every = dates // params.exercise_dates
            masks[q] = (np.arange(1, dates + 1) % every) == 0
    return signs, cols, masks


def _basis_kind(params: Params) -> int:
    assert params.lsm is not None
    return lsm_cpu.BASES.index(params.lsm.basis)


def _discounts(params: Params) -> tuple[np.ndarray, float, float]:
    """Discount factors of each grid date, of maturity, and of one date spacing."""
    dates = grid_dates(params)
    spacing = params.maturity / dates
    disc = np.array([float(fastmath.exp(-params.rate * spacing * (d + 1))) for d in range(dates)])
    return (
        disc,
        float(fastmath.exp(-params.rate * params.maturity)),
        float(fastmath.exp(-params.rate * spacing)),
    )


def _euro_flags(params: Params) -> np.ndarray:
    return np.array(
        [int("european_call" in params.products), int("european_put" in params.products)],
        dtype=np.int64,
    )


def calibrate(params: Params, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The calibrate stage's arrays: coefficients ``(n_lsm, dates, degree + 1)`` and in-sample
    sums ``(n_lsm, 3)``. Raises ``ValueError`` for a seed outside [0, 2**64)."""
    dates = grid_dates(params)
    grid = lsm_cpu.simulate_grid(
        _calibration_paths(params),
        params.steps,
        params.steps // dates,
        _consts(params),
        _key(seed),
    )
    signs, _, masks = _product_arrays(params)
    _, _, disc_step = _discounts(params)
    return lsm_cpu.regress(
        grid, params.strike, signs, masks, _basis_kind(params), _degree(params), disc_step
    )


def price(params: Params, seed: int, coefficients: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows ``start .. stop`` of ``lsm_sums`` with the calibrate stage's ``coefficients``."""
    dates = grid_dates(params)
    signs, cols, masks = _product_arrays(params)
    disc, disc_t, _ = _discounts(params)
    return lsm_cpu.price_blocks(
        start,
        stop,
        params.samples,
        params.steps,
        params.steps // dates,
        _consts(params),
        _key(seed),
        params.antithetic,
        np.ascontiguousarray(coefficients, dtype=np.float64),
        masks,
        signs,
        cols,
        _basis_kind(params),
        _degree(params),
        disc,
        disc_t,
        _euro_flags(params),
    )


# --- the kernel methods -------------------------------------------------------------------------


def warm(params: Params) -> None:
    """Compile both stages' kernels (or load Numba's cache) on no paths and no blocks."""
    dates = grid_dates(params)
    consts, key = _consts(params), _key(0)
    grid = lsm_cpu.simulate_grid(0, params.steps, params.steps // dates, consts, key)
    signs, _, masks = _product_arrays(params)
    coefs, _ = lsm_cpu.regress(
        grid, params.strike, signs, masks, _basis_kind(params), _degree(params), 1.0
    )
    price(params, 0, coefs, 0, 0)


def shards_for_size(params: Params, shard_size: int) -> int:
    """Pricing shards when each holds ``shard_size`` pricing paths (whole blocks); the job then
    has one more shard, the calibrate shard. Raises ``ParamError`` for ``shard_size < 1``."""
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ParamError("shard_size", f"expected a number of paths >= 1, got {shard_size!r}")
    samples = max(shard_size // (2 if params.antithetic else 1), 1)
    return -(-n_blocks(params) // -(-samples // BLOCK_SAMPLES))


def default_shards(params: Params) -> int:
    """Pricing shards of about ``DEFAULT_PRICE_SHARD_WORK`` path-steps, at most one a block."""
    work = params.paths * params.steps
    return max(1, min(n_blocks(params), -(-work // DEFAULT_PRICE_SHARD_WORK)))


def layout(params: Params, n_shards: int) -> Layout:
    """Stages ``calibrate`` (1 shard) and ``price`` (``n_shards`` shards, fewer when there are
    fewer blocks): ``lsm_coefficients`` and ``lsm_calibration`` owned by shard 0,
    ``lsm_sums`` (n_blocks, N_STATS) cut over the pricing shards by ``split_rows``."""
    rows = n_blocks(params)
    chunk, bounds = split_rows(rows, n_shards)
    n_price = len(bounds) - 1
    n_lsm, dates, width = len(lsm_products(params)), grid_dates(params), _degree(params) + 1
    arrays = (
        ArraySpec(COEFFICIENTS, (n_lsm, dates, width), "float64", (n_lsm, dates, width)),
        ArraySpec(CALIBRATION, (n_lsm, N_CALIBRATION), "float64", (n_lsm, N_CALIBRATION)),
        ArraySpec(SUMS, (rows, N_STATS), "float64", (chunk, N_STATS)),
    )
    owned_by_first = (0,) + (n_lsm,) * (n_price + 1)
    work = (_calibration_paths(params) * params.steps,) + tuple(
        _block_paths(params, a, b) * params.steps for a, b in zip(bounds[:-1], bounds[1:])
    )
    return Layout(
        arrays=arrays,
        bounds=(owned_by_first, owned_by_first, (0, *bounds)),
        shard_work=work,
        work_unit="path-steps",
        stages=(Stage(STAGES[0], 1), Stage(STAGES[1], n_price)),
    )


def _check_layout(params: Params, layout: Layout, shard: int) -> None:
    if not 0 <= shard < layout.n_shards:
        raise ValueError(f"shard {shard} is out of range for {layout.n_shards} shards")
    names = [a.name for a in layout.arrays]
    if names != [COEFFICIENTS, CALIBRATION, SUMS] or layout.arrays[2].shape != (
        n_blocks(params),
        N_STATS,
    ):
        raise ValueError(
            f"layout arrays {names} do not match these params ({COEFFICIENTS}, {CALIBRATION}, "
            f"{SUMS} {(n_blocks(params), N_STATS)})"
        )


def compute(
    params: Params, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
) -> ShardOutput:
    """Shard 0: the calibrate stage (its stats: ``calibration_paths``, ``path_steps``). Shards
    1..n: rows ``bounds[shard] .. bounds[shard + 1]`` of ``lsm_sums``, reading the
    coefficients through ``io.arrays`` (stats ``blocks``, ``paths``, ``path_steps``); each
    returns empty rows of the arrays it does not own. Raises ``ValueError`` for a shard out
    of range, a layout of another job, a GPU device (LSM runs on the CPU), a pricing shard
    without ``io`` or whose store holds no calibration (the calibrate shard has not
    committed), and a seed outside [0, 2**64)."""
    _check_layout(params, layout, shard)
    if io is not None and io.device != "cpu":
        raise ValueError(
            f"{lsm_products(params)[0]} is priced on the CPU only (Longstaff-Schwartz has no "
            f"CUDA twin); set resources.gpus = 0"
        )
    n_lsm, dates, width = layout.arrays[0].shape
    if shard == 0:
        coefs, calib = calibrate(params, seed)
        m = _calibration_paths(params)
        return ShardOutput(
            arrays={
                COEFFICIENTS: coefs,
                CALIBRATION: calib,
                SUMS: np.zeros((0, N_STATS)),
            },
            stats={"calibration_paths": m, "path_steps": m * params.steps},
        )
    if io is None:
        raise ValueError(
            f"pricing shard {shard} reads the calibrate stage's {COEFFICIENTS} from the "
            f"store: pass the ShardIO"
        )
    calib = np.asarray(io.arrays[CALIBRATION][...], dtype=np.float64)
    if calib.shape != (n_lsm, N_CALIBRATION) or np.any(calib[:, 2] != _calibration_paths(params)):
        raise ValueError(
            f"pricing shard {shard}: the store holds no calibration of "
            f"{_calibration_paths(params)} paths ({CALIBRATION} reads {calib.tolist()}); "
            f"the calibrate shard 0 must commit first"
        )
    coefs = np.asarray(io.arrays[COEFFICIENTS][...], dtype=np.float64)
    start, stop = layout.region(shard)[SUMS]
    rows = price(params, seed, coefs, start, stop)
    paths = _block_paths(params, start, stop)
    return ShardOutput(
        arrays={
            COEFFICIENTS: np.zeros((0, dates, width)),
            CALIBRATION: np.zeros((0, N_CALIBRATION)),
            SUMS: rows,
        },
        stats={"blocks": stop - start, "paths": paths, "path_steps": paths * params.steps},
    )


def _answer(params: Params, rows: np.ndarray, calib: np.ndarray) -> dict[str, Any]:
    tot = [math.fsum(rows[:, c].tolist()) for c in range(N_STATS)]
    n = tot[lsm_cpu.COL_COUNT]
    if n != params.samples:
        raise ValueError(f"{SUMS} covers {n:.0f} samples, expected {params.samples}")
    products: dict[str, dict[str, Any]] = {}
    for name in params.products:
        mean, se = _mean_se(n, tot[col_sum(name)], tot[col_sumsq(name)])
        products[name] = {"price": mean, "stderr": se, "ci95": [mean - Z95 * se, mean + Z95 * se]}
    in_sample: dict[str, dict[str, float]] = {}
    for q, name in enumerate(lsm_products(params)):
        s, ss, m = (float(v) for v in calib[q])
        if m != _calibration_paths(params):
            raise ValueError(
                f"{CALIBRATION} holds {m:.0f} paths for {name}, expected "
                f"{_calibration_paths(params)}: the calibrate shard is missing"
            )
        mean, se = _mean_se(m, s, ss)
        in_sample[name] = {"price": mean, "stderr": se}
    assert params.lsm is not None
    return {
        "products": products,
        "paths": params.paths,
        "lsm": {
            "basis": params.lsm.basis,
            "degree": params.lsm.degree,
            "calibration_paths": params.lsm.calibration_paths,
            "exercise_dates": params.exercise_dates,
            # the mean cash flow of the calibration paths under their own rule: high-biased
            # against the pricing estimate (foresight), a check on the fit
            "in_sample": in_sample,
        },
    }


def reduce(
    params: Params, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
) -> dict[str, Any]:
    """``{"products": {name: {"price", "stderr", "ci95"}}, "paths", "lsm": {"basis",
    "degree", "calibration_paths", "exercise_dates", "in_sample": {name: {"price",
    "stderr"}}}}``, products in the job's order; sums by ``math.fsum``. Raises ``ValueError``
    when the sums do not cover every sample or the calibration is missing."""
    rows = np.asarray(arrays[SUMS][...], dtype=np.float64)
    if rows.shape != (n_blocks(params), N_STATS):
        raise ValueError(f"{SUMS} has shape {rows.shape}, expected {(n_blocks(params), N_STATS)}")
    return _answer(params, rows, np.asarray(arrays[CALIBRATION][...], dtype=np.float64))


def reduce_prefix(
    params: Params,
    seed: int,
    layout: Layout,
    arrays: Mapping[str, Any],
    shards: int,
    io: ShardIO | None = None,
) -> dict[str, Any]:
    """The answer from the first ``shards`` pricing shards (``[job] target_stderr``; the
    calibrate shard is always in): ``reduce``'s keys over their blocks, ``paths`` the pricing
    paths they hold."""
    n_price = layout.n_shards - 1
    if not 1 <= shards <= n_price:
        raise ValueError(f"shards must be in 1..{n_price} (pricing shards), got {shards}")
    if shards == n_price:
        return reduce(params, seed, arrays, io)
    stop = layout.bounds[2][1 + shards]
    prefix = replace(params, paths=_block_paths(params, 0, stop))
    rows = np.asarray(arrays[SUMS][0:stop], dtype=np.float64)
    return _answer(prefix, rows, np.asarray(arrays[CALIBRATION][...], dtype=np.float64))


def shard_memory_bytes(params: Params, layout: Layout, shard: int) -> int:
    """Projected peak bytes of one shard beyond the interpreter and compiled code.

    Calibrate: the M x dates grid of S, and per LSM product (products regress in parallel)
    the cash flows, the basis matrix (degree + 1 rows), the responses and in-the-money
    indices (M each), plus the coefficients twice. Price: the lane state of one block per
    Numba thread, the coefficients twice (read and converted) and the shard's rows twice."""
    n_lsm, dates, width = layout.arrays[0].shape
    coef_bytes = 2 * n_lsm * dates * width * 8
    if shard == 0:
        m = _calibration_paths(params)
        per_product = m * (width + 3) * 8
        return m * dates * 8 + n_lsm * per_product + coef_bytes
    start, stop = layout.region(shard)[SUMS]
    lanes = (_LANE_ROWS + 4 * n_lsm) * LANES * 8
    return lanes * numba.config.NUMBA_NUM_THREADS + coef_bytes + 2 * (stop - start) * N_STATS * 8
