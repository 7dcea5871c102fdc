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


class ShardError(TesseraError, RuntimeError):
    """A shard's kernel raised; names the shard and carries the original message."""

    def __init__(self, shard: int, message: str) -> None:
        super().__init__(f"shard {shard}: {message}")
        self.shard = shard
        self.message = message


class ShardInterrupted(TesseraError, RuntimeError):
    """A shard was stopped before its commit (SIGTERM, spot notice); safe to retry."""


class ExecutorError(TesseraError, RuntimeError):
    """An executor could not start or reach its backend."""


class BatchError(TesseraError, RuntimeError):
    """AWS Batch refused a request, or a Batch submission cannot go ahead (budget, doctor)."""


class BatchRequestError(BatchError, ValueError):
    """A Batch request failed botocore's model or a Batch limit; it was not sent."""
