"""Dask executor: one task per shard on a LocalCluster (default) or any scheduler address.

Scheduling, placement and lost workers are Dask's job. tessera only submits one task per pending
shard with ``retries`` from the job and handles results as they complete.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine.errors import ExecutorError
from engine.events import Listener, Message, ShardFailed
from engine.spec import Job
from engine.worker import ShardResult, run_shard

log = logging.getLogger(__name__)

# Each Dask worker thread runs one shard at a time: Numba and BLAS must not add their own threads.
_PINNED_ENV = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}


UNGATED_WINDOW = 4096


def _warm(job: Job) -> None:
    """Runs once on every worker: import the kernel module and open the job's store."""
    from engine.worker import open_store

    open_store(job)


def _task(job: Job, index: int) -> ShardResult:
    """Runs on a Dask worker. Numba's thread count is per calling thread: pin it to one."""
    import numba

    numba.set_num_threads(1)
    return run_shard(job, index)


def _check_gpu_workers(
    job: Job, client: Any, local: bool, on_event: Listener
) -> dict[str, float] | None:
    """The task resources of ``job``'s shards: ``{"GPU": 1}`` for a GPU job, else None. A GPU
    job on a cluster without GPU workers would wait forever: refused on a local cluster,
    warned about on a remote scheduler (workers may still join)."""
    if job.resources.gpus <= 0:
        return None
    from engine.executors.dask_gpu import GPU_RESOURCE, gpu_worker_count

    if gpu_worker_count(client.scheduler_info()["workers"]) == 0:
        if local:
            raise ExecutorError(
                f"job {job.name} asks for GPUs (resources.gpus = {job.resources.gpus}) but the "
                f"local cluster has no GPU workers; run with --gpu-workers N (one per GPU), or "
                f"set resources.gpus = 0 to run on the CPU"
            )
        on_event(
            Message(
                f"warning: no worker of the scheduler declares the {GPU_RESOURCE} resource; "
                f"job {job.name}'s shards wait until one that does joins (dask worker --resources "
                f"{GPU_RESOURCE}=1)"
            )
        )
    return {GPU_RESOURCE: 1}


def _check_tls_settings(address: str) -> None:
    """Refuse a ``tls://`` scheduler address when Dask's config holds no TLS client settings
    (distributed would fail with a TypeError about a missing ``ssl_context``)."""
    if not address.startswith("tls://"):
        return
    from distributed.security import Security

    if Security().get_connection_args("client").get("ssl_context") is None:
        raise ExecutorError(
            f"the scheduler address {address} uses TLS but Dask's config has no TLS settings: "
            f"set distributed.comm.tls.ca-file, distributed.comm.tls.client.cert and "
            f"distributed.comm.tls.client.key (a YAML file in ~/.config/dask/, or the variables "
            f"DASK_DISTRIBUTED__COMM__TLS__CA_FILE, DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT "
            f"and DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY)"
        )


