"""End to end: sharded runs, executors, resume after SIGKILL, failing shards, real clusters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tessera.engine import executors, spec
from tessera.engine.events import Event, Message, ShardCommitted, ShardFailed
from tessera.engine.run import run_job
from tessera.engine.store import Store
from tests.jobs import job_dict, write_job

TESSERA = [sys.executable, "-m", "tessera.engine.cli"]
ROOT = Path(__file__).resolve().parent.parent


def _run(store: Path | str, executor: str = "local", shards: int = 4, **kw: Any) -> bytes:
    job = spec.from_dict(job_dict(store, shards=shards, **kw))
    events: list[Event] = []
    outcome = run_job(job, executors.create(executor, workers=2), events.append)
    assert outcome.ok, outcome.failures
    return Store.open_existing(job.store).fs.cat_file(f"{job.store}/result.json")


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TESSERA, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """result.json of an undisturbed one-shard local run."""
    return _run(tmp_path_factory.mktemp("ref") / "store", shards=1)


def test_result_is_byte_identical_for_1_3_16_shards(
    tmp_path: Path, reference: bytes, no_faults: None
) -> None:
    result = json.loads(reference)
    assert result["kernel"] == "montecarlo.gbm" and result["seed"] == 7
    assert set(result["products"]) == set(job_dict("x")["params"]["products"])
    for shards in (3, 16):
        assert _run(tmp_path / f"s{shards}", shards=shards) == reference


def test_result_is_byte_identical_on_dask(
    tmp_path: Path, reference: bytes, no_faults: None
) -> None:
    assert _run(tmp_path / "dask", executor="dask", shards=5) == reference


def test_dask_reports_dashboard_and_events(tmp_path: Path, no_faults: None) -> None:
    job = spec.from_dict(job_dict(tmp_path / "s", shards=3))
    events: list[Event] = []
    run_job(job, executors.create("dask", workers=2), events.append)
    messages = [e.text for e in events if isinstance(e, Message)]
    assert any(m.startswith("Dask dashboard: http://127.0.0.1:") for m in messages)
    committed = [e for e in events if isinstance(e, ShardCommitted)]
    assert sorted(e.shard for e in committed) == [0, 1, 2]
    assert all(e.work > 0 and e.seconds > 0 for e in committed)
    assert len({e.record["pid"] for e in committed}) >= 1


def test_rerun_of_a_complete_job_computes_nothing(tmp_path: Path, no_faults: None) -> None:
    job = spec.from_dict(job_dict(tmp_path / "s"))
    run_job(job, executors.create("local"), lambda e: None)
    events: list[Event] = []
    outcome = run_job(job, executors.create("local"), events.append)
    assert outcome.ok and outcome.report["this_run"]["shards"] == 0
    assert not [e for e in events if isinstance(e, ShardCommitted)]


def test_kernel_errors_fail_one_shard_and_are_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESSERA_FAULTS", "2:raise")
    job = spec.from_dict(job_dict(tmp_path / "s", shards=4))
    events: list[Event] = []
    outcome = run_job(job, executors.create("local"), events.append)
    assert not outcome.ok and outcome.result is None
    assert list(outcome.failures) == [2] and "InjectedError" in outcome.failures[2]
    store = Store.open_existing(job.store)
    assert store.committed() == {0, 1, 3}
    assert store.attempts()[2] == 1  # a kernel error is not retried blindly
    assert store.read_json("result.json") is None


def test_interrupted_shards_are_retried_on_dask(
    tmp_path: Path, reference: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESSERA_FAULTS", "1:interrupt:1;3:raise:1")
    job = spec.from_dict(job_dict(tmp_path / "s", shards=4))
    outcome = run_job(job, executors.create("dask", workers=2), lambda e: None)
    store = Store.open_existing(job.store)
    assert store.commit_records()[1]["attempt"] == 2  # interrupted, retried by Dask, committed
    assert list(outcome.failures) == [3] and store.attempts()[3] == 1  # kernel error: no retry
    monkeypatch.delenv("TESSERA_FAULTS")
    outcome = run_job(job, executors.create("local"), lambda e: None)
    assert outcome.ok and outcome.report["this_run"]["shards"] == 1
    assert store.fs.cat_file(f"{job.store}/result.json") == reference


def test_cli_failed_shard_in_exit_code_and_status(tmp_path: Path, reference: bytes) -> None:
    path = write_job(tmp_path / "job.toml", job_dict(tmp_path / "store", shards=4))
    proc = _cli("run", str(path), "--executor", "local", env={"TESSERA_FAULTS": "2:raise"})
    assert proc.returncode == 1
    assert "FAILED shard 2: InjectedError" in proc.stdout
    assert "1 failed" in proc.stderr
    told = proc.stdout + proc.stderr
    assert told.count("InjectedError") == 1, told  # each failure once, not in two formats
    status = _cli("status", str(tmp_path / "store"))
    assert status.returncode == 1
    assert "3/4 committed, 1 failed, 0 pending" in status.stdout
    assert "FAILED shard 2 (attempt 1" in status.stdout and "InjectedError" in status.stdout
    assert status.stdout.count("InjectedError") == 1
    frames = _cli("status", str(tmp_path / "store"), "-v")
    assert "in run_shard" in frames.stdout  # the failure record keeps the last frames
    assert 'raise faults.InjectedError(f"injected fault on attempt {attempt}")' in frames.stdout
    proc = _cli("run", str(path), "--executor", "local", env={"TESSERA_FAULTS": ""})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "store" / "result.json").read_bytes() == reference
    assert _cli("status", str(tmp_path / "store")).returncode == 0


def test_cli_refuses_a_store_made_by_another_job(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = write_job(tmp_path / "a.toml", job_dict(store, shards=2))
    assert _cli("run", str(first), "--executor", "local").returncode == 0
    second = write_job(tmp_path / "b.toml", job_dict(store, shards=2, strike=90.0))
    proc = _cli("run", str(second), "--executor", "local")
    assert proc.returncode == 1
    assert "made by a different job" in proc.stderr and "params.strike" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_run_report_table(tmp_path: Path) -> None:
    path = write_job(tmp_path / "job.toml", job_dict(tmp_path / "store", shards=2))
    proc = _cli("run", str(path), "--executor", "local")
    assert proc.returncode == 0, proc.stderr
    for needle in (
        "european_call",
        "95% CI",
        "path-steps/s",
        "CPU-seconds",
        "peak memory/shard",
        "2 of 2 shards committed",
    ):
        assert needle in proc.stdout
    # Not a terminal: plain log lines, one per shard.
    assert "shard 1 committed in" in proc.stderr
    report = json.loads((tmp_path / "store" / "report.json").read_text())
    assert report["n_shards"] == 2 and report["committed"] == 2
    assert report["this_run"]["work"] == 131_072 * 16


def test_sigkill_halfway_then_rerun_computes_only_pending(tmp_path: Path, reference: bytes) -> None:
    """A real `tessera run` killed with SIGKILL halfway; the rerun computes only what is left."""
    n = 24
    data = job_dict(tmp_path / "store", shards=n, paths=131_072 * 12, steps=64)
    path = write_job(tmp_path / "job.toml", data)
    shards_dir = tmp_path / "store" / "_shards"
    proc = subprocess.Popen(
        [*TESSERA, "run", str(path), "--executor", "local"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TESSERA_FAULTS": ""},
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if shards_dir.exists() and len(list(shards_dir.glob("*.json"))) >= n // 2:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    store = Store.open_existing(str(tmp_path / "store"))
    before = store.commit_records()
    assert 0 < len(before) < n, f"kill landed at {len(before)} of {n} shards"
    started_before = store.attempts()

    again = _cli("run", str(path), "--executor", "local", env={"TESSERA_FAULTS": ""})
    assert again.returncode == 0, again.stderr
    after = store.commit_records()
    assert len(after) == n
    for i, record in before.items():
        assert after[i] == record  # committed shards were not recomputed
    report = json.loads((tmp_path / "store" / "report.json").read_text())
    assert report["this_run"]["shards"] == n - len(before)
    attempts = store.attempts()
    # Each shard ran once, except those in flight at the kill (at most one: local runs serially).
    in_flight = set(started_before) - set(before)
    assert len(in_flight) <= 1
    assert all(attempts[i] == (2 if i in in_flight else 1) for i in range(n))
    reference_job = job_dict(tmp_path / "ref", shards=1, paths=131_072 * 12, steps=64)
    assert (tmp_path / "store" / "result.json").read_bytes() == _run_bytes(reference_job)


def _run_bytes(data: dict[str, Any]) -> bytes:
    job = spec.from_dict(data)
    assert run_job(job, executors.create("local"), lambda e: None).ok
    return Path(job.store, "result.json").read_bytes()


@pytest.mark.slow
def test_external_dask_cluster_from_its_own_cli(tmp_path: Path, reference: bytes) -> None:
    """`dask scheduler` + two `dask worker` processes on loopback, then `tessera run --scheduler`:
    the path to any real cluster (dask-jobqueue, Kubernetes, Coiled end in an address)."""
    bin_dir = Path(sys.executable).parent
    sched_file = tmp_path / "scheduler.json"
    logs = [open(tmp_path / f"{name}.log", "w") for name in ("scheduler", "w1", "w2")]
    procs = [
        subprocess.Popen(
            [
                str(bin_dir / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(sched_file),
            ],
            stdout=logs[0],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for log_file in logs[1:]:
            procs.append(
                subprocess.Popen(
                    [
                        str(bin_dir / "dask"),
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--nworkers",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                    ],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env={**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
                )
            )
        path = write_job(tmp_path / "job.toml", job_dict(tmp_path / "store", shards=6))
        proc = _cli("run", str(path), "--scheduler", address)
        assert proc.returncode == 0, proc.stderr
        assert "Dask dashboard: http://127.0.0.1:" in proc.stderr
        assert (tmp_path / "store" / "result.json").read_bytes() == reference
        records = Store.open_existing(str(tmp_path / "store")).commit_records()
        assert len({r["pid"] for r in records.values()}) == 2  # both workers took shards
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        for log_file in logs:
            log_file.close()


@pytest.mark.s3
def test_run_on_s3_gives_the_same_bytes(tmp_path: Path, seaweed_s3: Any, reference: bytes) -> None:
    seaweed_s3.create_bucket("tessera-runs")
    url = "s3://tessera-runs/e2e"
    path = write_job(tmp_path / "job.toml", job_dict(url, shards=3))
    env = {**seaweed_s3.env(), "TESSERA_FAULTS": "1:raise"}
    proc = _cli("run", str(path), "--executor", "dask", "--workers", "2", env=env)
    assert proc.returncode == 1
    status = _cli("status", url, env=env)
    assert "2/3 committed, 1 failed" in status.stdout
    env["TESSERA_FAULTS"] = ""
    proc = _cli("run", str(path), "--executor", "local", env=env)
    assert proc.returncode == 0, proc.stderr
    import s3fs

    fs = s3fs.S3FileSystem(
        key=seaweed_s3.access_key,
        secret=seaweed_s3.secret_key,
        client_kwargs={"endpoint_url": seaweed_s3.endpoint_url},
    )
    assert fs.cat_file("tessera-runs/e2e/result.json") == reference
    assert sorted(fs.ls("tessera-runs/e2e/_shards", detail=False)) == [
        f"tessera-runs/e2e/_shards/{i}.json" for i in range(3)
    ]


def test_failed_event_names_the_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_FAULTS", "0:raise")
    job = spec.from_dict(job_dict(tmp_path / "s", shards=2))
    events: list[Event] = []
    run_job(job, executors.create("local"), events.append)
    failed = [e for e in events if isinstance(e, ShardFailed)]
    assert [(e.shard, e.retryable) for e in failed] == [(0, False)]
    assert "injected fault on attempt 1" in failed[0].reason
