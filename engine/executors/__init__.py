"""Executors run shards somewhere. Each is a small module with one ``run`` method; backends are
looked up by name and imported only when used, so ``import engine`` never imports distributed."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Protocol

from tessera.engine.events import Listener
from tessera.engine.spec import Job

# name -> "module:class"
_EXECUTORS: dict[str, str] = {
    "local": "tessera.engine.executors.local:LocalExecutor",
    "dask": "tessera.engine.executors.dask:DaskExecutor",
    # local or dask, chosen by the job's projected seconds (tessera.engine.choose)
    "auto": "tessera.engine.choose:AutoExecutor",
    # AWS Batch; its job queue and definition come from TESSERA_BATCH_QUEUE / _DEFINITION
    "batch": "tessera.engine.executors.batch:BatchExecutor",
}


class Executor(Protocol):
    """Runs the given shards of a job, emitting events; returns when all have finished."""

    name: str

    def run(
        self,
        job: Job,
        shards: Sequence[int],
        on_event: Listener,
        admit: Callable[[int], bool] | None = None,
    ) -> None:
        """Run ``shards`` of ``job`` (each through ``tessera.engine.worker.run_shard``). Before
        dispatching a shard, ask ``admit`` (a budget); once it says no, dispatch nothing more
        and return when the shards already running have finished."""


def names() -> list[str]:
    """The executor names, sorted."""
    return sorted(_EXECUTORS)


def create(
    name: str,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    gpu_workers: int | None = None,
    upload_kernel: bool = False,
) -> Executor:
    """Build the executor called ``name``. ``scheduler``, ``workers``, ``gpu_workers`` (GPU
    workers of the local cluster) and ``upload_kernel`` (ship a one-module kernel to the
    workers) apply to ``dask`` only: given to another executor they are refused, except
    ``workers``, which it ignores (``tessera.run`` refuses that too when a user passes it).

    Raises ``SpecError`` (a ``ValueError``) naming the known executors for an unknown name, or
    the option that does not apply."""
    from tessera.engine.errors import SpecError

    if name not in _EXECUTORS:
        raise SpecError("--executor", f"unknown executor {name!r}; expected one of {names()}")
    if name != "dask":
        dask_only = {"--scheduler": scheduler, "--gpu-workers": gpu_workers}
        dask_only["--upload-kernel"] = upload_kernel or None
        for flag, value in dask_only.items():
            if value is not None:
                raise SpecError(flag, f"applies to the dask executor, not {name!r}")
    module_name, cls_name = _EXECUTORS[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if name == "dask":
        executor: Executor = cls(
            scheduler=scheduler,
            workers=workers,
            gpu_workers=gpu_workers,
            upload_kernel=upload_kernel,
        )
    elif name == "auto":
        executor = cls(workers=workers)
    else:
        executor = cls()
    return executor
