"""The CUDA Monte Carlo kernel against the CPU kernel on the same stream: rows of sums, prices
(1e-9 relative, DESIGN.md), grid-stride determinism, the engine's device selection end to end.

Under the simulator the device code runs with Python floats and an exactly rounded fma, and with
CUDA_MC_THREADS = LANES the sums are added in the CPU's order, so the rows are bit-identical;
on a device NVVM fuses some multiply-adds and only the 1e-9 contract is asserted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tessera.engine import executors, spec
from tessera.engine.run import run_job
from tessera.engine.store import Store
from tessera.kernels import cuda_device
from tessera.kernels.config import CUDA_MC_THREADS
from tessera.kernels.montecarlo import cpu, gpu
from tessera.kernels.montecarlo.gbm import KERNEL, _constants, n_blocks
from tessera.kernels.rng import seed_key
from tests.jobs import job_dict

SIMULATED = cuda_device.simulated()
EXACT = SIMULATED and CUDA_MC_THREADS == cpu.LANES
ALL = list(cpu.PRODUCT_ORDER)
BASE: dict[str, Any] = {
    "spot": 100.0,
    "strike": 100.0,
    "rate": 0.03,
    "volatility": 0.25,
    "maturity": 1.0,
    "barrier": 125.0,
    "products": ALL,
    "control_variate": True,
}
SCALE = 1 if SIMULATED else 64  # samples multiplier on a device


def _args(raw: dict[str, Any], seed: int) -> tuple[Any, tuple[Any, ...]]:
    params = KERNEL.parse_params(raw)
    consts = np.array(_constants(params), dtype=np.float64)
    key = np.array(seed_key(seed), dtype=np.uint64)
    arith = "asian_arithmetic_call" in params.products
    return params, (params.samples, params.steps, consts, key, params.antithetic, arith)


def _prices(params: Any, rows: np.ndarray, seed: int) -> dict[str, float]:
    result = KERNEL.reduce(params, seed, {"sums": rows})
    return {name: p["price"] for name, p in result["products"].items()}


def _assert_agree(gpu_rows: np.ndarray, cpu_rows: np.ndarray) -> None:
    if EXACT:
        np.testing.assert_array_equal(gpu_rows, cpu_rows)
    else:
        np.testing.assert_allclose(gpu_rows, cpu_rows, rtol=1e-11, atol=1e-9)


CASES = {
    # name: (params, seed): antithetic/plain, with and without the arithmetic Asian, partial
    # last step group (7 = 4 + 3 steps), one step, exactly one group
    "antithetic-7-steps": ({**BASE, "paths": 2 * 300 * SCALE, "steps": 7}, 99),
    "plain-4-steps": ({**BASE, "paths": 257 * SCALE, "steps": 4, "antithetic": False}, 5),
    "european-1-step": (
        {**BASE, "paths": 2 * 100 * SCALE, "steps": 1, "products": ALL[:2]},
        2**64 - 1,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rows_and_prices_equal_the_cpu_kernel(case):
    raw, seed = CASES[case]
    params, args = _args(raw, seed)
    rows_gpu = gpu.simulate_blocks(0, n_blocks(params), *args)
    rows_cpu = cpu.simulate_blocks(0, n_blocks(params), *args)
    _assert_agree(rows_gpu, rows_cpu)
    p_gpu, p_cpu = _prices(params, rows_gpu, seed), _prices(params, rows_cpu, seed)
    for name in p_cpu:
        assert abs(p_gpu[name] - p_cpu[name]) <= 1e-9 * abs(p_cpu[name]), (name, p_gpu, p_cpu)


def test_last_partial_block_far_into_the_stream():
    """Block indices past 2**20 and sample indices past 2**32 (counter word 2): the rows of a
    shard that owns only the job's last, partial block."""
    raw = {**BASE, "paths": 2 * (2**32 + 4096 + 37), "steps": 5}
    params, args = _args(raw, 7)
    last = n_blocks(params) - 1
    assert last * cpu.BLOCK_SAMPLES > 2**32
    rows_gpu = gpu.simulate_blocks(last, last + 1, *args)
    rows_cpu = cpu.simulate_blocks(last, last + 1, *args)
    assert rows_gpu[:, cpu.COL_COUNT].tolist() == [37]
    _assert_agree(rows_gpu, rows_cpu)


