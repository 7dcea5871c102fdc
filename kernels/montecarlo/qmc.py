"""What the randomized-QMC variants of the Monte Carlo kernels share (``sampler = "sobol"`` in
``montecarlo.gbm``, ``montecarlo.heston`` and ``montecarlo.basket``).

Each writes one float64 array ``qmc_sums`` of shape ``(n_blocks, replicates, n_stats)``: a row
per block of points and replicate, with the columns of its Philox kernel's rows (column 0 the
count). Shard ``i`` owns the blocks ``bounds[i] .. bounds[i+1]``, the same range of point
indices in every replicate, reached by skip-ahead. Replicate ``r`` is scrambling ``r`` of the
job's seed (:func:`sobol.scrambled`), so a row is a pure function of (params, seed, block,
replicate) and ``result.json`` is byte-identical for any shard count, executor and resume.

The standard error of a price is the spread of the replicates' means over sqrt(R): the
replicates are independent and each is unbiased, so the error is honest however small.

:class:`SobolSwitch` hands a Sobol job of an SDK ``BlockKernel`` (heston, basket) to its QMC module.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from tessera.kernels.base import ArraySpec, Layout, ParamError, ShardIO, ShardOutput, split_rows
from tessera.kernels.montecarlo import sobol
from tessera.kernels.sdk import BlockKernel

ARRAY = "qmc_sums"
Z95 = 1.959963984540054  # as gbm.Z95


@functools.lru_cache(maxsize=4)
def scrambles(dimension: int, seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The scrambled direction numbers ``(count, dimension, 32)`` and digital shifts
    ``(count, dimension)`` of replicates 0..count-1 (read-only, cached)."""
    pairs = [sobol.scrambled(dimension, seed, r) for r in range(count)]
    v = np.ascontiguousarray(np.stack([p[0] for p in pairs]))
    shift = np.ascontiguousarray(np.stack([p[1] for p in pairs]))
    v.setflags(write=False)
    shift.setflags(write=False)
    return v, shift


@functools.lru_cache(maxsize=8)
def bridge_plan(steps: int) -> tuple[np.ndarray, ...]:
    return sobol.bridge_plan(steps)


def block_points(points: int, block: int, start: int, stop: int) -> int:
    """Points per replicate in blocks ``start .. stop`` of ``block`` points (the last block
    may be partial)."""
    return max(min(stop * block, points) - start * block, 0)


