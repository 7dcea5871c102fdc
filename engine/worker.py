"""run_shard: the one code path that every executor calls to compute and commit a shard."""

from __future__ import annotations

import datetime as dt
import logging
import os
import resource
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from engine import faults
from engine.config import settings
from engine.errors import ShardInterrupted
from engine.events import ShardCommitted, ShardFailed
from engine.io import StoreIO
from engine.plan import Plan, plan
from engine.spec import Job
from engine.store import Store

log = logging.getLogger(__name__)

# Set by a SIGTERM handler (spot reclaim, ECS stop): the running shard stops before its commit.
stop_requested = threading.Event()

_OPEN: dict[tuple[str, str], tuple[Store, Plan]] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ShardResult:
    """What became of one shard attempt: ``committed``, ``skipped`` (already done) or
    ``failed`` (the kernel raised; ``reason`` says why, and it is not retried)."""

    shard: int
    status: str
    record: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_event(self) -> ShardCommitted | ShardFailed:
        """The event an executor emits for this result."""
        if self.status == "failed":
            return ShardFailed(self.shard, self.reason, retryable=False)
        return ShardCommitted.from_record(self.shard, self.record, self.status == "skipped")


def open_store(job: Job) -> tuple[Store, Plan]:
    """The job's store and plan, opened once per process (the store must already exist)."""
    key = (job.store, job.spec_hash)
    with _LOCK:
        if key not in _OPEN:
            job_plan = plan(job)
            _OPEN[key] = (Store.open_for_job(job, job_plan, create=False), job_plan)
        return _OPEN[key]


def run_shard(job: Job, index: int, attempt: int | None = None) -> ShardResult:
    """Compute shard ``index`` of ``job``, write its chunks, then its commit record.

    ``attempt`` is the attempt number when the backend knows it (AWS Batch); otherwise it is
    counted from the store's attempt markers. A shard already committed is skipped. A kernel
    error is returned as a ``failed`` result and recorded in the store, never raised (so no
    backend retries it). Raises ``ShardInterrupted`` when a stop was requested before the
    commit, and lets store I/O errors through: both are retryable.
    """
    store, job_plan = open_store(job)
    if not 0 <= index < job_plan.n_shards:
        raise IndexError(f"shard {index} is out of range; job {job.name} has {job_plan.n_shards}")
    existing = store.read_json(f"_shards/{index}.json")
    if existing is not None:
        return ShardResult(index, "skipped", existing)

    host = socket.gethostname()
    started = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    marker = {"host": host, "pid": os.getpid(), "started": started}
    counted = store.begin_attempt(index, {**marker, "attempt": attempt})
    attempt = attempt or counted
    fault = faults.action_for(faults.parse(settings().faults), index, attempt)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        if fault == "raise":
            raise faults.InjectedError(f"injected fault on attempt {attempt}")
        if fault == "exit":
            faults.exit_now()
        arrays, stats = job.kernel.compute(
            job.params,
            job.seed,
            job_plan.layout,
            index,
            io=StoreIO(store, device=job.resources.device),
        )
    except Exception as exc:  # a kernel error fails this shard only
        reason = f"{type(exc).__name__}: {exc}"
        store.record_failure(
            index,
            {
                "shard": index,
                "attempt": attempt,
                "host": host,
                "started": started,
                "reason": reason,
            },
        )
        log.error("job %s shard %d/%d failed: %s", job.name, index, job_plan.n_shards, reason)
        return ShardResult(index, "failed", reason=reason)
    if fault == "interrupt" or stop_requested.is_set():
        raise ShardInterrupted(f"shard {index}: stopped before commit (attempt {attempt})")
    nbytes = store.write_shard(job_plan, index, arrays)
    if stop_requested.is_set():
        raise ShardInterrupted(f"shard {index}: stopped before commit (attempt {attempt})")
    seconds = time.perf_counter() - wall0
    record = {
        "shard": index,
        "attempt": attempt,
        "host": host,
        "pid": os.getpid(),
        "started": started,
        "seconds": round(seconds, 6),
        "cpu_seconds": round(time.process_time() - cpu0, 6),
        "bytes": nbytes,
        "work": job_plan.layout.shard_work[index],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "spec_hash": job.spec_hash,
        "stats": {k: v for k, v in stats.items() if k != "errors"},
        "errors": list(stats.get("errors", [])),
    }
    store.commit(index, record)
    log.debug("job %s shard %d/%d committed in %.3f s", job.name, index, job_plan.n_shards, seconds)
    return ShardResult(index, "committed", record)
