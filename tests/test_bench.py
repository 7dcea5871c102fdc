"""`tessera bench --quick`: runs in CI, writes valid JSON and a PNG."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_quick_writes_json_and_a_png(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tessera.engine.cli",
            "bench",
            "--quick",
            "--results",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "suite.json").read_text())
    machine = data["machine"]
    for key in ("cpu_model", "cores", "date", "git", "versions"):
        assert machine[key], key
    assert data["quick"] is True
    mc = data["results"]["montecarlo"]
    assert mc["tessera_path_steps_per_s"] > 0 and mc["speedup_vs_numpy"] > 1
    engine = data["results"]["engine"]
    assert engine["empty_shards"]["us_per_shard"] > 0
    assert 0 < engine["shards_1s"]["efficiency"] <= 1.05
    store = data["results"]["store"]
    assert store["local"]["mb_per_s"] > 0 and store["s3_seaweedfs"]["mb_per_s"] > 0
    models = {row["pricing"] for row in data["throughput_per_dollar"]}
    assert models == {"spot", "on-demand", "fargate-spot", "fargate"}
    from PIL import Image

    with Image.open(tmp_path / "suite.png") as png:
        assert png.format == "PNG" and png.size == (1300, 650)
    assert elapsed < 240, f"bench --quick took {elapsed:.0f} s"
