"""AWS Batch, the container side: ``tessera worker`` and ``tessera batch local`` as real
processes (exit codes, retries, SIGTERM, logs without secrets, byte-identical results)."""

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

from tessera.engine import spec
from tessera.engine.batch import contract as c
from tessera.engine.batch import submit
from tessera.engine.store import Store
from tests.jobs import job_dict, write_job

TESSERA = [sys.executable, "-m", "tessera.engine.cli"]
FAKE_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE1234",
    "AWS_SECRET_ACCESS_KEY": "fakeSecretDoNotPrint/0123456789abcdefXYZ",
    "AWS_SESSION_TOKEN": "FakeSessionTokenThatMustNeverAppear==",
}


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TESSERA_FAULTS": "", **extra}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TESSERA, *args], capture_output=True, text=True, timeout=240, env=env or _env()
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """result.json of `tessera run --executor local` on the 4-shard test job."""
    folder = tmp_path_factory.mktemp("reference")
    path = write_job(folder / "job.toml", job_dict(folder / "store", shards=4))
    proc = _cli("run", str(path), "--executor", "local")
    assert proc.returncode == 0, proc.stderr
    return (folder / "store" / "result.json").read_bytes()


def _submission(store: Path, **params: Any) -> submit.Submission:
    """A submission of every shard, written to the store, as `tessera batch submit` makes it."""
    job = spec.from_dict(job_dict(store, **params))
    s = submit.prepare(job, queue="q", definition="d")
    submit.finalize(s, depends_on=[])
    submit.write_files(s)
    return s


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_batch_local_is_byte_identical_to_tessera_run(tmp_path: Path, reference: bytes) -> None:
    path = write_job(tmp_path / "job.toml", job_dict(tmp_path / "store", shards=4))
    proc = _cli("batch", "local", str(path), "--parallel", "2")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "store" / "result.json").read_bytes() == reference
    events = _events(proc.stdout)
    committed = sorted(e["shard"] for e in events if e["event"] == "shard_committed")
    assert committed == [0, 1, 2, 3]
    assert {e["array_index"] for e in events if e["event"] == "shard_committed"} == {0, 1, 2, 3}
    assert all(e["attempt"] == 1 and e["throughput"] > 0 for e in events if "throughput" in e)
    assert [e["event"] for e in events][-1] == "reduced"
    report = json.loads((tmp_path / "store" / "report.json").read_text())
    assert report["executor"] == "batch" and report["committed"] == 4
    assert "result: " in proc.stdout


def test_batch_local_retries_like_the_retry_strategy(tmp_path: Path, reference: bytes) -> None:
    """Shard 1 is interrupted on its first attempt (exit 75: retried), shard 2's kernel raises
    (exit 1: not retried), so no result; the resubmission runs only shard 2."""
    path = write_job(tmp_path / "job.toml", job_dict(tmp_path / "store", shards=4))
    proc = _cli(
        "batch",
        "local",
        str(path),
        "--parallel",
        "2",
        env=_env(TESSERA_FAULTS="1:interrupt:1;2:raise"),
    )
    assert proc.returncode == 1
    assert (
        "local-0:1 attempt 1 exited 75 (Essential container in task exited): RETRY" in proc.stderr
    )
    assert "local-0:2 attempt 1 exited 1 (Essential container in task exited): EXIT" in proc.stderr
    assert "1 children failed" in proc.stderr
    store = Store.open_existing(str(tmp_path / "store"))
    assert store.committed() == {0, 1, 3}
    assert store.commit_records()[1]["attempt"] == 2
    assert store.attempts()[2] == 1  # a kernel error is never retried blindly
    assert store.read_json("result.json") is None
    events = _events(proc.stdout)
    assert any(e["event"] == "shard_interrupted" and e["shard"] == 1 for e in events)
    failed = [e for e in events if e["event"] == "shard_failed"]
    assert [(e["shard"], "InjectedError" in e["reason"]) for e in failed] == [(2, True)]

    proc = _cli("batch", "local", str(path))
    assert proc.returncode == 0, proc.stderr
    assert [e["shard"] for e in _events(proc.stdout) if e["event"] == "shard_committed"] == [2]
    assert (tmp_path / "store" / "result.json").read_bytes() == reference
    folders = sorted(p.name for p in (tmp_path / "store" / "_batch").iterdir())
    assert len(folders) == 2
    second = json.loads((tmp_path / "store" / "_batch" / folders[1] / "index-0.json").read_text())
    assert second["shards"] == [2]  # the resubmission indexes only the pending shard


