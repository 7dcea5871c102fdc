"""What faults cost: a Dask worker killed mid-run, and resuming a store of 10,000 committed shards.

    .venv/bin/python benchmarks/failures.py [--repeats 3] [--shards 16] [--shard-seconds 1.0]
        [--committed 10000] [--no-s3]

1. Kill slowdown. The same ``bench.spin`` job (``--shards`` shards, each ``--shard-seconds`` of
   CPU) runs through ``run_job`` on a LocalCluster of two single-threaded worker processes,
   undisturbed and with one worker SIGKILLed once: when half the shards have committed, a thread
   picks a shard that is running and kills its worker halfway through it. Baseline and faulty
   runs alternate; both include the cluster's start. Reported: wall seconds (median), the span
   from the first shard's start to the last commit, the slowdown (faulty / undisturbed) and the
   extra seconds, beside the work lost (half a shard).
2. Resume cost. A ``bench.spin`` job of ``--committed`` + 10 shards whose first ``--committed``
   shards have commit records and attempt markers (written directly: the scan reads only
   those). Measured: the scan alone (open the store, list the commit records, compute pending),
   in this process; and a real restart, ``tessera run --executor local`` as a subprocess, from
   its start to the first new commit record (interpreter, imports, job file, scan, first shard),
   on local disk and on SeaweedFS S3 (``tests/s3server.py``). Target: under 2 s on local disk.

Writes benchmarks/results/failures.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import write_result  # noqa: E402
from tessera.engine import executors, spec  # noqa: E402
from tessera.engine.events import Event, ShardCommitted  # noqa: E402
from tessera.engine.plan import pending, plan  # noqa: E402
from tessera.engine.run import run_job  # noqa: E402
from tessera.engine.store import Store  # noqa: E402
from tests.jobs import to_toml  # noqa: E402

TESSERA = [sys.executable, "-m", "tessera.engine.cli"]


def spin_job(store: str, shards: int, seconds: float, name: str = "bench-failures") -> dict:
    return {
        "job": {"name": name, "kernel": "benchmarks.spin:KERNEL", "store": store, "shards": shards},
        "params": {"seconds": seconds, "payload_kib": 1},
        "retry": {"attempts": 3},
    }


# -- 1. a worker killed once ----------------------------------------------------------------------


def _running(store: Path) -> dict[int, dict[str, Any]]:
    done = {p.stem for p in (store / "_shards").glob("*.json")}
    out = {}
    for path in (store / "_attempts").glob("*/*.json"):
        if path.parent.name in done:
            continue
        try:
            out[int(path.parent.name)] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return out


def one_run(folder: Path, shards: int, seconds: float, kill: bool) -> dict[str, Any]:
    """One run on a fresh LocalCluster(2); with ``kill``, one worker is SIGKILLed halfway
    through a shard once half the shards have committed."""
    store = folder / ("killed" if kill else "undisturbed")
    job = spec.from_dict(spin_job(str(store), shards, seconds))
    commits: list[float] = []
    killed: dict[str, Any] = {}

    def listen(event: Event) -> None:
        if isinstance(event, ShardCommitted) and not event.skipped:
            commits.append(time.time())

    def killer() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and len(commits) < shards // 2:
            time.sleep(0.005)
        while time.monotonic() < deadline:
            for shard, marker in _running(store).items():
                started = dt.datetime.fromisoformat(marker["started"]).timestamp()
                if time.time() - started >= seconds / 2:
                    os.kill(marker["pid"], signal.SIGKILL)
                    killed.update(shard=shard, pid=marker["pid"], at=time.time())
                    return
            time.sleep(0.002)

    thread = threading.Thread(target=killer, daemon=True)
    if kill:
        thread.start()
    start = time.perf_counter()
    outcome = run_job(job, executors.create("dask", workers=2), listen)
    wall = time.perf_counter() - start
    assert outcome.ok, outcome.failures
    records = Store.open_existing(str(store)).commit_records()
    first = min(dt.datetime.fromisoformat(r["started"]).timestamp() for r in records.values())
    row = {"wall_s": wall, "span_s": max(commits) - first}
    if kill:
        thread.join(timeout=5)
        assert killed, "no worker was killed"
        row["killed_shard"] = killed["shard"]
        row["killed_shard_attempt"] = records[killed["shard"]]["attempt"]
        assert row["killed_shard_attempt"] == 2
    return row


def kill_slowdown(shards: int, seconds: float, repeats: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"undisturbed": [], "killed": []}
    for r in range(repeats):
        for kill in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                row = one_run(Path(tmp), shards, seconds, kill)
            runs["killed" if kill else "undisturbed"].append(row)
            print(f"  repeat {r + 1} {'killed     ' if kill else 'undisturbed'}: "
                  f"wall {row['wall_s']:.2f} s, span {row['span_s']:.2f} s")  # fmt: skip
    med = {
        k: {m: statistics.median(r[m] for r in rows) for m in ("wall_s", "span_s")}
        for k, rows in runs.items()
    }
    out = {
        "shards": shards,
        "shard_seconds": seconds,
        "workers": 2,
        "repeats": repeats,
        "runs": runs,
        "median": med,
        "slowdown_wall": med["killed"]["wall_s"] / med["undisturbed"]["wall_s"],
        "slowdown_span": med["killed"]["span_s"] / med["undisturbed"]["span_s"],
        "extra_seconds_span": med["killed"]["span_s"] - med["undisturbed"]["span_s"],
        # The work lost: the killed shard was half done. The rest of the extra time is the
        # nanny restarting the worker process (one worker computes meanwhile) and the tail.
        "lost_work_seconds": seconds / 2,
    }
    print(
        f"kill one of two workers once: wall {med['undisturbed']['wall_s']:.2f} -> "
        f"{med['killed']['wall_s']:.2f} s ({out['slowdown_wall']:.3f}x); span "
        f"{med['undisturbed']['span_s']:.2f} -> {med['killed']['span_s']:.2f} s "
        f"({out['slowdown_span']:.3f}x, +{out['extra_seconds_span']:.2f} s)"
    )
    return out


# -- 2. resume with 10,000 committed shards -------------------------------------------------------


def fill_store(url: str, committed: int, env: dict[str, str]) -> tuple[dict, float]:
    """Create the store of a job of ``committed`` + 10 shards and write the commit records and
    attempt markers of the first ``committed``, as a run would have left them. Returns the job
    data and the seconds the filling took."""
    data = spin_job(url, committed + 10, 0.0, name="bench-resume")
    os.environ.update(env)
    job = spec.from_dict(data)
    store = Store.open_for_job(job, plan(job))
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    record = {
        "attempt": 1,
        "host": "bench",
        "pid": 1,
        "started": now,
        "seconds": 0.001,
        "cpu_seconds": 0.001,
        "bytes": 1024,
        "work": 0,
        "peak_rss_mib": 200.0,
        "spec_hash": job.spec_hash,
        "stats": {"spins": 0},
        "errors": [],
    }
    files = {}
    for i in range(committed):
        files[f"{store.root}/_shards/{i}.json"] = json.dumps({**record, "shard": i}).encode()
        files[f"{store.root}/_attempts/{i}/1.json"] = json.dumps({"host": "bench"}).encode()
    if url.startswith("s3://"):
        store.fs.pipe(files, batch_size=256)
    else:
        for path, body in files.items():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(body)
    return data, time.perf_counter() - started


def scan_seconds(url: str, data: dict) -> float:
    """Open the store, list the commit records and compute pending, in this process."""
    start = time.perf_counter()
    job = spec.from_dict(data)
    job_plan = plan(job)
    store = Store.open_for_job(job, job_plan)
    todo = pending(job_plan.n_shards, store.committed())
    elapsed = time.perf_counter() - start
    assert len(todo) == 10, len(todo)
    return elapsed


def restart_to_first_commit(url: str, data: dict, env: dict[str, str], job_file: Path) -> float:
    """Seconds from starting `tessera run --executor local` to the first new commit record
    (the driver is then SIGKILLed and the new record removed, for the next repeat)."""
    job = spec.from_dict(data)
    store = Store.open_existing(job.store)
    first = store.n_shards - 10
    key = f"{store.root}/_shards/{first}.json"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*TESSERA, "run", str(job_file), "--executor", "local"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env, "TESSERA_FAULTS": ""},
    )
    try:
        while True:
            if os.path.exists(key) if not url.startswith("s3://") else _s3_exists(store, key):
                elapsed = time.perf_counter() - start
                break
            if proc.poll() is not None:
                raise RuntimeError(f"tessera run exited {proc.returncode} before committing")
            time.sleep(0.001 if not url.startswith("s3://") else 0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    store.fs.invalidate_cache()  # s3fs caches listings: never trust it to say what exists
    for i in range(first, store.n_shards):  # back to exactly `committed` records
        try:
            store.fs.rm_file(f"{store.root}/_shards/{i}.json")
        except FileNotFoundError:
            pass
    assert len(store.committed()) == first
    return elapsed


def _s3_exists(store: Store, key: str) -> bool:
    try:
        store.fs.info(key, refresh=True)
    except FileNotFoundError:
        return False
    return True


def resume_cost(url: str, committed: int, repeats: int, env: dict[str, str]) -> dict[str, Any]:
    data, fill = fill_store(url, committed, env)
    with tempfile.TemporaryDirectory() as tmp:
        job_file = Path(tmp) / "job.toml"
        job_file.write_text(to_toml(data))
        scans = [scan_seconds(url, data) for _ in range(repeats)]
        firsts = [restart_to_first_commit(url, data, env, job_file) for _ in range(repeats)]
    out = {
        "url": url if not url.startswith("/") else "local disk",
        "committed": committed,
        "fill_seconds": fill,
        "scan_seconds": scans,
        "scan_seconds_median": statistics.median(scans),
        "restart_to_first_commit_seconds": firsts,
        "restart_to_first_commit_median": statistics.median(firsts),
    }
    print(
        f"resume with {committed:,} committed shards on {out['url']}: scan "
        f"{out['scan_seconds_median']:.3f} s (in process), restart to first new commit "
        f"{out['restart_to_first_commit_median']:.3f} s (subprocess; fill took {fill:.1f} s)"
    )
    return out


def python_start_seconds() -> float:
    """Baseline for the restart: the interpreter starting and importing the CLI, doing nothing."""
    start = time.perf_counter()
    subprocess.run([*TESSERA, "--version"], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--shard-seconds", type=float, default=1.0)
    parser.add_argument("--committed", type=int, default=10_000)
    parser.add_argument("--no-s3", action="store_true", help="skip the SeaweedFS measurement")
    args = parser.parse_args()

    load_before = os.getloadavg()
    kill = kill_slowdown(args.shards, args.shard_seconds, args.repeats)
    cli_start = statistics.median(python_start_seconds() for _ in range(args.repeats))
    print(f"`tessera --version` (interpreter and CLI import): {cli_start:.3f} s")
    resume = {}
    with tempfile.TemporaryDirectory() as tmp:
        resume["local"] = resume_cost(f"{tmp}/store", args.committed, args.repeats, {})
    if not args.no_s3:
        from tests.s3server import SeaweedS3

        with SeaweedS3() as s3:
            s3.create_bucket("bench")
            resume["s3"] = resume_cost("s3://bench/resume", args.committed, args.repeats, s3.env())
    path = write_result(
        "failures",
        {
            "benchmark": "failures",
            "command": "python benchmarks/failures.py " + " ".join(sys.argv[1:]),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "kill_one_worker": kill,
            "cli_start_seconds": cli_start,
            "resume": resume,
            "resume_target_seconds_local": 2.0,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
