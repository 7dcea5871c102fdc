"""The executor conformance suite: one set of tests that every executor passes, as every store
passes ``tests.test_store.StoreTests``. A new backend subclasses ``ExecutorTests`` (see
``tests/test_executor_conformance.py``) and provides the ``execute`` fixture.

The contract (DESIGN.md, "Executors" and "Failure model"):

- result.json is byte-identical whatever ran the shards, and equals a one-shard local run's;
- a kernel error is recorded in the store (``_failures/<i>.json``, ``tessera status``), its
  shard is attempted exactly once, and the other shards commit;
- a failure of the I/O the engine lends the kernel is retried (also when it happens inside
  ``compute``), up to ``retry.attempts``, and is never recorded as a kernel error;
- events: ``RunStarted`` first; per attempt a ``ShardStarted`` (where the executor sees
  attempts) before its ``ShardCommitted``/``ShardFailed``; a ``ShardFailed`` followed by
  another attempt says ``retryable=True``; every pending shard ends with exactly one final
  event (the last one of that shard: ``ShardCommitted``, or a ``ShardFailed``) and nothing
  arrives after the run returned.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tessera.engine.events import (
    Event,
    RunStarted,
    ShardCommitted,
    ShardFailed,
    ShardStarted,
    StageStarted,
)
from tests.jobs import job_dict

# 32,768 antithetic paths are 4 blocks of 4,096 samples: 4 shards of one block each.
GBM_PARAMS: dict[str, Any] = {"paths": 32_768, "steps": 4}
SHARDS = 4
PROBE = "tests.probe_kernel:KERNEL"


def gbm_job(store: Path | str, shards: int = SHARDS) -> dict[str, Any]:
    """The small montecarlo.gbm job of the suite (retry.attempts = 2)."""
    return job_dict(store, name="conformance-gbm", shards=shards, **GBM_PARAMS)


def probe_job(store: Path | str, shards: int = SHARDS, **params: Any) -> dict[str, Any]:
    """A job of ``tests.probe_kernel`` (each shard writes a file through lent I/O)."""
    return {
        "job": {"name": "conformance-probe", "kernel": PROBE, "store": str(store)}
        | {"shards": shards, "seed": 11},
        "params": {"rows": 16, **params},
        "retry": {"attempts": 2},
    }


STAGED = "tests.staged_kernel:KERNEL"
# 16 shards of one block each; the call's standard error after the wave prefixes 1, 2, 4, 8
# and 16 is 0.112, 0.080, 0.058, 0.041 and 0.029: a target of 0.045 stops after 8 shards.
TARGET_SHARDS, TARGET_STDERR, TARGET_PREFIX = 16, 0.045, 8


def staged_job(store: Path | str, shards: int = 7, **params: Any) -> dict[str, Any]:
    """A job of ``tests.staged_kernel`` (stage ``fit``: 2 shards, stage ``apply``: ``shards``)."""
    return {
        "job": {"name": "conformance-staged", "kernel": STAGED, "store": str(store)}
        | {"shards": shards, "seed": 5},
        "params": {"rows": 64, **params},
        "retry": {"attempts": 2},
    }


def target_job(store: Path | str) -> dict[str, Any]:
    """A montecarlo.gbm job with ``target_stderr`` that stops at ``TARGET_PREFIX`` shards."""
    data = job_dict(store, name="conformance-target", shards=TARGET_SHARDS, paths=131_072, steps=4)
    data["job"]["target_stderr"] = TARGET_STDERR
    return data


@dataclass
class Run:
    """What one run through an executor left: whether it succeeded (``RunOutcome.ok``, or exit
    code 0), its store, the events (``None`` where the executor's events cannot be observed)
    and those that arrived after the run returned, and any output for assertion messages."""

    ok: bool
    store: Path
    events: list[Event] | None
    late: list[Event] = field(default_factory=list)
    output: str = ""

    def status(self) -> Any:
        import tessera

        return tessera.status(self.store)

    def result_bytes(self) -> bytes | None:
        path = self.store / "result.json"
        return path.read_bytes() if path.exists() else None

    def attempt_markers(self, shard: int) -> list[str]:
        folder = self.store / "_attempts" / str(shard)
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


Execute = Callable[[Mapping[str, Any], str], Run]


def run_in_process(
    data: Mapping[str, Any],
    faults: str,
    monkeypatch: pytest.MonkeyPatch,
    **run_args: Any,
) -> Run:
    """``tessera.run(data, **run_args)`` in this process with ``TESSERA_FAULTS=faults``,
    recording every event (and any that arrives after ``run`` returned)."""
    import tessera

    monkeypatch.setenv("TESSERA_FAULTS", faults)
    events: list[Event] = []
    late: list[Event] = []
    returned = False

    def listen(event: Event) -> None:
        (late if returned else events).append(event)

    outcome = tessera.run(dict(data), progress=False, on_event=listen, **run_args)
    returned = True
    return Run(outcome.ok, Path(data["job"]["store"]), events, late, str(outcome.failures))


def check_events(
    run: Run, pending: Sequence[int], *, emits_started: bool
) -> dict[int, list[Event]]:
    """Assert the documented order of ``run.events`` for a run of the shards ``pending``;
    returns each shard's events (started, committed, failed) in order."""
    events = run.events
    assert events is not None
    assert not run.late, f"events after the run returned: {run.late}"
    assert events and isinstance(events[0], RunStarted), events[:1]
    assert events[0].pending == len(pending), events[0]
    assert not [e for e in events[1:] if isinstance(e, RunStarted)]
    by_shard: dict[int, list[Event]] = {i: [] for i in pending}
    for event in events[1:]:
        if isinstance(event, (ShardStarted, ShardCommitted, ShardFailed)):
            assert event.shard in by_shard, f"an event for shard {event.shard}, not pending"
            by_shard[event.shard].append(event)
    for shard, seq in by_shard.items():
        assert seq, f"shard {shard}: no event at all"
        ends = [e for e in seq if not isinstance(e, ShardStarted)]
        assert ends and ends[-1] is seq[-1], f"shard {shard} does not end with its result: {seq}"
        assert sum(isinstance(e, ShardCommitted) for e in seq) <= 1, seq
        for retried in ends[:-1]:  # each end but the last was followed by another attempt
            assert isinstance(retried, ShardFailed) and retried.retryable, (shard, seq)
        if emits_started:  # Started, end, Started, end, ...: one pair per attempt
            assert all(isinstance(e, ShardStarted) for e in seq[0::2]), (shard, seq)
            assert seq[1::2] == ends and len(seq) == 2 * len(ends), (shard, seq)
            attempts = [e.attempt for e in seq[0::2] if isinstance(e, ShardStarted)]
            assert attempts == sorted(set(attempts)), (shard, attempts)
        else:
            assert not [e for e in seq if isinstance(e, ShardStarted)], (shard, seq)
            assert len(ends) == 1, f"shard {shard}: more than one final event: {seq}"
    return by_shard


@pytest.fixture(scope="session")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """result.json of undisturbed one-shard local runs of the suite's jobs."""
    import tessera

    folder = tmp_path_factory.mktemp("conformance-reference")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("TESSERA_FAULTS", raising=False)
        for name, data in (
            ("gbm", gbm_job(folder / "gbm", shards=1)),
            ("staged", staged_job(folder / "staged", shards=1)),
            ("target", target_job(folder / "target")),
            ("probe", probe_job(folder / "probe", shards=1)),
            ("probe-swallow", probe_job(folder / "probe-swallow", shards=1, swallow=True)),
        ):
            outcome = tessera.run(data, executor="local", progress=False)
            assert outcome.ok, outcome.failures
            out[name] = (folder / name / "result.json").read_bytes()
    return out


class ExecutorTests:
    """Subclasses provide the ``execute`` fixture: a function ``(job data, TESSERA_FAULTS) ->
    Run`` that runs the job's pending shards through their executor, with the faults reaching
    the processes that run shards. ``emits_started``: the executor emits ``ShardStarted``;
    ``events_observable``: a listener sees the run's events."""

    emits_started: ClassVar[bool] = True
    events_observable: ClassVar[bool] = True
    # test name -> why this executor breaks that part of the contract today (a strict xfail:
    # once the executor is fixed the test passes and the entry must go)
    known_failures: ClassVar[Mapping[str, str]] = {}

    @pytest.fixture
    def execute(self) -> Iterator[Execute]:
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _known_failure(self, request: pytest.FixtureRequest) -> None:
        reason = self.known_failures.get(request.function.__name__)
        if reason:
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))

    def _events(self, run: Run, pending: Sequence[int] = range(SHARDS)) -> dict[int, list[Event]]:
        if not self.events_observable:
            assert run.events is None
            return {}
        return check_events(run, pending, emits_started=self.emits_started)

    def test_result_is_byte_identical_to_a_one_shard_local_run(
        self, execute: Execute, references: dict[str, bytes], tmp_path: Path
    ) -> None:
        run = execute(gbm_job(tmp_path / "store"), "")
        assert run.ok, run.output
        assert run.result_bytes() == references["gbm"]
        status = run.status()
        assert status.complete and status.committed == SHARDS and not status.failed
        assert all(status.attempts[i] == 1 for i in range(SHARDS)), status.attempts
        by_shard = self._events(run)
        for seq in by_shard.values():
            assert isinstance(seq[-1], ShardCommitted) and not seq[-1].skipped
            assert seq[-1].work > 0 and seq[-1].record["attempt"] == 1

    def test_kernel_error_is_recorded_attempted_once_and_others_commit(
        self, execute: Execute, tmp_path: Path
    ) -> None:
        run = execute(gbm_job(tmp_path / "store"), "1:raise")
        assert not run.ok
        status = run.status()
        assert sorted(status.failed) == [1], status.failed
        assert "InjectedError" in status.failed[1]["reason"]
        assert status.failed[1]["attempt"] == 1
        assert status.committed == SHARDS - 1 and status.result is None
        assert run.attempt_markers(1) == ["1.json"]  # never retried, though attempts = 2
        assert status.attempts[1] == 1
        by_shard = self._events(run)
        if by_shard:
            final = by_shard[1][-1]
            assert isinstance(final, ShardFailed) and not final.retryable
            assert "InjectedError" in final.reason
            assert [e for e in by_shard[1] if isinstance(e, ShardFailed)] == [final]
            assert all(isinstance(by_shard[i][-1], ShardCommitted) for i in (0, 2, 3))

    @pytest.mark.parametrize("swallow", [False, True], ids=["raised", "wrapped-by-kernel"])
    def test_lent_io_error_in_compute_is_retried(
        self, execute: Execute, references: dict[str, bytes], tmp_path: Path, swallow: bool
    ) -> None:
        """The first lent write of shard 1's first attempt fails (``1:io:1``); with
        ``swallow`` the kernel catches it and raises a RuntimeError from it."""
        run = execute(probe_job(tmp_path / "store", swallow=swallow), "1:io:1")
        assert run.ok, run.output
        assert run.result_bytes() == references["probe-swallow" if swallow else "probe"]
        status = run.status()
        assert status.complete and not status.failed
        assert run.attempt_markers(1) == ["1.json", "2.json"]
        assert json.loads((run.store / "_shards" / "1.json").read_text())["attempt"] == 2
        assert all(status.attempts[i] == 1 for i in (0, 2, 3)), status.attempts
        assert not (run.store / "_failures").exists()
        by_shard = self._events(run)
        if by_shard:
            assert all(isinstance(seq[-1], ShardCommitted) for seq in by_shard.values())
            retried = [e for e in by_shard[1] if isinstance(e, ShardFailed)]
            assert all("LentIOError" in e.reason for e in retried), retried

    def test_lent_io_error_that_persists_is_retried_and_not_a_kernel_error(
        self, execute: Execute, tmp_path: Path
    ) -> None:
        """Shard 1's lent I/O fails on every attempt (``1:io``): it is tried ``retry.attempts``
        (2) times, ends failed and pending, and is not recorded as a kernel error."""
        run = execute(probe_job(tmp_path / "store"), "1:io")
        assert not run.ok
        status = run.status()
        assert not status.failed and status.pending == [1], (status.failed, status.pending)
        assert status.committed == SHARDS - 1 and status.result is None
        assert run.attempt_markers(1) == ["1.json", "2.json"]
        by_shard = self._events(run)
        if by_shard:
            final = by_shard[1][-1]
            assert isinstance(final, ShardFailed) and "LentIOError" in final.reason, final

    def test_stages_run_in_order_with_the_bytes_of_a_one_shard_run(
        self, execute: Execute, references: dict[str, bytes], tmp_path: Path
    ) -> None:
        """A two-stage job (2 fit shards, 7 apply shards): every fit shard ends before any
        apply shard starts, each commit record names its stage, and result.json equals a run
        with one apply shard (an apply shard that read an incomplete fit would differ)."""
        run = execute(staged_job(tmp_path / "store", shards=7), "")
        assert run.ok, run.output
        assert run.result_bytes() == references["staged"]
        records = {i: _record(run.store, i) for i in range(9)}
        assert [records[i]["stage"] for i in range(9)] == ["fit"] * 2 + ["apply"] * 7
        fit_end = max(_start(records[i]) + records[i]["seconds"] for i in range(2))
        apply_start = min(_start(records[i]) for i in range(2, 9))
        assert fit_end <= apply_start + 0.002, (fit_end, apply_start)  # ms-rounded "started"
        report = json.loads((run.store / "report.json").read_text())
        assert [(s["name"], s["shards"], s["committed"]) for s in report["stages"]] == [
            ("fit", [0, 2], 2),
            ("apply", [2, 9], 7),
        ]
        if self.events_observable and run.events is not None:
            stages = [e for e in run.events if isinstance(e, StageStarted)]
            assert [(e.name, e.pending) for e in stages] == [("fit", 2), ("apply", 7)]
            at = run.events.index(stages[1])
            before = {e.shard for e in run.events[:at] if isinstance(e, ShardCommitted)}
            assert before == {0, 1}, before

    def test_a_failure_in_stage_two_resumes_without_rerunning_stage_one(
        self, execute: Execute, references: dict[str, bytes], tmp_path: Path
    ) -> None:
        """Apply shard 5 fails (a kernel error, ``5:raise``); the rerun runs it alone: the fit
        shards' commit records are untouched and result.json is byte-identical."""
        data = staged_job(tmp_path / "store", shards=7)
        first = execute(data, "5:raise")
        assert not first.ok and first.result_bytes() is None
        fit = [(first.store / "_shards" / f"{i}.json").read_bytes() for i in range(2)]
        second = execute(data, "")
        assert second.ok, second.output
        assert second.result_bytes() == references["staged"]
        assert [(second.store / "_shards" / f"{i}.json").read_bytes() for i in range(2)] == fit
        assert second.attempt_markers(0) == second.attempt_markers(1) == ["1.json"]
        assert second.attempt_markers(5) == ["1.json", "2.json"]

    def test_target_stderr_stops_at_the_first_qualifying_wave(
        self, execute: Execute, references: dict[str, bytes], tmp_path: Path
    ) -> None:
        """Waves of 1, 2, 4, 8 shards: the standard error after 8 (0.041) is the first at
        most 0.045, so exactly shards 0..7 run and result.json equals the local run's."""
        run = execute(target_job(tmp_path / "store"), "")
        assert run.ok, run.output
        assert run.result_bytes() == references["target"]
        result = json.loads(run.result_bytes() or b"{}")
        target = result["target"]
        assert (target["met"], target["shards"], target["waves"]) == (True, TARGET_PREFIX, 4)
        assert target["reached_stderr"] <= TARGET_STDERR
        assert result["products"]["european_call"]["stderr"] == target["reached_stderr"]
        assert result["paths"] == 131_072 * TARGET_PREFIX // TARGET_SHARDS
        committed = sorted(int(p.stem) for p in (run.store / "_shards").glob("*.json"))
        assert committed == list(range(TARGET_PREFIX))
        status = run.status()
        assert status.complete and status.pending == list(range(TARGET_PREFIX, TARGET_SHARDS))


def _record(store: Path, shard: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((store / "_shards" / f"{shard}.json").read_text())
    return data


def _start(record: Mapping[str, Any]) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(str(record["started"])).timestamp()
