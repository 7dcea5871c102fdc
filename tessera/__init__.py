"""tessera: Numba kernels sharded over Dask or AWS Batch, checkpointed to Zarr.

The public API::

    import tessera

    job = tessera.load("examples/option-pricing.toml", store="runs/euro", shards=8)
    outcome = tessera.run(job, executor="local")
    outcome.ok, outcome.result, outcome.report, outcome.failures
    tessera.status("runs/euro")

Importing ``tessera`` loads none of numba, dask, zarr or boto3: each loads when first used.
The kernel SDK for your own kernels is ``tessera.sdk``.
"""

from __future__ import annotations

from tessera._numba_target import choose as _choose_numba_target
from tessera.api import RunOutcome, StoreStatus, list_kernels, load, run, status
from tessera.engine import __version__

_choose_numba_target()  # before anything imports Numba (none of the above does)

__all__ = ["RunOutcome", "StoreStatus", "__version__", "list_kernels", "load", "run", "status"]
