"""The driver: open the store, dispatch pending shards, reduce, write result and report."""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from engine import cost, report
from engine.budget import Budget
from engine.events import Event, Listener, Message, RunStarted, ShardCommitted, ShardFailed
from engine.executors import Executor
from engine.io import StoreIO
from engine.plan import Plan, pending, plan
from engine.spec import Job
from engine.store import Store

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """What a run achieved. ``ok`` is true only when every shard committed and the result was
    written (the CLI's exit code 0)."""

    n_shards: int
    committed: int
    failures: dict[int, str] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    report: dict[str, Any] = field(default_factory=dict)

    item_errors: list[dict[str, Any]] = field(default_factory=list)
    budget_stop: str = ""

    @property
    def ok(self) -> bool:
        return self.result is not None and self.committed == self.n_shards and not self.item_errors


class _Collector:
    """Listens to events and remembers what this run did."""

    def __init__(self, downstream: Listener) -> None:
        self.downstream = downstream
        self.listeners: list[Listener] = []
        self.committed: list[ShardCommitted] = []
        self.failed: dict[int, ShardFailed] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, ShardCommitted):
            self.committed.append(event)
            self.failed.pop(event.shard, None)
        elif isinstance(event, ShardFailed) and not event.retryable:
            self.failed[event.shard] = event
        elif isinstance(event, ShardFailed):
            self.failed.setdefault(event.shard, event)
        for listener in self.listeners:
            listener(event)
        self.downstream(event)

    def also(self, listener: Listener) -> None:
        """Pass every event to ``listener`` too."""
        self.listeners.append(listener)


def run_job(
    job: Job,
    executor: Executor,
    on_event: Listener,
    *,
    budget_usd: float | None = None,
    catalogue: cost.Catalogue | None = None,
    price_basis: str = "on-demand",
) -> RunOutcome:
    """Run every pending shard of ``job`` on ``executor``; reduce when all have committed.

    Resuming is running again: committed shards are skipped. ``budget_usd`` (default: the
    job's ``budget_usd``) stops dispatching once the projected total cost on ``price_basis``
    would exceed it. Raises ``StoreMismatchError`` if the store belongs to another job; shard
    failures and a budget stop are reported in the outcome, not raised.
    """
    job_plan = plan(job)
    store = Store.open_for_job(job, job_plan)
    catalogue = catalogue or cost.load_catalogue()
    todo = pending(job_plan.n_shards, store.committed())
    collector = _Collector(on_event)
    limit = budget_usd if budget_usd is not None else job.budget_usd
    guard = None
    if limit is not None:
        guard = Budget(
            job, limit, job_plan.layout.shard_work, store.commit_records(), catalogue, price_basis
        )
        collector.also(guard)
    collector(RunStarted(job.name, job_plan.n_shards, len(todo), executor.name, job_plan.work_unit))
    started = time.perf_counter()
    executor.run(job, todo, collector, admit=guard.admit if guard else None)
    wall = time.perf_counter() - started
    if guard is not None and guard.stopped is not None:
        collector(Message(guard.message()))
    outcome = finish(job, job_plan, store, collector, executor.name, wall, catalogue)
    outcome.budget_stop = guard.message() if guard and guard.stopped else ""
    return outcome


def finish(
    job: Job,
    job_plan: Plan,
    store: Store,
    collector: _Collector,
    executor: str,
    wall: float,
    catalogue: cost.Catalogue,
) -> RunOutcome:
    """Reduce if complete, write result.json and report.json, and build the outcome."""
    done = store.committed()
    failures = {i: f.reason for i, f in sorted(collector.failed.items()) if i not in done}
    for i, rec in store.failures().items():
        failures.setdefault(i, str(rec.get("reason", "failed")))
    result = None
    if len(done) == job_plan.n_shards:
        result = reduce_store(job, store)
    records = store.commit_records()
    item_errors = item_errors_of(records)
    run_report = report.build(
        job=job,
        plan=job_plan,
        records=records,
        this_run=[e for e in collector.committed if not e.skipped],
        executor=executor,
        wall_seconds=wall,
        driver_host=socket.gethostname(),
        failures=failures,
        catalogue=catalogue,
    )
    store.write_json("report.json", json.dumps(run_report, indent=2, sort_keys=True) + "\n")
    return RunOutcome(
        n_shards=job_plan.n_shards,
        committed=len(done),
        failures=failures,
        result=result,
        report=run_report,
        item_errors=item_errors,
    )


def item_errors_of(records: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-item failures (e.g. one undecodable file) recorded by committed shards, with the
    shard index, in shard order."""
    return [
        {"shard": i, **error} for i in sorted(records) for error in records[i].get("errors", [])
    ]


def reduce_store(job: Job, store: Store) -> dict[str, Any]:
    """Reduce the complete arrays and write ``result.json``: the answer and what determines it
    (kernel, params, seed), nothing about how it ran, so its bytes never depend on the run."""
    answer = job.kernel.reduce(job.params, job.seed, store.read_arrays(), io=StoreIO(store))
    result = {"kernel": job.kernel_name, "params": job.params_dict(), "seed": job.seed, **answer}
    store.write_json("result.json", result_text(result))
    dzi = answer.get("dzi")
    if isinstance(dzi, dict) and str(dzi.get("path", "")).endswith(".dzi"):
        from engine.viewer import write_viewer

        page = write_viewer(job.store, str(dzi["path"]))
        log.info("job %s: Deep Zoom viewer at %s (tessera view %s)", job.name, page, job.store)
    return result


def result_text(result: dict[str, Any]) -> str:
    """The exact bytes of result.json."""
    return json.dumps(result, indent=2, allow_nan=False) + "\n"
