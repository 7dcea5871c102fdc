"""The kernel protocol: what every registered kernel provides.

A kernel is arithmetic only. It never imports ``engine`` (nor Dask, boto3, fsspec). The engine
asks it for its parameters, its output arrays and which chunks each shard owns, runs
``compute`` on one shard at a time and finally ``reduce`` over the whole arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class ParamError(ValueError):
    """A bad value in a kernel's ``[params]``.

    ``key`` is the parameter name (without the ``params.`` prefix); the engine turns this into a
    ``SpecError`` naming ``params.<key>``.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class ArraySpec:
    """One output array: its name, shape, dtype and chunk shape (shards own whole chunks)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]


@dataclass(frozen=True)
class Layout:
    """The output arrays of a job and how they are cut into shards.

    Every array is split along axis 0: shard ``i`` owns rows ``bounds[i]:bounds[i+1]`` of every
    array, and every bound is a multiple of that array's chunk length along axis 0 (or its end),
    so two shards never write one chunk.

    ``work`` is the job's total work in ``work_unit`` (e.g. path-steps); ``shard_work[i]`` is
    shard ``i``'s part of it, used for throughput and progress.
    """

    arrays: tuple[ArraySpec, ...]
    bounds: tuple[tuple[int, ...], ...]  # per array: n_shards + 1 row offsets
    shard_work: tuple[int, ...]
    work_unit: str

    @property
    def n_shards(self) -> int:
        return len(self.shard_work)

    @property
    def work(self) -> int:
        return sum(self.shard_work)

    def region(self, shard: int) -> dict[str, tuple[int, int]]:
        """Rows ``(start, stop)`` along axis 0 of each array that ``shard`` owns."""
        return {a.name: (b[shard], b[shard + 1]) for a, b in zip(self.arrays, self.bounds)}


class Kernel(Protocol):
    """What a registered kernel module provides (see DESIGN.md, "Kernels")."""

    name: str
    work_unit: str

    def parse_params(self, raw: Mapping[str, Any]) -> Any:
        """Validate ``[params]``; raise ``ParamError`` naming the key on bad input."""

    def params_to_dict(self, params: Any) -> dict[str, Any]:
        """The canonical, JSON-serialisable form of validated params (defaults filled in)."""

    def shards_for_size(self, params: Any, shard_size: int) -> int:
        """How many shards when each shard holds ``shard_size`` of the kernel's unit."""

    def default_shards(self, params: Any) -> int:
        """Shard count used when the job names neither ``shards`` nor ``shard_size``."""

    def layout(self, params: Any, n_shards: int) -> Layout:
        """The output arrays and which rows each shard owns; may use fewer shards than asked."""

    def compute(
        self, params: Any, seed: int, layout: Layout, shard: int
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Compute shard ``shard``: its rows of every array, and small JSON-able stats."""

    def reduce(self, params: Any, seed: int, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The final answer from the complete arrays; JSON-serialisable and deterministic."""

    def shard_memory_bytes(self, params: Any, layout: Layout, shard: int) -> int:
        """Projected peak memory of one shard, for plan-time checks."""


def split_rows(n_rows: int, n_shards: int) -> tuple[int, tuple[int, ...]]:
    """Cut ``n_rows`` rows into at most ``n_shards`` shards of whole, equal chunks.

    Returns ``(chunk_rows, bounds)``: the chunk length along axis 0 and the shard boundaries
    (``len(bounds) - 1`` shards; the last shard may be shorter). With ``n_rows = 10`` and
    ``n_shards = 4`` this is ``(3, (0, 3, 6, 9, 10))``; asking for more shards than rows gives one
    row per shard. Raises ``ValueError`` for ``n_rows < 1`` or ``n_shards < 1``.
    """
    if n_rows < 1 or n_shards < 1:
        raise ValueError(f"need n_rows >= 1 and n_shards >= 1, got {n_rows} and {n_shards}")
    chunk = -(-n_rows // min(n_shards, n_rows))
    bounds = tuple(range(0, n_rows, chunk)) + (n_rows,)
    return chunk, bounds
