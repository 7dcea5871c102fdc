"""AWS Batch's own reasons for a job that stays RUNNABLE, and what to do about each (pure).

When Batch finds a RUNNABLE job blocking the head of a queue it writes a reason code into the
job's ``statusReason`` (as ``ListJobs`` and ``DescribeJobs`` return it), in the form
``CODE - free text``, for example ``CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot
fulfill the capacity requested for instance type [c5.large]``. The same codes name the
``reason`` of a queue's ``jobStateTimeLimitActions``; a job that such an action cancels ends
with ``Canceled by JobStateTimeLimit action due to reason: CODE``.

The codes and their meaning follow the AWS Batch User Guide, "Jobs stuck in a RUNNABLE status"
and "Automatic remediation with jobStateTimeLimitActions"; the advice is tessera's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    """One documented ``statusReason`` code: what it means, what to do, and whether a queue's
    ``jobStateTimeLimitActions`` can act on it."""

    code: str
    meaning: str
    action: str
    time_limit: bool

    def sentence(self) -> str:
        return f"{self.meaning}; {self.action}."


REASONS: dict[str, Reason] = {
    r.code: r
    for r in (
        Reason(
            "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
            "EC2 has no spare capacity now for the instance types that every compute "
            "environment of the queue may launch",
            "wait, or allow more instance types or subnets in more Availability Zones, or add "
            "an on-demand compute environment after the Spot one",
            True,
        ),
        Reason(
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
            "The job asks for more vCPUs than the maxvCpus of every compute environment of "
            "the queue",
            "raise maxvCpus of a compute environment, or ask for fewer vCPUs per shard "
            "(resources.vcpus); cancelling the job lets the next one reach the head of the "
            "queue",
            True,
        ),
        Reason(
            "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
            "No instance type that the queue's compute environments allow has the vCPUs, "
            "memory or GPUs the job asks for",
            "allow larger (or GPU) instance types, or lower resources.vcpus, memory_mib or gpus "
            "(each instance keeps some memory for the ECS agent); `tessera batch doctor` "
            "names the largest allowed types",
            True,
        ),
        Reason(
            "MISCONFIGURATION:EC2_INSTANCE_CONFIGURATION_UNSUPPORTED",
            "The compute environment's instance types are not offered in its subnets' "
            "Availability Zones, or its launch template does not suit them",
            "check that the instance types exist in the region and zones of the subnets and "
            "fit the launch template, or choose newer instance types",
            True,
        ),
        Reason(
            "MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS",
            "Batch's service role lacks permissions it needs in every compute environment of "
            "the queue",
            "compare the role with the AWSBatchServiceRole managed policy, or use Batch's "
            "service-linked role; a time limit cannot clear this, and the next job would "
            "block the queue again",
            False,
        ),
        Reason(
            "ACTION_REQUIRED",
            "Every compute environment of the queue is INVALID",
            "fix what each compute environment's statusReason names (often a wrong role ARN, "
            "subnet or security group; `tessera batch doctor` prints it); a time limit cannot "
            "clear this",
            False,
        ),
        Reason(
            "UNDETERMINED",
            "Batch sees the queue blocked but cannot tell why",
            "check the usual causes: the account's EC2 vCPU quota, no route from the subnets "
            "to the ECS endpoint (a NAT gateway or VPC endpoint), an AMI without the ECS agent "
            "or the awslogs driver; a time limit cannot clear this",
            False,
        ),
    )
}

# Documented codes that a queue's ``jobStateTimeLimitActions`` may name, in the table's order.
TIME_LIMITED = tuple(code for code, r in REASONS.items() if r.time_limit)

_NOT_CODE = r"A-Za-z0-9_:"  # a code is a whole word: not part of a longer code
_KNOWN = re.compile(
    rf"(?<![{_NOT_CODE}])("
    + "|".join(re.escape(c) for c in sorted(REASONS, key=len, reverse=True))
    + rf")(?![{_NOT_CODE}])"
)
# An undocumented code at the start of Batch's text: ``WORD[:WORD] - ...`` (hyphen or dash).
_LEADING_CODE = re.compile(r"\s*([A-Z][A-Z0-9_]*(?::[A-Z][A-Z0-9_]*)?)\s+[-\u2013\u2014]\s")
_TIME_LIMIT = re.compile(r"\b(Canceled|Cancelled|Terminated) by JobStateTimeLimit action\b")


def code_of(status_reason: str | None) -> str | None:
    """The documented code in ``status_reason`` (at its start or inside it), else a code-shaped
    prefix (``WORD:WORD - ...``) Batch may add later, else None."""
    if not status_reason:
        return None
    found = _KNOWN.search(status_reason)
    if found:
        return found.group(1)
    leading = _LEADING_CODE.match(status_reason)
    return leading.group(1) if leading else None


def explain(status_reason: str | None) -> str | None:
    """One sentence saying what Batch's ``statusReason`` means and what to do, or None when it
    carries no documented code (the caller still shows the raw text). A job cancelled by a
    queue's time limit is explained as such."""
    code = code_of(status_reason)
    reason = REASONS.get(code or "")
    if reason is None or status_reason is None:
        return None
    limit = _TIME_LIMIT.search(status_reason)
    if limit:
        verb = "terminated" if limit.group(1) == "Terminated" else "cancelled"
        return (
            f"Batch {verb} the job: it stayed RUNNABLE with {reason.code} past the queue's "
            f"jobStateTimeLimitActions limit ({reason.meaning[0].lower()}{reason.meaning[1:]}); "
            f"{reason.action}."
        )
    return reason.sentence()


