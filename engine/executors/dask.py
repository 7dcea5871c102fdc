"""Dask executor: one task per shard on a LocalCluster (default) or any scheduler address.

Scheduling, placement and lost workers are Dask's job. tessera only submits one task per pending
shard with ``retries`` from the job and handles results as they complete.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tessera.engine import choose
from tessera.engine.errors import ExecutorError
from tessera.engine.events import Listener, Message, ShardFailed
from tessera.engine.spec import Job
from tessera.engine.worker import ShardResult, run_shard

log = logging.getLogger(__name__)

# Each Dask worker thread runs one shard at a time: Numba and BLAS must not add their own threads.
_PINNED_ENV = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}


UNGATED_WINDOW = 4096


def _warm(job: Job) -> str | None:
    """Runs once on every worker: import the kernel module and open the job's store. Returns
    ``None``, or why the kernel cannot be used there (its module is missing, another version)."""
    from tessera.engine.errors import StoreMismatchError
    from tessera.engine.worker import open_store
    from tessera.kernels.registry import KernelNotFound

    try:
        open_store(job)
    except (KernelNotFound, StoreMismatchError, TypeError) as exc:
        return str(exc)
    return None


def _upload_kernel(job: Job, client: Any) -> None:
    """Ship the kernel's module file to every worker (``Client.upload_file``): only a kernel
    that is one top-level module; a package must be installed on the workers."""
    import importlib

    module_name = job.identity["target"].split(":", 1)[0]
    module = importlib.import_module(module_name)
    path = getattr(module, "__file__", None) or ""
    if "." in module_name or not path.endswith(".py") or path.endswith("__init__.py"):
        raise ExecutorError(
            f"--upload-kernel ships a kernel that is one top-level module (photon.py); "
            f"{module_name} is part of a package: install that package on every worker"
        )
    client.upload_file(path)


def _check_workers(job: Job, client: Any) -> None:
    """Refuse, before any shard, a cluster where some workers cannot use the kernel: one
    message naming the module and those workers, instead of every shard failing."""
    answers = client.run(_warm, job, on_error="return")
    bad = {w: a for w, a in answers.items() if a is not None}
    if not bad:
        return
    module = job.identity["target"].split(":", 1)[0]
    reasons = sorted({str(a) for a in bad.values()})
    raise ExecutorError(
        f"{len(bad)} of {len(answers)} Dask workers cannot run kernel {job.kernel_name}: "
        f"{'; '.join(reasons[:3])} (workers {', '.join(sorted(bad)[:5])}"
        f"{' ...' if len(bad) > 5 else ''}). Install the package that holds module {module} on "
        f"every worker, or pass --upload-kernel for a kernel that is a single module"
    )


def _job_bytes(job: Job) -> bytes:
    """The job as the tasks carry it: pickled bytes. Distributed's scheduler unpickles every
    task's arguments; as bytes, the job's params (instances of the kernel's own classes) are
    unpickled only on the workers, which ``_check_workers`` made sure can import the kernel,
    and the scheduler needs tessera but never the kernel's module."""
    from distributed.protocol import pickle

    data: bytes = pickle.dumps(job)
    return data


@functools.lru_cache(maxsize=8)
def _job_from(data: bytes) -> Job:
    from distributed.protocol import pickle

    job: Job = pickle.loads(data)
    return job


def _task(job_bytes: bytes, index: int) -> ShardResult:
    """Runs on a Dask worker. Numba's thread count is per calling thread: pin it to one."""
    import numba

    numba.set_num_threads(1)
    try:
        return run_shard(_job_from(job_bytes), index)
    except BaseException as exc:
        _cut_cause_cycle(exc)
        raise


def _cut_cause_cycle(exc: BaseException) -> None:
    """Cut a ``__cause__`` chain that loops back on itself (``run_shard`` re-raises a lent I/O
    failure ``from`` the exception it caught, which may be that failure itself or the kernel's
    error caused by it). Distributed follows ``__cause__`` until ``None`` to pickle a task's
    error: a loop would grow a list until the worker runs out of memory, instead of the task
    failing and being retried."""
    seen = {id(exc)}
    link = exc
    while link.__cause__ is not None:
        if id(link.__cause__) in seen:
            link.__cause__ = None
            return
        seen.add(id(link.__cause__))
        link = link.__cause__


def _check_gpu_workers(
    job: Job, client: Any, local: bool, on_event: Listener
) -> dict[str, float] | None:
    """The task resources of ``job``'s shards: ``{"GPU": 1}`` for a GPU job, else None. A GPU
    job on a cluster without GPU workers would wait forever: refused on a local cluster,
    warned about on a remote scheduler (workers may still join)."""
    if job.resources.gpus <= 0:
        return None
    from tessera.engine.executors.dask_gpu import GPU_RESOURCE, gpu_worker_count

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
    :mod:`tessera.engine.executors.dask_gpu`) plus ``workers`` CPU workers (default none).

    Shards of a job with ``resources.gpus > 0`` are submitted with ``resources={"GPU": 1}``
    (each kernel uses one device), so only GPU workers run them."""

    name = "dask"

    def __init__(
        self,
        scheduler: str | None = None,
        workers: int | None = None,
        gpu_workers: int | None = None,
        upload_kernel: bool = False,
    ) -> None:
        self.scheduler = scheduler
        self.workers = workers
        self.gpu_workers = gpu_workers
        self.upload_kernel = upload_kernel
        self._keep = False  # inside session(): keep the connection between run calls
        self._held: tuple[Any, Any] | None = None

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Keep one client (and local cluster) for every ``run`` call inside: the stages and
        waves of one job. Connects lazily, on the first ``run`` with shards to run."""
        self._keep = True
        try:
            yield
        finally:
            self._keep = False
            held, self._held = self._held, None
            if held is not None:
                _close(*held)

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

        if self._held is not None:
            client, cluster = self._held
        else:
            client, cluster = self._connect()
            if self._keep:
                self._held = (client, cluster)
        try:
            # Import the kernel and open the store on every worker once, in parallel, before
            # the first shard (a worker's first shard would otherwise pay for it).
            if self.upload_kernel:
                _upload_kernel(job, client)
            _check_workers(job, client)
            if cluster is not None and importlib.util.find_spec("bokeh") is None:
                on_event(Message('Dask dashboard: off (pip install "tessera[dashboard]" for it)'))
            else:
                on_event(Message(f"Dask dashboard: {client.dashboard_link}"))
            task_resources = _check_gpu_workers(job, client, cluster is not None, on_event)
            prefix = f"tessera-{job.name}-{job.spec_hash[:8]}"
            # Tasks in flight are capped and topped up as tasks finish: at most UNGATED_WINDOW
            # (the scheduler's queue stays full without holding a million tasks), or, under a
            # budget, twice the worker threads, so dispatching can stop within one wave.
            todo = iter(shards)
            futures: dict[Any, int] = {}
            job_bytes = _job_bytes(job)

            def submit_next() -> Any | None:
                for index in todo:
                    if admit is not None and not admit(index):
                        return None
                    future = client.submit(
                        _task,
                        job_bytes,
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
        except KeyboardInterrupt:
            # Ctrl-C: stop the cluster without a page of worker tracebacks; the caller says
            # what was kept
            _quiet()
            if cluster is not None:  # our own workers: they would log every cancelled task
                with contextlib.suppress(Exception):
                    client.run(_quiet)
                    client.run(_quiet, nanny=True)
            raise
        finally:
            if self._held is None:
                _close(client, cluster)

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
            from tessera.engine.executors.dask_gpu import start_cluster

            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            with _children_ignore_sigint():
                gpu_cluster = start_cluster(
                    self.gpu_workers, self.workers or 0, _PINNED_ENV, visible
                )
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
        workers = self.workers or choose.cores()
        with _children_ignore_sigint():
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


def _close(client: Any, cluster: Any) -> None:
    client.close()
    if cluster is not None:
        cluster.close()


def _quiet() -> None:
    """Silence Dask's loggers in this process (on Ctrl-C: cancelled tasks are expected)."""
    # Dask's config gives some child loggers their own level (tornado.application: error), so
    # setting the parents' is not enough: every existing logger under them is set too.
    prefixes = ("distributed", "tornado", "asyncio")
    names = [n for n in logging.Logger.manager.loggerDict if n.split(".")[0] in prefixes]
    for name in {*prefixes, *names}:
        logging.getLogger(name).setLevel(logging.CRITICAL)


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Ignore SIGINT while the local cluster's processes start, so that they inherit the
    ignored disposition (Python keeps a signal ignored at start-up ignored): Ctrl-C in a
    terminal reaches the whole process group, and only the driver should handle it (it closes
    the cluster). The driver's own handler is restored at once; outside the main thread
    nothing changes."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
