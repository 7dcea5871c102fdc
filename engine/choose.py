"""The default executor: in this process or on a local Dask cluster, chosen by the job.

A local Dask cluster runs shards in parallel, one process per core, but its start costs
seconds: the scheduler and worker processes, each worker's imports and its load of Numba's
cache. A job of a few seconds is faster in this process, one shard after another. So, unless
``--executor`` (or ``TESSERA_EXECUTOR``) names one, the run projects how long its pending
shards take in this process and picks the faster of

- ``local``: those seconds, one shard after another;
- ``dask``: ``DASK_START_S`` plus those seconds spread over ``min(workers, pending shards)``
  workers, the longest shard at least.

The seconds come from, in this order:

1. the store's commit records of this very job (a resumed run): their seconds per work unit,
   scaled to the pending shards' work, as the budget projects (``tessera.engine.budget``);
2. the kernel's ``projected_seconds(params, layout, shard)``, a rough figure from the
   kernel's rate measured in-process on a 2-core machine (the built-in kernels have one).
   A kernel that says ``uses_every_core`` (every built-in kernel: Numba's threads or a pool
   run one shard on all of this process's cores) takes ``cores`` times as long for a shard on
   a one-thread Dask worker as here, so on one machine a local cluster never wins back its
   start, and such a job runs in this process (measured: a 9 s gbm job of 8 shards took 9.0 s
   with ``--executor local`` and 11.0 s with ``--executor dask``; README, "How the default
   executor is chosen"). A kernel without it (an SDK kernel) is taken to use one core a
   shard wherever it runs;
3. neither: the shard count alone decides (``dask`` for two or more pending shards where
   there are two or more cores).

The choice and its reason are printed before the first shard, and report.json names the
executor that ran. Results are the same bytes on every executor, so the choice changes only
the wall time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tessera.engine import cost
from tessera.engine.budget import usage_of
from tessera.engine.spec import Job
from tessera.kernels.base import Layout

# What a local Dask cluster adds to a run, in seconds, as whole processes on 2 cores with Numba's
# cache warm: a 4-shard gbm job of about 0.1 s took 0.9-1.1 s with `tessera run --executor local`
# and 2.9-3.0 s with `--executor dask` (benchmarks/executor_choice.py, one machine), and
# 3.0-3.9 s against 10.2-11.7 s on an earlier one. 5 s lies between: what a busy machine adds.
DASK_START_S = 5.0


@dataclass(frozen=True)
class Choice:
    """The executor chosen (``local`` or ``dask``) and why, in one line for the user."""

    name: str
    reason: str
    projected_s: float | None  # the pending shards' seconds in this process, when projected


def cores() -> int:
    """The machine's cores: how many workers a LocalCluster gets when none are named (the Dask
    executor calls this too, so the choice counts the workers the cluster will have)."""
    return os.cpu_count() or 1


def projected_seconds(
    job: Job,
    layout: Layout,
    records: Mapping[int, Mapping[str, Any]],
    pending: Sequence[int],
) -> tuple[list[float], str] | None:
    """Each pending shard's projected seconds in this process, and where they came from; ``None``
    when neither the store's commit records nor the kernel give a figure."""
    done = [(usage_of(job, r), int(r.get("work", layout.shard_work[i])))
            for i, r in records.items() if 0 <= i < layout.n_shards]  # fmt: skip
    if sum(u.seconds for u, _ in done) > 0 and sum(w for _, w in done) > 0:
        usages = cost.project(done, [layout.shard_work[i] for i in pending])[len(done) :]
        n = len(done)
        source = f"scaled from {n} committed shard{'s' if n != 1 else ''} of this job"
        return [u.seconds for u in usages], source
    kernel_figure = getattr(job.kernel, "projected_seconds", None)
    if kernel_figure is None:
        return None
    figures = [kernel_figure(job.params, layout, i) for i in pending]
    if any(f is None for f in figures):
        return None
    return [float(f) for f in figures], f"{job.kernel_name}'s projected rate"


def choose(
    job: Job,
    layout: Layout,
    records: Mapping[int, Mapping[str, Any]],
    pending: Sequence[int],
    workers: int | None = None,
) -> Choice:
    """Choose ``local`` or ``dask`` for running ``pending`` shards of ``job`` (see the module
    docstring); ``workers`` is the local cluster's size (default: the cores this process may
    use)."""
    workers = workers or cores()
    parallel = min(workers, len(pending))
    override = "--executor dask or local to choose"
    if parallel < 2:
        why = "1 core" if workers < 2 else f"{len(pending)} pending shard"
        return Choice("local", f"executor: local (only {why}; {override})", None)
    projection = projected_seconds(job, layout, records, pending)
    if projection is None:
        return Choice(
            "dask",
            f"executor: dask ({len(pending)} pending shards on {parallel} workers; "
            f"{job.kernel_name} projects no seconds; {override})",
            None,
        )
    seconds, source = projection
    serial = sum(seconds)
    slower = cores() if getattr(job.kernel, "uses_every_core", False) else 1  # a worker's thread
    spread = max(serial * slower / parallel, max(seconds) * slower)
    on_dask = DASK_START_S + spread
    threads = f", one thread a worker against {slower} here" if slower > 1 else ""
    numbers = (
        f"{len(pending)} pending shards projected at {serial:.3g} s in this process ({source}); "
        f"a {parallel}-worker cluster{threads}: about {DASK_START_S:g} s to start + "
        f"{spread:.3g} s"
    )
    if on_dask < serial:
        return Choice("dask", f"executor: dask ({numbers}; {override})", serial)
    return Choice("local", f"executor: local ({numbers}; {override})", serial)


class AutoExecutor:
    """``executor = "auto"``: stands for ``local`` or ``dask`` until the run knows its pending
    shards; ``run_job`` calls ``resolve`` and runs on what it returns. ``workers`` sizes the
    local cluster if Dask is chosen (default: the cores)."""

    name = "auto"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers

    def resolve(
        self,
        job: Job,
        layout: Layout,
        records: Mapping[int, Mapping[str, Any]],
        pending: Sequence[int],
    ) -> tuple[Any, Choice]:
        """The executor for ``pending`` shards of ``job`` and the choice that picked it."""
        from tessera.engine import executors

        choice = choose(job, layout, records, pending, self.workers)
        workers = self.workers if choice.name == "dask" else None
        return executors.create(choice.name, workers=workers), choice

    def run(self, job: Job, shards: Sequence[int], on_event: Any, admit: Any = None) -> None:
        """Choose without the store's records (a caller other than ``run_job``), then run."""
        layout = job.layout
        if layout is None:
            from tessera.engine.plan import plan

            layout = plan(job).layout
        executor, _ = self.resolve(job, layout, {}, shards)
        executor.run(job, shards, on_event, admit=admit)
