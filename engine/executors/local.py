"""In-process executor: shards one after another, or a kernel's lanes of them side by side.

A kernel whose shards leave cores idle at their start and end (reading a region before any
encoding, a serial write after it) sets ``shard_lanes = 2``: the next shard then starts while
the last one finishes, in a second thread. The lanes run only while their projected memory fits
what the machine has free (``lanes``). Each shard's seconds are its share of the process's time
(``tessera.engine.worker``), so the cost of a run does not change with its lanes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from tessera.engine.errors import is_retryable
from tessera.engine.events import Event, Listener, Message, ShardFailed, ShardStarted
from tessera.engine.spec import PROCESS_BASE_MIB, Job, largest_shard
from tessera.engine.worker import open_store, run_shard, stop_requested


def available_mib() -> int | None:
    """Memory this machine has free for new work (``MemAvailable``), or ``None`` where
    /proc/meminfo does not say."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def numba_threading_layer() -> str | None:
    """The threading layer Numba's parallel regions use in this process (``tbb``, ``omp`` or
    ``workqueue``), or ``None`` before any parallel region has run."""
    from numba.np.ufunc.parallel import threading_layer  # numba.threading_layer

    try:
        return str(threading_layer())
    except ValueError:
        return None


def lanes(job: Job, shards: Sequence[int]) -> tuple[int, str | None]:
    """How many shards of ``job`` run at once here, and why (``None`` when the kernel has no
    lanes): the kernel's ``shard_lanes`` (1 when it has none), at most the shards to run, and
    only while that many of the job's largest shard's projected memory (``largest_shard``) fits
    ``available_mib`` and
    Numba's threading layer takes parallel regions from two threads at once (``workqueue``
    aborts the process: one lane then)."""
    wanted = min(int(getattr(job.kernel, "shard_lanes", 1)), len(shards))
    if wanted <= 1:
        return 1, None
    _, job_plan = open_store(job)  # compiles (kernel.warm), which starts Numba's threads
    layer = numba_threading_layer()
    if layer == "workqueue":
        return 1, (
            "one shard after another: Numba's workqueue threading layer runs one parallel "
            "region at a time (install tbb, or use a system with libgomp, for the omp layer)"
        )
    peak, _ = largest_shard(job.kernel, job.params, job_plan.layout)
    need = wanted * math.ceil(peak / 2**20) + PROCESS_BASE_MIB
    free = available_mib()
    if free is not None and need > free:
        return 1, (
            f"one shard after another: {wanted} side by side would need {need:,} MiB, "
            f"{free:,} MiB free"
        )
    return wanted, f"{wanted} shards side by side (the kernel's lanes; {need:,} MiB projected)"


class LocalExecutor:
    """Runs shards in this process, in index order (a kernel's ``shard_lanes`` at a time);
    retries interrupted or I/O-failed shards up to the job's ``retry.attempts``, never kernel
    errors."""

    name = "local"

    def run(
        self,
        job: Job,
        shards: Sequence[int],
        on_event: Listener,
        admit: Callable[[int], bool] | None = None,
    ) -> None:
        try:
            n, why = lanes(job, shards)
        except Exception:  # opening the store or compiling failed: the first shard meets it
            n, why = 1, None  # again and reports it as it always has (retried, or raised)
        if why is not None:
            on_event(Message(f"local executor: {why}"))
        if n == 1:
            for index in shards:
                if stop_requested.is_set() or (admit is not None and not admit(index)):
                    break
                self._shard(job, index, on_event)
            return
        lock = threading.Lock()

        def emit(event: Event) -> None:  # listeners see one event at a time, as from one lane
            with lock:
                on_event(event)

        running: set[Future[None]] = set()
        with ThreadPoolExecutor(n, thread_name_prefix="tessera-lane") as pool:
            try:
                for index in shards:
                    if len(running) >= n:
                        done, running = wait(running, return_when=FIRST_COMPLETED)
                        for future in done:
                            future.result()  # a lane's non-retryable error ends the run
                    with lock:
                        if stop_requested.is_set() or (admit is not None and not admit(index)):
                            break
                    running.add(pool.submit(self._shard, job, index, emit))
            finally:
                wait(running)  # the shards in flight finish (or stop) before anything is raised
            for future in running:
                future.result()

    @staticmethod
    def _shard(job: Job, index: int, on_event: Listener) -> None:
        """Run shard ``index`` to a result, retrying what is retryable."""
        for attempt in range(1, job.retry_attempts + 1):
            on_event(ShardStarted(index, attempt))
            try:
                result = run_shard(job, index)
            except Exception as exc:
                # run_shard returns kernel errors as results; what it raises is retryable
                # (ShardInterrupted, store I/O: OSError, or botocore's connection errors,
                # which are not OSErrors), except tessera's own refusals (another job's
                # store): as Dask's retries= treats any task exception.
                if not is_retryable(exc):
                    raise
                retry = attempt < job.retry_attempts and not stop_requested.is_set()
                on_event(ShardFailed(index, f"{type(exc).__name__}: {exc}", retryable=retry))
                if retry:
                    continue
                return
            on_event(result.to_event())
            return
