"""The budget check of ``tessera batch submit``: refuse a submission projected over budget.

``budget_usd`` (or ``--budget``) bounds the whole job, as for ``tessera run``: the shards already
committed, as measured, plus the pending shards about to be submitted, projected by
``tessera.engine.budget.project`` (the one projection ``tessera run``'s budget uses too). Before
any shard has committed, a pending shard is priced at ``job.timeout_s``, an upper bound. The
basis is ``--price-basis`` (``spot``, ``on-demand``, ``fargate``, ``fargate-spot`` or
``TYPE:spot``/``TYPE:on-demand``), or ``--price-per-vcpu-hour P``. Retries and the reduce job
are not counted.
"""

from __future__ import annotations

from tessera.engine.budget import Projection
from tessera.engine.errors import BatchError


def check(projection: Projection, budget_usd: float) -> None:
    """Refuse a submission whose projected total exceeds ``budget_usd``: raises ``BatchError``
    with the arithmetic."""
    if projection.usd > budget_usd:
        raise BatchError(
            f"projected cost ${projection.usd:,.2f} exceeds the budget ${budget_usd:,.2f}: "
            f"{projection.describe()}; nothing was submitted"
        )
