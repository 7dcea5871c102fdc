"""Why a job would sit in RUNNABLE: read the queue and its compute environments and say so, with
the numbers, before anyone waits.

Batch accepts a job into a queue whatever its size; if no compute environment can ever place it,
it stays RUNNABLE without an error. The checks, per compute environment (CE):

- the CE is DISABLED, or INVALID (with Batch's statusReason);
- the platform differs (a Fargate job definition on an EC2 CE, or the reverse);
- a GPU is asked for on Fargate, or in a CE with no GPU instance types;
- more vCPUs than the CE's ``maxvCpus``;
- the vCPUs/memory/GPUs of one shard fit no allowed instance type (``instances``), or on
  Fargate are not a valid Fargate size;

and for the queue: DISABLED, INVALID, or no compute environments. The job can start when at least
one CE has no problem.

Beside tessera's own checks, the queue's RUNNABLE jobs are listed (a bounded number) with the
reason codes Batch itself gives them (``reasons``), and the queue's ``jobStateTimeLimitActions``
say whether Batch will cancel jobs stuck with those reasons, and when.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tessera.engine.batch import fargate, instances, reasons
from tessera.engine.errors import SpecError

LIST_PAGE = 100  # ListJobs returns at most 100 jobs a page
RUNNABLE_PAGES = 2  # pages of a queue's RUNNABLE jobs the doctor reads


@dataclass(frozen=True)
class Need:
    """What one shard asks of Batch."""

    vcpus: float
    memory_mib: int
    gpus: int = 0
    platform: str = "EC2"

    def describe(self) -> str:
        gpu = f", {self.gpus} GPU" if self.gpus else ""
        return f"{self.vcpus:g} vCPU, {self.memory_mib:,} MiB{gpu} ({self.platform})"


@dataclass
class Diagnosis:
    """Problems found, by where they are (``queue q``, ``compute environment ce``), and the
    compute environments that can run the job."""

    queue: str
    need: Need
    problems: list[tuple[str, str]] = field(default_factory=list)
    usable: list[str] = field(default_factory=list)
    exists: bool = True
    time_limits: list[dict[str, Any]] = field(default_factory=list)  # jobStateTimeLimitActions

    @property
    def ok(self) -> bool:
        return bool(self.usable)

    def lines(self) -> list[str]:
        """A report for people: verdict first, then each problem."""
        head = (
            f"ok: queue {self.queue} can run a shard of {self.need.describe()} on "
            f"{', '.join(self.usable)}"
            if self.ok
            else f"PROBLEM: a shard of {self.need.describe()} would stay RUNNABLE in queue "
            f"{self.queue}: no compute environment can run it"
        )
        return [head] + [f"  {where}: {what}" for where, what in self.problems]


def _platform_of(ce: Mapping[str, Any]) -> str:
    kind = str(ce.get("computeResources", {}).get("type", "EC2"))
    return "FARGATE" if kind.startswith("FARGATE") else "EC2"


def check_environment(need: Need, ce: Mapping[str, Any]) -> list[str]:
    """The problems that stop one compute environment (a DescribeComputeEnvironments entry)
    from running a shard of ``need`` (pure)."""
    out: list[str] = []
    if ce.get("state") != "ENABLED":
        out.append(f"is {ce.get('state', 'not ENABLED')}: Batch places no jobs in it")
    status = ce.get("status", "VALID")
    if status == "INVALID":
        out.append(f"is INVALID: {ce.get('statusReason') or 'no reason given'}")
    elif status in ("DELETING", "DELETED"):
        out.append(f"is {status}")
    if ce.get("type") == "UNMANAGED":
        return out  # its instances are whatever you launched; nothing more to check
    platform = _platform_of(ce)
    if platform != need.platform:
        out.append(
            f"platform mismatch: the job definition is for {need.platform}, this compute "
            f"environment runs {platform}"
        )
        return out
    resources = ce.get("computeResources", {})
    max_vcpus = resources.get("maxvCpus")
    if isinstance(max_vcpus, int | float) and need.vcpus > max_vcpus:
        out.append(f"a shard asks for {need.vcpus:g} vCPUs, more than maxvCpus = {max_vcpus:g}")
    if platform == "FARGATE":
        if need.gpus:
            out.append(f"{need.gpus} GPU requested, but Fargate has no GPUs")
            return out
        try:
            fargate.check(need.vcpus, need.memory_mib)
        except SpecError as exc:
            out.append(f"not a Fargate size: {exc}")
        return out
    known, unknown = instances.expand(resources.get("instanceTypes", []))
    if unknown:
        return out  # a type tessera does not know might fit: say nothing rather than guess
    if need.gpus and not any(t.gpus for t in known):
        allowed = ", ".join(resources.get("instanceTypes", [])) or "none"
        out.append(
            f"{need.gpus} GPU requested, but no allowed instance type has a GPU "
            f"(instanceTypes: {allowed})"
        )
        return out
    if known and not any(instances.fits(t, need.vcpus, need.memory_mib, need.gpus) for t in known):
        out.append(_no_fit(need, known, resources.get("instanceTypes", [])))
    return out


def _no_fit(need: Need, known: Sequence[instances.InstanceType], allowed: Sequence[str]) -> str:
    biggest = max(known, key=lambda t: (t.vcpus, t.job_memory_mib))
    roomiest = max(known, key=lambda t: (t.job_memory_mib, t.vcpus))
    largest = {biggest.name: biggest, roomiest.name: roomiest}.values()
    sizes = "; ".join(
        f"{t.name}: {t.vcpus} vCPU, {t.job_memory_mib:,} MiB for jobs"
        + (f", {t.gpus} GPU" if t.gpus else "")
        for t in largest
    )
    return (
        f"{need.describe()} fits no allowed instance type (instanceTypes: {', '.join(allowed)}; "
        f"largest: {sizes})"
    )


def diagnose(
    need: Need, queue: Mapping[str, Any] | None, environments: Sequence[Mapping[str, Any]]
) -> Diagnosis:
    """Check a queue (a DescribeJobQueues entry, or ``None`` when it does not exist) and its
    compute environments in the queue's order (pure)."""
    name = str((queue or {}).get("jobQueueName", "?"))
    result = Diagnosis(queue=name, need=need)
    if queue is None:
        result.problems.append(("queue", "does not exist (or is in another region or account)"))
        result.exists = False
        return result
    result.time_limits = [dict(a) for a in queue.get("jobStateTimeLimitActions") or []]
    where = f"queue {name}"
    if queue.get("state") != "ENABLED":
        result.problems.append((where, f"is {queue.get('state')}: it dispatches no jobs"))
    if queue.get("status") == "INVALID":
        result.problems.append((where, f"is INVALID: {queue.get('statusReason') or '-'}"))
    if not environments:
        result.problems.append((where, "has no compute environments"))
    queue_ok = not result.problems
    for ce in environments:
        ce_name = str(ce.get("computeEnvironmentName", ce.get("computeEnvironmentArn", "?")))
        problems = check_environment(need, ce)
        result.problems.extend((f"compute environment {ce_name}", p) for p in problems)
        if queue_ok and not problems:
            result.usable.append(ce_name)
    return result