def test_grid_stride_rows_do_not_depend_on_the_grid():
    """Small blocks (a test-only block size) so that one thread block strides over several
    blocks: every grid gives the same rows, and they add up to the CPU's one row."""
    raw, seed = CASES["antithetic-7-steps"]
    params, args = _args({**raw, "paths": 2 * 300}, seed)
    by_grid = [gpu.simulate_blocks(0, 5, *args, block_samples=64, grid=g) for g in (1, 2, 5)]
    for rows in by_grid[1:]:
        np.testing.assert_array_equal(rows, by_grid[0])
    assert by_grid[0][:, cpu.COL_COUNT].tolist() == [64, 64, 64, 64, 44]
    cpu_row = cpu.simulate_blocks(0, 1, *args)[0]
    np.testing.assert_allclose(by_grid[0].sum(axis=0), cpu_row, rtol=1e-12)


def test_empty_block_range_is_refused():
    params, args = _args({**BASE, "paths": 600, "steps": 3}, 1)
    with pytest.raises(ValueError, match="hold no samples"):
        gpu.simulate_blocks(1, 2, *args)


class _DeviceIO:
    """The part of tessera.kernels.base.ShardIO the GBM kernel uses: the device the engine lends."""

    device = "cuda"


def test_kernel_compute_selects_the_twin_and_prices_agree():
    raw, seed = CASES["antithetic-7-steps"]
    # two blocks (the second partial), one step: the smallest job with two shards
    params = KERNEL.parse_params({**raw, "paths": 2 * (cpu.BLOCK_SAMPLES + 60), "steps": 1})
    layout = KERNEL.layout(params, 2)
    assert layout.n_shards == 2
    parts_gpu, parts_cpu = [], []
    for shard in range(layout.n_shards):
        output = KERNEL.compute(params, seed, layout, shard, io=_DeviceIO())
        arrays, stats = output.arrays, output.stats
        assert stats["device"] == "cuda"
        parts_gpu.append(arrays["sums"])
        output = KERNEL.compute(params, seed, layout, shard)
        arrays, stats = output.arrays, output.stats
        assert "device" not in stats
        parts_cpu.append(arrays["sums"])
    rows_gpu, rows_cpu = np.concatenate(parts_gpu), np.concatenate(parts_cpu)
    _assert_agree(rows_gpu, rows_cpu)
    p_gpu, p_cpu = _prices(params, rows_gpu, seed), _prices(params, rows_cpu, seed)
    worst = max(abs(p_gpu[k] - p_cpu[k]) / abs(p_cpu[k]) for k in p_cpu)
    assert worst <= 1e-9, (worst, p_gpu, p_cpu)


def test_gpu_job_end_to_end_agrees_with_the_cpu_job(tmp_path: Path) -> None:
    """resources.gpus = 1 reaches the kernel through the engine (local executor): the shards
    run on the device and the prices match the CPU job's."""
    results = {}
    for gpus in (0, 1):
        paths = 2 * (cpu.BLOCK_SAMPLES + 60)
        data = job_dict(tmp_path / f"gpus{gpus}", shards=2, paths=paths, steps=1)
        data["resources"] = {"gpus": gpus}
        job = spec.from_dict(data)
        assert job.resources.device == ("cuda" if gpus else "cpu")
        outcome = run_job(job, executors.create("local"), lambda e: None)
        assert outcome.ok, outcome.failures
        store = Store.open_existing(job.store)
        results[gpus] = json.loads(store.fs.cat_file(f"{job.store}/result.json"))
        records = [store.read_json(f"_shards/{i}.json") for i in range(2)]
        assert [r["stats"].get("device", "cpu") for r in records] == [job.resources.device] * 2
    for name, cpu_p in results[0]["products"].items():
        gpu_p = results[1]["products"][name]
        assert math.isclose(gpu_p["price"], cpu_p["price"], rel_tol=1e-9), (name, gpu_p, cpu_p)
    if EXACT:
        assert results[1] == results[0]
