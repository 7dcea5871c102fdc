"""Budgets: stop dispatching shards once the projected cost of the whole job would exceed it.

The projection prices every shard of the job: those committed as measured, the rest scaled by
their work at the measured seconds per work unit, on the pricing basis (by default the cheapest
on-demand instance type that holds a shard). Shards already running finish and commit; nothing
is lost, and a later run with a higher budget resumes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine import cost
from engine.events import Event, Message, ShardCommitted
from engine.spec import Job

BASES = ("on-demand", "spot", "fargate", "fargate-spot")


@dataclass(frozen=True)
class Projection:
    """A projected total: dollars on ``target`` under ``pricing``, from ``done`` shards."""

    total_usd: float
    target: str
    pricing: str
    done: int


def usage_of(job: Job, record: Mapping[str, Any]) -> cost.ShardUsage:
    """The priced usage of one commit record under the job's resources."""
    return cost.ShardUsage(
        seconds=float(record.get("seconds", 0.0)),
        vcpus=job.resources.vcpus,
        memory_mib=job.resources.memory_mib,
        gpus=job.resources.gpus,
    )


def project_total(
    job: Job,
    done: Sequence[tuple[cost.ShardUsage, int]],
    remaining_work: Sequence[int],
    catalogue: cost.Catalogue,
    basis: str = "on-demand",
) -> Projection | None:
    """The projected cost of the whole job on ``basis`` (a pricing model from ``BASES``, or
    ``TYPE:spot`` / ``TYPE:on-demand`` for one instance type). ``None`` before any shard has
    finished (nothing to scale from). Raises ``ValueError`` for an unknown basis."""
    usages = cost.project(done, remaining_work)
    if not usages:
        return None
    work = sum(w for _, w in done) + sum(remaining_work)
    row = choose(cost.run_costs(usages, work, catalogue), basis)
    if row is None:
        what = "such instance type and pricing" if ":" in basis else f"{basis} option"
        raise ValueError(f"price basis {basis!r}: no {what} holds a shard of this job")
    return Projection(row.cost_usd, row.target, row.pricing, len(done))


def choose(rows: Sequence[cost.CostRow], basis: str) -> cost.CostRow | None:
    """The row a budget is priced on: the cheapest of a pricing model from ``BASES``, or one
    instance type's ``TYPE:spot`` / ``TYPE:on-demand``; ``None`` when no such row holds a shard.
    Raises ``ValueError`` for an unknown basis."""
    target, _, pricing = basis.partition(":")
    if pricing:
        return next((r for r in rows if r.target == target and r.pricing == pricing), None)
    if basis not in BASES:
        raise ValueError(
            f"price basis {basis!r}: expected one of {list(BASES)} or TYPE:spot / TYPE:on-demand"
        )
    return cost.cheapest(rows, basis)


class Budget:
    """Listens to commits and tells executors whether to dispatch another shard."""

    def __init__(
        self,
        job: Job,
        limit_usd: float,
        shard_work: Sequence[int],
        committed: Mapping[int, Mapping[str, Any]],
        catalogue: cost.Catalogue,
        basis: str = "on-demand",
    ) -> None:
        self.job = job
        self.limit = limit_usd
        self.shard_work = shard_work
        self.catalogue = catalogue
        self.basis = basis
        self.done: dict[int, tuple[cost.ShardUsage, int]] = {
            i: (usage_of(job, r), int(r.get("work", shard_work[i]))) for i, r in committed.items()
        }
        self.stopped: Projection | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, ShardCommitted):
            self.done[event.shard] = (usage_of(self.job, event.record), event.work)

    def projection(self) -> Projection | None:
        """The projected total now, or ``None`` before the first shard has finished."""
        remaining = [w for i, w in enumerate(self.shard_work) if i not in self.done]
        return project_total(
            self.job, list(self.done.values()), remaining, self.catalogue, self.basis
        )

    def admit(self, shard: int) -> bool:
        """True to dispatch ``shard``; False once the projected total exceeds the limit."""
        if self.stopped is not None:
            return False
        projected = self.projection()
        if projected is None or projected.total_usd <= self.limit:
            return True
        self.stopped = projected
        return False

    def message(self) -> str:
        """Why dispatching stopped, with the numbers."""
        p = self.stopped
        if p is None:
            return ""
        return (
            f"budget: the projected total ${p.total_usd:.4f} ({p.target} {p.pricing}, from "
            f"{p.done} finished shards) exceeds budget_usd ${self.limit:.4f}; stopped "
            f"dispatching. Committed shards are kept: run again with a higher budget "
            f"(--budget) to resume."
        )


def notify(listener: Any, budget: Budget) -> None:
    """Emit the budget's stop message as an event (for progress and logs)."""
    if budget.stopped is not None:
        listener(Message(budget.message()))
