"""run_shard: the one code path that every executor calls to compute and commit a shard."""

from __future__ import annotations

import datetime as dt
import logging
import os
import resource
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from tessera.engine import faults, process
from tessera.engine.config import settings
from tessera.engine.errors import LentIOError, ShardInterrupted, StageNotReady
from tessera.engine.events import ShardCommitted, ShardFailed
from tessera.engine.io import StoreIO
from tessera.engine.plan import Plan, plan
from tessera.engine.spec import Job
from tessera.engine.store import Store

log = logging.getLogger(__name__)

# Set by a SIGTERM handler (spot reclaim, ECS stop): the running shard stops before its commit.
stop_requested = threading.Event()

_OPEN: dict[tuple[str, str], tuple[Store, Plan]] = {}
# Seconds this process spent in ``kernel.warm`` for a job, until a commit record carries them.
_COMPILE: dict[tuple[str, str], float] = {}
_LOCK = threading.Lock()


class _Shares:
    """Each running shard's share of this process's wall and CPU time. Shards that run beside
    each other in one process (the local executor's lanes, a Dask worker's threads) split the
    time between them evenly while they overlap, so a shard's ``seconds`` and ``cpu_seconds``
    add up, over its shards, to the process's time: what the cost of the run is made of. A
    shard alone gets its own wall time and the process's CPU time, as before."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, list[float]] = {}  # token -> [wall share, CPU share]
        self._last = (0.0, 0.0)
        self._tokens = 0

    def _advance(self) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        if self._running:
            n = len(self._running)
            for share in self._running.values():
                share[0] += (wall - self._last[0]) / n
                share[1] += (cpu - self._last[1]) / n
        self._last = (wall, cpu)

    def start(self) -> int:
        """Count a shard in; returns its token for ``stop``."""
        with self._lock:
            self._advance()
            self._tokens += 1
            self._running[self._tokens] = [0.0, 0.0]
            return self._tokens

    def stop(self, token: int) -> tuple[float, float]:
        """Count a shard out: its (wall, CPU) seconds share since ``start`` (zeros when it was
        counted out already)."""
        with self._lock:
            self._advance()
            wall, cpu = self._running.pop(token, (0.0, 0.0))
            return wall, cpu


_SHARES = _Shares()


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


def open_store(job: Job, store: Store | None = None) -> tuple[Store, Plan]:
    """The job's store and plan, opened once per process (the store must already exist). The
    plan is the one the job carries (planned once, where it was validated). ``store`` is the
    job's store when the caller has opened it already (a Batch child that read the job's plan
    there); it is checked against the job as a freshly opened one is."""
    key = (job.store, job.spec_hash)
    with _LOCK:
        if key not in _OPEN:
            job_plan = plan(job)
            if store is None:
                store = Store.open_for_job(job, job_plan, create=False)
            else:
                store.check_job(job)
                store.check_kernel(job)
            started = time.perf_counter()
            process.load_numba_target(job.provider)
            job.kernel.warm(job.params)  # compile before the first shard, not inside it
            _COMPILE[key] = time.perf_counter() - started
            _OPEN[key] = (store, job_plan)
        return _OPEN[key]


# Stages of a store seen complete by this process (commits are never undone): (store, stage)
_STAGES_DONE: set[tuple[str, str, int]] = set()


def _check_stage(job: Job, store: Store, job_plan: Plan, index: int) -> str | None:
    """The name of ``index``'s stage in a staged job (``None`` without stages). Raises
    ``StageNotReady`` when an earlier stage has shards without a commit record: executors run
    stages in order, so this is a shard started by hand (``tessera worker``) or a bug."""
    layout = job_plan.layout
    if not layout.stages:
        return None
    k = layout.stage_of(index)
    ranges = layout.stage_ranges()
    for j in range(k):
        key = (job.store, job.spec_hash, j)
        if key in _STAGES_DONE:
            continue
        committed = store.committed()
        missing = [i for i in ranges[j][1] if i not in committed]
        if missing:
            raise StageNotReady(
                f"shard {index} belongs to stage {ranges[k][0]!r}, which starts only after "
                f"every shard of stage {ranges[j][0]!r} has committed; {len(missing)} have not "
                f"(first: shard {missing[0]})"
            )
        _STAGES_DONE.add(key)
    return ranges[k][0]


# How many frames of a kernel error's traceback the failure record keeps (the innermost).
TRACEBACK_FRAMES = 6


def last_frames(exc: BaseException) -> list[dict[str, Any]]:
    """The innermost frames of ``exc``'s traceback: file, line, function and source line."""
    frames = traceback.extract_tb(exc.__traceback__)[-TRACEBACK_FRAMES:]
    return [
        {"file": f.filename, "line": f.lineno, "function": f.name, "code": (f.line or "").strip()}
        for f in frames
    ]


