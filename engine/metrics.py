"""CloudWatch metrics without code: Embedded Metric Format (EMF) blocks on ``tessera worker``'s
JSON log lines.

CloudWatch Logs extracts metrics from any log event that is an EMF document: one JSON object
whose ``_aws`` member names the namespace, dimension sets and metrics, with every dimension and
metric a top-level member of the same object (specification:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
A Batch child's stdout goes to CloudWatch Logs, so a shard's outcome line that carries such a
block becomes metrics with no agent and no API call (no ``cloudwatch:PutMetricData`` right).

Every outcome line is published under ``NAMESPACE`` with two dimension sets: ``Service, Kernel,
Job`` (one job's shards) and ``Service`` alone (every job at once: what one alarm on
``ShardsFailed`` watches). The metric names and units are the constants below; README and the
CloudFormation alarm cite them. Pure functions: no clock, no environment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

NAMESPACE = "tessera"
SERVICE = "tessera"  # the value of the Service dimension, on every line

# Dimension names (top-level members of each line; values are strings).
DIM_SERVICE = "Service"
DIM_KERNEL = "Kernel"  # the job's kernel name, e.g. "montecarlo.gbm"
DIM_JOB = "Job"  # the job's name ([job] name)
DIMENSIONS: tuple[tuple[str, ...], ...] = ((DIM_SERVICE, DIM_KERNEL, DIM_JOB), (DIM_SERVICE,))

# Metric names.
SHARDS_COMMITTED = "ShardsCommitted"  # 1 on the attempt that committed the shard, else 0
SHARDS_FAILED = "ShardsFailed"  # 1 when the kernel raised (the shard is not retried), else 0
SHARD_SECONDS = "ShardSeconds"  # a committed shard's compute wall time (commit record "seconds")
WORK_PER_SECOND = "WorkPerSecond"  # the kernel's work units per second (record work / seconds)
BYTES_WRITTEN = "BytesWritten"  # record "bytes": output array bytes the engine wrote

# CloudWatch units (MetricDatum's StandardUnit spellings) of each metric.
UNITS: dict[str, str] = {
    SHARDS_COMMITTED: "Count",
    SHARDS_FAILED: "Count",
    SHARD_SECONDS: "Seconds",
    WORK_PER_SECOND: "Count/Second",
    BYTES_WRITTEN: "Bytes",
}

# Limits of the EMF specification.
MAX_DIMENSIONS_PER_SET = 30
MAX_METRICS_PER_DIRECTIVE = 100


def committed(record: Mapping[str, Any]) -> dict[str, float]:
    """The metrics of the attempt that committed a shard, from its commit record (the only
    truth): ``seconds`` is the compute wall time, ``work`` the kernel's work units and
    ``bytes`` the uncompressed bytes of the output arrays the engine wrote for the shard
    (arrays a kernel writes itself through its lent I/O are not counted there). A value the
    record lacks is left out, as is ``WorkPerSecond`` when ``seconds`` is 0."""
    seconds = float(record.get("seconds", 0.0))
    values: dict[str, float] = {SHARDS_COMMITTED: 1, SHARDS_FAILED: 0, SHARD_SECONDS: seconds}
    work = record.get("work")
    if isinstance(work, int) and seconds > 0:
        values[WORK_PER_SECOND] = work / seconds
    nbytes = record.get("bytes")
    if isinstance(nbytes, int):
        values[BYTES_WRITTEN] = nbytes
    return values


def failed() -> dict[str, float]:
    """The metrics of an attempt whose kernel raised: the shard failed and is not retried."""
    return {SHARDS_COMMITTED: 0, SHARDS_FAILED: 1}


def unfinished() -> dict[str, float]:
    """The metrics of an attempt that neither committed nor failed the shard: it was already
    committed (skipped, so it is not counted twice), or it stopped or lost its store I/O and
    is retried. Zeros, so that a metric's sample count is the number of attempts."""
    return {SHARDS_COMMITTED: 0, SHARDS_FAILED: 0}


def emf(
    fields: Mapping[str, Any],
    *,
    kernel: str,
    job: str,
    metrics: Mapping[str, float | None],
    timestamp_ms: int,
) -> dict[str, Any]:
    """``fields`` (a log line's members, kept as they are) with an EMF block added: the ``_aws``
    metadata, the ``Service``/``Kernel``/``Job`` dimensions and one member per metric.

    ``metrics`` maps names from ``UNITS`` to numbers; a ``None`` or non-finite value is left
    out (CloudWatch takes only finite numbers, and JSON has no NaN). ``timestamp_ms`` is the
    event's time in milliseconds since the Unix epoch. Raises ``ValueError`` for an unknown
    metric name, a member of ``fields`` that a dimension or metric would overwrite, or an empty
    kernel or job name (a dimension value must be a non-empty string).
    """
    unknown = sorted(set(metrics) - set(UNITS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; expected names from {sorted(UNITS)}")
    if not kernel or not job:
        raise ValueError(f"EMF dimensions need a kernel and job name, got {kernel!r}, {job!r}")
    values = {
        name: value for name, value in metrics.items() if value is not None and math.isfinite(value)
    }
    dimensions = {DIM_SERVICE: SERVICE, DIM_KERNEL: kernel, DIM_JOB: job}
    taken = sorted((set(dimensions) | set(values) | {"_aws"}) & set(fields))
    if taken:
        raise ValueError(f"log line members {taken} clash with the EMF block's names")
    directive = {
        "Namespace": NAMESPACE,
        "Dimensions": [list(dims) for dims in DIMENSIONS],
        "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in values],
    }
    return {
        **fields,
        "_aws": {"Timestamp": int(timestamp_ms), "CloudWatchMetrics": [directive]},
        **dimensions,
        # an int stays an int (ShardsCommitted 1, not 1.0); a bool would be JSON true
        **{name: int(v) if isinstance(v, bool) else v for name, v in values.items()},
    }