def test_sigterm_mid_shard_exits_retryable_without_commit_then_retry_completes(
    tmp_path: Path,
) -> None:
    """A real `tessera worker` with a ~1 s shard gets a real SIGTERM once its attempt marker
    shows it started: no commit record, exit 75; attempt 2 commits."""
    s = _submission(tmp_path / "store", shards=2, paths=131_072 * 96, steps=256)
    argv = [*TESSERA, "worker", s.job_url, "--index-file", "index-0.json"]
    env = _env(AWS_BATCH_JOB_ARRAY_INDEX="1", AWS_BATCH_JOB_ATTEMPT="1")
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    store = Store.open_existing(s.job.store)
    deadline = time.monotonic() + 60
    while not store.attempts().get(1) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert store.attempts().get(1) == 1, proc.communicate()  # the attempt marker: it started
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == c.EXIT_RETRYABLE, stderr
    assert not (tmp_path / "store" / "_shards" / "1.json").exists()
    (event,) = [e for e in _events(stdout) if e["event"] == "shard_interrupted"]
    assert (
        event["shard"] == 1 and event["attempt"] == 1 and "stopped before commit" in event["reason"]
    )

    retry_env = _env(AWS_BATCH_JOB_ARRAY_INDEX="1", AWS_BATCH_JOB_ATTEMPT="2")
    again = subprocess.run(argv, env=retry_env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    record = json.loads((tmp_path / "store" / "_shards" / "1.json").read_text())
    assert record["attempt"] == 2
    (done,) = [e for e in _events(again.stdout) if e["event"] == "shard_committed"]
    assert done["attempt"] == 2 and done["seconds"] > 0 and done["work_unit"] == "path-steps"


def test_worker_output_never_contains_credentials(tmp_path: Path) -> None:
    s = _submission(tmp_path / "store", shards=2)
    env = _env(**FAKE_SECRETS, AWS_BATCH_JOB_ARRAY_INDEX="0")
    runs = [
        subprocess.run(
            [*TESSERA, "-v", "worker", s.job_url, "--index-file", "index-0.json"],
            env=env, capture_output=True, text=True, timeout=120,
        ),
        subprocess.run(  # a kernel error
            [*TESSERA, "-v", "worker", s.job_url, "--index-file", "index-0.json", "--index", "1"],
            env={**env, "TESSERA_FAULTS": "1:raise"}, capture_output=True, text=True, timeout=120,
        ),
        subprocess.run(  # a bad array index
            [*TESSERA, "worker", s.job_url, "--index-file", "index-0.json", "--index", "9"],
            env=env, capture_output=True, text=True, timeout=120,
        ),
        subprocess.run(  # reduce before every shard committed
            [*TESSERA, "-v", "worker", s.job_url, "--reduce"],
            env=env, capture_output=True, text=True, timeout=120,
        ),
    ]  # fmt: skip
    assert [r.returncode for r in runs] == [0, 1, 2, 1]
    assert "array index 9 is out of range" in runs[2].stderr
    assert "1 of 2 shards are not committed (1 failed)" in runs[3].stderr
    for run in runs:
        for secret in FAKE_SECRETS.values():
            assert secret not in run.stdout and secret not in run.stderr
    path = write_job(tmp_path / "job.toml", job_dict(tmp_path / "store2", shards=2))
    local = _cli("-v", "batch", "local", str(path), env=env)
    assert local.returncode == 0, local.stderr
    for secret in FAKE_SECRETS.values():
        assert secret not in local.stdout and secret not in local.stderr


def test_single_job_needs_no_array_index(tmp_path: Path) -> None:
    """A submission with one pending shard is a single Batch job: no AWS_BATCH_JOB_ARRAY_INDEX,
    the child takes index 0 of its index file."""
    job = spec.from_dict(job_dict(tmp_path / "store", shards=3))
    s = submit.prepare(job, queue="q", definition="d", shards=[2])
    submit.finalize(s, depends_on=[])
    submit.write_files(s)
    assert "arrayProperties" not in s.arrays[0]
    env = {k: v for k, v in _env().items() if k != c.ENV_ARRAY_INDEX}
    proc = _cli("worker", s.job_url, "--index-file", "index-0.json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert Store.open_existing(job.store).committed() == {2}


@pytest.mark.s3
def test_batch_local_on_s3_reads_the_job_and_index_from_the_store(
    tmp_path: Path, seaweed_s3: Any, reference: bytes
) -> None:
    seaweed_s3.create_bucket("tessera-batch")
    url = "s3://tessera-batch/local"
    path = write_job(tmp_path / "job.toml", job_dict(url, shards=2))  # same bytes as 4 shards
    env = _env(**seaweed_s3.env())
    proc = _cli("batch", "local", str(path), "--parallel", "2", env=env)
    assert proc.returncode == 0, proc.stderr
    assert seaweed_s3.secret_key not in proc.stdout + proc.stderr
    client = seaweed_s3.client()
    try:
        body = client.get_object(Bucket="tessera-batch", Key="local/result.json")["Body"].read()
        listed = client.list_objects_v2(Bucket="tessera-batch", Prefix="local/_batch/")
    finally:
        client.close()
    assert body == reference
    names = sorted(o["Key"].rsplit("/", 1)[-1] for o in listed["Contents"])
    assert names == ["index-0.json", "job.json"]


def test_the_array_index_falls_back_to_the_job_id_suffix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's Batch gives a child ``AWS_BATCH_JOB_ID=<parent>:<index>`` and no
    ``AWS_BATCH_JOB_ARRAY_INDEX``; real Batch sets both (and the variable wins). A worker with
    only the id runs the shard of its suffix."""
    from tessera.engine.config import batch_env, index_of_job_id

    parent = "6a7b2c1e-1f0a-4f7e-9f34-2f1d0c9b8a7e"
    assert index_of_job_id(f"{parent}:3") == 3
    assert index_of_job_id(parent) is None
    assert index_of_job_id(f"{parent}:x") is None
    monkeypatch.delenv("AWS_BATCH_JOB_ARRAY_INDEX", raising=False)
    monkeypatch.setenv("AWS_BATCH_JOB_ID", f"{parent}:1")
    assert batch_env().array_index == 1
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "0")
    assert batch_env().array_index == 0

    s = _submission(tmp_path / "store", shards=2)
    env = {k: v for k, v in _env().items() if k != "AWS_BATCH_JOB_ARRAY_INDEX"}
    env["AWS_BATCH_JOB_ID"] = f"{parent}:1"
    proc = subprocess.run(
        [*TESSERA, "worker", s.job_url, "--index-file", "index-0.json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert Store.open_existing(s.job.store).committed() == {1}