class DaskExecutor:
    """Runs shards as Dask tasks. ``scheduler`` is a scheduler address (``tcp://host:8786``);
    without one, a ``LocalCluster`` of ``workers`` processes (default: one per core) with one
    thread each is started for the run and closed after it. With ``gpu_workers`` the local
    cluster has that many GPU workers (one per GPU, resource ``GPU=1``, see
    :mod:`engine.executors.dask_gpu`) plus ``workers`` CPU workers (default none).

    Shards of a job with ``resources.gpus > 0`` are submitted with ``resources={"GPU": 1}``
    (each kernel uses one device), so only GPU workers run them."""

    name = "dask"

    def __init__(
        self,
        scheduler: str | None = None,
        workers: int | None = None,
        gpu_workers: int | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.workers = workers
        self.gpu_workers = gpu_workers

    def run(
        self,
        job: Job,
        shards: Sequence[int],
        on_event: Listener,
        admit: Callable[[int], bool] | None = None,
    ) -> None:
        if not shards:
            return
        from distributed import as_completed

        client, cluster = self._connect()
        try:
            # Import the kernel and open the store on every worker once, in parallel, before
            # the first shard (a worker's first shard would otherwise pay for it).
            client.run(_warm, job)
            on_event(Message(f"Dask dashboard: {client.dashboard_link}"))
            task_resources = _check_gpu_workers(job, client, cluster is not None, on_event)
            prefix = f"tessera-{job.name}-{job.spec_hash[:8]}"
            # Tasks in flight are capped and topped up as tasks finish: at most UNGATED_WINDOW
            # (the scheduler's queue stays full without holding a million tasks), or, under a
            # budget, twice the worker threads, so dispatching can stop within one wave.
            todo = iter(shards)
            futures: dict[Any, int] = {}

            def submit_next() -> Any | None:
                for index in todo:
                    if admit is not None and not admit(index):
                        return None
                    future = client.submit(
                        _task,
                        job,
                        index,
                        key=f"{prefix}-{index}",
                        retries=job.retry_attempts - 1,
                        pure=False,
                        resources=task_resources,
                    )
                    futures[future] = index
                    return future
                return None

            threads = {"n": sum(client.nthreads().values()), "checked": time.monotonic()}

            def top_up(running: Any) -> None:
                if time.monotonic() - threads["checked"] > 1.0:  # workers may join later
                    threads.update(n=sum(client.nthreads().values()), checked=time.monotonic())
                window = UNGATED_WINDOW if admit is None else max(2, 2 * threads["n"])
                while len(futures) < window:
                    future = submit_next()
                    if future is None:
                        return
                    running.add(future)

            # Results are fetched by the client's event loop as tasks finish, not one blocking
            # round trip per shard.
            running = as_completed(with_results=True, raise_errors=False)
            top_up(running)
            for future, result in running:
                index = futures.pop(future)
                if isinstance(result, ShardResult):
                    on_event(result.to_event())
                else:  # retries exhausted or worker lost: retryable by a later run
                    reason = f"{type(result).__name__}: {result}"
                    on_event(ShardFailed(index, reason, retryable=True))
                top_up(running)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    def _connect(self) -> tuple[Any, Any]:
        from distributed import Client, LocalCluster

        # Importing distributed sets its loggers to INFO; follow the application's level instead
        # (the CLI's -v), so a plain run does not print every nanny and scheduler start.
        root_level = logging.getLogger().getEffectiveLevel()
        for name in ("distributed", "bokeh", "tornado"):
            logging.getLogger(name).setLevel(root_level)
        # Bokeh warns that the dashboard allows any Host header; ours listens on loopback only.
        logging.getLogger("bokeh.server.util").setLevel(logging.ERROR)

        if self.scheduler and self.gpu_workers:
            raise ExecutorError(
                "--gpu-workers starts a local cluster and cannot be combined with a scheduler "
                f"address ({self.scheduler}); start GPU workers there with --resources GPU=1"
            )
        if self.gpu_workers:
            from engine.executors.dask_gpu import start_cluster

            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            gpu_cluster = start_cluster(self.gpu_workers, self.workers or 0, _PINNED_ENV, visible)
            return Client(gpu_cluster), gpu_cluster
        if self.scheduler:
            _check_tls_settings(self.scheduler)
            try:
                # Security comes from Dask's config (distributed.comm.tls.*, require-encryption).
                return Client(self.scheduler, timeout="30s"), None
            except OSError as exc:
                hint = ""
                if self.scheduler.startswith("tcp://"):
                    hint = " (a scheduler that requires TLS needs its tls:// address)"
                raise ExecutorError(
                    f"cannot reach the Dask scheduler at {self.scheduler}: {exc}{hint}"
                ) from None
        workers = self.workers or os.cpu_count() or 1
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",
            host="127.0.0.1",
            silence_logs=logging.WARNING,
            env=_PINNED_ENV,
        )
        return Client(cluster), cluster
