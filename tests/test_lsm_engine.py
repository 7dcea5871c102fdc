"""montecarlo.gbm's Longstaff-Schwartz products as a two-stage job through the engine: the
calibrate stage's shard commits before any pricing shard starts, a run killed (SIGKILL)
during the pricing stage resumes without recalibrating, and result.json is byte-identical for
1, 7 and 16 pricing shards on local, Dask and ``tessera batch local``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tessera
from tessera.engine import spec
from tests.jobs import write_job

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "tessera.engine.cli"]


def lsm_job(store: Path, shards: int) -> dict[str, Any]:
    """An American put of Longstaff and Schwartz's Table 1 (S = 36, sigma = 0.2, T = 1),
    small: 131,072 pricing paths (32 blocks), 10,000 calibration paths."""
    return {
        "job": {"name": "lsm", "kernel": "montecarlo.gbm", "store": str(store)}
        | {"shards": shards, "seed": 3},
        "params": {
            "paths": 131_072,
            "steps": 50,
            "spot": 36.0,
            "strike": 40.0,
            "rate": 0.06,
            "volatility": 0.2,
            "maturity": 1.0,
            "products": ["american_put", "european_put"],
            "lsm": {"calibration_paths": 10_000},
        },
        "retry": {"attempts": 2},
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("lsm-reference")
    outcome = tessera.run(lsm_job(folder / "store", 1), executor="local", progress=False)
    assert outcome.ok, outcome.failures
    return (folder / "store" / "result.json").read_bytes()


def _cli(*args: str, faults: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TESSERA_FAULTS": faults, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env
    )


def test_the_job_has_two_stages_and_calibrates_once(tmp_path: Path) -> None:
    job = spec.from_dict(lsm_job(tmp_path / "store", 16))
    names = [(name, len(shards)) for name, shards in job.layout.stage_ranges()]
    assert names == [("calibrate", 1), ("price", 16)]


@pytest.mark.parametrize("shards", [7, 16])
def test_local_runs_are_byte_identical_for_any_pricing_shard_count(
    shards: int, reference: bytes, tmp_path: Path
) -> None:
    outcome = tessera.run(lsm_job(tmp_path / "store", shards), executor="local", progress=False)
    assert outcome.ok, outcome.failures
    assert (tmp_path / "store" / "result.json").read_bytes() == reference
    # 32 blocks: 7 asked-for shards are 6 of 6 blocks and one of 2 (whole chunks)
    priced = spec.from_dict(lsm_job(tmp_path / "store", shards)).layout.n_shards - 1
    assert priced == {7: 6, 16: 16}[shards]
    records = [
        json.loads((tmp_path / "store" / "_shards" / f"{i}.json").read_text())
        for i in range(priced + 1)
    ]
    assert [r["stage"] for r in records] == ["calibrate"] + ["price"] * priced


@pytest.mark.slow
def test_dask_and_batch_local_give_the_same_bytes(reference: bytes, tmp_path: Path) -> None:
    outcome = tessera.run(lsm_job(tmp_path / "dask", 7), executor="dask", workers=2, progress=False)
    assert outcome.ok, outcome.failures
    assert (tmp_path / "dask" / "result.json").read_bytes() == reference
    path = write_job(tmp_path / "job.toml", lsm_job(tmp_path / "batch", 7))
    proc = _cli("batch", "local", str(path), "--parallel", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "batch" / "result.json").read_bytes() == reference


@pytest.mark.slow
@pytest.mark.parametrize("how", ["run", "batch-local"])
def test_killed_during_pricing_resumes_without_recalibrating(
    how: str, reference: bytes, tmp_path: Path
) -> None:
    """Pricing shard 3's process dies at once (``3:exit``: exit status 137, no cleanup, as
    SIGKILL): ``tessera run --executor local`` dies with it; under ``batch local`` that
    child dies and the run ends failed. The rerun keeps the calibrate shard's commit record
    and coefficients, and result.json equals an undisturbed run's."""
    store = tmp_path / "store"
    path = write_job(tmp_path / "job.toml", lsm_job(store, 7))
    if how == "run":
        first = _cli("run", str(path), "--executor", "local", faults="3:exit")
    else:
        first = _cli("batch", "local", str(path), "--parallel", "2", faults="3:exit")
    assert first.returncode != 0
    calibrated = (store / "_shards" / "0.json").read_bytes()
    assert not (store / "result.json").exists()
    again = (
        _cli("run", str(path), "--executor", "local")
        if how == "run"
        else _cli("batch", "local", str(path), "--parallel", "2")
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert (store / "_shards" / "0.json").read_bytes() == calibrated
    assert (store / "result.json").read_bytes() == reference
