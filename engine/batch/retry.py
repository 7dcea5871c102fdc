"""Retry policy, as pure functions: the job definition's ``retryStrategy`` (which ``render``
writes and ``tessera batch local`` obeys exactly as Batch does) and the backoff for throttled
API calls.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from tessera.engine.batch import contract as c

# What Batch reports when a spot instance is reclaimed: "Host EC2 (instance i-...) terminated."
SPOT_RECLAIM_REASON = "Host EC2*"
# The statusReason of a container that exited by itself.
CONTAINER_EXITED = "Essential container in task exited"


def retry_strategy(attempts: int) -> dict[str, Any]:
    """The ``retryStrategy`` of every tessera job. Batch takes the first entry that matches, and
    retries when none does, so the order matters and the catch-alls come last:

    1. spot reclaim (``Host EC2*``) -> RETRY: the shard had no commit record, it reruns;
    2. exit code ``EXIT_RETRYABLE`` (SIGTERM or store I/O) -> RETRY;
    3. any other exit code (kernel error 1, bad job 2, out of memory 137) -> EXIT: deterministic;
    4. any other reason (no exit code: the container never started) -> EXIT.
    """
    return {
        "attempts": attempts,
        "evaluateOnExit": [
            {"onStatusReason": SPOT_RECLAIM_REASON, "action": "RETRY"},
            {"onExitCode": str(c.EXIT_RETRYABLE), "action": "RETRY"},
            {"onExitCode": "*", "action": "EXIT"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }


def glob_match(pattern: str, value: str | None) -> bool:
    """Batch's patterns: an exact match, or a prefix match when the pattern ends with ``*``.
    Batch compares case-insensitively."""
    if value is None:
        return pattern == "*"
    p, v = pattern.lower(), value.lower()
    return v.startswith(p[:-1]) if p.endswith("*") else v == p


def decide(
    rules: Sequence[Mapping[str, Any]],
    *,
    exit_code: int | None,
    reason: str | None = None,
    status_reason: str | None = CONTAINER_EXITED,
) -> str:
    """``RETRY`` or ``EXIT`` for one failed attempt, as Batch decides: the first rule all of
    whose conditions match wins; with no rule matching, Batch retries."""
    values = {
        "onExitCode": None if exit_code is None else str(exit_code),
        "onReason": reason,
        "onStatusReason": status_reason,
    }
    for rule in rules:
        conditions = [(k, str(rule[k])) for k in values if k in rule]
        if all(glob_match(pattern, values[key]) for key, pattern in conditions):
            return str(rule["action"]).upper()
    return "RETRY"


def should_retry(
    strategy: Mapping[str, Any] | None,
    attempt: int,
    *,
    exit_code: int | None,
    reason: str | None = None,
    status_reason: str | None = CONTAINER_EXITED,
) -> bool:
    """Whether Batch starts attempt ``attempt + 1`` after attempt ``attempt`` failed."""
    if exit_code == 0 or not strategy:
        return False
    if attempt >= int(strategy.get("attempts", 1)):
        return False
    rules = strategy.get("evaluateOnExit") or []
    action = decide(rules, exit_code=exit_code, reason=reason, status_reason=status_reason)
    return action == "RETRY"


# Throttling (SubmitJob allows ~50 requests per second per account).
THROTTLE_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "RequestLimitExceeded"}
)
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 20.0
MAX_THROTTLED_TRIES = 10


def backoff_delay(
    tries: int, rng: random.Random, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S
) -> float:
    """Seconds to wait after the ``tries``-th throttled call (1, 2, ...): "full jitter", a
    uniform draw from ``[0, min(cap, base * 2**tries)]``, so many submitters spread out."""
    return rng.uniform(0.0, min(cap, base * 2.0**tries))