def shards_for_size(points_per_replicate: int, replicates: int, block: int, size: Any) -> int:
    """Shards when each holds about ``size`` paths: whole blocks of every replicate."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ParamError("shard_size", f"expected a number of paths >= 1, got {size!r}")
    blocks = -(-points_per_replicate // block)
    per_replicate = max(size // replicates, 1)
    return -(-blocks // -(-per_replicate // block))


def default_shards(points_per_replicate: int, block: int, work: int, shard_work: int) -> int:
    """About ``shard_work`` units of ``work`` per shard, at most one shard per block."""
    blocks = -(-points_per_replicate // block)
    return max(1, min(blocks, -(-work // shard_work)))


def layout(
    points: int, replicates: int, block: int, n_stats: int, n_shards: int, unit: str, per_path: int
) -> Layout:
    """``qmc_sums`` (n_blocks, replicates, n_stats), axis 0 cut by ``split_rows``; a shard's
    work is its paths times ``per_path`` (steps, or asset-steps)."""
    rows = -(-points // block)
    chunk, bounds = split_rows(rows, n_shards)
    work = tuple(
        block_points(points, block, a, b) * replicates * per_path
        for a, b in zip(bounds[:-1], bounds[1:])
    )
    return Layout(
        arrays=(
            ArraySpec(ARRAY, (rows, replicates, n_stats), "float64", (chunk, replicates, n_stats)),
        ),
        bounds=(bounds,),
        shard_work=work,
        work_unit=unit,
        regular=True,
    )


def check_layout(layout: Layout, shard: int, expected: tuple[int, int, int], device: str) -> None:
    """``ValueError`` for a shard out of range, a layout of another job or a GPU device."""
    if not 0 <= shard < layout.n_shards:
        raise ValueError(f"shard {shard} is out of range for {layout.n_shards} shards")
    spec = layout.arrays[0]
    if spec.name != ARRAY or spec.shape != expected:
        raise ValueError(
            f"layout array {spec.name} {spec.shape} does not match these params "
            f"({ARRAY} {expected})"
        )
    if device != "cpu":
        raise ValueError(
            'sampler = "sobol" runs on the CPU only (the CUDA twins draw Philox normals); '
            'set resources.gpus = 0 or sampler = "philox"'
        )


def totals(rows: np.ndarray, n: int) -> list[list[float]]:
    """Per replicate, the exact (``math.fsum``) column totals of ``rows`` (blocks, R, stats);
    ``ValueError`` unless every replicate counts ``n`` points."""
    out = [
        [math.fsum(rows[:, q, c].tolist()) for c in range(rows.shape[2])]
        for q in range(rows.shape[1])
    ]
    for q, tot in enumerate(out):
        if tot[0] != n:
            raise ValueError(f"{ARRAY} covers {tot[0]:.0f} points of replicate {q}, expected {n}")
    return out


def spread(means: Sequence[float]) -> tuple[float, float]:
    """Mean of the replicate estimates and its standard error (their spread / sqrt(R))."""
    r = len(means)
    price = math.fsum(means) / r
    var = math.fsum((m - price) ** 2 for m in means) / (r - 1)
    return price, math.sqrt(var / r)


def estimate(tot: list[list[float]], n: int, col: int) -> dict[str, Any]:
    """``{"price", "stderr", "ci95"}`` of the per-point column ``col``."""
    price, se = spread([t[col] / n for t in tot])
    return {"price": price, "stderr": se, "ci95": [price - Z95 * se, price + Z95 * se]}


def controlled(
    tot: list[list[float]], n: int, y: int, x: int, xx: int, xy: int, mu: float
) -> tuple[dict[str, Any], dict[str, float]]:
    """The estimate of column ``y`` with the control column ``x`` of known mean ``mu``
    (``xx``, ``xy``: the columns of x^2 and x y): one beta from the centred sums of all points
    pooled, applied to each replicate's means, the error again the replicates' spread.
    Returns the estimate and ``{"beta", "stderr_without"}``."""
    total = float(n * len(tot))
    sy = math.fsum(t[y] for t in tot)
    sx = math.fsum(t[x] for t in tot)
    sxx = math.fsum(t[xx] for t in tot)
    sxy = math.fsum(t[xy] for t in tot)
    cxx = max(sxx - sx * sx / total, 0.0)
    beta = (sxy - sx * sy / total) / cxx if cxx > 0.0 else 0.0
    price, se = spread([(t[y] - beta * (t[x] - n * mu)) / n for t in tot])
    plain = estimate(tot, n, y)["stderr"]
    entry = {"price": price, "stderr": se, "ci95": [price - Z95 * se, price + Z95 * se]}
    return entry, {"beta": beta, "stderr_without": plain}


def sampler_entry(replicates: int, points: int, bridge: bool) -> dict[str, Any]:
    """The ``sampler`` block of ``result.json``."""
    return {
        "name": "sobol",
        "replicates": replicates,
        "points_per_replicate": points,
        "brownian_bridge": bridge,
    }


def whole_rows(arrays: Any, expected: tuple[int, int, int]) -> np.ndarray:
    """``qmc_sums`` read whole (what ``reduce`` reads); ``ValueError`` unless it has the
    ``expected`` shape."""
    rows = np.asarray(arrays[ARRAY][...], dtype=np.float64)
    if rows.shape != expected:
        raise ValueError(f"{ARRAY} has shape {rows.shape}, expected {expected}")
    return rows


def prefix_rows(layout: Layout, arrays: Any, shards: int) -> np.ndarray | None:
    """The rows of the first ``shards`` shards (what ``reduce_prefix`` reads), or ``None``
    when those are all of them (the whole answer, ``reduce``'s). ``ValueError`` for
    ``shards`` outside 1..n_shards."""
    if not 1 <= shards <= layout.n_shards:
        raise ValueError(f"shards must be in 1..{layout.n_shards}, got {shards}")
    if shards == layout.n_shards:
        return None
    return np.asarray(arrays[ARRAY][0 : int(layout.bounds[0][shards])], dtype=np.float64)


class SobolSwitch(BlockKernel):
    """Runs a ``sampler = "sobol"`` job on the module ``sobol_module`` names (imported then
    only), whose functions are the kernel methods below less ``self``, and every other job on
    the kernel after this class in the method order, the Philox one. List it first:
    ``class HestonKernel(SobolSwitch, HestonPhiloxKernel)``."""

    sobol_module: ClassVar[str]

    def _sobol(self, params: Any) -> Any:
        """The QMC module of a Sobol job, else ``None``."""
        return importlib.import_module(self.sobol_module) if params.sampler.sobol else None

    def warm(self, params: Any) -> None:
        """The job's sampler's ``warm``."""
        if (variant := self._sobol(params)) is not None:
            return variant.warm(params)
        return super().warm(params)

    def shards_for_size(self, params: Any, shard_size: int) -> int:
        """The job's sampler's ``shards_for_size``."""
        if (variant := self._sobol(params)) is not None:
            return variant.shards_for_size(params, shard_size)
        return super().shards_for_size(params, shard_size)

    def default_shards(self, params: Any) -> int:
        """The job's sampler's ``default_shards``."""
        if (variant := self._sobol(params)) is not None:
            return variant.default_shards(params)
        return super().default_shards(params)

    def layout(self, params: Any, n_shards: int) -> Layout:
        """The job's sampler's ``layout``."""
        if (variant := self._sobol(params)) is not None:
            return variant.layout(params, n_shards)
        return super().layout(params, n_shards)

    def compute(
        self, params: Any, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
    ) -> ShardOutput:
        """The job's sampler's ``compute``."""
        if (variant := self._sobol(params)) is not None:
            return variant.compute(params, seed, layout, shard, io)
        return super().compute(params, seed, layout, shard, io)

    def reduce(
        self, params: Any, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
    ) -> dict[str, Any]:
        """The job's sampler's ``reduce``."""
        if (variant := self._sobol(params)) is not None:
            return variant.reduce(params, seed, arrays, io)
        return super().reduce(params, seed, arrays, io)

    def reduce_prefix(
        self,
        params: Any,
        seed: int,
        layout: Layout,
        arrays: Mapping[str, Any],
        shards: int,
        io: ShardIO | None = None,
    ) -> dict[str, Any]:
        """The job's sampler's ``reduce_prefix``."""
        if (variant := self._sobol(params)) is not None:
            return variant.reduce_prefix(params, seed, layout, arrays, shards, io)
        return super().reduce_prefix(params, seed, layout, arrays, shards, io)

    def projected_seconds(self, params: Any, layout: Layout, shard: int) -> float | None:
        """The shard's work at the Sobol module's ``WORK_PER_SECOND``, or the Philox
        kernel's."""
        if (variant := self._sobol(params)) is not None:
            return layout.shard_work[shard] / variant.WORK_PER_SECOND
        return super().projected_seconds(params, layout, shard)

    def shard_memory_bytes(self, params: Any, layout: Layout, shard: int) -> int:
        """The job's sampler's ``shard_memory_bytes``."""
        if (variant := self._sobol(params)) is not None:
            return variant.shard_memory_bytes(params, layout, shard)
        return super().shard_memory_bytes(params, layout, shard)
