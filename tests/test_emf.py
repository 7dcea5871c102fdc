"""CloudWatch metrics from ``tessera worker``'s log lines: Embedded Metric Format (EMF).

Real ``tessera batch local`` children (the worker code path, as the containers run it) on a
small montecarlo.gbm job: shard 1's kernel raises, shard 2 is stopped on its first attempt and
retried. Then two direct ``tessera worker`` runs: shard 0 again (skipped, already committed) and
shard 1 without the fault (committed). Every stdout line is checked against a validator written
from the published specification:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import pytest

from tessera.engine import metrics
from tessera.engine.store import Store
from tests.jobs import job_dict, write_job

TESSERA = [sys.executable, "-m", "tessera.engine.cli"]
SENTINEL = "emfSentinelSecret/DoNotPrint0123456789"
JOB_NAME = "emf-test"
KERNEL = "montecarlo.gbm"
OUTCOME_EVENTS = {
    "shard_committed",
    "shard_failed",
    "shard_skipped",
    "shard_interrupted",
    "shard_io_error",
}
# The members every shard_committed line had before EMF (other code and tests parse them).
COMMITTED_FIELDS = {
    "ts",
    "event",
    "job",
    "spec",
    "shard",
    "n_shards",
    "array_index",
    "attempt",
    "host",
    "seconds",
    "work",
    "work_unit",
    "throughput",
}

# CloudWatch's units (MetricDatum StandardUnit), as the specification's schema lists them.
UNITS = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
]
_NAME = {"type": "string", "minLength": 1, "maxLength": 255}
# The specification's document structure as JSON Schema. Objects it defines "MUST NOT contain
# any additional members"; the root node MAY hold any others (the log line's own fields).
EMF_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Root Node",
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "title": "Metadata",
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "additionalProperties": False,
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "title": "MetricDirective",
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "additionalProperties": False,
                        "properties": {
                            "Namespace": _NAME,
                            "Dimensions": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "title": "DimensionSet",
                                    "type": "array",
                                    "minItems": 0,
                                    "maxItems": 30,
                                    "items": _NAME,
                                },
                            },
                            "Metrics": {
                                "type": "array",
                                "maxItems": 100,
                                "items": {
                                    "title": "MetricDefinition",
                                    "type": "object",
                                    "required": ["Name"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "Name": _NAME,
                                        "Unit": {"type": "string", "enum": UNITS},
                                        "StorageResolution": {"enum": [1, 60]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


def emf_errors(doc: dict[str, Any], now_ms: int | None = None) -> list[str]:
    """Everything wrong with ``doc`` as an EMF document: the schema, then what it cannot say
    (dimension and metric targets are root members, of the right types)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(EMF_SCHEMA)
    errors = [f"schema: {e.message} at {list(e.path)}" for e in validator.iter_errors(doc)]
    if errors:
        return errors
    meta = doc["_aws"]
    stamp = meta["Timestamp"]
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        errors.append(f"Timestamp {stamp!r} is not an integer")
    elif now_ms is not None and abs(stamp - now_ms) > 60_000:
        errors.append(f"Timestamp {stamp} is not within a minute of now ({now_ms} ms)")
    if len(json.dumps(doc).encode()) > 256 * 1024:
        errors.append("document over 256 KB")
    for directive in meta["CloudWatchMetrics"]:
        for dims in directive["Dimensions"]:
            for key in dims:
                value = doc.get(key)
                if not isinstance(value, str):
                    errors.append(f"dimension {key!r}: root member is {value!r}, not a string")
                elif not value.strip() or not value.isascii() or len(value) > 1024:
                    errors.append(f"dimension {key!r}: value {value!r} is not 1-1024 ASCII")
        names = [m["Name"] for m in directive["Metrics"]]
        if len(names) != len(set(names)):
            errors.append(f"metric names repeat: {names}")
        for name in names:
            value = doc.get(name)
            values = value if isinstance(value, list) else [value]
            if isinstance(value, list) and len(value) > 100:
                errors.append(f"metric {name!r}: {len(value)} values, over 100")
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                    errors.append(f"metric {name!r}: root member {value!r} is not a number")
    return errors


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _ts_ms(ts: str) -> int:
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (dt.datetime.fromisoformat(ts) - epoch) // dt.timedelta(milliseconds=1)


