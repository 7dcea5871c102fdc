"""The kernel SDK (``tessera.sdk``): write your own kernel in a few dozen lines.

Two bases:

- ``Kernel``: defaults for every optional part of the protocol (params validated from a frozen
  dataclass's type hints, no inputs, no locations outside the store). You write ``layout``,
  ``compute`` and ``reduce``.
- ``BlockKernel``: the common Monte Carlo shape. The work is ``items(params)`` items (paths,
  photons, samples) cut into blocks of ``block_items``; ``compute_blocks`` returns one row of
  ``columns`` sums per block; ``finish`` turns the column totals into the answer, taking its
  counts from the totals, so that the first shards alone answer too (``reduce_prefix``). Blocks
  are a constant of the kernel, not of the shard, and totals are exact sums (``math.fsum``) in
  block order, so the result is byte-identical for any shard count and executor.

Params: a frozen dataclass. Each field's type hint says what is accepted (``int``, ``float``,
``bool``, ``str``, ``Literal[...]``, ``tuple[T, ...]``, ``T | None``); ``param(default, lo=...,
hi=...)`` adds bounds. Unknown keys, missing keys and bad values raise ``ParamError`` naming
the key (the engine reports ``params.<key>``).

This module imports NumPy only; your kernel brings Numba.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Union

import numpy as np

from tessera.kernels.base import (
    ArraySpec,
    InputIO,
    ItemError,
    Layout,
    Location,
    ParamError,
    ShardIO,
    ShardOutput,
    split_rows,
)

__all__ = [
    "ArraySpec",
    "BlockKernel",
    "InputIO",
    "ItemError",
    "Kernel",
    "Layout",
    "Location",
    "ParamError",
    "ShardIO",
    "ShardOutput",
    "param",
    "parse_dataclass",
    "split_rows",
]

_MISSING = dataclasses.MISSING


def param(
    default: Any = _MISSING,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    doc: str = "",
) -> Any:
    """A params field with bounds: ``lo <= value <= hi`` (``lo < value`` with ``lo_open``).
    Without ``default`` the key is required."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "doc": doc}
    if default is _MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(hint)[0])}s"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint) if a is not type(None))
    return getattr(hint, "__name__", str(hint))


def _convert(key: str, hint: Any, value: Any) -> Any:
    """``value`` checked against the type hint ``hint``; ``ParamError`` naming ``key``."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(key, option, value)
            except ParamError:
                continue
        raise ParamError(key, f"expected {_describe(hint)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices or isinstance(value, bool) != any(
            isinstance(c, bool) for c in choices
        ):
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint_text = f"; did you mean {close[0]!r}?" if close else ""
            raise ParamError(key, f"{value!r} is not {_describe(hint)}{hint_text}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ParamError(key, f"expected {_describe(hint)}, got {value!r}")
        inner = typing.get_args(hint)[0]
        return tuple(_convert(f"{key}[{i}]", inner, v) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamError(key, f"expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(key, f"expected an integer, got {type(value).__name__} {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(key, f"expected a number, got {type(value).__name__} {value!r}")
        try:
            number = float(value)
        except OverflowError:
            raise ParamError(key, f"{value!r} is too large for a number") from None
        if not math.isfinite(number):
            raise ParamError(key, f"expected a finite number, got {value!r}")
        return number
    if hint is str:
        if not isinstance(value, str):
            raise ParamError(key, f"expected a string, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"params field {key!r}: unsupported type hint {hint!r}")


def _check_bounds(key: str, value: Any, meta: Mapping[str, Any]) -> None:
    lo, hi = meta.get("lo"), meta.get("hi")
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if lo is not None and (v <= lo if meta.get("lo_open") else v < lo):
            op = ">" if meta.get("lo_open") else ">="
            raise ParamError(key, f"{v!r} is out of range; expected {op} {lo:g}")
        if hi is not None and v > hi:
            raise ParamError(key, f"{v!r} is out of range; expected <= {hi:g}")


def parse_dataclass(cls: type, raw: Mapping[str, Any]) -> Any:
    """Build the frozen dataclass ``cls`` from ``raw``, validating every value against its
    field's type hint and bounds. Raises ``ParamError`` naming the first unknown key, the
    missing keys (all of them), or the bad value."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            expected = f"did you mean {close[0]!r}?" if close else f"expected {sorted(fields)}"
            raise ParamError(str(key), f"unknown key; {expected}")
    missing = [
        name
        for name, f in fields.items()
        if name not in raw and f.default is _MISSING and f.default_factory is _MISSING
    ]
    if missing:
        also = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        first = missing[0]
        raise ParamError(first, f"is required: {_describe(hints[first])}{also}")
    values = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        value = _convert(name, hints[name], raw[name])
        _check_bounds(name, value, f.metadata)
        values[name] = value
    return cls(**values)


