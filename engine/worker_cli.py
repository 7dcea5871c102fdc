"""``tessera worker JOB_URL``: run one shard, as an AWS Batch container does.

The shard is ``--index`` (or ``AWS_BATCH_JOB_ARRAY_INDEX``, or 0 for a single job) looked up in
``--index-file`` (next to the job URL); without an index file the index is the shard. The attempt
number is ``AWS_BATCH_JOB_ATTEMPT`` when Batch sets it. Exit codes are those of
``tessera.engine.batch.contract``: 0 committed, 1 kernel error, 2 bad input, 75 stopped (retry me).

On SIGTERM (an ECS stop, a spot reclaim) the shard stops before its commit and the process exits
75. A kernel holds the interpreter while it computes, so the stop lands when the running step
returns; ECS's SIGKILL after its stop timeout is just as safe (no commit record, the shard reruns).

One JSON object a line goes to stdout (what CloudWatch collects): the event, job, shard, array
index, attempt, seconds and throughput. Never the environment, never credentials. The lines that
say how a shard's attempt ended (``shard_committed``, ``shard_failed``, ``shard_skipped``,
``shard_interrupted``, ``shard_io_error``) also carry a CloudWatch Embedded Metric Format block
(``tessera.engine.metrics``), so CloudWatch Logs turns them into metrics with no agent.

``--reduce`` writes ``result.json`` and ``report.json`` when every shard has committed: the
reduce job of a Batch submission, and the way to finish one by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import signal
import socket
import sys
import time
from collections.abc import Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

from tessera.engine import metrics
from tessera.engine.batch import contract as c

if TYPE_CHECKING:
    from tessera.engine.spec import Job

log = logging.getLogger(__name__)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def add_parser(sub: Any) -> None:
    """Register ``tessera worker`` on the CLI's subparsers."""
    worker = sub.add_parser("worker", help="run one shard of a stored job (the Batch container)")
    worker.add_argument("job_url", help="URL of the job spec (a submission's job.json, or a file)")
    worker.add_argument(
        "--index",
        type=int,
        help="array index (default: AWS_BATCH_JOB_ARRAY_INDEX, or 0 for a single job)",
    )
    worker.add_argument(
        "--index-file", help="index file next to the job URL mapping array index -> shard"
    )
    worker.add_argument(
        "--reduce", action="store_true", help="write result.json once every shard has committed"
    )
    worker.set_defaults(func=cmd_worker)


def emit(event: str, **fields: Any) -> None:
    """Print one JSON log line to stdout, flushed (the container may be killed next) and in one
    write, so lines of children sharing a pipe (``tessera batch local``) never interleave."""
    _write(_line(event, dt.datetime.now(dt.UTC), fields))


def emit_outcome(event: str, job: Job, values: Mapping[str, float], /, **fields: Any) -> None:
    """``emit``, for a line that says how a shard's attempt ended: with ``values`` (from
    ``metrics.committed``, ``failed`` or ``unfinished``) as an EMF block whose timestamp is the
    line's ``ts``, dimensioned by ``job``'s kernel and name."""
    now = dt.datetime.now(dt.UTC)
    epoch_ms = (now - _EPOCH) // dt.timedelta(milliseconds=1)  # truncated, as ``ts`` is
    line = _line(event, now, fields)
    _write(
        metrics.emf(
            line, kernel=job.kernel_name, job=job.name, metrics=values, timestamp_ms=epoch_ms
        )
    )


def _line(event: str, now: dt.datetime, fields: Mapping[str, Any]) -> dict[str, Any]:
    return {"ts": now.isoformat(timespec="milliseconds"), "event": event, **fields}


def _write(line: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
    sys.stdout.flush()


def install_sigterm_handler() -> None:
    """On SIGTERM, ask the running shard to stop before its commit."""
    from tessera.engine.worker import stop_requested

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_sigterm)


