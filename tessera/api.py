"""The public Python API: ``load``, ``run``, ``status`` and ``kernels``. The CLI is a thin layer
over these functions.

Nothing heavy is imported here at module level: Numba, Dask, Zarr and boto3 load when a job is
loaded or run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tessera.engine.outcome import RunOutcome, StoreStatus

if TYPE_CHECKING:
    from tessera.engine.events import Listener
    from tessera.engine.executors import Executor
    from tessera.engine.spec import Job
    from tessera.kernels.registry import KernelInfo

__all__ = ["RunOutcome", "StoreStatus", "list_kernels", "load", "run", "status"]


def load(source: str | os.PathLike[str] | Mapping[str, Any], **overrides: Any) -> Job:
    """Load and validate a job: a job file (TOML or JSON; a path or URL) or the same structure
    as a mapping (``{"job": {...}, "params": {...}, ...}``).

    ``overrides`` replace keys of ``[job]``: ``store``, ``shards``, ``shard_size``, ``name``,
    ``seed``, ``timeout_s``, ``budget_usd`` (``None`` values are ignored; ``shards`` drops
    ``shard_size`` and vice versa). Inputs are resolved here (``prepare``: a glob listed, an
    image header read), so a job that loads is a job that can run.

    Raises ``tessera.engine.errors.SpecError`` (a ``ValueError``) naming the file, the key, the
    value and what was expected.
    """
    return _load(source, overrides)


def _load(
    source: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    prime: bool = False,
) -> Job:
    """``load``; ``prime`` when the job is about to run in this process (``spec.from_dict``)."""
    from tessera.engine import spec

    if isinstance(source, Mapping):
        return spec.from_dict(source, overrides=overrides, source="<mapping>", prime=prime)
    return spec.load(source, overrides=overrides, prime=prime)


def run(
    job: Job | str | os.PathLike[str] | Mapping[str, Any],
    executor: str | Executor | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    gpu_workers: int | None = None,
    upload_kernel: bool = False,
    progress: bool | None = None,
    budget_usd: float | None = None,
    price_basis: str | None = None,
    prices: str | None = None,
    on_event: Listener | None = None,
) -> RunOutcome:
    """Run every pending shard of ``job`` and, once all have committed, reduce and write
    ``result.json`` and ``report.json`` into the store. Running again resumes: committed shards
    are kept.

    ``executor``: ``"dask"`` (a LocalCluster sized to the machine, or the cluster at
    ``scheduler``), ``"local"`` (in-process, one shard after another), ``"auto"`` (whichever
    of the two the job's projected seconds make faster, see ``tessera.engine.choose``), or an
    object with a ``name`` and a ``run(job, shards, on_event, admit)`` method; default
    ``TESSERA_EXECUTOR``, else ``"auto"`` (``"dask"`` when ``scheduler``, ``workers``,
    ``gpu_workers`` or ``upload_kernel`` is given, or ``DASK_SCHEDULER_ADDRESS`` is set).
    ``workers`` and ``gpu_workers`` size the LocalCluster; ``scheduler``
    (default ``DASK_SCHEDULER_ADDRESS``) names a running Dask scheduler, and
    ``upload_kernel`` ships a single-module kernel to its workers. ``progress``: ``True`` for
    a bar on a terminal (a widget in Jupyter) or log lines otherwise, ``False`` for none, and
    ``None`` to show it only on a terminal or in a notebook. ``budget_usd`` (default the job's)
    stops dispatching once the projected cost on ``price_basis`` would exceed it; ``prices``
    is a price file that extends the catalogue. ``on_event`` receives every event.

    Returns a ``RunOutcome``: ``ok``, ``result`` (the dict in result.json), ``report``,
    ``failures``. Shard failures and a budget stop are reported there, not raised. Raises
    ``SpecError`` for a bad job or argument, and ``StoreError`` when the store refuses (another
    job's store, a folder that holds other files).
    """
    from tessera.engine import cost, executors, reach
    from tessera.engine.config import settings
    from tessera.engine.errors import SpecError
    from tessera.engine.report import progress_listener
    from tessera.engine.run import run_job
    from tessera.engine.spec import Job

    if not isinstance(job, Job):
        job = _load(job, prime=getattr(executor, "name", executor) != "batch")
    for name, value in (("workers", workers), ("gpu_workers", gpu_workers)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise SpecError(name, f"{value!r} is out of range; expected an integer >= 1")
    if budget_usd is not None and not budget_usd > 0:
        raise SpecError("budget_usd", f"{budget_usd!r} is out of range; expected > 0")
    if gpu_workers:
        from tessera.kernels import cuda_device

        if not cuda_device.available():
            raise SpecError(
                "--gpu-workers",
                f"{gpu_workers}: no CUDA device is usable on this machine (numba.cuda reports "
                f"none); leave out --gpu-workers, or run where there is a GPU",
            )
    env = settings()
    if executor is None or isinstance(executor, str):
        name = executor or env.executor
        cluster_named = scheduler or env.scheduler or workers or gpu_workers or upload_kernel
        if name == "auto" and cluster_named:
            name = "dask"  # a named cluster, one sized by the caller, or a kernel to ship to it
        if name == "dask" and (scheduler or env.scheduler):
            reach.check_scheduler(scheduler or env.scheduler or "")
        on_dask = name == "dask"  # the environment's defaults apply where they mean something
        sized = name in ("dask", "auto")
        given: dict[str, object] = {
            "--scheduler": scheduler,
            "--workers": workers,
            "--gpu-workers": gpu_workers,
            "--upload-kernel": upload_kernel or None,
        }
        for flag, setting in given.items():
            if setting is not None and not on_dask:
                raise SpecError(flag, f"applies to the dask executor, not {name!r}")
        chosen = executors.create(
            name,
            scheduler=scheduler or (env.scheduler if on_dask else None),
            workers=workers or (env.workers if sized else None),
            gpu_workers=gpu_workers,
            upload_kernel=upload_kernel,
        )
    else:
        chosen = executor
    reach.check_s3(
        job.store,
        "the store",
        "committed shards there are kept; run again when it can be reached",
    )
    catalogue = cost.load_catalogue(prices or env.prices)
    basis = price_basis or env.price_basis
    check_price_basis(basis, catalogue)
    show = progress_listener(progress)
    listeners = [show] + ([on_event] if on_event is not None else [])

    def fan_out(event: Any) -> None:
        for listener in listeners:
            listener(event)

    try:
        return run_job(
            job,
            chosen,
            fan_out,
            budget_usd=budget_usd,
            catalogue=catalogue,
            price_basis=basis,
        )
    finally:
        show.close()


def check_price_basis(basis: str, catalogue: Any) -> None:
    """Refuse, before any work, a price basis that names no pricing model or instance type of
    ``catalogue`` (``SpecError`` naming ``--price-basis``)."""
    from tessera.engine.budget import BASES
    from tessera.engine.errors import SpecError

    target, sep, pricing = basis.partition(":")
    if not sep:
        if basis in BASES:
            return
        raise SpecError(
            "--price-basis",
            f"{basis!r} is not a price basis; expected one of {list(BASES)} or TYPE:spot / "
            f"TYPE:on-demand (e.g. c7i.large:spot)",
        )
    if pricing not in ("spot", "on-demand"):
        raise SpecError("--price-basis", f"{basis!r}: expected TYPE:spot or TYPE:on-demand")
    if target not in catalogue.instances:
        import difflib

        close = difflib.get_close_matches(target, list(catalogue.instances), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SpecError("--price-basis", f"{basis!r}: {target} is not in the price catalogue{hint}")


def status(store: str | os.PathLike[str]) -> StoreStatus:
    """The state of the store at ``store`` (a path, ``file://`` or ``s3://`` URL): its job,
    committed, failed and pending shards, inputs that failed, and the result and report once
    written. Raises ``StoreError`` when there is no tessera store there (and says so when
    ``store`` is a job file)."""
    from tessera.engine.status import read_status

    return read_status(os.fspath(store))


def list_kernels() -> list[KernelInfo]:
    """The kernels that a job can name without an import path: the built-ins and those that
    installed distributions register under the entry-point group ``tessera.kernels``, each
    with its ``module:attribute`` target, distribution and version."""
    from tessera.kernels import registry

    return registry.installed()