@dataclass(frozen=True)
class Group:
    """RUNNABLE jobs that share a reason: the documented code, a code-shaped prefix, or (with
    neither) the whole text."""

    key: str
    count: int
    example: str  # the first statusReason seen
    texts: int  # distinct statusReason texts in the group


@dataclass(frozen=True)
class Tally:
    """Batch's reasons of some RUNNABLE jobs, counted. ``complete`` is False when the listing
    stopped at its bound, so only the first ``looked_at`` jobs were counted."""

    looked_at: int
    groups: tuple[Group, ...]  # most frequent first
    without: int
    complete: bool = True

    @property
    def with_reason(self) -> int:
        return self.looked_at - self.without

    def count(self, key: str) -> int:
        return sum(g.count for g in self.groups if g.key == key)


def tally(status_reasons: Iterable[str | None], *, complete: bool = True) -> Tally:
    """Count ``statusReason`` texts (``None`` or empty: no reason) by code (pure)."""
    counts: dict[str, int] = {}
    examples: dict[str, str] = {}
    texts: dict[str, set[str]] = {}
    seen = without = 0
    for text in status_reasons:
        seen += 1
        text = (text or "").strip()
        if not text:
            without += 1
            continue
        key = code_of(text) or text
        counts[key] = counts.get(key, 0) + 1
        examples.setdefault(key, text)
        texts.setdefault(key, set()).add(text)
    order = sorted(counts, key=lambda k: (-counts[k], k))
    groups = tuple(Group(k, counts[k], examples[k], len(texts[k])) for k in order)
    return Tally(looked_at=seen, groups=groups, without=without, complete=complete)


def tally_lines(t: Tally, head: str, *, noun: Sequence[str] = ("job", "jobs")) -> list[str]:
    """``head`` (``RUNNABLE in queue q: 12 jobs``), then one line per reason with Batch's text,
    its explanation under it, and the jobs without a reason (pure)."""
    out = [f"{head}, by Batch's statusReason:"]
    for g in t.groups:
        others = g.texts - 1
        more = f" (and {others:,} other {'text' if others == 1 else 'texts'})" if others else ""
        out.append(f"  {g.count:,} {noun[g.count != 1]}: {g.example}{more}")
        why = explain(g.example)
        if why:
            out.append(f"      {why}")
    if t.without:
        out.append(
            f"  {t.without:,} {noun[t.without != 1]} without a reason from Batch (waiting in line, "
            f"or behind a job that blocks the queue)"
        )
    return out
