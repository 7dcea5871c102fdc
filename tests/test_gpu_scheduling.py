"""GPU scheduling on Dask: GPU shards ask for the worker resource ``GPU``; ``--gpu-workers N``
starts one worker per GPU, each declaring ``GPU=1`` with its own ``CUDA_VISIBLE_DEVICES``.

No GPU here: the workers' kernels run under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``
in the worker processes only), which is enough to check where Dask places the tasks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tessera.engine import executors, spec
from tessera.engine.errors import ExecutorError
from tessera.engine.events import Event, Message
from tessera.engine.executors.dask import _PINNED_ENV, DaskExecutor, _check_gpu_workers
from tessera.engine.executors.dask_gpu import (
    device_ids,
    gpu_worker_count,
    start_cluster,
    worker_specs,
)
from tessera.engine.run import run_job
from tessera.engine.store import Store
from tests.jobs import job_dict, write_job

ROOT = Path(__file__).resolve().parent.parent
SIM = {"NUMBA_ENABLE_CUDASIM": "1"}
# Smallest jobs that still have several shards: shards own whole blocks of 4096 samples.
GPU_PARAMS: dict[str, Any] = {"paths": 2 * (3 * 4096 + 10), "steps": 1}


def _gpu_job(store: Path, shards: int = 4, gpus: int = 1) -> spec.Job:
    data = job_dict(store, shards=shards, **GPU_PARAMS)
    data["resources"] = {"gpus": gpus}
    return spec.from_dict(data)


# --- pure parts ---------------------------------------------------------------------------------


def test_device_ids_follow_the_visible_devices() -> None:
    assert device_ids(3, None) == ["0", "1", "2"]
    assert device_ids(2, "") == ["0", "1"]
    assert device_ids(2, "4, 7,9") == ["4", "7"]
    assert device_ids(1, "GPU-uuid-a,GPU-uuid-b") == ["GPU-uuid-a"]
    with pytest.raises(ExecutorError, match="only 1 device"):
        device_ids(2, "3")
    with pytest.raises(ExecutorError, match=">= 1"):
        device_ids(0, None)


def test_worker_specs_declare_one_gpu_each() -> None:
    specs = worker_specs(2, 1, {"NUMBA_NUM_THREADS": "1"}, visible="5,6")
    assert sorted(specs) == ["cpu-0", "gpu-0", "gpu-1"]
    for i, device in enumerate(["5", "6"]):
        options = specs[f"gpu-{i}"]["options"]
        assert options["resources"] == {"GPU": 1} and options["nthreads"] == 1
        assert options["env"] == {"NUMBA_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": device}
    assert "resources" not in specs["cpu-0"]["options"]
    assert "CUDA_VISIBLE_DEVICES" not in specs["cpu-0"]["options"]["env"]


def test_gpu_worker_count() -> None:
    workers = {
        "a": {"resources": {"GPU": 1}},
        "b": {"resources": {}},
        "c": {"resources": {"GPU": 2.0}},
        "d": {},
    }
    assert gpu_worker_count(workers) == 2
    assert gpu_worker_count({}) == 0


class _FakeClient:
    def __init__(self, workers: dict[str, Any]) -> None:
        self.workers = workers

    def scheduler_info(self) -> dict[str, Any]:
        return {"workers": self.workers}


def test_gpu_jobs_ask_for_the_gpu_resource(tmp_path: Path) -> None:
    events: list[Event] = []
    cpu_job = spec.from_dict(job_dict(tmp_path / "c", shards=1, paths=1000, steps=2))
    gpu_job = _gpu_job(tmp_path / "g", shards=1)
    with_gpu = _FakeClient({"w": {"resources": {"GPU": 1}}})
    without = _FakeClient({"w": {"resources": {}}})
    assert _check_gpu_workers(cpu_job, without, True, events.append) is None
    assert _check_gpu_workers(gpu_job, with_gpu, True, events.append) == {"GPU": 1}
    assert not events
    with pytest.raises(ExecutorError, match="--gpu-workers N"):
        _check_gpu_workers(gpu_job, without, True, events.append)
    # a remote scheduler may get GPU workers later: warn, and submit anyway
    assert _check_gpu_workers(gpu_job, without, False, events.append) == {"GPU": 1}
    assert isinstance(events[0], Message) and "GPU" in events[0].text


def test_gpu_workers_need_dask_and_a_local_cluster() -> None:
    with pytest.raises(ValueError, match="dask executor"):
        executors.create("local", gpu_workers=1)
    executor = executors.create("dask", scheduler="tcp://127.0.0.1:1", gpu_workers=1)
    assert isinstance(executor, DaskExecutor)
    with pytest.raises(ExecutorError, match="cannot be combined with a scheduler"):
        executor._connect()


# --- a real local cluster with simulated GPUs ---------------------------------------------------


def _worker_facts() -> tuple[int, str | None]:
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")


def test_gpu_tasks_run_only_on_gpu_workers(tmp_path: Path, no_faults: None) -> None:
    """Two GPU workers (CUDA_VISIBLE_DEVICES 0 and 1) and one CPU worker: every shard of a GPU
    job runs on a GPU worker, through the same executor a scheduler address selects."""
    from distributed import Client

    cluster = start_cluster(2, 1, {**_PINNED_ENV, **SIM}, visible=None)
    try:
        with Client(cluster) as client:
            facts = client.run(_worker_facts)
            info = client.scheduler_info()["workers"]
        by_name = {info[addr]["name"]: facts[addr] for addr in facts}
        assert sorted(by_name) == ["cpu-0", "gpu-0", "gpu-1"]
        assert by_name["gpu-0"][1] == "0" and by_name["gpu-1"][1] == "1"
        assert by_name["cpu-0"][1] is None
        assert {info[a]["name"]: info[a]["resources"] for a in info}["gpu-1"] == {"GPU": 1}
        gpu_pids = {by_name["gpu-0"][0], by_name["gpu-1"][0]}

        job = _gpu_job(tmp_path / "g", shards=4)
        executor = DaskExecutor(scheduler=cluster.scheduler_address)
        outcome = run_job(job, executor, lambda e: None)
        assert outcome.ok, outcome.failures
    finally:
        cluster.close()
    store = Store.open_existing(job.store)
    records = [store.read_json(f"_shards/{i}.json") for i in range(4)]
    assert {r["pid"] for r in records} <= gpu_pids
    assert all(r["stats"]["device"] == "cuda" for r in records)


def test_cli_gpu_workers_runs_a_gpu_job(tmp_path: Path) -> None:
    """``tessera run --gpu-workers 2`` (simulated devices) against the same job on the CPU:
    the same prices, every shard computed by the CUDA twin."""
    results = {}
    for gpus in (0, 1):
        data = job_dict(tmp_path / f"s{gpus}", shards=3, **GPU_PARAMS)
        data["resources"] = {"gpus": gpus}
        path = write_job(tmp_path / f"job{gpus}.toml", data)
        args = ["--gpu-workers", "2"] if gpus else ["--workers", "2"]
        proc = subprocess.run(
            [sys.executable, "-m", "tessera.engine.cli", "run", str(path), *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **SIM},
            cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        store = Store.open_existing(str(tmp_path / f"s{gpus}"))
        results[gpus] = json.loads(store.fs.cat_file(f"{store.url}/result.json"))
        records = [store.read_json(f"_shards/{i}.json") for i in range(store.n_shards)]
        assert len(records) == 2  # four blocks in two shards of two
        devices = {r["stats"].get("device") for r in records}
        assert devices == ({"cuda"} if gpus else {None})
    for name, cpu_p in results[0]["products"].items():
        assert results[1]["products"][name]["price"] == pytest.approx(cpu_p["price"], rel=1e-9)


def test_cli_rejects_bad_gpu_worker_counts(tmp_path: Path) -> None:
    path = write_job(tmp_path / "job.toml", job_dict(tmp_path / "s", shards=1, paths=1000))
    proc = subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", "run", str(path), "--gpu-workers", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and "--gpu-workers" in proc.stderr, proc.stderr
