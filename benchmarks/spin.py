"""The ``bench.spin`` kernel: shards that burn a set CPU time and write a set payload.

For measuring the engine itself (per-shard overhead, efficiency, store throughput) without any
arithmetic of interest: each shard spins on the CPU for ``seconds`` and writes ``payload_kib``
KiB of deterministic, incompressible bytes (one chunk per shard).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tessera.kernels.base import (
    ArraySpec,
    InputIO,
    Layout,
    Location,
    ShardIO,
    ShardOutput,
)
from tessera.kernels.validate import check_keys, expected, is_integer, is_number, out_of_range

_KEYS = ("seconds", "payload_kib")


@dataclass(frozen=True)
class Params:
    """``seconds`` of CPU spin and ``payload_kib`` KiB written per shard."""

    seconds: float = 0.0
    payload_kib: int = 0


def _number(raw: Mapping[str, Any], key: str, kind: type, lo: float, hi: float) -> Any:
    value = raw.get(key, kind(0))
    if not (is_number(value) if kind is float else is_integer(value)):
        raise expected(key, "a number", value, typed=True)
    if not lo <= value <= hi:
        raise out_of_range(key, value, f"{lo:g}", f"{hi:g}")
    return kind(value)


class SpinKernel:
    """``bench.spin``: see the module docstring."""

    name = "benchmarks.spin:KERNEL"
    work_unit = "spin-us"

    def parse_params(self, raw: Mapping[str, Any]) -> Params:
        """Validate ``seconds`` (0..3600) and ``payload_kib`` (0..1,048,576)."""
        check_keys(raw, _KEYS)
        return Params(
            _number(raw, "seconds", float, 0, 3600), _number(raw, "payload_kib", int, 0, 1 << 20)
        )

    def warm(self, params: Params) -> None:
        """Nothing compiled."""

    def prepare(self, params: Params, io: InputIO) -> Params:
        """No inputs."""
        return params

    def locations(self, params: Params) -> tuple[Location, ...]:
        """None: the kernel touches only its store."""
        return ()

    def params_to_dict(self, params: Params) -> dict[str, Any]:
        """Both keys."""
        return asdict(params)

    def shards_for_size(self, params: Params, shard_size: int) -> int:
        """``shard_size`` is the shard count itself here (shards have no size)."""
        return shard_size

    def default_shards(self, params: Params) -> int:
        """Eight shards."""
        return 8

    def layout(self, params: Params, n_shards: int) -> Layout:
        """A ``payload`` array with one row (and chunk) per shard."""
        width = max(1, params.payload_kib * 1024)
        return Layout(
            arrays=(ArraySpec("payload", (n_shards, width), "uint8", (1, width)),),
            bounds=(tuple(range(n_shards + 1)),),
            shard_work=tuple(round(params.seconds * 1e6) for _ in range(n_shards)),
            work_unit=self.work_unit,
            regular=True,
        )

    def compute(
        self, params: Params, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
    ) -> ShardOutput:
        """Spin ``seconds`` on the CPU, then return this shard's payload row."""
        end = time.perf_counter() + params.seconds
        spins = 0
        while time.perf_counter() < end:
            spins += 1
        width = layout.arrays[0].shape[1]
        row = np.random.default_rng([seed, shard]).integers(0, 256, (1, width), dtype=np.uint8)
        return ShardOutput(arrays={"payload": row}, stats={"spins": spins})

    def reduce(
        self, params: Params, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
    ) -> dict[str, Any]:
        """The shard count and the payload's byte sum (a cheap integrity check)."""
        payload = np.asarray(arrays["payload"][...])
        return {"shards": int(payload.shape[0]), "payload_sum": int(payload.sum(dtype=np.int64))}

    def shard_memory_bytes(self, params: Params, layout: Layout, shard: int) -> int:
        """The payload row, twice (the array and the encoded copy)."""
        return 2 * layout.arrays[0].shape[1]


KERNEL = SpinKernel()
