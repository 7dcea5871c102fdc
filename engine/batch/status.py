"""``tessera batch status``: progress of Batch jobs, why children failed, why jobs wait.

``DescribeJobs`` gives an array job's ``arrayProperties.statusSummary`` (children per state);
that becomes a progress bar. Failed children are found with ``ListJobs(arrayJobId=...,
jobStatus=FAILED)`` and described for their ``statusReason``, exit code and CloudWatch log
stream; the submission's index file turns each array index back into its shard. Jobs or
children in RUNNABLE get Batch's own ``statusReason`` codes, explained (``reasons``; children are
listed with one ``ListJobs(arrayJobId=..., jobStatus=RUNNABLE)`` page), beside the doctor's
explanation of their queue, when there is one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from tessera.engine.batch import contract as c
from tessera.engine.batch import doctor, reasons
from tessera.engine.batch.aws import call

STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
TERMINAL = frozenset({"SUCCEEDED", "FAILED"})
DESCRIBE_LIMIT = 100  # DescribeJobs takes at most 100 job IDs
SHOW_FAILURES = 50  # failed children listed per job
CHILDREN = ("child", "children")
DEFAULT_LOG_GROUP = "/aws/batch/job"  # where Batch logs without a logConfiguration
LOG_TAIL = 5  # JSON log lines shown per failed child
LOG_EVENTS_READ = 50  # log events read from the end of its stream to find them


@dataclass(frozen=True)
class ChildFailure:
    """One failed child (or failed single job)."""

    job_id: str
    array_index: int | None
    shard: int | None
    status_reason: str
    exit_code: int | None
    reason: str
    log_stream: str | None
    log_group: str = DEFAULT_LOG_GROUP
    log_tail: tuple[str, ...] = ()  # its last JSON log lines, from CloudWatch Logs

    def line(self) -> str:
        where = "job" if self.array_index is None else f"child {self.array_index}"
        shard = f" (shard {self.shard})" if self.shard is not None else ""
        code = "-" if self.exit_code is None else str(self.exit_code)
        extra = f"; {self.reason}" if self.reason else ""
        return (
            f"FAILED {where}{shard}: {self.status_reason or '-'}{extra}; exit code {code}; "
            f"log stream {self.log_stream or '-'}"
        )


@dataclass
class JobState:
    """What ``status`` knows about one Batch job."""

    job_id: str
    name: str
    status: str
    size: int | None  # array size, None for a single job
    summary: dict[str, int]
    failures: list[ChildFailure] = field(default_factory=list)
    failed_total: int = 0
    waiting: list[str] = field(default_factory=list)  # why RUNNABLE, from the doctor
    runnable: reasons.Tally | None = None  # why RUNNABLE, from Batch's statusReason

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


def summary_of(job: Mapping[str, Any]) -> tuple[int | None, dict[str, int]]:
    """(array size or None, children per state) of a DescribeJobs entry (pure)."""
    props = job.get("arrayProperties") or {}
    if "size" in props:
        summary = {s: int(props.get("statusSummary", {}).get(s, 0)) for s in STATES}
        return int(props["size"]), summary
    return None, {s: int(job.get("status") == s) for s in STATES}


def bar(summary: Mapping[str, int], total: int, width: int = 30) -> str:
    """``[#####---------] 5/30 succeeded, 1 failed, 4 running, 20 waiting`` (pure)."""
    ok, failed = summary.get("SUCCEEDED", 0), summary.get("FAILED", 0)
    running = summary.get("RUNNING", 0) + summary.get("STARTING", 0)
    waiting = sum(summary.get(s, 0) for s in ("SUBMITTED", "PENDING", "RUNNABLE"))
    filled = round(width * ok / total) if total else 0
    failed_w = min(width - filled, round(width * failed / total)) if total else 0
    drawn = "#" * filled + "x" * failed_w + "-" * (width - filled - failed_w)
    return (
        f"[{drawn}] {ok:,}/{total:,} succeeded, {failed:,} failed, {running:,} running, "
        f"{waiting:,} waiting"
    )


def failure_of(job: Mapping[str, Any], shards: Sequence[int] | None = None) -> ChildFailure:
    """A failed DescribeJobs entry as a ``ChildFailure``; ``shards`` maps array index -> shard."""
    container = dict(job.get("container") or {})
    attempts = job.get("attempts") or []
    if attempts:
        last = attempts[-1].get("container") or {}
        for key in ("exitCode", "reason", "logStreamName"):
            container.setdefault(key, last.get(key))
    index = (job.get("arrayProperties") or {}).get("index")
    head, sep, tail = str(job.get("jobId", "")).rpartition(":")
    if index is None and sep and head and tail.isdigit():  # child IDs are <parent>:<index>
        index = int(tail)
    shard = None
    if index is not None and shards is not None and 0 <= int(index) < len(shards):
        shard = shards[int(index)]
    code = container.get("exitCode")
    options = (container.get("logConfiguration") or {}).get("options") or {}
    return ChildFailure(
        job_id=str(job.get("jobId", "")),
        array_index=None if index is None else int(index),
        shard=shard,
        status_reason=str(job.get("statusReason") or ""),
        exit_code=None if code is None else int(code),
        reason=str(container.get("reason") or ""),
        log_stream=container.get("logStreamName"),
        log_group=str(options.get("awslogs-group") or DEFAULT_LOG_GROUP),
    )


def log_tail(logs: Any, failure: ChildFailure, lines: int = LOG_TAIL) -> tuple[str, ...]:
    """The last ``lines`` JSON lines (the worker's events) of a failed child's log stream, or
    its last lines when none is JSON; nothing when the stream cannot be read (status works
    without CloudWatch Logs access)."""
    if not failure.log_stream:
        return ()
    try:
        events = logs.get_log_events(
            logGroupName=failure.log_group,
            logStreamName=failure.log_stream,
            limit=LOG_EVENTS_READ,
            startFromHead=False,
        ).get("events", [])
    except Exception:
        return ()
    messages = [str(e.get("message", "")).strip() for e in events]
    messages = [m for m in messages if m]
    as_json = [m for m in messages if m.startswith("{") and m.endswith("}")]
    return tuple((as_json or messages)[-lines:])


def need_of(job: Mapping[str, Any]) -> doctor.Need:
    """The resources a DescribeJobs entry asks for."""
    container = job.get("container") or {}
    req = {r.get("type"): r.get("value") for r in container.get("resourceRequirements") or []}
    vcpus = float(req.get("VCPU") or container.get("vcpus") or 1)
    memory = int(float(req.get("MEMORY") or container.get("memory") or 2048))
    gpus = int(float(req.get("GPU") or 0))
    platform = (job.get("platformCapabilities") or ["EC2"])[0]
    return doctor.Need(vcpus, memory, gpus, str(platform))


def describe(client: Any, ids: Sequence[str]) -> list[dict[str, Any]]:
    """DescribeJobs for any number of IDs (100 a call), in the order given."""
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), DESCRIBE_LIMIT):
        chunk = list(ids[i : i + DESCRIBE_LIMIT])
        for job in call(client, "DescribeJobs", {"jobs": chunk}).get("jobs", []):
            found[str(job["jobId"])] = job
    return [found[i] for i in ids if i in found]


