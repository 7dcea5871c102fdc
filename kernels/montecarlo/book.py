"""The ``montecarlo.book`` kernel: a whole book of trades (European, Asian and barrier options on
GBM and Heston underlyings) priced in one job, with Greeks.

Output: one float64 array ``trade_sums`` of shape ``(n_blocks, n_trades, n_cols)``, a row per
block of ``BLOCK_SAMPLES`` samples and, per trade (in the trade file's order), the sum and the
sum of squares of each estimator: the price first, then the Greeks in the order the job lists
them (``columns``). It is the per-trade table for tools: summing axis 0 gives the book's totals.
Shards are ranges of blocks across the whole book, so a failed shard costs only its paths.
``reduce`` adds the rows with ``math.fsum`` (exactly rounded), so the result is byte-identical
for every shard count and executor. The simulation is in
:mod:`tessera.kernels.montecarlo.book_cpu`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
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
from tessera.kernels.montecarlo import book_cpu
from tessera.kernels.montecarlo.book_cpu import BLOCK_SAMPLES, N_SCEN
from tessera.kernels.montecarlo.book_params import GBM_PRODUCTS, Params, parse, parse_trades
from tessera.kernels.montecarlo.book_params import to_dict as params_dict
from tessera.kernels.montecarlo.gbm import Z95, _mean_se
from tessera.kernels.montecarlo.heston_cpu import (
    N_STEP_CONSTS,
    SCHEME_EULER,
    SCHEME_QE,
    step_constants,
)
from tessera.kernels.rng import seed_key

ARRAY = "trade_sums"
SLOT_NAMES = ("price", "delta", "gamma", "vega", "rho")
DEFAULT_SHARD_WORK = 2**28  # path-steps plus trade evaluations per shard
# path-steps per second in-process, roughly (one shard, --executor local, 2 cores); for
# choosing the executor only (tessera.engine.choose), never for a result
WORK_PER_SECOND = 4e7
NODE_TOL = 1e-9  # a maturity this close (years) to a uniform node is that node


def columns(params: Params) -> tuple[str, ...]:
    """The estimators of a trade's row, in order: ``price`` and the Greeks asked for."""
    return ("price", *params.greeks)


