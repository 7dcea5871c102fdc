"""AWS Batch's own statusReason codes for RUNNABLE jobs: the table and ``explain`` (pure), the
lines ``tessera batch status`` and ``tessera batch doctor`` build from DescribeJobs, ListJobs and
DescribeJobQueues responses (shapes as the Batch API reference documents them, answered by a stub
client so every request still goes through ``aws.call`` and its validation), and the doctor
against a real moto queue."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tessera.engine.batch import doctor, reasons, status
from tessera.engine.batch.aws import call
from tests.jobs import job_dict, write_job
from tests.motoserver import MotoBatch

# The statusReason of a job stuck in RUNNABLE, word for word as the AWS Batch User Guide gives
# it ("Jobs stuck in a RUNNABLE status"), with the code it carries. The service-role text uses
# an en dash, as the guide prints it.
DOCUMENTED = {
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested "
    "for instance type [c5.large]": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue "
    "cannot meet the CPU requirement of the job.": (
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
    ),
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) "
    "is higher than that can be met by the CE(s) attached to the job queue.": (
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
    ),
    "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS \u2013 Batch service role has a permission "
    "issue.": "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS",
    "MISCONFIGURATION:EC2_INSTANCE_CONFIGURATION_UNSUPPORTED - Your compute environment "
    "associated with this job queue has an unsupported instance type configuration.": (
        "MISCONFIGURATION:EC2_INSTANCE_CONFIGURATION_UNSUPPORTED"
    ),
    "ACTION_REQUIRED - CE(s) associated with the job queue are invalid.": "ACTION_REQUIRED",
    "UNDETERMINED - Batch job is blocked, root cause is undetermined.": "UNDETERMINED",
}
# "The following statusReason values support jobStateTimeLimitActions" (the same guide).
TIME_LIMITABLE = {
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
    "MISCONFIGURATION:EC2_INSTANCE_CONFIGURATION_UNSUPPORTED",
}
# A word of each explanation that only the right one has: a swapped table entry fails.
KEYWORD = {
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY": "on-demand",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE": "maxvCpus",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT": "memory_mib",
    "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS": "AWSBatchServiceRole",
    "MISCONFIGURATION:EC2_INSTANCE_CONFIGURATION_UNSUPPORTED": "launch template",
    "ACTION_REQUIRED": "INVALID",
    "UNDETERMINED": "vCPU quota",
}
CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
CAPACITY_TEXT = next(t for t, code in DOCUMENTED.items() if code == CAPACITY)


# -- explain -----------------------------------------------------------------------------------


def test_the_table_holds_exactly_the_documented_codes() -> None:
    assert set(reasons.REASONS) == set(DOCUMENTED.values())
    assert set(reasons.TIME_LIMITED) == TIME_LIMITABLE
    assert {c for c, r in reasons.REASONS.items() if r.time_limit} == TIME_LIMITABLE


@pytest.mark.parametrize("text", sorted(DOCUMENTED))
def test_explain_every_documented_status_reason(text: str) -> None:
    code = DOCUMENTED[text]
    assert reasons.code_of(text) == code
    why = reasons.explain(text)
    assert why is not None and why == reasons.REASONS[code].sentence()
    assert KEYWORD[code] in why, why
    assert why.endswith(".") and why.count(". ") == 0, why  # one sentence
    # the bare code, as a queue's jobStateTimeLimitActions names it, is explained the same way
    assert reasons.explain(code) == why


def test_explain_finds_the_code_inside_the_text_and_the_time_limit_messages() -> None:
    inside = f"Job queue blocked: {CAPACITY} - Service cannot fulfill the capacity requested"
    assert reasons.explain(inside) == reasons.REASONS[CAPACITY].sentence()
    code = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
    cancelled = reasons.explain(f"Canceled by JobStateTimeLimit action due to reason: {code}")
    assert cancelled is not None
    assert cancelled.startswith(f"Batch cancelled the job: it stayed RUNNABLE with {code} past")
    assert "memory_mib" in cancelled
    terminated = reasons.explain(
        f"Terminated by JobStateTimeLimit action due to reason: {CAPACITY}"
    )
    assert terminated is not None and terminated.startswith("Batch terminated the job")


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "Essential container in task exited",
        "Host EC2 (instance i-0123456789abcdef0) terminated.",
        "MISCONFIGURATION:SOMETHING_NEW - a reason Batch may add one day",
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT_V2 - a longer code is another code",
        "XUNDETERMINED - a longer word is not the code",
        "the root cause is undetermined",  # the word, not the code
        "CannotPullContainerError: ref pull has been retried 1 time(s)",
    ],
)
def test_unknown_reasons_are_not_explained(text: str | None) -> None:
    assert reasons.explain(text) is None


def test_code_of_an_undocumented_code_is_its_prefix() -> None:
    assert (
        reasons.code_of("MISCONFIGURATION:SOMETHING_NEW - text") == "MISCONFIGURATION:SOMETHING_NEW"
    )
    assert reasons.code_of("CLIENT_ERROR \u2013 no subnet") == "CLIENT_ERROR"
    assert reasons.code_of("Essential container in task exited") is None


def test_tally_counts_by_code_most_frequent_first() -> None:
    other_type = CAPACITY_TEXT.replace("c5.large", "m5.large")
    role = next(t for t, c in DOCUMENTED.items() if c.endswith("SERVICE_ROLE_PERMISSIONS"))
    t = reasons.tally([role, CAPACITY_TEXT, None, CAPACITY_TEXT, other_type, "", "odd text"])
    assert t.looked_at == 7 and t.without == 2 and t.with_reason == 5 and t.complete
    assert [(g.key, g.count, g.texts) for g in t.groups] == [
        (CAPACITY, 3, 2),
        ("MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS", 1, 1),
        ("odd text", 1, 1),
    ]
    assert t.groups[0].example == CAPACITY_TEXT
    assert t.count(CAPACITY) == 3 and t.count("UNDETERMINED") == 0
    assert not reasons.tally([], complete=False).complete


def test_tally_lines_show_batch_text_explanation_and_the_rest() -> None:
    t = reasons.tally([CAPACITY_TEXT, CAPACITY_TEXT, "odd text", None])
    assert reasons.tally_lines(t, "RUNNABLE in queue q: 4 jobs") == [
        "RUNNABLE in queue q: 4 jobs, by Batch's statusReason:",
        f"  2 jobs: {CAPACITY_TEXT}",
        f"      {reasons.REASONS[CAPACITY].sentence()}",
        "  1 job: odd text",  # the raw text, and no explanation for it
        "  1 job without a reason from Batch (waiting in line, or behind a job that blocks "
        "the queue)",
    ]


# -- a stub Batch client: documented response shapes, requests recorded -----------------------

ACCOUNT = "123456789012"
QUEUE_ARN = f"arn:aws:batch:us-east-1:{ACCOUNT}:job-queue/q"
CE_ARN = f"arn:aws:batch:us-east-1:{ACCOUNT}:compute-environment/small"
DEFINITION = f"arn:aws:batch:us-east-1:{ACCOUNT}:job-definition/tessera-x:1"
Answer = dict[str, Any] | Callable[[Mapping[str, Any]], dict[str, Any]]


class StubBatch:
    """Answers the Batch operations tessera calls from a table, and records each request."""

    def __init__(self, answers: Mapping[str, Answer]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def _answer(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self.requests.append((operation, params))
        answer = self.answers[operation]
        return answer(params) if callable(answer) else answer

    def describe_jobs(self, **params: Any) -> dict[str, Any]:
        return self._answer("DescribeJobs", params)

    def list_jobs(self, **params: Any) -> dict[str, Any]:
        return self._answer("ListJobs", params)

    def describe_job_queues(self, **params: Any) -> dict[str, Any]:
        return self._answer("DescribeJobQueues", params)

    def describe_compute_environments(self, **params: Any) -> dict[str, Any]:
        return self._answer("DescribeComputeEnvironments", params)


def _queue(**extra: Any) -> dict[str, Any]:
    """A DescribeJobQueues ``jobQueues`` entry."""
    return {
        "jobQueueName": "q",
        "jobQueueArn": QUEUE_ARN,
        "state": "ENABLED",
        "status": "VALID",
        "statusReason": "JobQueue Healthy",
        "priority": 1,
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": CE_ARN}],
        "jobQueueType": "ECS",
        **extra,
    }


SMALL_CE = {  # a DescribeComputeEnvironments entry: c5.large only (2 vCPU, 4 GiB)
    "computeEnvironmentName": "small",
    "computeEnvironmentArn": CE_ARN,
    "type": "MANAGED",
    "state": "ENABLED",
    "status": "VALID",
    "statusReason": "ComputeEnvironment Healthy",
    "computeResources": {
        "type": "SPOT",
        "minvCpus": 0,
        "maxvCpus": 256,
        "instanceTypes": ["c5.large"],
        "subnets": ["subnet-1"],
    },
}


def _summary(job_id: str, reason: str | None, index: int | None = None) -> dict[str, Any]:
    """A ListJobs ``jobSummaryList`` entry of a RUNNABLE job."""
    entry: dict[str, Any] = {
        "jobArn": f"arn:aws:batch:us-east-1:{ACCOUNT}:job/{job_id}",
        "jobId": job_id,
        "jobName": "tessera-x",
        "createdAt": 1_700_000_000_000,
        "status": "RUNNABLE",
        "jobDefinition": DEFINITION,
    }
    if reason is not None:
        entry["statusReason"] = reason
    if index is not None:
        entry["arrayProperties"] = {"index": index}
    return entry


def _job(job_id: str, status_: str, **extra: Any) -> dict[str, Any]:
    """A DescribeJobs ``jobs`` entry: 4 vCPU and 30,000 MiB, more than c5.large has."""
    return {
        "jobArn": f"arn:aws:batch:us-east-1:{ACCOUNT}:job/{job_id}",
        "jobName": "tessera-x",
        "jobId": job_id,
        "jobQueue": QUEUE_ARN,
        "status": status_,
        "createdAt": 1_700_000_000_000,
        "jobDefinition": DEFINITION,
        "platformCapabilities": ["EC2"],
        "container": {
            "image": "tessera:1",
            "command": ["tessera", "worker"],
            "resourceRequirements": [
                {"value": "4", "type": "VCPU"},
                {"value": "30000", "type": "MEMORY"},
            ],
        },
        **extra,
    }


JOB_RESOURCE = next(t for t, c in DOCUMENTED.items() if c.endswith("JOB_RESOURCE_REQUIREMENT"))


# -- status ------------------------------------------------------------------------------------


def test_status_puts_batch_reasons_of_runnable_children_beside_the_doctor() -> None:
    parent = _job(
        "arr",
        "PENDING",
        arrayProperties={
            "statusSummary": {"SUCCEEDED": 2, "RUNNABLE": 3, "RUNNING": 0, "FAILED": 0},
            "size": 5,
        },
    )
    children = [
        _summary("arr:2", JOB_RESOURCE, 2),
        _summary("arr:3", JOB_RESOURCE, 3),
        _summary("arr:4", None, 4),
    ]
    client = StubBatch(
        {
            "DescribeJobs": {"jobs": [parent]},
            "ListJobs": {"jobSummaryList": children},
            "DescribeJobQueues": {"jobQueues": [_queue()]},
            "DescribeComputeEnvironments": {"computeEnvironments": [SMALL_CE]},
        }
    )
    states = status.collect(client, ["arr"])
    assert ("ListJobs", {"jobStatus": "RUNNABLE", "maxResults": 100, "arrayJobId": "arr"}) in (
        client.requests
    )
    text = status.lines(states)
    at = text.index("  RUNNABLE: 3 children, by Batch's statusReason:")
    assert text[at + 1 : at + 4] == [
        f"    2 children: {JOB_RESOURCE}",
        f"        {reasons.REASONS['MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT'].sentence()}",
        "    1 child without a reason from Batch (waiting in line, or behind a job that blocks "
        "the queue)",
    ]
    # tessera's own diagnosis follows Batch's reason, and agrees with it
    assert text[at + 4].startswith("  PROBLEM: a shard of 4 vCPU, 30,000 MiB (EC2) would stay")
    assert "fits no allowed instance type" in "\n".join(text[at + 5 :])


def test_status_of_a_single_runnable_job_and_of_one_without_a_reason() -> None:
    jobs = {
        "one": _job("one", "RUNNABLE", statusReason=CAPACITY_TEXT),
        "two": _job("two", "RUNNABLE"),
    }
    client = StubBatch(
        {
            "DescribeJobs": lambda p: {"jobs": [jobs[i] for i in p["jobs"]]},
            "DescribeJobQueues": {"jobQueues": [_queue()]},
            "DescribeComputeEnvironments": {"computeEnvironments": [SMALL_CE]},
        }
    )
    one, two = status.collect(client, ["one", "two"])
    assert status.runnable_lines(one) == [
        "RUNNABLE, by Batch's statusReason:",
        f"  1 job: {CAPACITY_TEXT}",
        f"      {reasons.REASONS[CAPACITY].sentence()}",
    ]
    assert status.runnable_lines(two) == []  # nothing from Batch: no empty heading
    assert all(op != "ListJobs" for op, _ in client.requests)  # a single job needs no listing
    text = "\n".join(status.lines([one, two]))
    assert text.count("by Batch's statusReason") == 1 and text.count("PROBLEM:") == 2


def test_status_explains_a_job_cancelled_by_the_queue_time_limit() -> None:
    reason = f"Canceled by JobStateTimeLimit action due to reason: {CAPACITY}"
    client = StubBatch({"DescribeJobs": {"jobs": [_job("gone", "FAILED", statusReason=reason)]}})
    text = status.lines(status.collect(client, ["gone"]))
    at = next(i for i, line in enumerate(text) if line.startswith("  FAILED job: Canceled by"))
    assert text[at + 1].startswith(
        f"      Batch cancelled the job: it stayed RUNNABLE with {CAPACITY}"
    )


def test_status_says_when_only_the_first_children_were_listed() -> None:
    state = status.JobState(
        job_id="arr",
        name="x",
        status="RUNNING",
        size=10_000,
        summary={"RUNNABLE": 5_000},
        runnable=reasons.tally([CAPACITY_TEXT] * 100, complete=False),
    )
    assert status.runnable_lines(state)[:2] == [
        "RUNNABLE: 5,000 children (reasons of the first 100 listed), by Batch's statusReason:",
        f"  100 children: {CAPACITY_TEXT}",
    ]


# -- doctor ------------------------------------------------------------------------------------


def test_doctor_reads_at_most_two_pages_of_runnable_jobs() -> None:
    pages = {
        None: {
            "jobSummaryList": [_summary(f"a{i}", CAPACITY_TEXT) for i in range(100)],
            "nextToken": "t1",
        },
        "t1": {"jobSummaryList": [_summary(f"b{i}", None) for i in range(100)], "nextToken": "t2"},
        "t2": {"jobSummaryList": [_summary("c", None)]},
    }
    client = StubBatch({"ListJobs": lambda p: pages[p.get("nextToken")]})
    listed = doctor.runnable(client, queue="q")
    assert [p.get("nextToken") for _, p in client.requests] == [None, "t1"]
    assert all(
        p["jobQueue"] == "q" and p["jobStatus"] == "RUNNABLE" and p["maxResults"] == 100
        for _, p in client.requests
    )
    assert (listed.looked_at, listed.without, listed.complete) == (200, 100, False)
    diagnosis = doctor.diagnose(doctor.Need(2, 2048), _queue(), [SMALL_CE])
    lines = doctor.queue_lines(diagnosis, listed)
    assert lines[0] == (
        "RUNNABLE in queue q: at least 200 jobs (the first 2 pages counted), by Batch's "
        "statusReason:"
    )
    # a queue with one page ends there
    client = StubBatch({"ListJobs": pages["t2"]})
    assert doctor.runnable(client, queue="q").complete and len(client.requests) == 1


def test_doctor_diagnosis_keeps_the_queue_time_limits() -> None:
    actions = [
        {"reason": CAPACITY, "state": "RUNNABLE", "maxTimeSeconds": 3600, "action": "CANCEL"}
    ]
    d = doctor.diagnose(doctor.Need(2, 2048), _queue(jobStateTimeLimitActions=actions), [SMALL_CE])
    assert d.exists and d.time_limits == actions
    assert doctor.diagnose(doctor.Need(2, 2048), _queue(), [SMALL_CE]).time_limits == []
    gone = doctor.diagnose(doctor.Need(2, 2048), None, [])
    assert not gone.exists and gone.time_limits == []


def test_doctor_counts_runnable_reasons_and_the_time_limits_that_cover_them() -> None:
    role = next(t for t, c in DOCUMENTED.items() if c.endswith("SERVICE_ROLE_PERMISSIONS"))
    actions = [
        {"reason": CAPACITY, "state": "RUNNABLE", "maxTimeSeconds": 3600, "action": "CANCEL"},
        {
            "reason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
            "state": "RUNNABLE",
            "maxTimeSeconds": 14_400,
            "action": "CANCEL",
        },
    ]
    client = StubBatch(
        {
            "DescribeJobQueues": {"jobQueues": [_queue(jobStateTimeLimitActions=actions)]},
            "DescribeComputeEnvironments": {"computeEnvironments": [SMALL_CE]},
            "ListJobs": {
                "jobSummaryList": [_summary(f"j{i}", CAPACITY_TEXT) for i in range(10)]
                + [_summary("r", role), _summary("n1", None), _summary("n2", None)]
            },
        }
    )
    diagnosis = doctor.run(client, doctor.Need(2, 2048), "q")
    assert diagnosis.ok
    lines = doctor.queue_lines(diagnosis, doctor.runnable(client, queue="q"))
    assert lines == [
        "RUNNABLE in queue q: 13 jobs, by Batch's statusReason:",
        f"  10 jobs: {CAPACITY_TEXT}",
        f"      {reasons.REASONS[CAPACITY].sentence()}",
        f"  1 job: {role}",
        f"      {reasons.REASONS['MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS'].sentence()}",
        "  2 jobs without a reason from Batch (waiting in line, or behind a job that blocks "
        "the queue)",
        f"time limit: queue q cancels jobs RUNNABLE for 60 min with reason {CAPACITY}; 10 of the "
        "RUNNABLE jobs listed have it",
        "time limit: queue q cancels jobs RUNNABLE for 4 h with reason "
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
        "time limit: none for MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS: 1 job waits until "
        "cancelled (no time limit can act on it: fix it by hand)",
    ]


def test_time_limit_lines_flag_reasons_batch_does_not_act_on() -> None:
    actions = [
        {
            "reason": "ACTION_REQUIRED",
            "state": "RUNNABLE",
            "maxTimeSeconds": 600,
            "action": "CANCEL",
        },
        {"reason": "NOT_A_CODE", "state": "RUNNABLE", "maxTimeSeconds": 650, "action": "TERMINATE"},
    ]
    assert doctor.time_limit_lines("q", actions) == [
        "time limit: queue q cancels jobs RUNNABLE for 10 min with reason ACTION_REQUIRED "
        "(Batch does not act on this reason)",
        "time limit: queue q terminates jobs RUNNABLE for 650 s with reason NOT_A_CODE "
        "(a reason Batch does not document: it may never match)",
    ]
    none = doctor.time_limit_lines("q", [])
    assert none[0] == (
        "time limit: queue q has no jobStateTimeLimitActions: a job stuck in RUNNABLE waits "
        "until someone cancels it"
    )
    assert all(code in none[1] for code in TIME_LIMITABLE)


def test_requests_are_valid_by_botocores_model() -> None:
    """The stub answers anything; ``aws.call`` validates first, so a bad shape fails here."""
    client = StubBatch({"ListJobs": {"jobSummaryList": []}})
    doctor.runnable(client, queue="q")
    doctor.runnable(client, array_job_id="arr", pages=1)
    assert [p for _, p in client.requests] == [
        {"jobStatus": "RUNNABLE", "maxResults": 100, "jobQueue": "q"},
        {"jobStatus": "RUNNABLE", "maxResults": 100, "arrayJobId": "arr"},
    ]
    from tessera.engine.errors import BatchRequestError

    with pytest.raises(BatchRequestError):  # the same door refuses a shape botocore rejects
        call(client, "ListJobs", {"jobQueue": "q", "maxResults": "100"})
    assert len(client.requests) == 2  # and never sends it


# -- through moto ------------------------------------------------------------------------------

TESSERA = [sys.executable, "-m", "tessera.engine.cli"]


def _cli(moto: MotoBatch, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **moto.env(), "TESSERA_FAULTS": ""}
    return subprocess.run([*TESSERA, *args], capture_output=True, text=True, timeout=120, env=env)


def _definition(moto: MotoBatch) -> str:
    request = {
        "jobDefinitionName": "tessera-reasons",
        "type": "container",
        "containerProperties": {
            "image": "tessera:1",
            "command": ["true"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "2048"},
            ],
        },
    }
    return str(call(moto.client(), "RegisterJobDefinition", request)["jobDefinitionArn"])


def test_cli_doctor_and_status_on_a_moto_queue(
    moto_batch: MotoBatch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = write_job(tmp_path / "job.toml", job_dict(tmp_path / "store"))
    ce = moto_batch.compute_environment("SPOT", ("c5", "m5"))

    empty = moto_batch.queue(ce)
    proc = _cli(moto_batch, "batch", "doctor", str(job), "--queue", empty)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"RUNNABLE in queue {empty}: no jobs" in proc.stdout
    assert f"time limit: queue {empty} has no jobStateTimeLimitActions" in proc.stdout

    busy = moto_batch.queue(ce)
    client, definition = moto_batch.client(), _definition(moto_batch)
    ids = [
        call(
            client, "SubmitJob", {"jobName": f"j{i}", "jobQueue": busy, "jobDefinition": definition}
        )["jobId"]
        for i in range(3)
    ]
    for job_id in ids:
        moto_batch.job(job_id).status = "RUNNABLE"
    moto_batch.job(ids[0]).job_stopped_reason = CAPACITY_TEXT  # moto's statusReason
    # moto's queues have no jobStateTimeLimitActions: add one as DescribeJobQueues returns it
    from moto.batch.models import JobQueue

    original = JobQueue.describe

    def describe(self: Any) -> dict[str, Any]:
        out = original(self)
        if self.name == busy:
            out["jobStateTimeLimitActions"] = [
                {
                    "reason": CAPACITY,
                    "state": "RUNNABLE",
                    "maxTimeSeconds": 3600,
                    "action": "CANCEL",
                }
            ]
        return out

    monkeypatch.setattr(JobQueue, "describe", describe)
    proc = _cli(moto_batch, "batch", "doctor", str(job), "--queue", busy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    at = out.index(f"RUNNABLE in queue {busy}: 3 jobs, by Batch's statusReason:")
    assert out[at + 1 : at + 4] == [
        f"  1 job: {CAPACITY_TEXT}",
        f"      {reasons.REASONS[CAPACITY].sentence()}",
        "  2 jobs without a reason from Batch (waiting in line, or behind a job that blocks "
        "the queue)",
    ]
    assert out[at + 4] == (
        f"time limit: queue {busy} cancels jobs RUNNABLE for 60 min with reason {CAPACITY}; "
        "1 of the RUNNABLE jobs listed has it"
    )

    proc = _cli(moto_batch, "batch", "status", ids[0], ids[1])
    assert proc.returncode == 1  # not finished
    assert proc.stdout.count("RUNNABLE, by Batch's statusReason:") == 1, proc.stdout
    assert f"  1 job: {CAPACITY_TEXT}" in proc.stdout
