"""Compile time is not shard time: each worker process compiles the kernel before its first
shard, the report shows it apart, and shard seconds (hence throughput and cost) leave it out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.jobs import job_dict, write_job


@pytest.mark.slow
@pytest.mark.parametrize("executor", [["--executor", "local"], ["--workers", "2"]])
def test_compile_seconds_are_reported_apart_from_shard_seconds(
    tmp_path: Path, executor: list[str]
) -> None:
    job = write_job(tmp_path / "job.toml", job_dict("store", shards=4, paths=65_536, steps=16))
    env = {**os.environ, "TESSERA_FAULTS": "", "NUMBA_CACHE_DIR": str(tmp_path / "cold-cache")}
    done = subprocess.run(
        [sys.executable, "-m", "tessera", "run", str(job), *executor],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "store" / "report.json").read_text())
    records = [
        json.loads((tmp_path / "store" / "_shards" / f"{i}.json").read_text()) for i in range(4)
    ]
    pids = {r["pid"] for r in records}
    compiled = [r for r in records if "compile_seconds" in r]
    assert len(compiled) == len(pids) == report["compile"]["processes"]  # once per process
    assert report["compile"]["seconds_total"] == pytest.approx(
        sum(r["compile_seconds"] for r in compiled), abs=1e-5
    )
    # a cold cache: compiling costs seconds, a shard of 65,536 x 16 path-steps far less, and
    # the shard's own seconds do not include it
    assert min(r["compile_seconds"] for r in compiled) > 5 * max(r["seconds"] for r in records)
    assert report["shards"]["seconds_max"] == max(r["seconds"] for r in records)
    assert "compile" in done.stdout and "not in shard seconds" in done.stdout
