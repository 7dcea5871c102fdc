"""The local executor's lanes: a kernel's shards side by side in one process (``shard_lanes``),
the time each shard is charged for, and when the lanes fall back to one shard at a time."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from examples.make_images import write_tiff
from tessera.engine import worker
from tessera.engine.events import Message, ShardCommitted, ShardStarted
from tessera.engine.executors import local
from tessera.kernels.imaging.pyramid import PyramidKernel
from tests.jobs import run_ok


class FakeClock:
    """``time.perf_counter`` and ``time.process_time`` that move only when told."""

    def __init__(self) -> None:
        self.wall = 100.0
        self.cpu = 10.0

    def advance(self, wall: float, cpu: float) -> None:
        self.wall += wall
        self.cpu += cpu


def test_overlapping_shards_split_the_time_they_share(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(worker.time, "perf_counter", lambda: clock.wall)
    monkeypatch.setattr(worker.time, "process_time", lambda: clock.cpu)
    shares = worker._Shares()
    a = shares.start()
    clock.advance(1.0, 1.0)  # a alone
    b = shares.start()
    clock.advance(2.0, 4.0)  # a and b: 2 s of wall, 4 CPU-s, half each
    assert shares.stop(a) == pytest.approx((2.0, 3.0))
    clock.advance(0.5, 0.5)  # b alone
    assert shares.stop(b) == pytest.approx((1.5, 2.5))
    assert shares.stop(b) == (0.0, 0.0)  # counted out already
    # the shares add up to the process's time: 3.5 s of wall, 5.5 CPU-s
    c = shares.start()
    clock.advance(0.25, 0.2)
    assert shares.stop(c) == pytest.approx((0.25, 0.2))  # a shard alone: its own time


def _slide(tmp_path: Path) -> Path:
    source = tmp_path / "slide.tif"
    write_tiff(source, 700, 530, "RGB", tile=64)
    return source


def _job(store: Path, source: Path, memory_mib: int = 2048) -> dict[str, Any]:
    return {
        "job": {
            "name": "lanes",
            "kernel": "imaging.pyramid",
            "store": str(store),
            "shard_size": 256,
        },
        "params": {
            "source": str(source),
            "tile_size": 64,
            "dzi": {"format": "jpeg", "container": "zip"},
        },
        "resources": {"memory_mib": memory_mib},
    }


def _files(root: Path) -> dict[str, bytes]:
    skip = {"report.json", "zarr.json"}  # timings; the store's job record (its own path)
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and str(p.relative_to(root)) not in skip
        and not str(p.relative_to(root)).startswith(("_shards", "_attempts"))
    }


def test_pyramid_shards_side_by_side_give_the_bytes_of_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _slide(tmp_path)
    events: list[Any] = []
    in_flight, most = [0], [0]
    lock = threading.Lock()
    compute = PyramidKernel.compute

    def counted(self: PyramidKernel, *args: Any, **kwargs: Any) -> Any:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            time.sleep(0.05)  # long enough for the other lane to start
            return compute(self, *args, **kwargs)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(PyramidKernel, "compute", counted)
    run_ok(_job(tmp_path / "lanes", source), on_event=events.append)
    if local.numba_threading_layer() == "workqueue":  # no libgomp nor tbb on this machine
        pytest.skip("Numba's workqueue layer: one shard at a time (tested below)")
    assert most[0] == 2  # two shards ran at once
    said = [e.text for e in events if isinstance(e, Message) and "local executor" in e.text]
    assert said and said[0].startswith("local executor: 2 shards side by side")
    started = [e.shard for e in events if isinstance(e, ShardStarted)]
    committed = sorted(e.shard for e in events if isinstance(e, ShardCommitted))
    assert sorted(started) == committed == list(range(9))

    monkeypatch.setattr(PyramidKernel, "shard_lanes", 1)
    most[0] = 0
    run_ok(_job(tmp_path / "one", source))
    assert most[0] == 1
    lanes, one = _files(tmp_path / "lanes"), _files(tmp_path / "one")
    assert "dzi/image.zip" in lanes and any(k.startswith("image/0/") for k in lanes)
    assert lanes == one

    # each shard is charged its share: the shards' seconds add up to about the run's time
    report = json.loads((tmp_path / "lanes" / "report.json").read_text())
    shard_seconds = sum(s["seconds"] for s in report["per_shard"])
    assert shard_seconds <= report["this_run"]["wall_seconds"] * 1.05


def test_lanes_fall_back_to_one_shard_when_memory_is_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _slide(tmp_path)
    monkeypatch.setattr(local, "available_mib", lambda: 100)
    events: list[Any] = []
    run_ok(_job(tmp_path / "s", source), on_event=events.append)
    said = [e.text for e in events if isinstance(e, Message) and "local executor" in e.text]
    assert len(said) == 1
    assert said[0].startswith("local executor: one shard after another: 2 side by side")
    assert "100 MiB free" in said[0]


def test_lanes_are_one_shard_at_a_time_on_numbas_workqueue_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _slide(tmp_path)
    assert local.numba_threading_layer() in (None, "omp", "tbb", "workqueue")
    monkeypatch.setattr(local, "numba_threading_layer", lambda: "workqueue")
    events: list[Any] = []
    run_ok(_job(tmp_path / "s", source), on_event=events.append)
    said = [e.text for e in events if isinstance(e, Message) and "local executor" in e.text]
    assert said == [
        "local executor: one shard after another: Numba's workqueue threading layer runs one "
        "parallel region at a time (install tbb, or use a system with libgomp, for the omp layer)"
    ]


def test_a_lanes_error_ends_the_run_after_the_shard_beside_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A non-retryable error in one lane is raised once the other lane's shard has finished;
    no shard starts after it."""
    ran: list[int] = []
    release = threading.Event()

    class Job:
        name = "lanes"
        retry_attempts = 1

    def run_shard(job: Any, index: int) -> Any:
        ran.append(index)
        if index == 1:
            raise PermissionError("not this store")  # tessera's own refusal: not retried
        release.wait(5)
        return worker.ShardResult(index, "skipped", {"shard": index})

    monkeypatch.setattr(local, "lanes", lambda job, shards: (2, "2 side by side"))
    monkeypatch.setattr(local, "run_shard", run_shard)
    monkeypatch.setattr(local, "is_retryable", lambda exc: not isinstance(exc, PermissionError))
    threading.Timer(0.2, release.set).start()
    with pytest.raises(PermissionError, match="not this store"):
        local.LocalExecutor().run(Job(), range(6), lambda e: None)  # type: ignore[arg-type]
    assert sorted(ran) == [0, 1]
    assert release.is_set()  # shard 0 was waited for


def test_a_store_that_fails_to_open_is_left_to_the_first_shard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deciding the lanes opens the store; when that fails, the shards run one at a time, and
    the first shard's own opening meets the error as it always has (retried, or raised)."""

    class Kernel:
        shard_lanes = 2

    class Job:
        name = "lanes"
        retry_attempts = 2
        kernel = Kernel()

    def open_store(job: Any) -> Any:
        raise OSError("store unreachable")

    ran: list[int] = []

    def run_shard(job: Any, index: int) -> Any:
        ran.append(index)
        return worker.ShardResult(index, "skipped", {"shard": index})

    monkeypatch.setattr(local, "open_store", open_store)
    monkeypatch.setattr(local, "run_shard", run_shard)
    events: list[Any] = []
    local.LocalExecutor().run(Job(), range(3), events.append)  # type: ignore[arg-type]
    assert ran == [0, 1, 2]
    assert not [e for e in events if isinstance(e, Message)]