def run_shard(job: Job, index: int, attempt: int | None = None) -> ShardResult:
    """Compute shard ``index`` of ``job``, write its chunks, then its commit record.

    ``attempt`` is the attempt number when the backend knows it (AWS Batch); otherwise it is
    counted from the store's attempt markers. A shard already committed is skipped. A kernel
    error is returned as a ``failed`` result and recorded in the store, never raised (so no
    backend retries it). Raises ``ShardInterrupted`` when a stop was requested before the
    commit, ``LentIOError`` when I/O lent to the kernel failed (even if the kernel caught it
    and raised something else), and lets store I/O errors through: all are retryable.
    """
    store, job_plan = open_store(job)
    if not 0 <= index < job_plan.n_shards:
        raise IndexError(f"shard {index} is out of range; job {job.name} has {job_plan.n_shards}")
    existing = store.read_json(f"_shards/{index}.json")
    if existing is not None:
        return ShardResult(index, "skipped", existing)
    stage = _check_stage(job, store, job_plan, index)

    host = socket.gethostname()
    started = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    marker = {"host": host, "pid": os.getpid(), "started": started}
    counted = store.begin_attempt(index, {**marker, "attempt": attempt})
    attempt = attempt or counted
    token = _SHARES.start()
    try:
        fault = faults.action_for(faults.parse(settings().faults), index, attempt)
        lent = StoreIO(store, device=job.resources.device, fail_first=fault == "io")
        try:
            if fault == "raise":
                raise faults.InjectedError(f"injected fault on attempt {attempt}")
            if fault == "exit":
                faults.exit_now()
            output = job.kernel.compute(job.params, job.seed, job_plan.layout, index, io=lent)
        except Exception as exc:  # a kernel error fails this shard only; lent I/O is retried
            if exc is lent.failure:
                raise
            if lent.failure is not None:  # the kernel caught the engine's error and raised its own
                raise LentIOError(str(lent.failure)) from exc
            reason = f"{type(exc).__name__}: {exc}"
            store.record_failure(
                index,
                {
                    "shard": index,
                    "attempt": attempt,
                    "host": host,
                    "started": started,
                    "reason": reason,
                    "traceback": last_frames(exc),
                },
            )
            # The executor's ShardFailed event is what people see; this line is for -v logs only
            log.info("job %s shard %d of %d failed: %s", job.name, index, job_plan.n_shards, reason)
            return ShardResult(index, "failed", reason=reason)
        if lent.failure is not None:  # the kernel swallowed a failed read or write and went on
            raise LentIOError(f"{lent.failure} (caught by the kernel, which then returned)")
        if fault == "interrupt" or stop_requested.is_set():
            raise ShardInterrupted(f"shard {index}: stopped before commit (attempt {attempt})")
        nbytes = store.write_shard(job_plan, index, output.arrays)
        if stop_requested.is_set():
            raise ShardInterrupted(f"shard {index}: stopped before commit (attempt {attempt})")
        seconds, cpu_seconds = _SHARES.stop(token)
        with _LOCK:
            compile_seconds = _COMPILE.pop((job.store, job.spec_hash), None)
        record = {
            "shard": index,
            "attempt": attempt,
            "host": host,
            "pid": os.getpid(),
            "started": started,
            "seconds": round(seconds, 6),
            "cpu_seconds": round(cpu_seconds, 6),
            "bytes": nbytes,
            "work": job_plan.layout.shard_work[index],
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "spec_hash": job.spec_hash,
            "stats": dict(output.stats),
            "errors": [{"input": e.input, "reason": e.reason} for e in output.item_errors],
            **({"stage": stage} if stage is not None else {}),
            # this process's compile time, on its first commit only (not in "seconds")
            **(
                {"compile_seconds": round(compile_seconds, 6)}
                if compile_seconds is not None
                else {}
            ),
        }
        store.commit(index, record)
        log.debug(
            "job %s shard %d/%d committed in %.3f s", job.name, index, job_plan.n_shards, seconds
        )
        return ShardResult(index, "committed", record)
    finally:
        _SHARES.stop(token)  # a no-op after the commit took its share
