"""The failure suite (issue 6): real processes, real signals, the real S3 server.

Each test injects one fault the way it happens in production (a SIGKILLed Dask worker or driver,
a spot notice's SIGTERM, an S3 server that crashes, corrupt images, two workers racing on one
shard, a full or read-only disk, a store of another job or format, a TLS-only scheduler) and
checks tessera's promise: nothing committed is lost, no shard is recorded as done without its
data, every shard is computed the fewest times the faults allow, and the result is the same
bytes as an undisturbed run. Fuzzed job files are in ``tests/test_fuzz_spec.py``; a spot notice
to a single ``tessera worker`` and scripted retries are in ``tests/test_batch_local.py``.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import tifffile
from PIL import Image

from tessera.engine import executors, spec
from tessera.engine.batch import contract as c
from tessera.engine.plan import Plan, plan
from tessera.engine.run import run_job
from tessera.engine.store import STORE_FORMAT, Store
from tests.jobs import job_dict, write_job
from tests.natural import natural

TESSERA = [sys.executable, "-m", "tessera.engine.cli"]
ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

# Montecarlo shards of about one second on one core (measured: ~1 G path-steps/s per core).
LONG_SHARD = {"paths": 131_072 * 128, "steps": 256}  # with shards=4: ~1.1 s each


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TESSERA_FAULTS": "", **extra}


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TESSERA, *args], capture_output=True, text=True, timeout=timeout, env=env or _env()
    )


def _wait(predicate: Callable[[], T], timeout: float, what: str, every: float = 0.002) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for an init that does not reap counts as dead)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except ProcessLookupError:
        return False
    except OSError:  # no /proc: trust kill(0)
        return True
    return state != "Z"


def _markers(store: Path) -> dict[int, list[dict[str, Any]]]:
    """Attempt markers of a local store, by shard (a marker being written reads as absent)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for path in sorted((store / "_attempts").glob("*/*.json")):
        try:
            marker = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out.setdefault(int(path.parent.name), []).append(marker)
    return out


def _committed(store: Path) -> set[int]:
    return {int(p.stem) for p in (store / "_shards").glob("*.json")}


def _running(store: Path) -> dict[int, dict[str, Any]]:
    """Shards that have started an attempt and not committed: their latest marker."""
    done = _committed(store)
    return {i: m[-1] for i, m in _markers(store).items() if i not in done}


def _reference(data: dict[str, Any], store: Path) -> bytes:
    """result.json of an undisturbed in-process run of ``data`` in ``store``."""
    job = spec.from_dict({**data, "job": {**data["job"], "store": str(store)}})
    assert run_job(job, executors.create("local"), lambda e: None).ok
    return (store / "result.json").read_bytes()


def _chunk_files(store: Path, job_plan: Plan) -> dict[str, bytes]:
    """Every stored chunk of the job's output arrays, by key relative to the store."""
    out = {}
    for array in job_plan.layout.arrays:
        for path in sorted((store / array.name).rglob("*")):
            if path.is_file() and path.name != "zarr.json":
                out[str(path.relative_to(store))] = path.read_bytes()
    return out


