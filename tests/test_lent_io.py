"""Failures of the I/O the engine lends kernels are the engine's, and retried: a transcode job
on real S3 whose server stops as a shard writes its output and comes back when the run reports
that failure, and, without a server, a lent failure that the kernel catches and hides behind an
error of its own (``StoreIO.failure``).

The outage is scripted, not timed: the S3 server is stopped by the first output write after
shard 0 committed (one of shard 1's files: the local executor runs shards in index order), and
started again by the listener when the run's first retryable ``ShardFailed`` arrives. Within
shard 1 the pool threads read and write its two files in either order, so either may be the
one the stop is for.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import tessera
from tessera.engine import io as lent_io
from tessera.engine.errors import LentIOError
from tessera.engine.events import Event, ShardCommitted, ShardFailed
from tessera.engine.io import StoreIO
from tessera.engine.plan import plan
from tessera.engine.store import Store
from tessera.engine.worker import run_shard
from tessera.kernels.imaging.transcode import transcode_bytes
from tests.conformance import Run, check_events, probe_job
from tests.natural import natural

FRAMES = 6  # 3 shards of 2 files: shard 1 owns f2.png and f3.png
SHARD_1 = ("f2.png", "f3.png")  # read and written by the shard's pool threads, in either order
BUCKET = "lent-io"


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A SeaweedFS S3 server of this module's own: stopping it disturbs no other test."""
    from tests.s3server import SeaweedS3

    with SeaweedS3(tmp_path_factory.mktemp("weed-lent-io")) as server:
        server.create_bucket(BUCKET)
        yield server


class Outage:
    """Stops ``server`` at the first ``stop_once`` call after shard 0 has committed, and starts
    it again at the first retryable ``ShardFailed`` after that (``stopped_at`` names the URL
    whose I/O the stop was for)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.armed = False
        self.stopped_at: list[str] = []
        self.restarted = False

    def stop_once(self, url: str) -> None:
        if self.armed and not self.stopped_at:
            self.stopped_at.append(url)
            self.server.stop()

    def on_event(self, event: Event) -> None:
        if isinstance(event, ShardCommitted) and event.shard == 0:
            self.armed = True
        if isinstance(event, ShardFailed) and event.retryable and self.stopped_at:
            if not self.restarted:
                self.restarted = True
                self.server.start()


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(natural(40 + 3 * i, 50, 3, seed=40 + i)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def on_s3(s3_server: Any, monkeypatch: pytest.MonkeyPatch, no_faults: None) -> Iterator[Any]:
    """This module's server in the environment, with botocore's own retries off (they would
    only wait out a server that stays down until the failure is reported); started again
    after the test whatever happened."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    yield s3_server
    s3_server.start()


def _transcode(client: Any, prefix: str, store: str, output: str) -> tuple[Any, dict[str, bytes]]:
    """``FRAMES`` PNGs uploaded under ``prefix``/in/ and a 3-shard transcode job of them."""
    inputs = {f"{prefix}/in/f{i}.png": _png(i) for i in range(FRAMES)}
    for key, body in inputs.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
    data = {
        "job": {"name": "lent-io-transcode", "kernel": "imaging.transcode", "store": store}
        | {"shards": 3},
        "params": {"inputs": f"s3://{BUCKET}/{prefix}/in/*.png", "output": output}
        | {"format": "png", "max_edge": 24},
        "retry": {"attempts": 3},
    }
    return tessera.load(data), inputs


def _run(job: Any, outage: Outage) -> tuple[Any, dict[int, list[Event]]]:
    events: list[Event] = []

    def listen(event: Event) -> None:
        events.append(event)
        outage.on_event(event)

    outcome = tessera.run(job, executor="local", progress=False, on_event=listen)
    return outcome, check_events(Run(outcome.ok, Path(), events), range(3), emits_started=True)