def fetch(client: Any, queue: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The queue and its compute environments, in the queue's order (two Describe calls)."""
    from tessera.engine.batch.aws import call

    queues = call(client, "DescribeJobQueues", {"jobQueues": [queue]}).get("jobQueues", [])
    if not queues:
        return None, []
    found = queues[0]
    order = sorted(found.get("computeEnvironmentOrder", []), key=lambda e: e.get("order", 0))
    arns = [e["computeEnvironment"] for e in order]
    if not arns:
        return found, []
    envs = call(client, "DescribeComputeEnvironments", {"computeEnvironments": arns}).get(
        "computeEnvironments", []
    )
    by_key = {}
    for ce in envs:
        by_key[ce.get("computeEnvironmentArn")] = ce
        by_key[ce.get("computeEnvironmentName")] = ce
    gone = {"state": "not found", "status": "DELETED"}
    return found, [by_key.get(a, {"computeEnvironmentName": a, **gone}) for a in arns]


def run(client: Any, need: Need, queue: str) -> Diagnosis:
    """Fetch and diagnose ``queue`` for a shard of ``need``."""
    found, envs = fetch(client, queue)
    diagnosis = diagnose(need, found, envs)
    if found is None:
        diagnosis.queue = queue
    return diagnosis


def runnable(
    client: Any,
    *,
    queue: str | None = None,
    array_job_id: str | None = None,
    pages: int = RUNNABLE_PAGES,
) -> reasons.Tally:
    """Batch's ``statusReason`` of the RUNNABLE jobs of ``queue`` (or the RUNNABLE children of
    ``array_job_id``), counted; at most ``pages`` ListJobs pages of ``LIST_PAGE`` jobs."""
    from tessera.engine.batch.aws import call

    params: dict[str, Any] = {"jobStatus": "RUNNABLE", "maxResults": LIST_PAGE}
    if queue is not None:
        params["jobQueue"] = queue
    if array_job_id is not None:
        params["arrayJobId"] = array_job_id
    texts: list[str | None] = []
    token: str | None = None
    for _ in range(pages):
        page = call(client, "ListJobs", {**params, **({"nextToken": token} if token else {})})
        texts.extend(j.get("statusReason") for j in page.get("jobSummaryList", []))
        token = page.get("nextToken")
        if not token:
            break
    return reasons.tally(texts, complete=not token)


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    if seconds >= 7200 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def time_limit_lines(
    queue: str, actions: Sequence[Mapping[str, Any]], listed: reasons.Tally | None = None
) -> list[str]:
    """What the queue's ``jobStateTimeLimitActions`` will do to stuck jobs, and which reasons of
    the ``listed`` RUNNABLE jobs none of them covers (pure)."""
    if not actions:
        return [
            f"time limit: queue {queue} has no jobStateTimeLimitActions: a job stuck in RUNNABLE "
            f"waits until someone cancels it",
            f"  (Batch can cancel jobs stuck with {', '.join(reasons.TIME_LIMITED)} after a time "
            f"you choose: UpdateJobQueue jobStateTimeLimitActions)",
        ]
    out = []
    covered = set()
    for a in actions:
        reason = str(a.get("reason", "?"))
        covered.add(reason)
        kind = str(a.get("action", "?"))
        verb = {"CANCEL": "cancels", "TERMINATE": "terminates"}.get(kind, kind.lower())
        line = (
            f"time limit: queue {queue} {verb} jobs {a.get('state', 'RUNNABLE')} for "
            f"{_duration(a.get('maxTimeSeconds'))} with reason {reason}"
        )
        known = reasons.REASONS.get(reason)
        if known is None:
            line += " (a reason Batch does not document: it may never match)"
        elif not known.time_limit:
            line += " (Batch does not act on this reason)"
        n = listed.count(reason) if listed is not None else 0
        if n:
            line += f"; {n:,} of the RUNNABLE jobs listed {'has' if n == 1 else 'have'} it"
        out.append(line)
    for g in listed.groups if listed is not None else ():
        known = reasons.REASONS.get(g.key)
        if known is None or g.key in covered:
            continue
        them = "job waits" if g.count == 1 else "jobs wait"
        fix = "" if known.time_limit else " (no time limit can act on it: fix it by hand)"
        out.append(f"time limit: none for {g.key}: {g.count:,} {them} until cancelled{fix}")
    return out


def queue_lines(diagnosis: Diagnosis, listed: reasons.Tally | None) -> list[str]:
    """The queue's RUNNABLE jobs by Batch's reason (``None``: not listed), then its time limits
    (pure)."""
    head = f"RUNNABLE in queue {diagnosis.queue}"
    if listed is None:
        out = []
    elif not listed.looked_at:
        out = [f"{head}: no jobs"]
    else:
        jobs = "job" if listed.looked_at == 1 else "jobs"
        count = f"{listed.looked_at:,} {jobs}"
        if not listed.complete:
            count = f"at least {count} (the first {RUNNABLE_PAGES} pages counted)"
        out = reasons.tally_lines(listed, f"{head}: {count}")
    return out + time_limit_lines(diagnosis.queue, diagnosis.time_limits, listed)