def _owned_chunks(job_plan: Plan, shard: int) -> list[str]:
    """Keys of the chunks that ``shard`` writes (row-cut arrays; one chunk across other axes)."""
    keys = []
    for array in job_plan.layout.arrays:
        start, stop = job_plan.layout.region(shard)[array.name]
        rows = range(start // array.chunks[0], -(-stop // array.chunks[0]))
        rest = "/".join("0" for _ in array.shape[1:])
        keys += [f"{array.name}/c/{row}" + (f"/{rest}" if rest else "") for row in rows]
    return keys


# -- 1. a Dask worker SIGKILLed mid-shard ---------------------------------------------------------


@pytest.mark.slow
def test_dask_worker_sigkilled_mid_shard_reruns_it_as_attempt_2(
    tmp_path: Path, no_faults: None
) -> None:
    """A real LocalCluster of two worker processes; a thread SIGKILLs the worker whose attempt
    marker shows it is computing a shard (marker written, no commit record). Dask reschedules
    the task, the shard commits as attempt 2, and result.json equals an undisturbed run's."""
    data = job_dict(tmp_path / "store", shards=4, **LONG_SHARD)
    reference = _reference(data, tmp_path / "undisturbed")
    store = tmp_path / "store"
    victim: dict[str, int] = {}

    def kill_a_running_worker() -> None:
        shard, marker = _wait(
            lambda: next(iter(_running(store).items()), None), 120, "a shard to start"
        )
        assert marker["pid"] != os.getpid()  # a worker process, never the test
        os.kill(marker["pid"], signal.SIGKILL)
        victim.update(shard=shard, pid=marker["pid"], committed=len(_committed(store)))

    killer = threading.Thread(target=kill_a_running_worker, daemon=True)
    killer.start()
    job = spec.from_dict(data)
    outcome = run_job(job, executors.create("dask", workers=2), lambda e: None)
    killer.join(timeout=5)
    assert victim, "the killer thread never found a running shard"
    assert outcome.ok, outcome.failures
    assert (store / "result.json").read_bytes() == reference
    assert not _alive(victim["pid"])
    records = Store.open_existing(str(store)).commit_records()
    killed = records[victim["shard"]]
    assert killed["attempt"] == 2 and killed["pid"] != victim["pid"]
    assert {i: r["attempt"] for i, r in records.items() if i != victim["shard"]} == {
        i: 1 for i in range(4) if i != victim["shard"]
    }
    markers = _markers(store)
    assert [m["pid"] for m in markers[victim["shard"]]][0] == victim["pid"]
    assert {i: len(m) for i, m in markers.items()} == {
        i: 2 if i == victim["shard"] else 1 for i in range(4)
    }


# -- 2. the driver SIGKILLed at three seeded random points ----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("seed", [6])
def test_driver_sigkilled_three_times_computes_each_shard_the_fewest_times(
    tmp_path: Path, seed: int
) -> None:
    """`tessera run` on a LocalCluster of two workers, SIGKILLed when the commit count reaches
    each of three points drawn by ``random.Random(seed)``, rerun after each kill, then run to the
    end. A kill takes the LocalCluster with it (its worker processes exit when the driver's
    pipes close; the test waits for them). Every shard ran exactly once plus once per kill that
    caught it in flight, committed records were never rewritten, and the result is identical."""
    n = 24
    data = job_dict(tmp_path / "store", shards=n, paths=131_072 * 96, steps=512)
    path = write_job(tmp_path / "job.toml", data)
    store = tmp_path / "store"
    points = sorted(random.Random(seed).sample(range(2, n - 2), 3))
    in_flight_at_kill: list[set[int]] = []
    kept: dict[int, str] = {}
    for point in points:
        proc = subprocess.Popen(
            [*TESSERA, "run", str(path), "--workers", "2"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_env(),
        )
        start = len(_committed(store)) if store.exists() else 0
        target = max(point, start + 1)  # a kill point already passed: one commit later
        try:
            _wait(
                lambda: len(_committed(store)) >= target or proc.poll() is not None,  # noqa: B023
                180,
                f"{target} commits",
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the run ended before the kill point"
        pids = {m["pid"] for marks in _markers(store).values() for m in marks}
        _wait(lambda: not any(_alive(p) for p in pids), 60, "the orphaned workers to exit")  # noqa: B023
        in_flight_at_kill.append(set(_running(store)))
        for i in _committed(store):
            text = (store / "_shards" / f"{i}.json").read_text()
            assert kept.setdefault(i, text) == text, f"shard {i}'s commit record was rewritten"
    # at most one shard per worker in flight at each kill, and the kills did catch some
    assert all(len(s) <= 2 for s in in_flight_at_kill) and any(in_flight_at_kill)

    final = _cli("run", str(path), "--workers", "2")
    assert final.returncode == 0, final.stderr
    records = Store.open_existing(str(store)).commit_records()
    assert len(records) == n
    for i, text in kept.items():
        assert (store / "_shards" / f"{i}.json").read_text() == text
    expected = {i: 1 + sum(i in s for s in in_flight_at_kill) for i in range(n)}
    assert {i: len(m) for i, m in _markers(store).items()} == expected
    assert {i: r["attempt"] for i, r in records.items()} == expected
    assert (store / "result.json").read_bytes() == _reference(data, tmp_path / "undisturbed")


# -- 3. a spot notice (SIGTERM) to a container of `tessera batch local` ---------------------------


@pytest.mark.slow
def test_sigterm_to_a_batch_local_child_is_retried_to_completion(tmp_path: Path) -> None:
    """`tessera batch local --parallel 2` runs the containers' `tessera worker`; the test sends a
    real SIGTERM (what ECS sends on a spot reclaim) to the worker computing a shard. It exits 75
    without a commit, the retry strategy reruns it (attempt 2), and the array completes with the
    bytes of `tessera run`. (A SIGTERM to one `tessera worker` by hand, and scripted retries:
    tests/test_batch_local.py.)"""
    data = job_dict(tmp_path / "store", shards=4, **LONG_SHARD)
    path = write_job(tmp_path / "job.toml", data)
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [*TESSERA, "batch", "local", str(path), "--parallel", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        shard, marker = _wait(
            lambda: next(iter(_running(store).items()), None) if store.exists() else None,
            120,
            "a worker to start a shard",
        )
        os.kill(marker["pid"], signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert f"local-0:{shard} attempt 1 exited {c.EXIT_RETRYABLE}" in stderr and "RETRY" in stderr
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    (stopped,) = [e for e in events if e["event"] == "shard_interrupted"]
    assert stopped["shard"] == shard and stopped["attempt"] == 1
    assert "stopped before commit" in stopped["reason"]
    records = Store.open_existing(str(store)).commit_records()
    assert records[shard]["attempt"] == 2 and records[shard]["pid"] != marker["pid"]
    assert all(r["attempt"] == 1 for i, r in records.items() if i != shard)
    assert (store / "result.json").read_bytes() == _reference(data, tmp_path / "undisturbed")


# -- 4. the S3 server crashes mid-run and comes back on the same data -----------------------------


@pytest.mark.slow
@pytest.mark.s3
def test_s3_server_killed_mid_run_then_restarted(tmp_path: Path) -> None:
    """A SeaweedFS of its own (the session's server is not disturbed) is SIGKILLed once four
    shards have committed and restarted on the same data directory a second later. The run
    finishes through s3fs's retries or, when the outage outlasted them, by running it again
    (resume). Then every committed shard's chunks exist and equal a local reference run's. A
    server that stays down ends a run with a message (no traceback) once s3fs gives up."""
    from tests.s3server import SeaweedS3

    data = job_dict("s3://runs/job", shards=16, paths=131_072 * 16, steps=128)
    path = write_job(tmp_path / "job.toml", data)
    reference_store = tmp_path / "undisturbed"
    reference = _reference(data, reference_store)
    job_plan = plan(spec.from_dict(data))
    with SeaweedS3(tmp_path / "weed") as s3:
        s3.create_bucket("runs")
        client = s3.client()
        env = _env(**s3.env())

        def commits() -> int:
            listed = client.list_objects_v2(Bucket="runs", Prefix="job/_shards/")
            return int(listed.get("KeyCount", 0))

        proc = subprocess.Popen(
            [*TESSERA, "run", str(path), "--executor", "local"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            _wait(lambda: commits() >= 4, 120, "four commits", every=0.005)
            s3.kill()
            time.sleep(1.0)
            s3.start()
            _, stderr = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        retried = [line for line in stderr.splitlines() if "will retry" in line or "failed" in line]
        codes = [proc.returncode]
        while codes[-1] != 0 and len(codes) < 4:  # resume: run again
            again = _cli("run", str(path), "--executor", "local", env=env)
            codes.append(again.returncode)
            stderr = again.stderr
        assert codes[-1] == 0, (codes, stderr[-3000:])
        assert "Traceback" not in stderr
        print(f"exit codes of the runs: {codes}; shard retries logged by the first: {retried}")

        expected = _chunk_files(reference_store, job_plan)
        assert client.get_object(Bucket="runs", Key="job/result.json")["Body"].read() == reference
        listed = client.list_objects_v2(Bucket="runs", Prefix="job/_shards/")["Contents"]
        committed = sorted(int(o["Key"].rsplit("/", 1)[1].removesuffix(".json")) for o in listed)
        assert committed == list(range(16))
        for shard in committed:
            for key in _owned_chunks(job_plan, shard):
                body = client.get_object(Bucket="runs", Key=f"job/{key}")["Body"].read()
                assert body == expected[key], f"shard {shard}: chunk {key} differs"
        client.close()

        s3.kill()  # a store that stays down: named at once, never a traceback
        down = _cli("run", str(path), "--executor", "local", env=env)
        assert down.returncode == 1 and "Traceback" not in down.stderr, down.stderr
        assert "error: the store s3://runs/job cannot be reached: the S3 endpoint" in down.stderr
        assert "committed shards there are kept; run again when it can be reached" in down.stderr
        s3.start()
        assert _cli("status", "s3://runs/job", env=env).returncode == 0


# -- 5. corrupt inputs: truncated TIFF, PNG with a bad CRC, zero-byte JPEG ------------------------


def _png_with_bad_crc(array: np.ndarray) -> bytes:
    """A PNG one byte of whose image data was flipped in transit: its IDAT CRC no longer
    matches (and zlib's stream is broken)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    idat = data.find(b"IDAT")
    (length,) = struct.unpack(">I", data[idat - 4 : idat])
    data[idat + 4 + length // 2] ^= 0x55
    return bytes(data)


def _truncated_tiff(path: Path, array: np.ndarray) -> Path:
    tifffile.imwrite(path, array, tile=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="module")
def corrupt_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("corrupt")
    image = natural(300, 400, 3, seed=5)
    paths = {
        "truncated": _truncated_tiff(folder / "b-truncated.tif", image),
        "bad_crc": folder / "d-bad-crc.png",
        "empty": folder / "f-empty.jpg",
    }
    paths["bad_crc"].write_bytes(_png_with_bad_crc(image))
    paths["empty"].write_bytes(b"")
    for name in ("a-good.png", "c-good.png", "e-good.png"):
        Image.fromarray(natural(40, 60, 3, seed=len(name))).save(folder / name)
    return paths


def test_corrupt_files_in_a_transcode_fail_alone_and_are_named(
    tmp_path: Path, corrupt_images: dict[str, Path]
) -> None:
    """Six files in two shards, three of them corrupt: each corrupt file fails with its name, the
    good ones are written, both shards commit, `tessera status` lists the three and both
    commands exit 1."""
    folder = corrupt_images["empty"].parent
    data = {
        "job": {
            "name": "corrupt",
            "kernel": "imaging.transcode",
            "store": str(tmp_path / "s"),
            "shards": 2,
        },
        "params": {"inputs": f"{folder}/*.*", "output": str(tmp_path / "out"), "format": "png"},
    }
    run = _cli("run", str(write_job(tmp_path / "job.toml", data)), "--executor", "local")
    assert run.returncode == 1, run.stderr
    assert "3 inputs failed" in run.stderr and "Traceback" not in run.stderr
    reasons = {
        "truncated": "image file is truncated",
        "bad_crc": "broken data stream",
        "empty": "an empty file",
    }
    for kind, reason in reasons.items():
        line = [ln for ln in run.stdout.splitlines() if f"input {corrupt_images[kind]}:" in ln]
        assert len(line) == 1 and line[0].startswith("FAILED shard ") and reason in line[0], line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a-good.png",
        "c-good.png",
        "e-good.png",
    ]
    status = _cli("status", str(tmp_path / "s"))
    assert status.returncode == 1
    assert "shards: 2/2 committed, 0 failed, 0 pending" in status.stdout
    for path in corrupt_images.values():
        assert f"FAILED input {path} (shard " in status.stdout


def _pyramid_job(tmp_path: Path, source: Path) -> Path:
    data = {
        "job": {
            "name": "pyramid",
            "kernel": "imaging.pyramid",
            "store": str(tmp_path / "s"),
            "shard_size": 128,
        },
        "params": {"source": str(source), "tile_size": 64},
    }
    return write_job(tmp_path / "job.toml", data)


@pytest.mark.parametrize(
    "kind",
    ["truncated", "bad_crc"],
)
def test_a_corrupt_pyramid_source_fails_its_shards_with_the_file_named(
    tmp_path: Path, corrupt_images: dict[str, Path], kind: str
) -> None:
    """A source whose header is intact validates; the shards that read damaged pixels fail with
    the file named, the shards whose tiles are intact commit (a truncated TIFF's first half),
    `tessera status` lists each failed shard, and both commands exit 1."""
    source = corrupt_images[kind]
    run = _cli("run", str(_pyramid_job(tmp_path, source)), "--executor", "local")
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    store = Store.open_existing(str(tmp_path / "s"))
    failures = store.failures()
    assert failures and set(failures).isdisjoint(store.committed())
    assert len(failures) + len(store.committed()) == store.n_shards == 12
    status = _cli("status", str(tmp_path / "s"))
    assert status.returncode == 1
    for shard, record in failures.items():
        assert f"FAILED shard {shard}:" in run.stdout
        assert f"FAILED shard {shard} (attempt 1" in status.stdout
        assert str(source) in record["reason"], record["reason"]


def test_an_empty_pyramid_source_is_refused_at_validate(
    tmp_path: Path, corrupt_images: dict[str, Path]
) -> None:
    """A zero-byte JPEG has no header: refused before any work, by `validate` and by `run`
    (exit 2, the key and the file named), and no store is created."""
    job_file = _pyramid_job(tmp_path, corrupt_images["empty"])
    for command in ("validate", "run"):
        proc = _cli(command, str(job_file))
        assert proc.returncode == 2, proc.stderr
        assert f"params.source: {corrupt_images['empty']}: not a TIFF, PNG or JPEG" in proc.stderr
        assert "(an empty file)" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists()


# -- 7. two workers run the same shard at the same time -------------------------------------------


@pytest.mark.parametrize("backend", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_two_workers_racing_on_one_shard_leave_consistent_data(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """Two `tessera worker --index 1` processes started together (Batch retrying a straggler
    while the straggler finishes): both exit 0, the commit record is one worker's, whole, and
    the shard's chunks and the final result are the reference bytes."""
    url = str(tmp_path / "store")
    if backend == "s3":
        s3 = request.getfixturevalue("seaweed_s3")
        s3.create_bucket("tessera-race")
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        url = f"s3://tessera-race/{tmp_path.name}"
    data = job_dict(url, shards=3, paths=131_072 * 96, steps=256)
    job_file = write_job(tmp_path / "job.toml", data)
    reference_store = tmp_path / "undisturbed"
    reference = _reference(data, reference_store)
    job = spec.from_dict(data)
    job_plan = plan(job)
    Store.open_for_job(job, job_plan)  # the store exists, as when Batch runs a child
    procs = [
        subprocess.Popen(
            [*TESSERA, "worker", str(job_file), "--index", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    events = [json.loads(out.strip().splitlines()[-1])["event"] for out, _ in outputs]
    print(f"the two workers: {events}")
    assert set(events) <= {"shard_committed", "shard_skipped"}, events
    store = Store.open_existing(job.store)
    record = store.commit_records()[1]
    assert record["pid"] in {p.pid for p in procs} and record["shard"] == 1
    assert record["spec_hash"] == job.spec_hash and record["bytes"] > 0
    # One attempt marker per worker that computed, on disk (exclusive create); on S3 two racing
    # attempts may take one number (a listing, then a PUT): only the count is off, not the data.
    assert store.attempts()[1] == events.count("shard_committed") or backend == "s3"
    expected = _chunk_files(reference_store, job_plan)
    for key in _owned_chunks(job_plan, 1):
        assert store.fs.cat_file(f"{store.root}/{key}") == expected[key], key
    done = _cli("run", str(job_file), "--executor", "local")
    assert done.returncode == 0, done.stderr
    assert store.fs.cat_file(f"{store.root}/result.json") == reference


# -- 8. a full or read-only store -----------------------------------------------------------------


def _spin_job(store: Path, shards: int = 8, payload_kib: int = 48) -> dict[str, Any]:
    return {
        "job": {
            "name": "spin",
            "kernel": "benchmarks.spin:KERNEL",
            "store": str(store),
            "shards": shards,
        },
        "params": {"seconds": 0.0, "payload_kib": payload_kib},
        "retry": {"attempts": 2},
    }


def _assert_committed_shards_hold_their_data(store_dir: Path) -> set[int]:
    """Every shard with a commit record has its payload row, complete and correct."""
    store = Store.open_existing(str(store_dir))
    job = spec.from_dict(store.meta["job"])
    job_plan = plan(job)
    payload = store.read_arrays()["payload"]
    for shard in store.committed():
        arrays = job.kernel.compute(job.params, job.seed, job_plan.layout, shard).arrays
        assert np.array_equal(payload[shard : shard + 1], arrays["payload"]), shard
    return store.committed()


def test_a_path_blocked_in_the_store_is_named_and_nothing_is_marked_done(tmp_path: Path) -> None:
    """A file where the store expects a folder (works without privileges): every shard's write
    fails naming the path, no commit record is written, status shows every shard pending; with
    the file gone, a rerun completes."""
    data = _spin_job(tmp_path / "store", shards=4, payload_kib=4)
    job_file = write_job(tmp_path / "job.toml", data)
    job = spec.from_dict(data)
    Store.open_for_job(job, plan(job))
    blocker = tmp_path / "store" / "payload" / "c"
    blocker.write_text("not a folder")
    run = _cli("run", str(job_file), "--executor", "local")
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert str(blocker) in run.stdout + run.stderr
    assert "4 of 4 shards not committed (4 failed)" in run.stderr
    assert not (tmp_path / "store" / "_shards").exists() or not _committed(tmp_path / "store")
    status = _cli("status", str(tmp_path / "store"))
    assert status.returncode == 1 and "0/4 committed" in status.stdout
    blocker.unlink()
    again = _cli("run", str(job_file), "--executor", "local")
    assert again.returncode == 0, again.stderr
    assert _assert_committed_shards_hold_their_data(tmp_path / "store") == set(range(4))


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Any:
    """A 256 KiB tmpfs (root only; skipped where mounting is not permitted)."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_then_read_only_store_is_named_and_nothing_is_falsely_done(
    tmp_path: Path, small_tmpfs: Path
) -> None:
    """8 shards of 48 KiB into 256 KiB: the shards that fit commit, the rest fail with "No space
    left on device" and the store's path (written by `write()`, which names no file itself);
    every commit record has its data. Remounted read-only, a rerun commits nothing and names
    the path; remounted read-write and larger, it completes with the reference bytes."""
    store = small_tmpfs / "store"
    data = _spin_job(store)
    job_file = write_job(tmp_path / "job.toml", data)
    full = _cli("run", str(job_file), "--executor", "local")
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
    assert "No space left on device" in full.stdout + full.stderr
    assert f"'{store}/" in full.stdout + full.stderr  # the path is named
    done = _assert_committed_shards_hold_their_data(store)
    assert 0 < len(done) < 8

    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    read_only = _cli("run", str(job_file), "--executor", "local")
    assert read_only.returncode == 1 and "Traceback" not in read_only.stderr
    assert "Read-only file system" in read_only.stdout + read_only.stderr
    assert f"'{store}/" in read_only.stdout + read_only.stderr
    assert _assert_committed_shards_hold_their_data(store) == done
    status = _cli("status", str(store))
    assert status.returncode == 1 and f"{len(done)}/8 committed" in status.stdout

    subprocess.run(["mount", "-o", "remount,rw,size=2m", str(small_tmpfs)], check=True)
    again = _cli("run", str(job_file), "--executor", "local")
    assert again.returncode == 0, again.stderr
    assert _assert_committed_shards_hold_their_data(store) == set(range(8))
    assert (store / "result.json").read_bytes() == _reference(data, tmp_path / "undisturbed")


# -- 9. a store of another job, or of another store format ----------------------------------------


def _set_store_attr(store: Path, **attrs: Any) -> None:
    meta_path = store / "zarr.json"
    meta = json.loads(meta_path.read_text())
    for key, value in attrs.items():
        if value is None:
            meta["attributes"]["tessera"].pop(key, None)
        else:
            meta["attributes"]["tessera"][key] = value
    meta_path.write_text(json.dumps(meta))


def test_a_store_of_another_job_is_refused_with_what_to_do(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = write_job(tmp_path / "a.toml", job_dict(store, shards=2))
    assert _cli("run", str(first), "--executor", "local").returncode == 0
    other = write_job(tmp_path / "b.toml", job_dict(store, shards=2, seed=8))
    for command in (["run", str(other), "--executor", "local"], ["worker", str(other)]):
        proc = _cli(*command)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "made by a different job" in proc.stderr and "seed: stored 7, this job 8" in (
            proc.stderr
        )
        assert "delete the store or pass --store with a new location" in proc.stderr
    fresh = _cli("run", str(other), "--store", str(tmp_path / "new"), "--executor", "local")
    assert fresh.returncode == 0, fresh.stderr


@pytest.mark.parametrize(
    ("stored", "advice"),
    [
        (STORE_FORMAT + 1, "upgrade tessera (pip install -U tessera) to resume or inspect it"),
        (0, "finish it with tessera 0.0.9, or delete it or pass --store with a new location"),
        ("v1", "finish it with tessera 0.0.9"),
    ],
)
def test_a_store_of_another_format_is_refused_with_what_to_do(
    tmp_path: Path, stored: Any, advice: str
) -> None:
    store = tmp_path / "store"
    job_file = write_job(tmp_path / "job.toml", job_dict(store, shards=2))
    assert _cli("run", str(job_file), "--executor", "local").returncode == 0
    assert json.loads((store / "zarr.json").read_text())["attributes"]["tessera"]["format"] == (
        STORE_FORMAT
    )
    _set_store_attr(store, format=stored, version="0.0.9")
    for command in (["run", str(job_file), "--executor", "local"], ["status", str(store)]):
        proc = _cli(*command)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"is in store format {stored!r} (written by tessera 0.0.9)" in proc.stderr
        assert f"reads only format {STORE_FORMAT}" in proc.stderr and advice in proc.stderr


def test_a_store_from_before_format_numbers_still_resumes(tmp_path: Path) -> None:
    """Stores written before the format was recorded are format 1: still resumed."""
    store = tmp_path / "store"
    data = job_dict(store, shards=3)
    job_file = write_job(tmp_path / "job.toml", data)
    run = _cli("run", str(job_file), "--executor", "local", env=_env(TESSERA_FAULTS="1:raise"))
    assert run.returncode == 1
    _set_store_attr(store, format=None)
    again = _cli("run", str(job_file), "--executor", "local")
    assert again.returncode == 0, again.stderr
    assert (store / "result.json").read_bytes() == _reference(data, tmp_path / "undisturbed")


# -- 10. a remote Dask cluster that requires TLS --------------------------------------------------


def _write_certificates(folder: Path) -> dict[str, str]:
    """A self-signed CA/certificate and key (distributed's Security.temporary) as PEM files, and
    the Dask config variables that make a client use them."""
    from distributed.security import Security

    security = Security.temporary()
    (folder / "ca.pem").write_text(security.tls_ca_file)
    (folder / "key.pem").write_text(security.tls_client_key)
    os.chmod(folder / "key.pem", 0o600)
    return {
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(folder / "ca.pem"),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(folder / "ca.pem"),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(folder / "key.pem"),
        "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
    }


def test_remote_dask_scheduler_with_tls(tmp_path: Path) -> None:
    """`dask scheduler --protocol tls` and two `dask worker`s with certificates; `tessera run
    --scheduler tls://...` with the TLS settings from Dask's config variables gives the reference
    bytes. A plain tcp:// client, a tls:// client without settings and one with a certificate the
    cluster does not trust are refused, each with a message and exit 1."""
    certs = tmp_path / "certs"
    certs.mkdir()
    tls_env = _write_certificates(certs)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    stranger_env = _write_certificates(stranger)
    tls_args = [
        "--tls-ca-file",
        str(certs / "ca.pem"),
        "--tls-cert",
        str(certs / "ca.pem"),
        "--tls-key",
        str(certs / "key.pem"),
    ]
    dask = str(Path(sys.executable).parent / "dask")
    sched_file = tmp_path / "scheduler.json"
    logs = [open(tmp_path / f"{name}.log", "w") for name in ("scheduler", "w1", "w2")]
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--protocol", "tls", "--host", "127.0.0.1", "--port", "0"]
            + ["--no-dashboard", "--scheduler-file", str(sched_file), *tls_args],
            stdout=logs[0],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ]
    try:
        _wait(sched_file.exists, 60, "the scheduler file", every=0.05)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tls://127.0.0.1:")
        for log_file in logs[1:]:
            procs.append(
                subprocess.Popen(
                    [dask, "worker", address, "--nthreads", "1", "--host", "127.0.0.1"]
                    + ["--no-dashboard", *tls_args],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env={**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
                )
            )
        data = job_dict(tmp_path / "store", shards=4)
        job_file = write_job(tmp_path / "job.toml", data)
        ok = _cli("run", str(job_file), "--scheduler", address, env=_env(**tls_env))
        assert ok.returncode == 0, ok.stderr
        assert (tmp_path / "store" / "result.json").read_bytes() == _reference(
            data, tmp_path / "undisturbed"
        )

        plain = address.replace("tls://", "tcp://")
        refused = {
            "tcp": _cli(
                "run", str(job_file), "--store", str(tmp_path / "s1"), "--scheduler", plain
            ),
            "no-settings": _cli(
                "run", str(job_file), "--store", str(tmp_path / "s2"), "--scheduler", address
            ),
            "stranger": _cli(
                "run",
                str(job_file),
                "--store",
                str(tmp_path / "s3"),
                "--scheduler",
                address,
                env=_env(**stranger_env),
            ),
        }
        for name, proc in refused.items():
            assert proc.returncode == 1, (name, proc.stderr)
            assert "Traceback" not in proc.stderr, (name, proc.stderr)
        assert "cannot reach the Dask scheduler at tcp://" in refused["tcp"].stderr
        assert "uses TLS but Dask's config has no TLS settings" in refused["no-settings"].stderr
        assert "DASK_DISTRIBUTED__COMM__TLS__CA_FILE" in refused["no-settings"].stderr
        assert "cannot reach the Dask scheduler at tls://" in refused["stranger"].stderr
        for store in ("s1", "s2", "s3"):
            assert not (tmp_path / store / "_shards").exists()
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
    shutil.rmtree(certs)