@pytest.mark.s3
def test_s3_stopped_during_an_output_write_is_retried_and_the_run_completes(
    on_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = on_s3.client()
    job, inputs = _transcode(client, "w", f"s3://{BUCKET}/w/store", f"s3://{BUCKET}/w/out")
    outage = Outage(on_s3)
    write = lent_io.write_bytes

    def write_bytes(url: str, data: bytes) -> None:
        if url.startswith(f"s3://{BUCKET}/w/out/"):
            outage.stop_once(url)
        write(url, data)

    monkeypatch.setattr(lent_io, "write_bytes", write_bytes)
    outcome, by_shard = _run(job, outage)

    assert outage.stopped_at in ([f"s3://{BUCKET}/w/out/{name}"] for name in SHARD_1)
    assert outage.restarted
    assert outcome.ok, outcome.failures
    failed = [e for e in by_shard[1] if isinstance(e, ShardFailed)]
    assert len(failed) == 1 and failed[0].retryable, by_shard[1]
    assert "LentIOError" in failed[0].reason and outage.stopped_at[0] in failed[0].reason
    assert all(len(by_shard[i]) == 2 for i in (0, 2))  # started, committed: once each

    status = tessera.status(job.store)
    assert status.complete and not status.failed  # not recorded as a kernel error
    assert status.attempts == {0: 1, 1: 2, 2: 1}

    listed = client.list_objects_v2(Bucket=BUCKET, Prefix="w/out/")["Contents"]
    assert sorted(o["Key"] for o in listed) == [f"w/out/f{i}.png" for i in range(FRAMES)]
    digests = b""
    for i in range(FRAMES):
        expected, _ = transcode_bytes(inputs[f"w/in/f{i}.png"], job.params)
        body = client.get_object(Bucket=BUCKET, Key=f"w/out/f{i}.png")["Body"].read()
        assert body == expected, f"out/f{i}.png differs"
        digests += hashlib.sha256(expected).digest()
    result = json.loads(client.get_object(Bucket=BUCKET, Key="w/store/result.json")["Body"].read())
    assert result["written"] == FRAMES and result["failed"] == 0
    assert result["sha256"] == hashlib.sha256(digests).hexdigest()
    client.close()


@pytest.mark.s3
def test_s3_stopped_while_an_input_is_read_is_retried(
    on_s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The store and the output on local disk, the inputs on S3: the server stops between
    shard 1's open of its first input and the read of its bytes."""
    client = on_s3.client()
    job, _ = _transcode(client, "r", str(tmp_path / "store"), str(tmp_path / "out"))
    outage = Outage(on_s3)
    open_input = lent_io.Inputs.open_input

    def open_then_stop(self: Any, url: str) -> Any:
        handle = open_input(self, url)
        outage.stop_once(url)
        return handle

    monkeypatch.setattr(lent_io.Inputs, "open_input", open_then_stop)
    outcome, _ = _run(job, outage)
    client.close()
    assert outage.stopped_at in ([f"s3://{BUCKET}/r/in/{name}"] for name in SHARD_1)
    assert not tessera.status(job.store).failed  # not a kernel error
    assert outcome.ok and outage.restarted, outcome.failures


# --- without a server: StoreIO and run_shard ----------------------------------------------------


def _probe_store(tmp_path: Path, **params: Any) -> tuple[Any, Store]:
    job = tessera.load(probe_job(tmp_path / "store", shards=2, **params))
    return job, Store.open_for_job(job, plan(job))


def test_store_io_raises_and_remembers_an_outage_but_not_a_missing_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, store = _probe_store(tmp_path)
    lent = StoreIO(store)
    with pytest.raises(FileNotFoundError):
        lent.open_input(str(tmp_path / "missing.png"))  # the job's fault: not lent I/O's
    assert lent.failure is None

    def down(url: str, data: bytes) -> None:
        raise ConnectionResetError(f"{url}: connection reset by peer")

    monkeypatch.setattr(lent_io, "write_bytes", down)
    with pytest.raises(LentIOError, match="writing .*x.bin: ConnectionResetError") as info:
        lent.write_file("x.bin", b"1")
    assert lent.failure is info.value
    assert isinstance(info.value, OSError)  # callers that catch OSError still see it
    assert isinstance(info.value.__cause__, ConnectionResetError)


def test_a_lent_io_failure_the_kernel_hides_is_retried_not_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe kernel with ``swallow = true`` catches the failed write and raises a
    RuntimeError from it: ``run_shard`` raises the remembered ``LentIOError`` instead
    (retryable), records no kernel error, and the next attempt commits."""
    monkeypatch.setenv("TESSERA_FAULTS", "0:io:1")
    job, store = _probe_store(tmp_path, swallow=True)
    with pytest.raises(LentIOError, match="injected I/O fault"):
        run_shard(job, 0)
    assert store.failures() == {} and store.committed() == set()
    result = run_shard(job, 0)
    assert result.status == "committed" and result.record["attempt"] == 2
    assert store.failures() == {} and store.attempts() == {0: 2}

    events: list[Event] = []
    outcome = tessera.run(job, executor="local", progress=False, on_event=events.append)
    assert outcome.ok and outcome.committed == 2
    assert not [e for e in events if isinstance(e, ShardFailed)]  # shard 1 had no fault


def _cause_chain_is_finite(exc: BaseException) -> bool:
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None:
        if id(link) in seen:
            return False
        seen.add(id(link))
        link = link.__cause__
    return True


@pytest.mark.parametrize("swallow", [False, True], ids=["raised", "wrapped-by-kernel"])
def test_the_raised_lent_io_error_has_a_finite_cause_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swallow: bool
) -> None:
    monkeypatch.setenv("TESSERA_FAULTS", "0:io:1")
    job, _ = _probe_store(tmp_path, swallow=swallow)
    with pytest.raises(LentIOError) as info:
        run_shard(job, 0)
    assert _cause_chain_is_finite(info.value)


def test_a_lent_failure_the_kernel_swallowed_is_retried_not_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel that catches a failed write and returns as if it had worked must not commit
    a shard whose file is missing: the engine raises the failure, and the next attempt
    commits."""
    from tests import probe_kernel

    monkeypatch.setenv("TESSERA_FAULTS", "0:io:1")
    job, store = _probe_store(tmp_path)
    original = probe_kernel.KERNEL.compute

    def careless(params: Any, seed: int, layout: Any, shard: int, io: Any = None) -> Any:
        try:
            return original(params, seed, layout, shard, io)
        except OSError:
            start, stop = layout.region(shard)["values"]
            return probe_kernel.ShardOutput(
                arrays={"values": probe_kernel._values(seed, start, stop)}
            )

    monkeypatch.setattr(probe_kernel.KERNEL, "compute", careless)
    with pytest.raises(LentIOError, match="caught by the kernel"):
        run_shard(job, 0)
    assert store.committed() == set() and store.failures() == {}
    assert run_shard(job, 0).status == "committed"


def test_a_file_written_in_pieces_holds_them_one_after_another(tmp_path: Path) -> None:
    """``write_file`` of pieces (a pyramid's zip: headers and the shards' tiles as views) writes
    their bytes in order, atomically, with the mode ``open`` would give."""
    blob = b"0123456789"
    pieces = [b"head", memoryview(blob)[2:5], b"", memoryview(blob)[7:], b"tail"]
    target = tmp_path / "out" / "x.zip"
    lent_io.write_bytes(str(target), pieces)
    assert target.read_bytes() == b"head234789tail"
    assert target.stat().st_mode & 0o777 == 0o666 & ~lent_io._umask()
    assert [p.name for p in target.parent.iterdir()] == ["x.zip"]  # no temporary left
    for one in (bytearray(blob), memoryview(blob)):  # any one buffer is still one file's bytes
        lent_io.write_bytes(str(target), one)
        assert target.read_bytes() == blob
