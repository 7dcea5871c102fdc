"""The CUDA Heston kernel against the CPU kernel on the same streams: rows of sums (bit for bit
under the simulator), prices (1e-9 relative, DESIGN.md), grid-stride determinism, and the
kernel's device selection.

Under the simulator the device code runs with NumPy floats and an exactly rounded fma, and with
CUDA_MC_THREADS = LANES the sums are added in the CPU's order, so the rows are bit-identical;
on a device NVVM fuses some multiply-adds and only the 1e-9 contract is asserted. The simulator
is slow: a few hundred paths of a few steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tessera.kernels import cuda_device
from tessera.kernels.config import CUDA_MC_THREADS
from tessera.kernels.montecarlo import heston_cpu, heston_gpu
from tessera.kernels.montecarlo.heston import KERNEL, kernel_args, n_blocks

SIMULATED = cuda_device.simulated()
EXACT = SIMULATED and CUDA_MC_THREADS == heston_cpu.LANES
SCALE = 1 if SIMULATED else 256  # samples multiplier on a device
BASE: dict[str, Any] = {
    "spot": 100.0,
    "strike": 100.0,
    "rate": 0.03,
    "maturity": 1.0,
    "v0": 0.04,
    "kappa": 1.2,
    "theta": 0.05,
    "xi": 0.9,  # 2 kappa theta = 0.12 < xi**2 = 0.81: both QE branches are taken
    "rho": -0.7,
    "barrier": 125.0,
    "products": list(heston_cpu.PRODUCT_ORDER),
    "greeks": ["delta", "gamma", "vega"],
}


def _rows(raw: dict[str, Any], seed: int, start: int = 0, stop: int | None = None):
    params = KERNEL.parse_params(raw)
    stop = n_blocks(params) if stop is None else stop
    args = (params.samples, params.steps, *kernel_args(params, seed))
    return (
        params,
        heston_gpu.simulate_blocks(start, stop, *args),
        heston_cpu.simulate_blocks(start, stop, *args),
    )


def _assert_agree(gpu_rows: np.ndarray, cpu_rows: np.ndarray) -> None:
    if EXACT:
        np.testing.assert_array_equal(gpu_rows, cpu_rows)
    else:
        np.testing.assert_allclose(gpu_rows, cpu_rows, rtol=1e-11, atol=1e-9)


CASES = {
    # QE with every Greek (vega re-simulates), antithetic, a partial block
    "qe-antithetic-greeks": ({**BASE, "paths": 2 * 150 * SCALE, "steps": 5}, 99),
    # martingale-corrected QE, plain paths, no Greeks
    "qe-m-plain": (
        {**BASE, "paths": 130 * SCALE, "steps": 4, "antithetic": False, "greeks": []},
        5,
    ),
    "qe-m-greeks": (
        {**BASE, "paths": 2 * 70 * SCALE, "steps": 3, "martingale_correction": True},
        3,
    ),
    # full-truncation Euler, the largest seed
    "euler": ({**BASE, "paths": 2 * 100 * SCALE, "steps": 3, "scheme": "euler"}, 2**64 - 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rows_and_prices_equal_the_cpu_kernel(case):
    raw, seed = CASES[case]
    params, rows_gpu, rows_cpu = _rows(raw, seed)
    _assert_agree(rows_gpu, rows_cpu)
    r_gpu = KERNEL.reduce(params, seed, {"sums": rows_gpu})["products"]
    r_cpu = KERNEL.reduce(params, seed, {"sums": rows_cpu})["products"]
    for name, p in r_cpu.items():
        assert abs(r_gpu[name]["price"] - p["price"]) <= 1e-9 * abs(p["price"]), name


def test_last_partial_block_far_into_the_stream():
    """Sample indices past 2**32 (counter word 2): the rows of a shard that owns only the
    job's last, partial block."""
    raw = {**BASE, "paths": 2 * (2**32 + 1024 + 37), "steps": 2, "greeks": ["delta"]}
    params = KERNEL.parse_params(raw)
    last = n_blocks(params) - 1
    assert last * heston_cpu.BLOCK_SAMPLES > 2**32
    _, rows_gpu, rows_cpu = _rows(raw, 7, last, last + 1)
    assert rows_gpu[:, heston_cpu.COL_COUNT].tolist() == [37]
    _assert_agree(rows_gpu, rows_cpu)


def test_grid_stride_rows_do_not_depend_on_the_grid():
    """Small test-only blocks so that one thread block strides over several: every grid gives
    the same rows, and they add up to the CPU's one row."""
    raw = {**BASE, "paths": 2 * 200, "steps": 2, "greeks": []}
    params = KERNEL.parse_params(raw)
    args = (params.samples, params.steps, *kernel_args(params, 11))
    by_grid = [heston_gpu.simulate_blocks(0, 4, *args, block_samples=64, grid=g) for g in (1, 3)]
    np.testing.assert_array_equal(by_grid[1], by_grid[0])
    assert by_grid[0][:, heston_cpu.COL_COUNT].tolist() == [64, 64, 64, 8]
    cpu_row = heston_cpu.simulate_blocks(0, 1, *args)[0]
    np.testing.assert_allclose(by_grid[0].sum(axis=0), cpu_row, rtol=1e-12)


class _DeviceIO:
    """The part of ShardIO the kernel uses: the device the engine lends."""

    device = "cuda"


def test_kernel_compute_selects_the_twin():
    raw, seed = CASES["qe-antithetic-greeks"]
    params = KERNEL.parse_params(raw)
    layout = KERNEL.layout(params, 1)
    on_gpu = KERNEL.compute(params, seed, layout, 0, io=_DeviceIO())
    on_cpu = KERNEL.compute(params, seed, layout, 0)
    assert on_gpu.stats["device"] == "cuda" and "device" not in on_cpu.stats
    _assert_agree(on_gpu.arrays["sums"], on_cpu.arrays["sums"])
    if EXACT:
        assert KERNEL.reduce(params, seed, on_gpu.arrays) == KERNEL.reduce(
            params, seed, on_cpu.arrays
        )
