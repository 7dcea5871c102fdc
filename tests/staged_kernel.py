"""A two-stage kernel for the engine's stage tests, written with the SDK. Named in job files as
``tests.staged_kernel:KERNEL``.

Stage ``fit`` has ``fit_shards`` shards; shard i writes row i of the array ``fit`` (a sum over a
pseudo-random sequence). Stage ``apply`` has the shard count the job asks for; each of its
shards reads the whole ``fit`` array back through the I/O the engine lends and writes its rows
of ``applied`` as values mixed with the fit's total. An apply shard that ran before every fit
shard had committed would read zeros (the array's fill value) and write other bytes, so a
byte-identical result shows that the stages ran in order; ``compute`` also refuses to run on
an incomplete fit (a zero row), which the engine should never let happen.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tessera.kernels.base import Stage
from tessera.sdk import ArraySpec, Kernel, Layout, ShardIO, ShardOutput, param, split_rows

FIT, APPLIED = "fit", "applied"
MODULUS = 1_000_003


@dataclass(frozen=True)
class Params:
    """``rows`` rows of ``applied``; ``fit_shards`` shards in the first stage; each apply
    shard sleeps ``apply_sleep_s`` first (so a test can kill a run during stage 2)."""

    rows: int = param(64, lo=1, hi=1 << 20)
    fit_shards: int = param(2, lo=1, hi=64)
    apply_sleep_s: float = param(0.0, lo=0.0, hi=10.0)


def _fit_row(seed: int, i: int) -> int:
    k = np.arange(1000, dtype=np.int64)
    return int(((k * 2_654_435_761 + seed + 7919 * i) % MODULUS).sum()) + 1


class StagedKernel(Kernel):
    """See the module docstring."""

    Params = Params
    name = "tests.staged_kernel:KERNEL"
    work_unit = "rows"

    def default_shards(self, params: Params) -> int:
        """Four apply shards."""
        return 4

    def layout(self, params: Params, n_shards: int) -> Layout:
        """``fit`` (fit_shards rows, one per fit shard) and ``applied`` (rows), with the fit
        shards first; ``n_shards`` is the apply stage's shard count."""
        f = params.fit_shards
        chunk, apply_bounds = split_rows(params.rows, n_shards)
        n_apply = len(apply_bounds) - 1
        fit_bounds = tuple(range(f + 1)) + (f,) * n_apply
        applied_bounds = (0,) * f + apply_bounds
        work = (1,) * f + tuple(b - a for a, b in zip(apply_bounds[:-1], apply_bounds[1:]))
        return Layout(
            arrays=(
                ArraySpec(FIT, (f,), "int64", (1,)),
                ArraySpec(APPLIED, (params.rows,), "int64", (chunk,)),
            ),
            bounds=(fit_bounds, applied_bounds),
            shard_work=work,
            work_unit=self.work_unit,
            stages=(Stage("fit", f), Stage("apply", n_apply)),
        )

    def compute(
        self, params: Params, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
    ) -> ShardOutput:
        """A fit shard: its row of ``fit``. An apply shard: its rows of ``applied`` from the
        whole ``fit`` array, read through ``io``. Raises ``ValueError`` when the fit is
        incomplete (a row still 0)."""
        region = layout.region(shard)
        (a, b), (c, d) = region[FIT], region[APPLIED]
        if layout.stage_of(shard) == 0:
            fit = np.array([_fit_row(seed, i) for i in range(a, b)], dtype=np.int64)
            return ShardOutput(arrays={FIT: fit, APPLIED: np.zeros(0, np.int64)})
        if io is None:
            raise ValueError("tests.staged_kernel's apply stage reads the fit through io")
        fit = np.asarray(io.arrays[FIT][...], dtype=np.int64)
        if (fit == 0).any():
            raise ValueError(f"apply shard {shard} ran before the fit: rows {fit.tolist()}")
        time.sleep(params.apply_sleep_s)
        total = int(fit.sum())
        rows = np.arange(c, d, dtype=np.int64)
        values = (rows * 2_654_435_761 + total) % MODULUS
        return ShardOutput(arrays={FIT: np.zeros(0, np.int64), APPLIED: values})

    def reduce(
        self, params: Params, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
    ) -> dict[str, Any]:
        """The fit's total and the applied rows' sum and digest."""
        fit = np.asarray(arrays[FIT][...], dtype=np.int64)
        values = np.asarray(arrays[APPLIED][...], dtype=np.int64)
        return {
            "fit_total": int(fit.sum()),
            "sum": int(values.sum()),
            "sha256": hashlib.sha256(values.tobytes()).hexdigest(),
        }


KERNEL = StagedKernel()
