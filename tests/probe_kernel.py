"""A tiny kernel for the executor tests, written with the SDK: every shard writes one small file
through the I/O the engine lends (``io.write_file``, so ``TESSERA_FAULTS="i:io"`` reaches it)
and returns its rows; ``reduce`` reads every file back and checks it, so a result exists only
when every shard's file was written. Named in job files as ``tests.probe_kernel:KERNEL``.

``swallow = true`` makes ``compute`` catch a failed write and raise a ``RuntimeError`` of its
own from it instead, as kernels that wrap errors do: the engine must still see the lent I/O
failure and retry the shard.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tessera.sdk import ArraySpec, Kernel, Layout, ShardIO, ShardOutput, param, split_rows

ARRAY = "values"
FOLDER = "probe"  # in the store: probe/<first row>.bin, one file per shard


@dataclass(frozen=True)
class Params:
    """``rows`` rows of int64 values; ``swallow``: hide a failed write behind another error."""

    rows: int = param(16, lo=1, hi=1 << 20)
    swallow: bool = False


def _values(seed: int, start: int, stop: int) -> np.ndarray:
    rows = np.arange(start, stop, dtype=np.int64)
    return (rows * 2_654_435_761 + seed) % 1_000_003


def _file(start: int) -> str:
    return f"{FOLDER}/{start:08d}.bin"


class ProbeKernel(Kernel):
    """See the module docstring."""

    Params = Params
    name = "tests.probe_kernel:KERNEL"
    work_unit = "rows"

    def default_shards(self, params: Params) -> int:
        """Four shards."""
        return 4

    def layout(self, params: Params, n_shards: int) -> Layout:
        """One int64 array of ``rows`` rows, cut into whole chunks per shard."""
        chunk, bounds = split_rows(params.rows, n_shards)
        return Layout(
            arrays=(ArraySpec(ARRAY, (params.rows,), "int64", (chunk,)),),
            bounds=(bounds,),
            shard_work=tuple(b - a for a, b in zip(bounds[:-1], bounds[1:])),
            work_unit=self.work_unit,
        )

    def compute(
        self, params: Params, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
    ) -> ShardOutput:
        """Write this shard's values to ``probe/<first row>.bin`` through ``io``, then return
        them as the shard's rows. Raises ``ValueError`` without ``io``."""
        if io is None:
            raise ValueError("tests.probe_kernel needs the engine's io")
        start, stop = layout.region(shard)[ARRAY]
        values = _values(seed, start, stop)
        try:
            io.write_file(_file(start), values.tobytes())
        except OSError as exc:
            if params.swallow:
                raise RuntimeError(f"probe shard {shard}: the write failed") from exc
            raise
        return ShardOutput(arrays={ARRAY: values}, stats={"file_bytes": values.nbytes})

    def reduce(
        self, params: Params, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
    ) -> dict[str, Any]:
        """The values' sum and digest, after checking every shard's file against its rows.
        Raises ``ValueError`` when a file differs."""
        values = np.asarray(arrays[ARRAY][...], dtype=np.int64)
        if io is not None:
            chunk = int(arrays[ARRAY].chunks[0])
            for start in range(0, params.rows, chunk):
                expected = values[start : start + chunk].tobytes()
                if io.read_file(_file(start)) != expected:
                    raise ValueError(f"{_file(start)} does not hold rows {start}..")
        return {
            "rows": params.rows,
            "sum": int(values.sum()),
            "sha256": hashlib.sha256(values.tobytes()).hexdigest(),
        }


KERNEL = ProbeKernel()
