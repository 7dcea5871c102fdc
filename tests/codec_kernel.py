"""A small kernel that chooses its array's codec, for the codec tests: one uint16 array of
``shards * ROWS`` rows and ``COLUMNS`` columns, chunks of ``CHUNK`` x ``CHUNK`` stored in one
Zarr shard per tessera shard (32 chunks: enough that encoding them on two threads would put
them out of order), compressed as ``codec`` says (``CODECS``). Named in job files as
``tests.codec_kernel:KERNEL``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tessera.sdk import ArraySpec, Kernel, Layout, ShardIO, ShardOutput

ARRAY = "values"
ROWS, COLUMNS, CHUNK = 1024, 512, 128  # rows per shard

# codec param -> the array's compressors (None: the engine's default)
CODECS: dict[str, tuple[dict[str, Any], ...] | None] = {
    "default": None,
    "none": (),
    "zstd-5": ({"name": "zstd", "configuration": {"level": 5, "checksum": False}},),
    "blosc-lz4": (
        {
            "name": "blosc",
            "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "blocksize": 0},
        },
    ),
    "unknown": ({"name": "no-such-codec", "configuration": {}},),
}


@dataclass(frozen=True)
class Params:
    """``codec``: which entry of ``CODECS`` the array is stored with."""

    codec: Literal["default", "none", "zstd-5", "blosc-lz4", "unknown"] = "default"


def values(start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop``: a smooth ramp with a little noise (compressible, not trivially)."""
    rows = np.arange(start, stop, dtype=np.int64)[:, None]
    cols = np.arange(COLUMNS, dtype=np.int64)[None, :]
    noise = (rows * 2_654_435_761 + cols * 40_503) % 17
    return (rows * 7 + cols * 3 + noise).astype(np.uint16)


class CodecKernel(Kernel):
    """See the module docstring."""

    Params = Params
    name = "tests.codec_kernel:KERNEL"
    work_unit = "rows"

    def default_shards(self, params: Params) -> int:
        """Four shards."""
        return 4

    def layout(self, params: Params, n_shards: int) -> Layout:
        """``n_shards * ROWS`` rows; shard i owns one Zarr shard of ``ROWS`` rows."""
        spec = ArraySpec(
            ARRAY,
            (n_shards * ROWS, COLUMNS),
            "uint16",
            (CHUNK, CHUNK),
            shards=(ROWS, COLUMNS),
            compressors=CODECS[params.codec],
        )
        return Layout(
            arrays=(spec,),
            bounds=(tuple(range(0, n_shards * ROWS + 1, ROWS)),),
            shard_work=(ROWS,) * n_shards,
            work_unit=self.work_unit,
        )

    def compute(
        self, params: Params, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
    ) -> ShardOutput:
        """This shard's rows of ``values``."""
        start, stop = layout.region(shard)[ARRAY]
        return ShardOutput(arrays={ARRAY: values(start, stop)})

    def reduce(
        self, params: Params, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
    ) -> dict[str, Any]:
        """The sum of every value (checks that the array reads back)."""
        return {"sum": int(np.asarray(arrays[ARRAY][...], dtype=np.int64).sum())}


KERNEL = CodecKernel()
