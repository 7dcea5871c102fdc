"""AWS Batch executor: the given shards as array jobs (one child per shard), polled to the end.

Batch does the scheduling, placement, retries (the job definition's retry strategy) and spot
handling. This executor writes the index files, submits the array jobs of the shards the driver
passes (no reduce job: the driver reduces, as for every executor), then polls: new commit records
in the store become ``ShardCommitted`` events, kernel failures recorded in the store become
``ShardFailed`` events, until every array job has finished. The job definition must exist
(``tessera batch render --register``); the queue and definition come from the constructor or
``TESSERA_BATCH_QUEUE`` / ``TESSERA_BATCH_DEFINITION``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from tessera.engine.batch import submit
from tessera.engine.batch.status import TERMINAL, describe
from tessera.engine.errors import ExecutorError
from tessera.engine.events import Listener, Message, ShardCommitted, ShardFailed
from tessera.engine.plan import plan
from tessera.engine.spec import Job
from tessera.engine.store import Store

log = logging.getLogger(__name__)


class BatchExecutor:
    """Runs shards as AWS Batch array children and waits for them."""

    name = "batch"

    def __init__(
        self,
        queue: str | None = None,
        definition: str | None = None,
        *,
        client: Any = None,
        region: str | None = None,
        poll_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from tessera.engine.config import batch_settings

        env = batch_settings()
        self.queue = queue  # or the job's [batch] queue, or TESSERA_BATCH_QUEUE (in run)
        self.env_queue = env.queue
        self.definition = definition or env.definition
        self.client = client
        self.region = region
        self.poll_s = poll_s
        self.sleep = sleep
        self.submitted: list[str] = []  # the Batch job IDs this executor has submitted

    def run(
        self,
        job: Job,
        shards: Sequence[int],
        on_event: Listener,
        admit: Callable[[int], bool] | None = None,
    ) -> None:
        """Submit ``shards`` as array jobs and wait for them. ``admit`` (a budget) is asked
        once per shard, in order, before anything is submitted: once submitted, the children
        belong to Batch (``aws batch terminate-job`` stops them)."""
        if admit is not None:
            shards = list(itertools.takewhile(admit, shards))
        if not shards:
            return
        queue = self.queue or job.batch.queue or self.env_queue
        if not queue or not self.definition:
            raise ExecutorError(
                "the batch executor needs a job queue and a job definition "
                "([batch] queue or TESSERA_BATCH_QUEUE, and TESSERA_BATCH_DEFINITION)"
            )
        if self.client is None:
            from tessera.engine.batch.aws import batch_client

            self.client = batch_client(self.region)
        prepared = submit.prepare(job, queue=queue, definition=self.definition, shards=shards)
        submit.finalize(
            prepared, depends_on=[], fair_share=submit.is_fair_share(self.client, queue)
        )
        submit.write_files(prepared)
        done = submit.send(self.client, prepared, reduce=False)
        self.submitted.extend(done.arrays)
        on_event(Message(f"Batch: submitted {', '.join(done.arrays)} ({len(shards)} shards)"))
        self._poll(job, set(shards), done.arrays, on_event)

    def _poll(self, job: Job, wanted: set[int], ids: list[str], on_event: Listener) -> None:
        # Only the store, not the worker's open_store: that warms the kernel, and the children
        # compute, not this process. (It did, and a Ctrl-C that came during Numba's cache load
        # was raised inside llvmlite's ctypes callback, which swallows exceptions: the run went
        # on to the end instead of detaching.)
        store = Store.open_for_job(job, plan(job), create=False)
        seen: set[int] = set()
        failed: set[int] = set()
        while True:
            states = describe(self.client, ids)
            finished = len(states) == len(ids) and all(s.get("status") in TERMINAL for s in states)
            for i in sorted((store.committed() & wanted) - seen):
                r = store.read_json(f"_shards/{i}.json") or {}
                seen.add(i)
                on_event(ShardCommitted.from_record(i, r))
            for i, rec in sorted(store.failures().items()):
                if i in wanted and i not in failed and i not in seen:
                    failed.add(i)
                    on_event(ShardFailed(i, str(rec.get("reason", "failed")), retryable=False))
            if finished:
                break
            self.sleep(self.poll_s)
        for i in sorted(wanted - seen - failed):
            on_event(
                ShardFailed(i, "the Batch child ended without a commit record", retryable=True)
            )
