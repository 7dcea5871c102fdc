"""Scripted faults for tests: ``TESSERA_FAULTS`` makes chosen shards fail on chosen attempts.

Syntax: ``;``-separated rules ``SHARD:ACTION[:ATTEMPTS]``. ACTION is ``raise`` (the kernel raises
an error, as a bad input would), ``exit`` (the process dies at once with status 137, as a
SIGKILL would), ``interrupt`` (the shard is stopped before its commit, as on SIGTERM) or ``io``
(the first read or write the engine lends the kernel fails, as in an S3 outage; a kernel that
uses no lent I/O is not affected).
ATTEMPTS limits the fault to the first N attempts ("fail the first two attempts of shard 3,
then succeed" is ``3:raise:2``); without it the fault is permanent. Empty means no faults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ACTIONS = ("raise", "exit", "interrupt", "io")


@dataclass(frozen=True)
class Fault:
    """One rule: what happens to ``shard`` on its first ``attempts`` attempts (0 = always)."""

    shard: int
    action: str
    attempts: int = 0


def parse(text: str) -> list[Fault]:
    """Parse ``TESSERA_FAULTS``; raises ``ValueError`` naming the bad rule."""
    faults = []
    for rule in filter(None, (r.strip() for r in text.split(";"))):
        parts = rule.split(":")
        try:
            if len(parts) not in (2, 3) or parts[1] not in ACTIONS:
                raise ValueError
            faults.append(Fault(int(parts[0]), parts[1], int(parts[2]) if len(parts) == 3 else 0))
        except ValueError:
            raise ValueError(
                f"TESSERA_FAULTS rule {rule!r}: expected SHARD:{'|'.join(ACTIONS)}[:ATTEMPTS]"
            ) from None
    return faults


def action_for(faults: list[Fault], shard: int, attempt: int) -> str | None:
    """The fault action for this shard and attempt, or ``None`` (pure)."""
    for fault in faults:
        if fault.shard == shard and (fault.attempts == 0 or attempt <= fault.attempts):
            return fault.action
    return None


class InjectedError(RuntimeError):
    """The error a ``raise`` fault raises in place of the kernel."""


def exit_now() -> None:
    """Die at once, without cleanup, as a killed process would."""
    os._exit(137)
