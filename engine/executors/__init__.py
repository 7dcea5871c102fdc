"""Executors run shards somewhere. Each is a small module with one ``run`` method; backends are
looked up by name and imported only when used, so ``import engine`` never imports distributed."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Protocol

from engine.events import Listener
from engine.spec import Job

# name -> "module:class"
_EXECUTORS: dict[str, str] = {
    "local": "engine.executors.local:LocalExecutor",
    "dask": "engine.executors.dask:DaskExecutor",
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
        """Run ``shards`` of ``job`` (each through ``engine.worker.run_shard``). Before
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
) -> Executor:
    """Build the executor called ``name``. ``scheduler``, ``workers`` and ``gpu_workers`` (GPU
    workers of the local cluster) apply to ``dask``.

    Raises ``ValueError`` naming the known executors for an unknown name, or when
    ``gpu_workers`` is given for another executor."""
    if name not in _EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; expected one of {names()}")
    module_name, cls_name = _EXECUTORS[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if gpu_workers and name != "dask":
        raise ValueError(f"--gpu-workers needs the dask executor, not {name!r}")
    if name == "dask":
        executor: Executor = cls(scheduler=scheduler, workers=workers, gpu_workers=gpu_workers)
    else:
        executor = cls()
    return executor
