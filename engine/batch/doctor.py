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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tessera.engine.batch import fargate, instances
from tessera.engine.errors import SpecError


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
        return result
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