def failed_children(
    client: Any, array_id: str, limit: int = SHOW_FAILURES
) -> tuple[list[Any], int]:
    """Up to ``limit`` described failed children of an array job, and how many failed. A
    child's exit code and reason come from its ListJobs summary where DescribeJobs leaves them
    out (moto's DescribeJobs does)."""
    ids: list[str] = []
    summaries: dict[str, dict[str, Any]] = {}
    token: str | None = None
    while True:
        params: dict[str, Any] = {"arrayJobId": array_id, "jobStatus": "FAILED"}
        if token:
            params["nextToken"] = token
        page = call(client, "ListJobs", params)
        for summary in page.get("jobSummaryList", []):
            ids.append(str(summary["jobId"]))
            summaries[ids[-1]] = dict(summary.get("container") or {})
        token = page.get("nextToken")
        if not token:
            break
    described = describe(client, ids[:limit])
    for job in described:
        container = job.setdefault("container", {})
        for key, value in summaries.get(str(job["jobId"]), {}).items():
            container.setdefault(key, value)
    return described, len(ids)


def index_shards(job: Mapping[str, Any]) -> list[int] | None:
    """The shards of an array job, from the index file its parameters name (None if unknown)."""
    from tessera.engine.batch.index import read_index

    params = job.get("parameters") or {}
    url, name = params.get(c.PARAM_JOB_URL), params.get(c.PARAM_INDEX_FILE)
    if not url or not name or name == "none":
        return None
    try:
        return list(read_index(str(url), str(name)).shards)
    except Exception:  # the index is a nicety here: status works without store access
        return None