def to_plain(params: Any) -> dict[str, Any]:
    """A params dataclass as JSON-ready data: every field, tuples as lists."""

    def plain(value: Any) -> Any:
        return [plain(v) for v in value] if isinstance(value, tuple) else value

    return {f.name: plain(getattr(params, f.name)) for f in dataclasses.fields(params)}


class Kernel:
    """Defaults for every optional part of the kernel protocol. Set ``Params`` (a frozen
    dataclass) and ``work_unit``; write ``layout``, ``compute`` and ``reduce``."""

    Params: ClassVar[type]
    name: str = ""
    work_unit: str = "items"
    # Work units one core does per second, roughly: with it, tessera projects a job's seconds
    # and runs a short job in-process rather than on a Dask cluster (tessera.engine.choose).
    work_per_second: ClassVar[float | None] = None

    def projected_seconds(self, params: Any, layout: Layout, shard: int) -> float | None:
        """Seconds ``shard`` takes on one core: its work over ``work_per_second``; ``None``
        (no projection) without it."""
        if not self.work_per_second:
            return None
        return layout.shard_work[shard] / self.work_per_second

    def parse_params(self, raw: Mapping[str, Any]) -> Any:
        """``Params`` validated from ``raw`` (see ``parse_dataclass``)."""
        return parse_dataclass(self.Params, raw)

    def prepare(self, params: Any, io: InputIO) -> Any:
        """No inputs to resolve: ``params`` unchanged."""
        return params

    def locations(self, params: Any) -> tuple[Location, ...]:
        """No files outside the store."""
        return ()

    def warm(self, params: Any) -> None:
        """Nothing to compile ahead (override to call your ``@njit`` functions on empty
        input, so that compile time is reported apart from shard time)."""

    def params_to_dict(self, params: Any) -> dict[str, Any]:
        """Every field, defaults filled in."""
        return to_plain(params)

    def default_shards(self, params: Any) -> int:
        """One shard per core of a small machine: 8 (the layout may use fewer)."""
        return 8

    def shards_for_size(self, params: Any, shard_size: int) -> int:
        """``shard_size`` has no meaning for this kernel: refused."""
        raise ParamError("shard_size", f"{type(self).__name__} has no shard size; use shards")

    def shard_memory_bytes(self, params: Any, layout: Layout, shard: int) -> int:
        """Rows of the row-cut arrays that ``shard`` owns, twice (the result and the copy the
        store encodes)."""
        total = 0
        for spec, (start, stop) in zip(layout.arrays, layout.region(shard).values()):
            row = int(np.prod(spec.shape[1:], dtype=np.int64)) * np.dtype(spec.dtype).itemsize
            total += 2 * (stop - start) * row
        return total

    def layout(self, params: Any, n_shards: int) -> Layout:
        raise NotImplementedError

    def compute(
        self, params: Any, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
    ) -> ShardOutput:
        raise NotImplementedError

    def reduce(
        self, params: Any, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
    ) -> dict[str, Any]:
        raise NotImplementedError