def n_blocks(params: Params) -> int:
    """Rows of ``trade_sums``: ceil(samples / BLOCK_SAMPLES)."""
    return -(-params.samples // BLOCK_SAMPLES)


@dataclasses.dataclass(frozen=True)
class Plan:
    """The book as the Numba kernel takes it (see ``book_cpu.simulate_blocks``)."""

    arrays: tuple[Any, ...]
    nodes: int  # time-grid nodes summed over underlyings (path-steps per sample and sign)
    max_nodes: int


def grid(maturities: list[float], steps_per_year: int) -> tuple[list[float], list[bool]]:
    """An underlying's time grid: node 0 at time 0, the uniform nodes ``k / steps_per_year`` up
    to the last maturity, and every maturity that is not within ``NODE_TOL`` of one of them.
    Returns (times, is_uniform)."""
    k_max = int(math.floor((max(maturities) + NODE_TOL) * steps_per_year))
    nodes = {k / steps_per_year: True for k in range(1, k_max + 1)}
    for t in maturities:
        k = round(t * steps_per_year)
        if 1 <= k <= k_max and abs(k / steps_per_year - t) <= NODE_TOL:
            continue
        nodes.setdefault(t, False)
    times = [0.0, *sorted(nodes)]
    return times, [False, *(nodes[t] for t in times[1:])]


def maturity_node(times: list[float], maturity: float, steps_per_year: int) -> int:
    """The node index of ``maturity`` on a grid built by :func:`grid`."""
    k = round(maturity * steps_per_year)
    target = k / steps_per_year if abs(k / steps_per_year - maturity) <= NODE_TOL else maturity
    lo, hi = 0, len(times) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if times[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@functools.lru_cache(maxsize=4)
def plan_arrays(params: Params) -> Plan:
    """The flat arrays of the book: per underlying its model and time grid, per trade its
    product, strike, maturity node, barrier and discount factor, trades grouped by underlying.
    Cached per params (planning asks for it for the shard count, the layout and the memory
    check, each shard for its simulation); the arrays are read only."""
    trades = params.book
    unders = params.underlyings
    index = {u.name: u.index for u in unders}
    by_under: list[list[int]] = [[] for _ in unders]
    for t, trade in enumerate(trades):
        by_under[index[trade.underlying]].append(t)
    g_times: list[float] = []
    g_uni: list[bool] = []
    g_drift: list[float] = []
    g_vol: list[float] = []
    h_rows: list[np.ndarray] = []
    g_off = [0]
    node_of = [0] * len(trades)
    has_asian = []
    for u in unders:
        mats = [trades[t].maturity for t in by_under[u.index]] or [1.0 / params.steps_per_year]
        times, uni = grid(mats, params.steps_per_year)
        for t in by_under[u.index]:  # relative to the underlying's first node
            node_of[t] = maturity_node(times, trades[t].maturity, params.steps_per_year)
        has_asian.append(
            int(any(trades[t].product == "asian_arithmetic_call" for t in by_under[u.index]))
        )
        for j in range(len(times)):
            dt = times[j + 1] - times[j] if j + 1 < len(times) else 0.0
            if u.model == "gbm":
                g_drift.append((params.rate - 0.5 * u.volatility**2) * dt)
                g_vol.append(u.volatility * math.sqrt(dt))
                h_rows.append(np.zeros(N_STEP_CONSTS))
            else:
                g_drift.append(0.0)
                g_vol.append(0.0)
                consts = step_constants(
                    dt if dt > 0 else 1.0, u.kappa, u.theta, u.xi, u.rho, params.rate
                )
                h_rows.append(np.asarray(consts, dtype=np.float64))
        g_times.extend(times)
        g_uni.extend(uni)
        g_off.append(len(g_times))
    t_order = [t for group in by_under for t in group]
    t_off = [0]
    for group in by_under:
        t_off.append(t_off[-1] + len(group))
    product_code = {p: i for i, p in enumerate(GBM_PRODUCTS)}
    slot_of = {name: i for i, name in enumerate(SLOT_NAMES)}
    slots = [-1] * len(SLOT_NAMES)
    for c, name in enumerate(columns(params)):
        slots[slot_of[name]] = c
    h = book_cpu.SPOT_BUMP
    bumps = [
        h,
        book_cpu.VOL_BUMP,
        book_cpu.RATE_BUMP,
        float(fastmath.log(1.0 + h)),
        float(fastmath.log(1.0 - h)),
    ]
    f64, i64 = np.float64, np.int64
    arrays = (
        np.array([0 if u.model == "gbm" else 1 for u in unders], dtype=i64),
        np.array([float(fastmath.log(u.spot)) for u in unders], dtype=f64),
        np.array([u.v0 for u in unders], dtype=f64),
        np.array([u.volatility for u in unders], dtype=f64),
        np.array([SCHEME_QE if u.scheme == "qe" else SCHEME_EULER for u in unders], dtype=i64),
        np.array(g_off, dtype=i64),
        np.array(g_times, dtype=f64),
        np.array(g_uni, dtype=np.bool_),
        np.array(g_drift, dtype=f64),
        np.array(g_vol, dtype=f64),
        np.ascontiguousarray(np.stack(h_rows)),
        np.array(t_off, dtype=i64),
        np.array(t_order, dtype=i64),
        np.array([product_code[t.product] for t in trades], dtype=i64),
        np.array([t.strike for t in trades], dtype=f64),
        np.array(node_of, dtype=i64),
        np.array(
            [
                book_cpu.NO_BARRIER if t.barrier is None else float(fastmath.log(t.barrier))
                for t in trades
            ],
            dtype=f64,
        ),
        np.array([float(fastmath.exp(-params.rate * t.maturity)) for t in trades], dtype=f64),
        np.array([t.maturity for t in trades], dtype=f64),
        np.array(has_asian, dtype=i64),
        float(params.rate),
        np.array(slots, dtype=i64),
        np.array(bumps, dtype=f64),
    )
    sizes = [g_off[i + 1] - g_off[i] for i in range(len(unders))]
    return Plan(arrays=arrays, nodes=sum(s - 1 for s in sizes), max_nodes=max(sizes))


class BookKernel:
    """``montecarlo.book``: see :mod:`tessera.kernels.montecarlo.book_params` for the params
    and the trade file."""

    name = "montecarlo.book"
    uses_every_core = True  # a shard's blocks run on every core (Numba's threads)
    work_unit = "path-steps"

    def parse_params(self, raw: Mapping[str, Any]) -> Params:
        """Validate ``[params]`` (the trade file is read by ``prepare``)."""
        return parse(raw)

    def prepare(self, params: Params, io: InputIO) -> Params:
        """Read and check the trade file, unless the params carry its rows (a planned job).
        Raises ``ParamError("trades", ...)`` naming the row and the column of a bad trade."""
        if params.rows is not None:
            return params
        with io.open_input(params.trades) as f:
            raw = f.read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ParamError(
                "trades", f"{params.trades} is not UTF-8 text (byte {exc.start})"
            ) from None
        rows = parse_trades(text, params.underlyings, params.trades)
        return dataclasses.replace(params, rows=rows)

    def warm(self, params: Params) -> None:
        """The kernel on no blocks: compiles it (or loads Numba's cache)."""
        self._simulate(params, 0, 0, 0)

    def locations(self, params: Params) -> tuple[Location, ...]:
        """The trade file (an input outside the store)."""
        return (Location("trades", params.trades),)

    def params_to_dict(self, params: Params) -> dict[str, Any]:
        """Canonical params, with the trade rows once read."""
        return params_dict(params)

    def _work_per_sample(self, params: Params) -> int:
        sims = 1 + (2 if "vega" in params.greeks else 0)
        nodes = plan_arrays(params).nodes if params.rows is not None else 0
        per_path = sims * nodes + len(params.rows or ())
        return per_path * (2 if params.antithetic else 1)

    def shards_for_size(self, params: Params, shard_size: int) -> int:
        """Shards when each holds ``shard_size`` paths (whole blocks)."""
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
            raise ParamError("shard_size", f"expected a number of paths >= 1, got {shard_size!r}")
        samples = max(shard_size // (2 if params.antithetic else 1), 1)
        per_shard = -(-samples // BLOCK_SAMPLES)
        return -(-n_blocks(params) // per_shard)

    def default_shards(self, params: Params) -> int:
        """About ``DEFAULT_SHARD_WORK`` path-steps and trade evaluations per shard."""
        work = params.samples * self._work_per_sample(params)
        return max(1, min(n_blocks(params), -(-work // DEFAULT_SHARD_WORK)))

    def layout(self, params: Params, n_shards: int) -> Layout:
        """``trade_sums`` (n_blocks, n_trades, 2 * len(columns)) float64, cut by blocks."""
        rows = n_blocks(params)
        chunk, bounds = split_rows(rows, n_shards)
        width = 2 * len(columns(params))
        n_trades = len(params.book)
        per_sample = self._work_per_sample(params)
        work = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            samples = min(b * BLOCK_SAMPLES, params.samples) - a * BLOCK_SAMPLES
            work.append(samples * per_sample)
        return Layout(
            arrays=(
                ArraySpec(ARRAY, (rows, n_trades, width), "float64", (chunk, n_trades, width)),
            ),
            bounds=(bounds,),
            shard_work=tuple(work),
            work_unit=self.work_unit,
            regular=True,
        )

    def _simulate(self, params: Params, seed: int, start: int, stop: int) -> np.ndarray:
        plan = plan_arrays(params)
        key = np.array(seed_key(seed), dtype=np.uint64)
        width = 2 * len(columns(params))
        return book_cpu.simulate_blocks(
            start,
            stop,
            params.samples,
            len(params.book),
            width,
            key,
            params.antithetic,
            *plan.arrays,
        )

    def compute(
        self, params: Params, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
    ) -> ShardOutput:
        """Rows ``bounds[shard] .. bounds[shard+1]`` of ``trade_sums``. CPU only: raises
        ``ValueError`` when the engine lends a GPU, and for a layout of another job."""
        if io is not None and io.device != "cpu":
            raise ValueError(
                "montecarlo.book runs on the CPU only (no CUDA twin yet); set resources.gpus = 0"
            )
        if not 0 <= shard < layout.n_shards:
            raise ValueError(f"shard {shard} is out of range for {layout.n_shards} shards")
        spec = layout.arrays[0]
        expected = (n_blocks(params), len(params.book), 2 * len(columns(params)))
        if spec.name != ARRAY or spec.shape != expected:
            raise ValueError(f"layout array {spec.name} {spec.shape} does not match {expected}")
        start, stop = layout.region(shard)[ARRAY]
        rows = self._simulate(params, seed, start, stop)
        samples = min(stop * BLOCK_SAMPLES, params.samples) - start * BLOCK_SAMPLES
        paths = samples * (2 if params.antithetic else 1)
        stats = {"blocks": stop - start, "paths": paths, "path_steps": layout.shard_work[shard]}
        return ShardOutput(arrays={ARRAY: rows}, stats=stats)

    def reduce(
        self, params: Params, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
    ) -> dict[str, Any]:
        """Per trade (file order): price, standard error, 95% interval and the Greeks asked
        for, each ``{"value", "stderr"}``. Columns are summed with ``math.fsum``."""
        rows = np.asarray(arrays[ARRAY][...], dtype=np.float64)
        expected = (n_blocks(params), len(params.book), 2 * len(columns(params)))
        if rows.shape != expected:
            raise ValueError(f"{ARRAY} has shape {rows.shape}, expected {expected}")
        n = float(params.samples)
        cols = columns(params)
        out: dict[str, Any] = {}
        for t, trade in enumerate(params.book):
            tot = [math.fsum(rows[:, t, c].tolist()) for c in range(2 * len(cols))]
            price, se = _mean_se(n, tot[0], tot[1])
            entry: dict[str, Any] = {
                "price": price,
                "stderr": se,
                "ci95": [price - Z95 * se, price + Z95 * se],
            }
            if params.greeks:
                greeks = {}
                for c, name in enumerate(cols[1:], start=1):
                    value, gse = _mean_se(n, tot[2 * c], tot[2 * c + 1])
                    greeks[name] = {"value": value, "stderr": gse}
                entry["greeks"] = greeks
            out[trade.id] = entry
        return {
            "trades": out,
            "paths": params.paths,
            "underlyings": [u.name for u in params.underlyings],
        }

    def projected_seconds(self, params: Params, layout: Layout, shard: int) -> float:
        """Seconds ``shard`` takes on one core, roughly: its work at ``WORK_PER_SECOND``."""
        return layout.shard_work[shard] / WORK_PER_SECOND

    def shard_memory_bytes(self, params: Params, layout: Layout, shard: int) -> int:
        """Projected peak bytes of one shard: its rows twice (the result and the copy the store
        encodes), 8 * n_blocks_in_shard * n_trades * n_cols each, plus per Numba thread the
        scenario paths and prefix sums, 8 * 5 * 2 * N_SCEN * max_nodes, and the plan's
        arrays (about 100 bytes per trade and per grid node)."""
        start, stop = layout.region(shard)[ARRAY]
        width = 2 * len(columns(params))
        rows = (stop - start) * len(params.book) * width * 8
        plan = plan_arrays(params)
        scratch = 8 * 5 * 2 * N_SCEN * plan.max_nodes
        plan_bytes = 100 * (len(params.book) + plan.nodes)
        return 2 * rows + scratch * numba.config.NUMBA_NUM_THREADS + plan_bytes


KERNEL = BookKernel()
