"""The driver: open the store, dispatch pending shards, reduce, write result and report."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from tessera.engine import cost, report, waves
from tessera.engine.budget import Budget
from tessera.engine.events import (
    Event,
    Listener,
    Message,
    RunStarted,
    ShardCommitted,
    ShardFailed,
    StageStarted,
)
from tessera.engine.executors import Executor
from tessera.engine.io import StoreIO
from tessera.engine.outcome import RunOutcome
from tessera.engine.plan import Plan, pending, plan
from tessera.engine.spec import Job
from tessera.engine.store import Store

log = logging.getLogger(__name__)


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
    committed = store.committed()
    todo = pending(job_plan.n_shards, committed)
    collector = _Collector(on_event)
    resolve = getattr(executor, "resolve", None)  # "auto": local or dask, by the job
    limit = budget_usd if budget_usd is not None else job.budget_usd
    # read once for both (on S3, one GET per committed shard)
    records = store.commit_records() if resolve is not None or limit is not None else {}
    if resolve is not None:
        executor, choice = resolve(job, job_plan.layout, records, todo)
        collector(Message(choice.reason))
    guard = None
    if limit is not None:
        guard = Budget(job, limit, job_plan.layout.shard_work, records, catalogue, price_basis)
        collector.also(guard)
    collector(RunStarted(job.name, job_plan.n_shards, len(todo), executor.name, job_plan.work_unit))
    started = time.perf_counter()
    admit = guard.admit if guard else None
    with _session(executor):
        stages = waves.stage_shards(job_plan.layout)
        for k, (name, shards) in enumerate(stages):
            last = k == len(stages) - 1
            if last and job.target is not None:
                _run_waves(job, store, executor, collector, guard, shards)
                break
            todo = [i for i in shards if i not in committed]
            if todo and len(stages) > 1:
                collector(StageStarted(name, k, len(stages), len(shards), len(todo)))
            executor.run(job, todo, collector, admit=admit)
            committed = store.committed()
            if any(i not in committed for i in shards) or (guard and guard.stopped):
                if not last:
                    missing = sum(1 for i in shards if i not in committed)
                    collector(
                        Message(
                            f"stage {name!r}: {missing} of {len(shards)} shards did not commit; "
                            f"the later stages were not started (run again to resume)"
                        )
                    )
                break
    wall = time.perf_counter() - started
    if guard is not None and guard.stopped is not None:
        collector(Message(guard.message()))
    outcome = finish(
        job,
        job_plan,
        store,
        executor=executor.name,
        catalogue=catalogue,
        wall_seconds=wall,
        this_run=[e for e in collector.committed if not e.skipped],
        failed={i: f.reason for i, f in collector.failed.items()},
    )
    outcome.budget_stop = guard.message() if guard and guard.stopped else ""
    return outcome


@contextlib.contextmanager
def _session(executor: Executor) -> Iterator[None]:
    """Keep the executor's resources (a Dask cluster) for every stage and wave of one run,
    when it offers ``session()``."""
    opener = getattr(executor, "session", None)
    if opener is None:
        yield
        return
    with opener():
        yield


def _run_waves(
    job: Job,
    store: Store,
    executor: Executor,
    collector: _Collector,
    guard: Budget | None,
    shards: range,
) -> None:
    """Run the last stage's shards in waves until the target is met (``waves.decide``), the
    stage's shards run out, a shard fails or the budget would be exceeded by the next wave."""
    while True:
        decision, _ = waves.decide(job, store)
        if decision.done:
            collector(Message(_target_line(job, decision)))
            return
        end = shards.start + decision.prefix
        todo = [i for i in range(shards.start, end) if i not in store.committed()]
        if guard is not None:
            guard.horizon = end
            projected = guard.projection()
            if projected is not None and projected.usd > guard.limit:
                guard.stopped = projected
                return
        collector(
            Message(
                f"wave {decision.waves + 1}: shards {shards.start}..{end - 1} "
                f"({len(todo)} to run; standard error so far "
                f"{'n/a' if decision.stderr is None else f'{decision.stderr:.6g}'}, target "
                f"{job.target.stderr:g})"  # type: ignore[union-attr]
            )
        )
        executor.run(job, todo, collector, admit=guard.admit if guard else None)
        if any(i not in store.committed() for i in range(shards.start, end)):
            return  # a failure or a budget stop: the outcome reports it; a rerun resumes


