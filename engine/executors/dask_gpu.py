"""A local Dask cluster with GPU workers: one worker process per GPU, each declaring the worker
resource ``GPU=1`` and seeing only its own device through ``CUDA_VISIBLE_DEVICES``.

``LocalCluster`` gives every worker the same options, so this builds the same kind of cluster
from Dask's ``SpecCluster`` with one worker spec per GPU (a ``Nanny`` whose ``env`` sets the
device; the worker process applies it before any task imports ``numba.cuda``). Tasks submitted
with ``resources={"GPU": 1}`` run only on these workers, one at a time per GPU. CPU workers
(no GPU resource) can be added beside them for CPU jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from tessera.engine.errors import ExecutorError

log = logging.getLogger(__name__)

GPU_RESOURCE = "GPU"


def device_ids(n_gpus: int, visible: str | None) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each of ``n_gpus`` workers: ``"0"``, ``"1"``, ...,
    or, when the parent already restricts the devices (``visible``, e.g. ``"2,3"``), the i-th
    of those. Raises ``ExecutorError`` when fewer devices are visible than workers asked."""
    if n_gpus < 1:
        raise ExecutorError(f"--gpu-workers must be >= 1, got {n_gpus}")
    if visible is None or not visible.strip():
        return [str(i) for i in range(n_gpus)]
    ids = [part.strip() for part in visible.split(",") if part.strip()]
    if len(ids) < n_gpus:
        raise ExecutorError(
            f"{n_gpus} GPU workers asked for but CUDA_VISIBLE_DEVICES={visible!r} makes only "
            f"{len(ids)} device(s) visible; use --gpu-workers {len(ids)} or widen "
            f"CUDA_VISIBLE_DEVICES"
        )
    return ids[:n_gpus]


def worker_specs(
    n_gpus: int,
    n_cpus: int,
    env: Mapping[str, str],
    visible: str | None,
    silence_logs: int = logging.WARNING,
) -> dict[str, dict[str, Any]]:
    """``SpecCluster`` worker specs: ``gpu-<i>`` workers (one thread, resource ``GPU=1``,
    ``CUDA_VISIBLE_DEVICES`` its device) and ``cpu-<i>`` workers (one thread, no GPU), all with
    ``env`` and listening on loopback."""
    common: dict[str, Any] = {
        "host": "127.0.0.1",
        "nthreads": 1,
        "dashboard": False,
        "silence_logs": silence_logs,
    }
    specs: dict[str, dict[str, Any]] = {}
    for i, device in enumerate(device_ids(n_gpus, visible)):
        specs[f"gpu-{i}"] = {
            "cls": "distributed.Nanny",
            "options": {
                **common,
                "name": f"gpu-{i}",
                "resources": {GPU_RESOURCE: 1},
                "env": {**env, "CUDA_VISIBLE_DEVICES": device},
            },
        }
    for i in range(n_cpus):
        specs[f"cpu-{i}"] = {
            "cls": "distributed.Nanny",
            "options": {**common, "name": f"cpu-{i}", "env": dict(env)},
        }
    return specs


def start_cluster(n_gpus: int, n_cpus: int, env: Mapping[str, str], visible: str | None) -> Any:
    """Start a local ``SpecCluster`` of ``n_gpus`` GPU workers and ``n_cpus`` CPU workers (see
    :func:`worker_specs`), its scheduler and dashboard on loopback; returns once every worker
    has joined. The caller closes it."""
    from distributed import SpecCluster

    scheduler = {
        "cls": "distributed.Scheduler",
        "options": {
            "host": "127.0.0.1",
            "port": 0,
            "dashboard": True,
            "dashboard_address": "127.0.0.1:0",
        },
    }
    specs = worker_specs(n_gpus, n_cpus, env, visible)
    cluster = SpecCluster(workers=specs, scheduler=scheduler, silence_logs=logging.WARNING)
    try:
        cluster.wait_for_workers(len(specs), timeout=120)
    except BaseException:
        cluster.close()
        raise
    log.info("local Dask cluster: %d GPU and %d CPU workers", n_gpus, n_cpus)
    return cluster


def gpu_worker_count(workers: Mapping[str, Any]) -> int:
    """How many workers of a scheduler's ``scheduler_info()["workers"]`` declare ``GPU``."""
    return sum(
        1 for info in workers.values() if (info.get("resources") or {}).get(GPU_RESOURCE, 0) >= 1
    )
