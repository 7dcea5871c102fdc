"""The projected cost of a Batch job before submitting it, and the budget check (pure).

``budget_usd`` (or ``--budget``) bounds the whole job, as for ``tessera run``: the shards already
committed, as measured, plus the pending shards about to be submitted. A pending shard is
projected to take

- the committed shards' seconds scaled by its work (``engine.cost.project``), when the store
  already holds commit records of this job (a resubmission, or shards run earlier): a
  measurement of this very job;
- otherwise ``job.timeout_s``: the most an attempt may run, so the projection is an upper bound
  (set ``timeout_s`` near the real shard time, or commit a few shards first, to tighten it).

The price is the catalogue's (``engine/prices.toml`` plus ``--prices``) on ``--price-basis``
(``spot``, ``on-demand``, ``fargate``, ``fargate-spot`` or ``TYPE:spot``/``TYPE:on-demand``), with
EC2 packing and minimums as in ``engine.cost``; or, with ``--price-per-vcpu-hour P``, simply
vCPU-hours x P. Retries and the reduce job are not counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine import cost
from engine.budget import choose, usage_of
from engine.errors import BatchError
from engine.spec import Job


@dataclass(frozen=True)
class Projection:
    """A projected total for the whole job, in dollars, and how it was reached."""

    usd: float
    vcpu_hours: float
    done: int
    pending: int
    seconds_per_pending: float
    basis: str  # where the seconds came from
    priced_on: str  # what the price is

    def describe(self) -> str:
        """One line with the numbers."""
        return (
            f"{self.done:,} committed + {self.pending:,} pending shards x "
            f"{self.seconds_per_pending:,.1f} s ({self.basis}) = {self.vcpu_hours:,.2f} "
            f"vCPU-hours, ${self.usd:,.2f} on {self.priced_on}"
        )


def usages(
    job: Job,
    records: Mapping[int, Mapping[str, Any]],
    pending: Sequence[int],
    shard_work: Sequence[int],
) -> tuple[list[cost.ShardUsage], str]:
    """Usages of every shard of the job (committed as measured, pending projected) and the
    basis of the projection."""
    done = [(usage_of(job, r), int(r.get("work", shard_work[i]))) for i, r in records.items()]
    remaining = [shard_work[i] for i in pending]
    if done and sum(u.seconds for u, _ in done) > 0:
        return cost.project(done, remaining), f"scaled from {len(done)} committed shards"
    res = job.resources
    worst = cost.ShardUsage(float(job.timeout_s), res.vcpus, res.memory_mib, res.gpus)
    return [u for u, _ in done] + [worst] * len(pending), "job.timeout_s, an upper bound"


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
    """Project the whole job's cost. Raises ``ValueError`` for an unknown basis, and
    ``BatchError`` when no priced option holds a shard."""
    all_usages, how = usages(job, records, pending, shard_work)
    projected = all_usages[len(all_usages) - len(pending) :] if pending else []
    per_pending = sum(u.seconds for u in projected) / len(projected) if projected else 0.0
    vcpu_hours = sum(u.seconds * u.vcpus for u in all_usages) / 3600.0
    if price_per_vcpu_hour is not None:
        usd = vcpu_hours * price_per_vcpu_hour
        priced_on = f"${price_per_vcpu_hour:g}/vCPU-hour"
    else:
        row = _row(
            cost.run_costs(all_usages, sum(shard_work), catalogue or cost.load_catalogue()), basis
        )
        usd, priced_on = row.cost_usd, f"{row.target} {row.pricing}"
    return Projection(
        usd=usd,
        vcpu_hours=vcpu_hours,
        done=len(records),
        pending=len(pending),
        seconds_per_pending=per_pending,
        basis=how,
        priced_on=priced_on,
    )


def _row(rows: Sequence[cost.CostRow], basis: str) -> cost.CostRow:
    row = choose(rows, basis)
    if row is None:
        raise BatchError(f"price basis {basis!r}: no priced option holds a shard of this job")
    return row


def check(projection: Projection, budget_usd: float) -> None:
    """Refuse a submission whose projected total exceeds ``budget_usd``: raises ``BatchError``
    with the arithmetic."""
    if projection.usd > budget_usd:
        raise BatchError(
            f"projected cost ${projection.usd:,.2f} exceeds the budget ${budget_usd:,.2f}: "
            f"{projection.describe()}; nothing was submitted"
        )
