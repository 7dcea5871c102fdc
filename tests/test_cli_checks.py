"""What a person sees at the command line: flags checked before any work, --json that is JSON,
validate checking the exact command, status given a job file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.jobs import default_sigint, job_dict, write_job

TESSERA = [sys.executable, "-m", "tessera"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TESSERA, *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        env={**os.environ, "TESSERA_FAULTS": ""},
    )


@pytest.fixture
def job(tmp_path: Path) -> Path:
    return write_job(tmp_path / "job.toml", job_dict("store", shards=2, paths=16_384, steps=4))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--price-basis", "nonsense"], "--price-basis: 'nonsense' is not a price basis"),
        (["--price-basis", "m7q.huge:spot"], "m7q.huge is not in the price catalogue"),
        (["--budget", "1", "--price-basis", "nonsense"], "is not a price basis"),
        (["--executor", "local", "--workers", "2"], "--workers: applies to the dask executor"),
        (["--executor", "local", "--scheduler", "tcp://x:1"], "--scheduler: applies to the dask"),
        (["--gpu-workers", "1"], "--gpu-workers: 1: no CUDA device is usable"),
        (["--shard", "3"], "unrecognized arguments: --shard 3"),
        (["--executor", "nope"], "invalid choice: 'nope'"),
    ],
)
def test_bad_flags_are_refused_before_any_work(
    tmp_path: Path, job: Path, flags: list[str], message: str
) -> None:
    done = _cli("run", str(job), *flags, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "store").exists()  # nothing ran, nothing was created


def test_run_json_puts_one_json_document_on_stdout(tmp_path: Path, job: Path) -> None:
    done = _cli("run", str(job), "--executor", "local", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["n_shards"] == 2 and report["committed"] == 2
    assert "result:" in done.stderr
    status = _cli("status", "store", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["complete"] is True


def test_validate_takes_store_and_shards(tmp_path: Path, job: Path) -> None:
    done = _cli("validate", str(job), "--shards", "1", "--store", "elsewhere", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 shard," in done.stdout and f"store {tmp_path / 'elsewhere'}" in done.stdout
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("x")
    bad = _cli("validate", str(job), "--shards", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--shards: 0 is out of range" in bad.stderr


def test_status_of_a_job_file_says_so(tmp_path: Path, job: Path) -> None:
    done = _cli("status", str(job), cwd=tmp_path)
    assert done.returncode == 1
    assert "is a job file, not a store" in done.stderr
    assert "tessera status runs/NAME" in done.stderr


def test_kernels_lists_the_built_ins(tmp_path: Path) -> None:
    done = _cli("kernels", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = {k["name"]: k for k in json.loads(done.stdout)}
    assert found["montecarlo.gbm"]["distribution"] == "tessera"
    assert found["montecarlo.gbm"]["target"] == "tessera.kernels.montecarlo.gbm:KERNEL"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _timed(*args: str, cwd: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    import time

    started = time.monotonic()
    done = subprocess.run(
        [*TESSERA, *args], capture_output=True, text=True, timeout=240, cwd=cwd,
        env={**os.environ, "TESSERA_FAULTS": "", **env},
    )  # fmt: skip
    return done, time.monotonic() - started


def test_unreachable_inputs_store_and_scheduler_are_named_and_fail_fast(tmp_path: Path) -> None:
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_closed_port()}",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
    }
    transcode = {
        "job": {"name": "tc", "kernel": "imaging.transcode", "store": "store", "shards": 1},
        "params": {"inputs": "s3://b/frames/*.png", "output": "out", "format": "webp"},
    }
    from tests.jobs import to_toml

    (tmp_path / "tc.toml").write_text(to_toml(transcode))
    for command in ("validate", "run"):
        done, seconds = _timed(command, "tc.toml", cwd=tmp_path, env=env)
        assert done.returncode == 1, done.stderr
        assert "the input params.inputs s3://b/frames/*.png cannot be reached" in done.stderr
        assert "nothing was run" in done.stderr and "store" not in done.stderr
        assert seconds < 30, seconds  # a refused connection is known at once, not after retries
    write_job(tmp_path / "mc.toml", job_dict("s3://b/run", shards=1, paths=16_384, steps=4))
    done, _ = _timed("run", "mc.toml", cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stderr
    assert "the store s3://b/run cannot be reached" in done.stderr
    write_job(tmp_path / "local.toml", job_dict("store", shards=1, paths=16_384, steps=4))
    port = _closed_port()
    done, seconds = _timed(
        "run", "local.toml", "--scheduler", f"tcp://127.0.0.1:{port}", cwd=tmp_path, env={}
    )
    assert done.returncode == 1, done.stderr
    assert f"the Dask scheduler at tcp://127.0.0.1:{port} cannot be reached" in done.stderr
    assert seconds < 30, seconds


def test_ctrl_c_on_the_dask_executor_prints_one_line_and_exits_130(tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal sends it: one line, exit 130, the
    committed shards kept, and a second run resumes."""
    import signal
    import time

    data = {
        "job": {"name": "spin", "kernel": "benchmarks.spin:KERNEL", "store": "store", "shards": 8},
        "params": {"seconds": 1.0, "payload_kib": 1},
    }
    from tests.jobs import to_toml

    (tmp_path / "job.toml").write_text(to_toml(data))
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "TESSERA_FAULTS": "", "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [*TESSERA, "run", "job.toml", "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 180
    while not list((tmp_path / "store" / "_shards").glob("*.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.startswith("interrupted:")]
    assert len(lines) == 1, err
    assert lines[0].endswith("committed and kept; run again to resume")
    assert "Traceback" not in err and "CancelledError" not in err, err
    assert len(err.splitlines()) < 15, err
    done = sorted((tmp_path / "store" / "_shards").glob("*.json"))
    again = subprocess.run(
        [*TESSERA, "run", "job.toml", "--executor", "local"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"{8 - len(done)} of 8 shards to run" in again.stderr
