"""Small event dataclasses that executors emit; progress, logs and reports listen to them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunStarted:
    """The driver is about to dispatch ``pending`` of ``n_shards`` shards."""

    job: str
    n_shards: int
    pending: int
    executor: str
    work_unit: str = "units"


@dataclass(frozen=True)
class StageStarted:
    """A staged job's stage ``index`` (of ``stages``) is about to dispatch ``pending`` of its
    ``n_shards`` shards; every earlier stage has committed."""

    name: str
    index: int
    stages: int
    n_shards: int
    pending: int


@dataclass(frozen=True)
class ShardStarted:
    """A shard began an attempt (emitted where the executor can see it)."""

    shard: int
    attempt: int = 0


@dataclass(frozen=True)
class ShardCommitted:
    """A shard's data and commit record are in the store. ``record`` is the commit record."""

    shard: int
    seconds: float
    cpu_seconds: float
    work: int
    record: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False  # was already committed when the attempt started

    @classmethod
    def from_record(
        cls, shard: int, record: dict[str, Any], skipped: bool = False
    ) -> ShardCommitted:
        """The event for a commit record read from the store (``_shards/<i>.json``)."""
        return cls(
            shard=shard,
            seconds=float(record.get("seconds", 0.0)),
            cpu_seconds=float(record.get("cpu_seconds", 0.0)),
            work=int(record.get("work", 0)),
            record=record,
            skipped=skipped,
        )


@dataclass(frozen=True)
class ShardFailed:
    """A shard failed; ``retryable`` is false for kernel errors (never retried blindly)."""

    shard: int
    reason: str
    retryable: bool = False


@dataclass(frozen=True)
class Message:
    """Something to tell the user (dashboard address, budget stop, ...)."""

    text: str


Event = RunStarted | StageStarted | ShardStarted | ShardCommitted | ShardFailed | Message
Listener = Callable[[Event], None]
