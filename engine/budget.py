"""Budgets: the projected cost of a whole job, and stopping when it would exceed the budget.

``project`` prices every shard of the job: those committed as measured (their commit records),
the pending ones projected to take

- the committed shards' seconds scaled by their work (``tessera.engine.cost.project``), once
  the store holds commit records of this job: a measurement of this very job;
- otherwise ``job.timeout_s``: the most an attempt may run, so the projection is an upper bound
  (set ``timeout_s`` near the real shard time, or commit a few shards first, to tighten it).

The price is the catalogue's on the pricing basis (by default the cheapest on-demand instance
type that holds a shard; see ``choose``), with EC2 packing and minimums as in
``tessera.engine.cost``; or, with ``price_per_vcpu_hour``, simply vCPU-hours x that price.
Retries are not counted.

Two callers share it: ``Budget``, which tells executors to stop dispatching once the projection
from the shards finished so far exceeds ``budget_usd`` (shards already running finish and
commit; nothing is lost, and a later run with a higher budget resumes), and ``tessera batch
submit``, which refuses a submission projected over budget (``tessera.engine.batch.budget``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tessera.engine import cost
from tessera.engine.events import Event, ShardCommitted
from tessera.engine.spec import Job

BASES = ("on-demand", "spot", "fargate", "fargate-spot")


@dataclass(frozen=True)
class Projection:
    """A projected total for the whole job, in dollars (``usd``), and how it was reached:
    ``done`` committed shards as measured plus ``pending`` shards of ``seconds_per_pending``
    each on average (``basis`` says where those seconds came from), priced on ``priced_on``
    (e.g. ``c7i.large spot``)."""

    usd: float
    vcpu_hours: float
    done: int
    pending: int
    seconds_per_pending: float
    basis: str
    priced_on: str

    def describe(self) -> str:
        """One line with the numbers."""
        return (
            f"{self.done:,} committed + {self.pending:,} pending shards x "
            f"{self.seconds_per_pending:,.1f} s ({self.basis}) = {self.vcpu_hours:,.2f} "
            f"vCPU-hours, ${self.usd:,.2f} on {self.priced_on}"
        )


def usage_of(job: Job, record: Mapping[str, Any]) -> cost.ShardUsage:
    """The priced usage of one commit record under the job's resources."""
    return cost.ShardUsage(
        seconds=float(record.get("seconds", 0.0)),
        vcpus=job.resources.vcpus,
        memory_mib=job.resources.memory_mib,
        gpus=job.resources.gpus,
    )


def project(
    job: Job,
    records: Mapping[int, Mapping[str, Any]],
    pending: Sequence[int],
    shard_work: Sequence[int],
    *,
    catalogue: cost.Catalogue | None = None,
    basis: str = "on-demand",
    price_per_vcpu_hour: float | None = None,
) -> Projection:
    """Project the whole job's cost: the shards of ``records`` (commit records by shard) as
    measured, the ``pending`` shards scaled from them by ``shard_work`` (or, before any shard
    took time, at ``job.timeout_s`` each, an upper bound). Raises ``ValueError`` for an unknown
    basis or when no option on it holds a shard of this job."""
    done = [(usage_of(job, r), int(r.get("work", shard_work[i]))) for i, r in records.items()]
    remaining = [shard_work[i] for i in pending]
    if done and sum(u.seconds for u, _ in done) > 0:
        usages, how = cost.project(done, remaining), f"scaled from {len(done)} committed shards"
    else:
        res = job.resources
        worst = cost.ShardUsage(float(job.timeout_s), res.vcpus, res.memory_mib, res.gpus)
        usages, how = [u for u, _ in done] + [worst] * len(pending), "job.timeout_s, an upper bound"
    projected = usages[len(done) :]
    per_pending = sum(u.seconds for u in projected) / len(projected) if projected else 0.0
    vcpu_hours = sum(u.seconds * u.vcpus for u in usages) / 3600.0
    if price_per_vcpu_hour is not None:
        usd, priced_on = vcpu_hours * price_per_vcpu_hour, f"${price_per_vcpu_hour:g}/vCPU-hour"
    else:
        work = sum(w for _, w in done) + sum(remaining)
        row = choose(cost.run_costs(usages, work, catalogue or cost.load_catalogue()), basis)
        if row is None:
            what = "such instance type and pricing" if ":" in basis else f"{basis} option"
            raise ValueError(f"price basis {basis!r}: no {what} holds a shard of this job")
        usd, priced_on = row.cost_usd, f"{row.target} {row.pricing}"
    return Projection(
        usd=usd,
        vcpu_hours=vcpu_hours,
        done=len(done),
        pending=len(pending),
        seconds_per_pending=per_pending,
        basis=how,
        priced_on=priced_on,
    )


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
    """Listens to commits and tells executors whether to dispatch another shard: no once the
    projection (``project``, from the shards committed so far) exceeds the limit. Before any
    shard has committed there is nothing to measure, and every shard is admitted."""

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
        self.records: dict[int, Mapping[str, Any]] = dict(committed)
        self.stopped: Projection | None = None
        # The shards that count as the job: all, or (a job with target_stderr) those up to the
        # end of the wave about to run, so the budget is weighed against what may run next
        self.horizon: int | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, ShardCommitted):
            self.records[event.shard] = {**event.record, "work": event.work}

    def projection(self) -> Projection | None:
        """The projected total now, or ``None`` before a committed shard has taken measurable
        time (a run never stops on the ``timeout_s`` upper bound alone)."""
        if not any(float(r.get("seconds", 0.0)) > 0 for r in self.records.values()):
            return None
        end = len(self.shard_work) if self.horizon is None else self.horizon
        pending = [i for i in range(end) if i not in self.records]
        return project(
            self.job,
            self.records,
            pending,
            self.shard_work,
            catalogue=self.catalogue,
            basis=self.basis,
        )

    def admit(self, shard: int) -> bool:
        """True to dispatch ``shard``; False once the projected total exceeds the limit."""
        if self.stopped is not None:
            return False
        projected = self.projection()
        if projected is None or projected.usd <= self.limit:
            return True
        self.stopped = projected
        return False

    def message(self) -> str:
        """Why dispatching stopped, with the numbers."""
        p = self.stopped
        if p is None:
            return ""
        shards = "1 finished shard" if p.done == 1 else f"{p.done} finished shards"
        return (
            f"budget: the projected total {usd(p.usd)} ({p.priced_on}, from {shards}) exceeds "
            f"budget_usd {usd(self.limit)}; stopped dispatching. Committed shards are kept: "
            f"run again with a higher budget (--budget) to resume."
        )


def usd(amount: float) -> str:
    """Dollars with the digits that matter: ``$12.35``, ``$0.004215``, ``$0.000000071`` (four
    significant digits below a dollar, so a tiny non-zero amount never shows as ``$0.0000``)."""
    if amount == 0 or abs(amount) >= 1:
        return f"${amount:,.2f}"
    digits = max(2, 3 - math.floor(math.log10(abs(amount))))
    text = f"{amount:.{digits}f}".rstrip("0")
    decimals = len(text.partition(".")[2])
    return f"${text}{'0' * max(0, 2 - decimals)}"
