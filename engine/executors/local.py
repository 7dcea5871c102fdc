"""In-process executor: one shard after another. For debugging and inside a Batch container."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from tessera.engine.errors import is_retryable
from tessera.engine.events import Listener, ShardFailed, ShardStarted
from tessera.engine.spec import Job
from tessera.engine.worker import run_shard, stop_requested

log = logging.getLogger(__name__)


class LocalExecutor:
    """Runs shards in this process, in index order; retries interrupted or I/O-failed shards up
    to the job's ``retry.attempts``, never kernel errors."""

    name = "local"

    def run(
        self,
        job: Job,
        shards: Sequence[int],
        on_event: Listener,
        admit: Callable[[int], bool] | None = None,
    ) -> None:
        for index in shards:
            if stop_requested.is_set() or (admit is not None and not admit(index)):
                break
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
                    break
                on_event(result.to_event())
                break