@dataclass
class Runs:
    """What the module's processes printed, and the store they ran on."""

    procs: list[subprocess.CompletedProcess[str]]
    lines: list[dict[str, Any]]
    store: Store
    finished_ms: int


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    folder = tmp_path_factory.mktemp("emf")
    path = write_job(folder / "job.toml", job_dict(folder / "store", name=JOB_NAME, shards=4))
    env = {**os.environ, "AWS_SECRET_ACCESS_KEY": SENTINEL}
    local = subprocess.run(
        [*TESSERA, "-v", "batch", "local", str(path), "--parallel", "2"],
        env={**env, "TESSERA_FAULTS": "1:raise;2:interrupt:1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert local.returncode == 1, local.stderr  # shard 1 failed for good: no reduce
    (job_url,) = (folder / "store" / "_batch").glob("*/job.json")
    again = [
        subprocess.run(
            [*TESSERA, "-v", "worker", str(job_url), "--index", str(shard)],
            env={**env, "TESSERA_FAULTS": "", "AWS_BATCH_JOB_ATTEMPT": "2"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        for shard in (0, 1)  # 0: already committed (skipped); 1: now commits
    ]
    assert [r.returncode for r in again] == [0, 0], [r.stderr for r in again]
    procs = [local, *again]
    lines = []
    for proc in procs:
        for text in proc.stdout.splitlines():
            line = json.loads(text)  # every stdout line is one JSON object
            assert isinstance(line, dict), text
            lines.append(line)
    return Runs(procs, lines, Store.open_existing(str(folder / "store")), _now_ms())


def _outcomes(runs: Runs, event: str) -> list[dict[str, Any]]:
    return [line for line in runs.lines if line["event"] == event]


def test_every_stdout_line_is_one_json_object(runs: Runs) -> None:
    for proc in runs.procs:
        for text in proc.stdout.splitlines():
            assert isinstance(json.loads(text), dict), text
    events = [line["event"] for line in runs.lines]
    assert events.count("shard_started") == 7  # 4 + shard 2's retry + 2 direct runs
    assert sorted(e for e in events if e in OUTCOME_EVENTS) == sorted(
        ["shard_committed"] * 4 + ["shard_failed", "shard_interrupted", "shard_skipped"]
    )


def test_outcome_lines_are_valid_emf_documents(runs: Runs) -> None:
    outcomes = [line for line in runs.lines if line["event"] in OUTCOME_EVENTS]
    assert len(outcomes) == 7
    for line in outcomes:
        assert emf_errors(line, now_ms=runs.finished_ms) == [], line
        assert line["_aws"]["Timestamp"] == _ts_ms(line["ts"])  # the line's own time, in ms
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "tessera"
        assert directive["Dimensions"] == [["Service", "Kernel", "Job"], ["Service"]]
        assert (line["Service"], line["Kernel"], line["Job"]) == ("tessera", KERNEL, JOB_NAME)
        assert line["job"] == JOB_NAME  # the existing field is unchanged
        units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
        assert all(units[name] == metrics.UNITS[name] for name in units)
        assert {"ShardsCommitted", "ShardsFailed"} <= set(units)
    for line in runs.lines:
        if line["event"] not in OUTCOME_EVENTS:
            assert "_aws" not in line and "ShardsCommitted" not in line, line


def test_committed_lines_keep_their_fields_and_add_only_emf(runs: Runs) -> None:
    emf_members = {"_aws", "Service", "Kernel", "Job", *metrics.UNITS}
    for line in _outcomes(runs, "shard_committed"):
        assert set(line) - emf_members == COMMITTED_FIELDS
        assert line["throughput"] > 0 and line["work_unit"] == "path-steps"
        units = {m["Name"]: m["Unit"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
        assert units == {
            "ShardsCommitted": "Count",
            "ShardsFailed": "Count",
            "ShardSeconds": "Seconds",
            "WorkPerSecond": "Count/Second",
            "BytesWritten": "Bytes",
        }


def test_a_failed_shard_carries_shards_failed(runs: Runs) -> None:
    (failed,) = _outcomes(runs, "shard_failed")
    assert failed["shard"] == 1 and "InjectedError" in failed["reason"]
    assert failed["ShardsFailed"] == 1 and failed["ShardsCommitted"] == 0
    assert "WorkPerSecond" not in failed and "BytesWritten" not in failed
    assert sum(line.get("ShardsFailed", 0) for line in runs.lines) == 1
    (stopped,) = _outcomes(runs, "shard_interrupted")  # retried: neither committed nor failed
    assert (stopped["shard"], stopped["ShardsCommitted"], stopped["ShardsFailed"]) == (2, 0, 0)


def test_values_are_those_of_the_commit_records(runs: Runs) -> None:
    records = runs.store.commit_records()
    assert sorted(records) == [0, 1, 2, 3]
    assert sum(line.get("ShardsCommitted", 0) for line in runs.lines) == len(records)
    committed = _outcomes(runs, "shard_committed")
    assert sorted(line["shard"] for line in committed) == [0, 1, 2, 3]
    for line in committed:
        record = records[line["shard"]]
        assert line["ShardsCommitted"] == 1 and line["ShardsFailed"] == 0
        assert line["ShardSeconds"] == record["seconds"]
        assert line["WorkPerSecond"] == record["work"] / record["seconds"]
        assert line["BytesWritten"] == record["bytes"] > 0
        assert line["attempt"] == record["attempt"]
    (skipped,) = _outcomes(runs, "shard_skipped")  # counted once, by the attempt that committed
    assert (skipped["shard"], skipped["ShardsCommitted"], skipped["ShardsFailed"]) == (0, 0, 0)
    assert "ShardSeconds" not in skipped


def test_no_credentials_in_any_output(runs: Runs) -> None:
    for proc in runs.procs:
        assert SENTINEL not in proc.stdout and SENTINEL not in proc.stderr


# The validator, and the pure function, without a process.


def _valid() -> dict[str, Any]:
    return metrics.emf(
        {"event": "shard_committed"},
        kernel=KERNEL,
        job=JOB_NAME,
        metrics=metrics.committed({"seconds": 2.0, "work": 10, "bytes": 64}),
        timestamp_ms=_now_ms(),
    )


@pytest.mark.parametrize(
    "breaks",
    [
        lambda d: d["_aws"].update(Timestamp=d["_aws"]["Timestamp"] // 1000),  # seconds
        lambda d: d["_aws"].update(Timestamp=float(d["_aws"]["Timestamp"])),
        lambda d: d.pop("Kernel"),
        lambda d: d.update(Job=7),
        lambda d: d.update(ShardsFailed="1"),
        lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(Unit="Count/Sec"),
        lambda d: d["_aws"]["CloudWatchMetrics"][0]["Dimensions"].append(
            [f"D{i}" for i in range(31)]
        ),
        lambda d: d["_aws"]["CloudWatchMetrics"][0].update(Extra=1),
    ],
)
def test_the_validator_rejects_what_the_specification_forbids(breaks: Any) -> None:
    doc = _valid()
    assert emf_errors(doc, now_ms=_now_ms()) == []
    breaks(doc)
    assert emf_errors(doc, now_ms=_now_ms())


def test_emf_leaves_out_missing_and_non_finite_values() -> None:
    doc = metrics.emf(
        {"event": "x", "ts": "t"},
        kernel=KERNEL,
        job=JOB_NAME,
        metrics={"ShardsCommitted": True, "ShardSeconds": math.nan, "WorkPerSecond": None},
        timestamp_ms=_now_ms(),
    )
    assert emf_errors(doc, now_ms=_now_ms()) == []
    assert doc["ShardsCommitted"] == 1 and type(doc["ShardsCommitted"]) is int
    assert "ShardSeconds" not in doc and "WorkPerSecond" not in doc
    assert [m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == [
        "ShardsCommitted"
    ]
    json.loads(json.dumps(doc, allow_nan=False))


@pytest.mark.parametrize(
    ("fields", "values", "match"),
    [
        ({"Job": "other"}, {"ShardsFailed": 1}, "clash"),
        ({"ShardsFailed": 3}, {"ShardsFailed": 1}, "clash"),
        ({}, {"Latency": 1.0}, "unknown metrics"),
    ],
)
def test_emf_refuses_clashes_and_unknown_names(
    fields: dict[str, Any], values: dict[str, float], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        metrics.emf(fields, kernel=KERNEL, job=JOB_NAME, metrics=values, timestamp_ms=0)


def test_constants_fit_the_specification_limits() -> None:
    assert all(len(dims) <= metrics.MAX_DIMENSIONS_PER_SET for dims in metrics.DIMENSIONS)
    assert len(metrics.UNITS) <= metrics.MAX_METRICS_PER_DIRECTIVE
    assert set(metrics.UNITS.values()) <= set(UNITS)
    assert metrics.failed() == {"ShardsCommitted": 0, "ShardsFailed": 1}
    record = {"seconds": 2.0, "work": 10, "bytes": 64}
    assert metrics.committed(record) == {
        "ShardsCommitted": 1,
        "ShardsFailed": 0,
        "ShardSeconds": 2.0,
        "WorkPerSecond": 5.0,
        "BytesWritten": 64,
    }
    assert "WorkPerSecond" not in metrics.committed({"seconds": 0.0, "work": 10})