class BlockKernel(Kernel):
    """A kernel whose work is ``items(params)`` items in blocks of ``block_items``, each block
    summarised by one row of ``columns`` float64 sums. Write ``items``, ``compute_blocks`` and
    ``finish``; set ``columns``, ``count_column``, ``block_items`` and ``work_unit``.

    ``compute_blocks(params, seed, first, last, block_items, n_items)`` returns a float64 array
    of shape ``(last - first, len(columns))``: block ``b`` covers items ``b * block_items`` up
    to ``min((b + 1) * block_items, n_items)``. Derive random streams from ``(seed, item)``
    (e.g. ``tessera.kernels.rng.philox4x32``), never from the shard.
    ``finish(params, totals)`` gets the column totals by name and returns the answer. It gets
    the totals of the first shards alone too (``reduce_prefix``, for ``[job] target_stderr``),
    so it takes its counts from the totals, not from ``params``. ``count_column`` names the
    column that counts each block's items: with it, ``reduce`` and ``reduce_prefix`` refuse
    totals that do not count every item of their blocks (a missing or foreign shard).
    """

    columns: ClassVar[tuple[str, ...]] = ()
    count_column: ClassVar[str | None] = None  # the column of items per block, when there is one
    block_items: ClassVar[int] = 4096
    array: ClassVar[str] = "blocks"
    shard_items: ClassVar[int] = 1 << 22  # default shard size in items

    def items(self, params: Any) -> int:
        raise NotImplementedError

    def compute_blocks(
        self, params: Any, seed: int, first: int, last: int, block_items: int, n_items: int
    ) -> np.ndarray:
        raise NotImplementedError

    def finish(self, params: Any, totals: dict[str, float]) -> dict[str, Any]:
        raise NotImplementedError

    def warm(self, params: Any) -> None:
        """``compute_blocks`` on no blocks: compiles the Numba code it calls (or loads it from
        the cache) before the first shard."""
        self.compute_blocks(params, 0, 0, 0, self.block_items, self.items(params))

    def n_blocks(self, params: Any) -> int:
        """Blocks of ``block_items`` covering ``items(params)``."""
        return -(-self.items(params) // self.block_items)

    def default_shards(self, params: Any) -> int:
        """About ``shard_items`` items per shard."""
        return max(1, -(-self.items(params) // self.shard_items))

    def shards_for_size(self, params: Any, shard_size: int) -> int:
        """Shards of ``shard_size`` items each (rounded up to whole blocks)."""
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
            raise ParamError("shard_size", f"expected a number of items >= 1, got {shard_size!r}")
        blocks_per_shard = -(-shard_size // self.block_items)
        return -(-self.n_blocks(params) // blocks_per_shard)

    def layout(self, params: Any, n_shards: int) -> Layout:
        """One float64 array ``(n_blocks, len(columns))`` cut into whole blocks per shard."""
        rows = self.n_blocks(params)
        n_items = self.items(params)
        chunk, bounds = split_rows(rows, n_shards)
        work = tuple(
            min(b * self.block_items, n_items) - a * self.block_items
            for a, b in zip(bounds[:-1], bounds[1:])
        )
        width = len(self.columns)
        return Layout(
            arrays=(ArraySpec(self.array, (rows, width), "float64", (chunk, width)),),
            bounds=(bounds,),
            shard_work=work,
            work_unit=self.work_unit,
            regular=True,
        )

    def compute(
        self, params: Any, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
    ) -> ShardOutput:
        """This shard's blocks through ``compute_blocks``, checked for shape."""
        first, last = layout.region(shard)[self.array]
        rows = np.asarray(
            self.compute_blocks(params, seed, first, last, self.block_items, self.items(params)),
            dtype=np.float64,
        )
        expected = (last - first, len(self.columns))
        if rows.shape != expected:
            raise ValueError(f"compute_blocks returned shape {rows.shape}, expected {expected}")
        return ShardOutput(arrays={self.array: rows}, stats={"blocks": last - first})

    def reduce(
        self, params: Any, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
    ) -> dict[str, Any]:
        """``finish`` on the exact column totals of every block, in block order (``math.fsum``).
        Raises ``ValueError`` when the array is not ``(n_blocks, len(columns))`` or the totals
        do not count every item (see ``count_column``)."""
        rows = np.asarray(arrays[self.array][...], dtype=np.float64)
        expected = (self.n_blocks(params), len(self.columns))
        if rows.shape != expected:
            raise ValueError(f"{self.array} has shape {rows.shape}, expected {expected}")
        return self.finish(params, self._totals(params, rows))

    def reduce_prefix(
        self,
        params: Any,
        seed: int,
        layout: Layout,
        arrays: Mapping[str, Any],
        shards: int,
        io: ShardIO | None = None,
    ) -> dict[str, Any]:
        """The answer of the first ``shards`` shards alone (``[job] target_stderr``): ``finish``
        on the totals of their blocks only (``reduce`` for all of them). Raises ``ValueError``
        for ``shards`` outside 1..n_shards and, as ``reduce``, for totals short of items."""
        if not 1 <= shards <= layout.n_shards:
            raise ValueError(f"shards must be in 1..{layout.n_shards}, got {shards}")
        if shards == layout.n_shards:
            return self.reduce(params, seed, arrays, io)
        stop = int(layout.bounds[0][shards])
        rows = np.asarray(arrays[self.array][0:stop], dtype=np.float64)
        return self.finish(params, self._totals(params, rows))

    def _totals(self, params: Any, rows: np.ndarray) -> dict[str, float]:
        """Exact column totals of ``rows``, the first blocks of the job; ``ValueError`` when
        ``count_column`` does not count every item of those blocks."""
        totals = {c: math.fsum(rows[:, i].tolist()) for i, c in enumerate(self.columns)}
        if self.count_column is not None:
            counted = totals[self.count_column]
            expected = min(len(rows) * self.block_items, self.items(params))
            if counted != expected:
                raise ValueError(
                    f"{self.array} covers {counted:.0f} items in {len(rows)} blocks, expected "
                    f"{expected} (column {self.count_column!r}): a shard is missing or belongs "
                    f"to another job"
                )
        return totals
