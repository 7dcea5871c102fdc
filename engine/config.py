"""The one place that reads tessera's environment variables.

Precedence: command-line flags, then the job file, then ``TESSERA_*`` variables, then defaults.
Only the variables named here are read; the environment is never logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Settings:
    """Run settings that do not change the result (so they are not in the job's hash)."""

    executor: str = "auto"  # TESSERA_EXECUTOR: auto | local | dask
    scheduler: str | None = None  # DASK_SCHEDULER_ADDRESS (Dask's own variable)
    workers: int | None = None  # TESSERA_WORKERS: LocalCluster worker processes
    faults: str = ""  # TESSERA_FAULTS: scripted faults for tests, see engine/faults.py
    prices: str | None = None  # TESSERA_PRICES: a price file extending engine/prices.toml
    price_basis: str = "on-demand"  # TESSERA_PRICE_BASIS: what budgets are compared against
    direct_io: str = "auto"  # TESSERA_DIRECT_IO: auto | off (see engine/codecs.py direct_io)


def settings() -> Settings:
    """Read ``TESSERA_EXECUTOR``, ``TESSERA_WORKERS``, ``TESSERA_FAULTS``, ``TESSERA_PRICES``,
    ``TESSERA_PRICE_BASIS``, ``TESSERA_DIRECT_IO`` and ``DASK_SCHEDULER_ADDRESS``. Raises
    ``ValueError`` naming a malformed variable."""
    workers_text = os.environ.get("TESSERA_WORKERS", "").strip()
    workers: int | None = None
    if workers_text:
        try:
            workers = int(workers_text)
        except ValueError:
            raise ValueError(f"TESSERA_WORKERS={workers_text!r} is not an integer") from None
        if workers < 1:
            raise ValueError(f"TESSERA_WORKERS={workers} must be >= 1")
    direct_io = os.environ.get("TESSERA_DIRECT_IO", "").strip().lower() or "auto"
    if direct_io not in ("auto", "off"):
        raise ValueError(f"TESSERA_DIRECT_IO={direct_io!r}: expected auto or off")
    return Settings(
        executor=os.environ.get("TESSERA_EXECUTOR", "auto").strip() or "auto",
        scheduler=os.environ.get("DASK_SCHEDULER_ADDRESS", "").strip() or None,
        workers=workers,
        faults=os.environ.get("TESSERA_FAULTS", ""),
        prices=os.environ.get("TESSERA_PRICES", "").strip() or None,
        price_basis=os.environ.get("TESSERA_PRICE_BASIS", "").strip() or "on-demand",
        direct_io=direct_io,
    )


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for a store URL. For ``s3://`` the endpoint comes from the standard
    ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` variable; credentials are left to
    botocore's own chain (environment, profile, instance role) and never copied here."""
    if not url.startswith("s3://"):
        return {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict[str, Any] = {}
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    return options


@dataclass(frozen=True)
class BatchEnv:
    """What AWS Batch tells a container (``tessera batch local`` sets the same variables)."""

    array_index: int | None = None  # AWS_BATCH_JOB_ARRAY_INDEX (absent for a single job)
    attempt: int | None = None  # AWS_BATCH_JOB_ATTEMPT: 1, 2, ...
    job_id: str | None = None  # AWS_BATCH_JOB_ID


def batch_env() -> BatchEnv:
    """Read ``AWS_BATCH_JOB_ARRAY_INDEX``, ``AWS_BATCH_JOB_ATTEMPT`` and ``AWS_BATCH_JOB_ID``.
    Without ``AWS_BATCH_JOB_ARRAY_INDEX``, an array child's index is the suffix of its job id
    (``<parent id>:<index>``): real Batch sets both, moto's Docker-backed Batch only the id.
    Raises ``ValueError`` naming a variable that is not a non-negative integer."""
    job_id = os.environ.get("AWS_BATCH_JOB_ID", "").strip() or None
    index = _int_var("AWS_BATCH_JOB_ARRAY_INDEX", lo=0)
    if index is None and job_id is not None:
        index = index_of_job_id(job_id)
    return BatchEnv(
        array_index=index,
        attempt=_int_var("AWS_BATCH_JOB_ATTEMPT", lo=1),
        job_id=job_id,
    )


def index_of_job_id(job_id: str) -> int | None:
    """The array index of an array child's job id ``<parent id>:<index>``, or ``None`` for a
    job id without one (a single job, or the parent) (pure)."""
    parent, sep, suffix = job_id.rpartition(":")
    if not sep or not parent or not suffix.isdigit() or not suffix.isascii():
        return None
    return int(suffix)


@dataclass(frozen=True)
class BatchSettings:
    """Defaults for ``tessera batch`` flags; the flags win."""

    image: str | None = None  # TESSERA_BATCH_IMAGE
    queue: str | None = None  # TESSERA_BATCH_QUEUE
    definition: str | None = None  # TESSERA_BATCH_DEFINITION
    job_role_arn: str | None = None  # TESSERA_BATCH_JOB_ROLE_ARN
    execution_role_arn: str | None = None  # TESSERA_BATCH_EXECUTION_ROLE_ARN
    log_group: str | None = None  # TESSERA_BATCH_LOG_GROUP


def batch_settings() -> BatchSettings:
    """Read the ``TESSERA_BATCH_*`` variables (unset or empty means no default)."""

    def var(name: str) -> str | None:
        return os.environ.get(name, "").strip() or None

    return BatchSettings(
        image=var("TESSERA_BATCH_IMAGE"),
        queue=var("TESSERA_BATCH_QUEUE"),
        definition=var("TESSERA_BATCH_DEFINITION"),
        job_role_arn=var("TESSERA_BATCH_JOB_ROLE_ARN"),
        execution_role_arn=var("TESSERA_BATCH_EXECUTION_ROLE_ARN"),
        log_group=var("TESSERA_BATCH_LOG_GROUP"),
    )


def _int_var(name: str, lo: int) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not an integer") from None
    if value < lo:
        raise ValueError(f"{name}={value} must be >= {lo}")
    return value
