"""What a run achieved and what a store holds: plain dataclasses, light to import (the public API
returns them; ``import tessera`` loads this module and nothing heavy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunOutcome:
    """What a run achieved. ``ok`` is true only when every shard committed, no input failed and
    the result was written (the CLI's exit code 0).

    ``result`` is the dict written to result.json (``None`` until every shard committed),
    ``report`` the dict written to report.json, ``failures`` the reason of each failed shard by
    index, ``item_errors`` the inputs that failed inside committed shards (``{"shard", "input",
    "reason"}``), and ``budget_stop`` the budget's message when it stopped dispatching."""

    n_shards: int
    committed: int
    failures: dict[int, str] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    report: dict[str, Any] = field(default_factory=dict)
    item_errors: list[dict[str, Any]] = field(default_factory=list)
    budget_stop: str = ""
    store: str = ""
    # a job with [job] target_stderr that is done (the target met, or every shard run): its
    # shards past the deciding prefix never run
    target_done: bool = False

    @property
    def ok(self) -> bool:
        """Every shard committed (or a target job is done), no input failed, and result.json
        was written."""
        every = self.committed == self.n_shards or self.target_done
        return self.result is not None and every and not self.item_errors


@dataclass
class StoreStatus:
    """A store's state (``tessera.status``): its job, which shards committed, failed or are
    pending, the inputs that failed, attempts per shard, and the result and report when
    written."""

    store: str
    job: str
    kernel: str
    spec_hash: str
    n_shards: int
    committed: int
    pending: list[int]
    failed: dict[int, dict[str, Any]]
    failed_inputs: list[dict[str, Any]]
    attempts: dict[int, int]
    result: dict[str, Any] | None
    report: dict[str, Any] | None
    job_spec: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def complete(self) -> bool:
        """Every shard committed, no input failed, and the result was written."""
        every = self.committed == self.n_shards or "target" in (self.result or {})
        return self.result is not None and every and not self.failed_inputs

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``tessera status --json``)."""
        return {
            "store": self.store,
            "job": self.job,
            "kernel": self.kernel,
            "spec_hash": self.spec_hash,
            "n_shards": self.n_shards,
            "committed": self.committed,
            "pending": self.pending,
            "failed": {str(i): r.get("reason") for i, r in sorted(self.failed.items())},
            "failed_inputs": self.failed_inputs,
            "complete": self.complete,
        }
