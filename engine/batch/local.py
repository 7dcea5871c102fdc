"""``tessera batch local``: run a Batch submission on this machine exactly as the containers would.

It prepares a real submission (``job.json`` and index files in the store), renders the real job
definition and SubmitJob requests, and for every child runs the container command — the job
definition's ``command`` with Batch's ``Ref::`` parameters substituted, after the image's
``tessera`` entrypoint — as a subprocess, ``parallel`` at a time, with the variables Batch sets
(``AWS_BATCH_JOB_ARRAY_INDEX`` for array children, ``AWS_BATCH_JOB_ATTEMPT``, ``AWS_BATCH_JOB_ID``)
and the definition's environment. A failed attempt is retried exactly when the retry strategy
says so (``retry.should_retry``); an attempt over the timeout gets SIGTERM, then SIGKILL after
``STOP_GRACE_S`` as ECS does. When every child succeeded, the reduce job's command runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tessera.engine.batch import contract as c
from tessera.engine.batch import retry, submit
from tessera.engine.batch.render import RenderOptions, render
from tessera.engine.spec import Job

STOP_GRACE_S = 30.0  # ECS's default stop timeout between SIGTERM and SIGKILL
TIMEOUT_REASON = "Job attempt duration exceeded timeout"


@dataclass(frozen=True)
class Attempt:
    """One finished attempt of one child."""

    job: str  # local job id: local-<k>[:<index>] or local-reduce
    attempt: int
    exit_code: int
    status_reason: str
    action: str  # "succeeded", "retry", "exit"


@dataclass
class LocalOutcome:
    """What ran: every attempt, the children that failed for good, and whether the reduce job
    ran and succeeded."""

    submission: str
    attempts: list[Attempt] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    reduced: bool = False

    @property
    def ok(self) -> bool:
        return self.reduced and not self.failed


def entrypoint() -> list[str]:
    """The image's ``tessera`` entrypoint on this machine: the console script beside this
    interpreter, else ``python -m tessera.engine.cli``."""
    script = os.path.join(os.path.dirname(sys.executable), c.ENTRYPOINT)
    if os.path.isfile(script) and os.access(script, os.X_OK):
        return [script]
    found = shutil.which(c.ENTRYPOINT)
    return [found] if found else [sys.executable, "-m", "tessera.engine.cli"]


def substitute(command: Sequence[str], parameters: Mapping[str, str]) -> list[str]:
    """Batch's parameter substitution: an argument ``Ref::name`` becomes ``parameters[name]``;
    an unknown reference stays as it is (as Batch leaves it)."""
    out = []
    for arg in command:
        if arg.startswith("Ref::") and arg[5:] in parameters:
            out.append(parameters[arg[5:]])
        else:
            out.append(arg)
    return out


def container_command(definition: Mapping[str, Any], request: Mapping[str, Any]) -> list[str]:
    """The arguments after the entrypoint, as Batch would run them for ``request``."""
    override = (request.get("containerOverrides") or {}).get("command")
    command = override or definition["containerProperties"]["command"]
    params = {**definition.get("parameters", {}), **request.get("parameters", {})}
    return substitute(command, params)


def container_env(definition: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, str]:
    """The definition's environment with the request's overrides on top."""
    env = {e["name"]: e["value"] for e in definition["containerProperties"].get("environment", [])}
    for e in (request.get("containerOverrides") or {}).get("environment", []):
        env[e["name"]] = e["value"]
    return env


class _Runner:
    def __init__(
        self, definition: Mapping[str, Any], base_env: Mapping[str, str], log: Callable[[str], None]
    ):
        self.definition = definition
        self.base_env = dict(base_env)
        self.log = log
        self.lock = threading.Lock()
        self.attempts: list[Attempt] = []

    def run_child(self, request: Mapping[str, Any], job_id: str, array_index: int | None) -> bool:
        """Run one child until it succeeds or the retry strategy gives up; True on success."""
        argv = entrypoint() + container_command(self.definition, request)
        strategy = request.get("retryStrategy") or self.definition.get("retryStrategy")
        limit = (request.get("timeout") or self.definition.get("timeout") or {}).get(
            "attemptDurationSeconds"
        )
        env = {**self.base_env, **container_env(self.definition, request), c.ENV_JOB_ID: job_id}
        if array_index is not None:
            env[c.ENV_ARRAY_INDEX] = str(array_index)
        attempt = 1
        while True:
            env[c.ENV_ATTEMPT] = str(attempt)
            code, status_reason = _run(argv, env, limit)
            if code == 0:
                self._record(Attempt(job_id, attempt, code, status_reason, "succeeded"))
                return True
            again = retry.should_retry(
                strategy, attempt, exit_code=code, status_reason=status_reason
            )
            self._record(
                Attempt(job_id, attempt, code, status_reason, "retry" if again else "exit")
            )
            if not again:
                return False
            attempt += 1

    def _record(self, a: Attempt) -> None:
        with self.lock:
            self.attempts.append(a)
        if a.action != "succeeded":
            self.log(
                f"{a.job} attempt {a.attempt} exited {a.exit_code} ({a.status_reason}): "
                f"{'RETRY' if a.action == 'retry' else 'EXIT'}"
            )


def _run(argv: Sequence[str], env: Mapping[str, str], limit: float | None) -> tuple[int, str]:
    """Run one attempt; returns (exit code as a container reports it, statusReason)."""
    proc = subprocess.Popen(list(argv), env=dict(env))
    try:
        code = proc.wait(timeout=limit)
        reason = retry.CONTAINER_EXITED
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        reason = TIMEOUT_REASON
    # A container killed by signal N reports exit code 128 + N, as Docker does.
    return (128 - code if code < 0 else code), reason


def run_local(
    job: Job,
    *,
    parallel: int = 1,
    platform: str = "EC2",
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> LocalOutcome:
    """Submit ``job``'s pending shards to this machine as Batch would, then reduce."""
    if parallel < 1:
        raise ValueError(f"--parallel {parallel} is out of range; expected >= 1")
    definition = render(job, RenderOptions(image="local", platform=platform))
    runner = _Runner(definition, os.environ, log)
    outcome = LocalOutcome("")
    if job.target is not None:
        return _run_waves(job, definition, runner, outcome, parallel, log)
    prepared = _submission(job, definition, None)
    outcome.submission = prepared.submission
    log(
        f"batch local: submission {prepared.submission}, {len(prepared.pending)} of "
        f"{prepared.n_shards} shards pending, {len(prepared.arrays)} array job(s), "
        f"{parallel} at a time"
    )
    if _run_arrays(prepared, runner, outcome, parallel, log):
        outcome.reduced = runner.run_child(
            submit.reduce_request(prepared, []), "local-reduce", None
        )
    outcome.attempts = runner.attempts
    return outcome


