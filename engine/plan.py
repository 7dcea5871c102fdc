"""Plan: how a job is cut into shards, and what the kernel writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.spec import Job
from kernels.base import Layout


@dataclass(frozen=True)
class Plan:
    """The shard count, the kernel's output arrays and which rows each shard owns."""

    layout: Layout

    @property
    def n_shards(self) -> int:
        return self.layout.n_shards

    @property
    def work(self) -> int:
        return self.layout.work

    @property
    def work_unit(self) -> str:
        return self.layout.work_unit

    def to_dict(self) -> dict[str, Any]:
        """JSON form, stored in the store's attributes."""
        return {
            "n_shards": self.n_shards,
            "work": self.work,
            "work_unit": self.work_unit,
            "arrays": [
                {"name": a.name, "shape": list(a.shape), "dtype": a.dtype, "chunks": list(a.chunks)}
                for a in self.layout.arrays
            ],
        }


def plan(job: Job) -> Plan:
    """Lay out ``job``'s output arrays over ``job.n_shards`` shards (pure; no I/O)."""
    layout = job.kernel.layout(job.params, job.n_shards)
    if layout.n_shards != job.n_shards:
        raise AssertionError(f"kernel {job.kernel_name} changed its shard count on replanning")
    return Plan(layout=layout)


def pending(n_shards: int, committed: set[int]) -> list[int]:
    """The shards still to run, in index order (pure)."""
    return [i for i in range(n_shards) if i not in committed]
