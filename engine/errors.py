"""tessera's errors. Each subclasses TesseraError and the builtin it resembles, so callers can
catch either (``except ValueError`` still catches a bad job file)."""

from __future__ import annotations


class TesseraError(Exception):
    """Base class of every error tessera raises on purpose."""


class SpecError(TesseraError, ValueError):
    """A job file is invalid. ``key`` is the dotted key (``params.paths``), or '' for the file."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


class StoreError(TesseraError, RuntimeError):
    """The checkpoint store cannot be used (wrong job, unreadable, missing)."""


class StoreMismatchError(StoreError):
    """The store was created by a job whose spec hash differs from this job's."""


class StoreFormatError(StoreError):
    """The store was written in a store format this tessera does not read."""


class LentIOError(TesseraError, OSError):
    """I/O that the engine lent a kernel (``ShardIO`` reads and writes, on disk or S3) failed
    for a reason other than a missing or unreadable input: an outage, a full or read-only
    store. Retryable, even when raised inside ``compute``."""


class ShardInterrupted(TesseraError, RuntimeError):
    """A shard was stopped before its commit (SIGTERM, spot notice); safe to retry."""


class StageNotReady(TesseraError, RuntimeError):
    """A shard of a later stage was started before every shard of an earlier stage had
    committed; not retried (a rerun of the job runs the stages in order)."""


class Unreachable(TesseraError, OSError):
    """An endpoint (an input's or the store's S3, a Dask scheduler) accepts no connection; the
    message names which and what to do."""


def is_retryable(exc: BaseException) -> bool:
    """Whether a shard attempt that raised ``exc`` (outside the kernel's own errors, which
    ``run_shard`` records) may be retried: a stop before commit, lent I/O, store I/O and
    connection errors are; tessera's refusals (another job's store) are not."""
    if isinstance(exc, (ShardInterrupted, LentIOError)):
        return True
    return not isinstance(exc, TesseraError)


class ExecutorError(TesseraError, RuntimeError):
    """An executor could not start or reach its backend."""


class BatchError(TesseraError, RuntimeError):
    """AWS Batch refused a request, or a Batch submission cannot go ahead (budget, doctor)."""


class BatchRequestError(BatchError, ValueError):
    """A Batch request failed botocore's model or a Batch limit; it was not sent."""