def _submission(job: Job, definition: Mapping[str, Any], shards: Sequence[int] | None) -> Any:
    """A real submission (``job.json`` and index files written) of ``shards`` (default: every
    pending shard)."""
    prepared = submit.prepare(
        job, queue="local", definition=definition["jobDefinitionName"], shards=shards
    )
    submit.finalize(prepared, depends_on=[])
    submit.write_files(prepared)
    return prepared


def _run_arrays(
    prepared: Any,
    runner: _Runner,
    outcome: LocalOutcome,
    parallel: int,
    log: Callable[[str], None],
) -> bool:
    """Run the submission's array jobs stage by stage, as their ``dependsOn`` orders them on
    Batch: a stage's children start once every child of the stage before succeeded. False
    (and ``outcome.failed`` set) when a child failed for good."""
    by_stage: dict[int, list[tuple[Mapping[str, Any], str, int | None]]] = {}
    for k, (f, request) in enumerate(zip(prepared.files, prepared.arrays)):
        children = by_stage.setdefault(f.stage, [])
        size = (request.get("arrayProperties") or {}).get("size")
        if size is None:
            children.append((request, f"local-{k}", None))
        else:
            children.extend((request, f"local-{k}:{i}", i) for i in range(size))
    for stage in sorted(by_stage):
        children = by_stage[stage]
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            results = list(pool.map(lambda child: runner.run_child(*child), children))
        outcome.failed += [job_id for (_, job_id, _), ok in zip(children, results) if not ok]
        if outcome.failed:
            later = " and the later stages do not start" if stage < max(by_stage) else ""
            log(
                f"batch local: {len(outcome.failed)} children failed; the reduce job fails "
                f"with its dependencies{later} (as on Batch) and result.json is not written"
            )
            return False
    return True


def _run_waves(
    job: Job,
    definition: Mapping[str, Any],
    runner: _Runner,
    outcome: LocalOutcome,
    parallel: int,
    log: Callable[[str], None],
) -> LocalOutcome:
    """A job with ``target_stderr``: one submission per wave (``tessera.engine.waves``), the
    next only when the last wave's prefix misses the target; then the reduce job."""
    from tessera.engine import waves
    from tessera.engine.plan import plan
    from tessera.engine.store import Store

    store = Store.open_for_job(job, plan(job), create=True)
    last = waves.stage_shards(plan(job).layout)[-1][1]
    while True:
        decision, _ = waves.decide(job, store)
        if decision.done:
            break
        end = last.start + decision.prefix
        committed = store.committed()
        earlier = [i for i in range(last.start) if i not in committed]
        todo = earlier + [i for i in range(last.start, end) if i not in committed]
        prepared = _submission(job, definition, todo)
        outcome.submission = prepared.submission
        log(
            f"batch local: wave {decision.waves + 1}, submission {prepared.submission}: "
            f"shards up to {end - 1}, {len(todo)} to run, {parallel} at a time"
        )
        if not _run_arrays(prepared, runner, outcome, parallel, log):
            outcome.attempts = runner.attempts
            return outcome
    reduce = submit.reduce_request(_submission(job, definition, []), [])
    outcome.reduced = runner.run_child(reduce, "local-reduce", None)
    outcome.attempts = runner.attempts
    return outcome