def collect(client: Any, ids: Sequence[str], logs: Any = None) -> list[JobState]:
    """The state of each job: progress, failed children (with their last log lines when a
    CloudWatch Logs client ``logs`` is given), and why RUNNABLE ones wait."""
    diagnoses: dict[tuple[str, doctor.Need], doctor.Diagnosis] = {}
    out = []
    for job in describe(client, ids):
        size, summary = summary_of(job)
        state = JobState(
            job_id=str(job["jobId"]),
            name=str(job.get("jobName", "")),
            status=str(job.get("status", "")),
            size=size,
            summary=summary,
        )
        if summary.get("FAILED"):
            if size is None:
                state.failures, state.failed_total = [failure_of(job)], 1
            else:
                children, state.failed_total = failed_children(client, state.job_id)
                shards = index_shards(job)
                state.failures = [failure_of(child, shards) for child in children]
            if logs is not None:
                state.failures = [replace(f, log_tail=log_tail(logs, f)) for f in state.failures]
        if summary.get("RUNNABLE"):
            state.runnable = (
                reasons.tally([job.get("statusReason")])
                if size is None
                else doctor.runnable(client, array_job_id=state.job_id, pages=1)
            )
        if summary.get("RUNNABLE") and job.get("jobQueue"):
            key = (str(job["jobQueue"]), need_of(job))
            if key not in diagnoses:
                diagnoses[key] = doctor.run(client, key[1], key[0])
            diagnosis = diagnoses[key]
            if not diagnosis.ok:
                state.waiting = diagnosis.lines()
        out.append(state)
    return out


def lines(states: Sequence[JobState]) -> list[str]:
    """A report for people (pure)."""
    out = []
    for s in states:
        total = s.size if s.size is not None else 1
        out.append(f"{s.name} {s.job_id}: {s.status} {bar(s.summary, total)}")
        for failure in s.failures:
            out.append(f"  {failure.line()}")
            out.extend(f"      log: {line}" for line in failure.log_tail)
            why = reasons.explain(failure.status_reason)  # cancelled by the queue's time limit
            if why:
                out.append(f"      {why}")
        if s.failed_total > len(s.failures):
            out.append(f"  ... and {s.failed_total - len(s.failures):,} more failed children")
        out.extend(f"  {line}" for line in runnable_lines(s))
        out.extend(f"  {line}" for line in s.waiting)
    return out


def runnable_lines(s: JobState) -> list[str]:
    """Batch's reasons for the job or children in RUNNABLE, when Batch gave any (pure)."""
    if s.runnable is None or not s.runnable.with_reason:
        return []
    if s.size is None:
        return reasons.tally_lines(s.runnable, "RUNNABLE")
    n = s.summary.get("RUNNABLE", 0)
    head = f"RUNNABLE: {n:,} {CHILDREN[n != 1]}"
    if not s.runnable.complete:
        head += f" (reasons of the first {s.runnable.looked_at:,} listed)"
    return reasons.tally_lines(s.runnable, head, noun=CHILDREN)


def watch(
    client: Any,
    ids: Sequence[str],
    *,
    interval: float,
    out: TextIO,
    sleep: Callable[[float], None] = time.sleep,
    once: bool = False,
    logs: Any = None,
) -> list[JobState]:
    """Print the states, every ``interval`` seconds until every job has finished (or once)."""
    while True:
        states = collect(client, ids, logs)
        stamp = time.strftime("%H:%M:%S")
        if not once:
            print(f"-- {stamp}", file=out)
        for line in lines(states):
            print(line, file=out)
        out.flush()
        missing = set(ids) - {s.job_id for s in states}
        for job_id in sorted(missing):
            print(f"{job_id}: not found (wrong region or account, or older than 7 days)", file=out)
        if once or all(s.done for s in states):
            return states
        sleep(interval)