def _target_line(job: Job, decision: waves.Decision) -> str:
    target = job.target
    assert target is not None
    if decision.met:
        return (
            f"target reached: standard error {decision.stderr:.6g} <= {target.stderr:g} after "
            f"{decision.waves} wave(s), {decision.prefix} shard(s)"
        )
    return (
        f"target not reached: standard error {decision.stderr:.6g} > {target.stderr:g} with "
        f"every shard ({decision.prefix}) run; raise job.shards or use fewer, larger shards"
    )


def finish(
    job: Job,
    job_plan: Plan,
    store: Store,
    *,
    executor: str,
    catalogue: cost.Catalogue,
    wall_seconds: float | None = None,
    this_run: Sequence[ShardCommitted] | None = None,
    failed: Mapping[int, str] | None = None,
) -> RunOutcome:
    """Finish a run: reduce when every shard has committed (``result.json``), write
    ``report.json`` and return the outcome. ``run_job`` and the Batch reduce job (``tessera
    worker --reduce``) both finish here.

    ``this_run`` are the shards this run committed (default: every commit record, as for a
    Batch submission, whose children are the run); ``wall_seconds`` is the run's wall time
    (default: from the first shard's start to the last shard's end, from the commit records);
    ``failed`` are reasons of shards that failed in this run, besides the store's failure
    records."""
    done = store.committed()
    failures = {i: reason for i, reason in sorted((failed or {}).items()) if i not in done}
    for i, rec in store.failures().items():
        failures.setdefault(i, str(rec.get("reason", "failed")))
    result = None
    decision = None
    if job.target is not None:
        decision, answer = waves.decide(job, store, done)
        if decision.done and answer is not None:
            first = waves.stage_shards(job_plan.layout)[-1][1].start
            target = decision.to_dict(job.target, first)
            result = write_result(job, store, {**answer, "target": target})
    elif len(done) == job_plan.n_shards:
        result = reduce_store(job, store)
    records = store.commit_records()
    if this_run is None:
        this_run = [ShardCommitted.from_record(i, r) for i, r in sorted(records.items())]
    run_report = report.build(
        job=job,
        plan=job_plan,
        records=records,
        this_run=list(this_run),
        executor=executor,
        wall_seconds=span(records.values()) if wall_seconds is None else wall_seconds,
        driver_host=socket.gethostname(),
        failures=failures,
        catalogue=catalogue,
    )
    if decision is not None and job.target is not None:
        first = waves.stage_shards(job_plan.layout)[-1][1].start
        run_report["target"] = decision.to_dict(job.target, first)
    if len(job_plan.layout.stage_ranges()) > 1:
        run_report["stages"] = report.stages_section(job_plan.layout, records)
    store.write_json("report.json", json.dumps(run_report, indent=2, sort_keys=True) + "\n")
    return RunOutcome(
        n_shards=job_plan.n_shards,
        committed=len(done),
        failures=failures,
        result=result,
        report=run_report,
        item_errors=item_errors_of(records),
        store=job.store,
        target_done=decision is not None and decision.done,
    )


def span(records: Iterable[Mapping[str, Any]]) -> float:
    """Seconds from the first shard's start to the last shard's end, from commit records."""
    spans = []
    for r in records:
        try:
            start = dt.datetime.fromisoformat(str(r["started"])).timestamp()
        except (KeyError, ValueError):
            continue
        spans.append((start, start + float(r.get("seconds", 0.0))))
    if not spans:
        return 0.0
    return max(e for _, e in spans) - min(s for s, _ in spans)


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
    return write_result(job, store, answer)


def write_result(job: Job, store: Store, answer: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``result.json``: the kernel, params and seed, then the kernel's ``answer``."""
    result = {"kernel": job.kernel_name, "params": job.params_dict(), "seed": job.seed, **answer}
    store.write_json("result.json", result_text(result))
    return result


def result_text(result: dict[str, Any]) -> str:
    """The exact bytes of result.json."""
    return json.dumps(result, indent=2, allow_nan=False) + "\n"