def cmd_worker(args: argparse.Namespace) -> int:
    """The ``tessera worker`` command; returns the exit code (see the module docstring)."""
    from tessera.engine.batch.index import open_job, read_index
    from tessera.engine.config import batch_env
    from tessera.engine.errors import ShardInterrupted, SpecError, TesseraError, is_retryable
    from tessera.engine.worker import open_store, run_shard, stop_requested

    install_sigterm_handler()
    try:
        env = batch_env()
        try:
            job, store = open_job(args.job_url)  # planned at submission: its plan is read back
            open_store(job, store)
        except (TesseraError, ValueError):
            raise  # a bad job file, or a store of another job or format: not transient
        except Exception as exc:  # the store unreachable (S3 down): transient, retried
            emit("store_unreachable", error=f"{type(exc).__name__}: {exc}")
            return c.EXIT_RETRYABLE
        if args.reduce:
            return reduce_job(job)
        array_index = args.index if args.index is not None else (env.array_index or 0)
        if args.index_file:
            index = read_index(args.job_url, args.index_file)
            if index.spec_hash != job.spec_hash:
                raise SpecError(
                    "--index-file",
                    f"{args.index_file} belongs to spec {index.spec_hash[:12]}, the job at "
                    f"{args.job_url} is spec {job.spec_hash[:12]}",
                )
            shard = index.shard_for(array_index)
        else:
            shard = array_index
    except (SpecError, IndexError, ValueError) as exc:
        emit("worker_error", error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return c.EXIT_USAGE

    where = {
        "job": job.name,
        "spec": job.spec_hash[:12],
        "shard": shard,
        "n_shards": job.n_shards,
        "array_index": array_index,
        "attempt": env.attempt,
        "host": socket.gethostname(),
    }
    if stop_requested.is_set():
        emit_outcome(
            "shard_interrupted",
            job,
            metrics.unfinished(),
            **where,
            reason="SIGTERM before the shard started",
        )
        return c.EXIT_RETRYABLE
    emit("shard_started", **where)
    started = time.perf_counter()
    try:
        result = run_shard(job, shard, attempt=env.attempt)
    except ShardInterrupted as exc:
        emit_outcome(
            "shard_interrupted",
            job,
            metrics.unfinished(),
            **where,
            reason=str(exc),
            seconds=_since(started),
        )
        return c.EXIT_RETRYABLE
    except IndexError as exc:  # the shard is out of range: a wrong --index, never retried
        emit("worker_error", **where, error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return c.EXIT_USAGE
    except TesseraError as exc:
        if not is_retryable(exc):
            raise  # a store of another job or format: not transient, never retried (exit 1)
        reason = f"{type(exc).__name__}: {exc}"  # lent I/O
        emit_outcome("shard_io_error", job, metrics.unfinished(), **where, reason=reason)
        return c.EXIT_RETRYABLE
    except Exception as exc:  # store I/O (OSError, botocore's connection errors): transient,
        # the retry strategy reruns the shard (kernel errors come back as a failed result)
        reason = f"{type(exc).__name__}: {exc}"
        emit_outcome("shard_io_error", job, metrics.unfinished(), **where, reason=reason)
        return c.EXIT_RETRYABLE
    if result.status == "failed":
        emit_outcome(
            "shard_failed",
            job,
            metrics.failed(),
            **where,
            reason=result.reason,
            seconds=_since(started),
        )
        return c.EXIT_SHARD_FAILED
    record = result.record
    seconds = float(record.get("seconds", 0.0))
    work = int(record.get("work", 0))
    where["attempt"] = record.get("attempt", env.attempt)
    committed = result.status == "committed"
    emit_outcome(
        "shard_committed" if committed else "shard_skipped",
        job,
        # a skipped shard was counted by the attempt that committed it
        metrics.committed(record) if committed else metrics.unfinished(),
        **where,
        seconds=round(seconds, 3),
        work=work,
        work_unit=open_store(job)[1].work_unit,
        throughput=round(work / seconds, 1) if seconds > 0 else None,
    )
    return c.EXIT_OK


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def reduce_job(job: Any) -> int:
    """Write ``result.json`` and ``report.json`` if every shard of ``job`` has committed, or a
    job with ``target_stderr`` is done (``tessera.engine.waves``), through
    ``tessera.engine.run.finish`` as ``tessera run`` does; otherwise list what is missing and
    return 1."""
    from tessera.engine import cost
    from tessera.engine.config import settings
    from tessera.engine.run import finish
    from tessera.engine.worker import open_store

    store, job_plan = open_store(job)
    done = store.committed()
    target_done = False
    if job.target is not None:
        from tessera.engine import waves

        target_done = waves.decide(job, store, done)[0].done
    if len(done) < job_plan.n_shards and not target_done:
        failures = store.failures()
        missing = job_plan.n_shards - len(done)
        emit(
            "reduce_incomplete",
            job=job.name,
            committed=len(done),
            n_shards=job_plan.n_shards,
            failed=sorted(failures),
        )
        print(
            f"error: {missing} of {job_plan.n_shards} shards are not committed "
            f"({len(failures)} failed); resubmit to run them",
            file=sys.stderr,
        )
        return c.EXIT_SHARD_FAILED
    started = time.perf_counter()
    finish(
        job,
        job_plan,
        store,
        executor="batch",
        catalogue=cost.load_catalogue(settings().prices),
    )
    emit("reduced", job=job.name, n_shards=job_plan.n_shards, seconds=_since(started))
    return c.EXIT_OK
