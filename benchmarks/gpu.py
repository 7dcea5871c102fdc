"""Benchmark: the CUDA twins on one GPU, against baselines measured in the same run.

1. runs the ``gpu``-marked tests (``pytest -m gpu``: the CUDA twin suite on the device);
2. Monte Carlo (``montecarlo.gbm``, DESIGN.md's example job: five products, antithetic,
   252 steps) in path-steps per second on the GPU and on the CPU kernel with all of the
   machine's cores, and the agreement of the two on the same job (max relative price
   difference; the contract is 1e-9);
3. 2x2 downsampling in GB/s (bytes read + written) against a device-to-device copy of the
   same input (read + written), also on the device.

Writes ``benchmarks/results/gpu.json`` (or ``--results DIR``) with the machine, the device and
pass/fail against the targets of issue 7 (one H100): Monte Carlo >= 150 G path-steps/s or >= 50x
the CPU rate; downsampling >= 50% of the copy bandwidth. Finishes in under 5 minutes; ``--quick``
in about one. Refuses (exit 2) without a CUDA device.

    python benchmarks/gpu.py [--quick] [--no-tests] [--results DIR]

``--simulator`` runs the same code under Numba's CUDA simulator with tiny sizes, to check the
script itself on a machine without a GPU; it measures nothing and writes ``gpu-simulator.json``.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

TARGET_PATH_STEPS = 150e9
TARGET_CPU_RATIO = 50.0
TARGET_COPY_FRACTION = 0.5


def _params(paths: int, steps: int) -> dict[str, Any]:
    """benchmarks/montecarlo.py's job, all five products, antithetic."""
    from benchmarks.montecarlo import CASES, base_params

    return {**base_params(paths, steps), **CASES["all-products-antithetic"]}


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def device_info() -> dict[str, Any]:
    """Name, compute capability, SMs and memory of the current device; driver version."""
    from numba import cuda

    from tessera.kernels import cuda_device

    if cuda_device.simulated():
        return {"name": "Numba CUDA simulator", "simulated": True}
    dev = cuda.get_current_device()
    free, total = cuda.current_context().get_memory_info()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    info: dict[str, Any] = {
        "name": name,
        "compute_capability": list(dev.compute_capability),
        "multiprocessors": int(dev.MULTIPROCESSOR_COUNT),
        "memory_gib": round(total / 2**30, 1),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    try:
        info["driver"] = cuda.cudadrv.driver.driver.get_version()
    except Exception as exc:  # informational only
        info["driver"] = f"unknown ({type(exc).__name__})"
    return info


def run_gpu_tests(timeout: float) -> dict[str, Any]:
    """``pytest -m gpu`` in a subprocess (without the simulator): status, summary, seconds."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "summary": f"timed out after {timeout:.0f} s", "seconds": timeout}
    lines = [line for line in proc.stdout.strip().splitlines() if line.strip()]
    summary = lines[-1] if lines else proc.stderr.strip()[-300:]
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
    return {
        "ok": proc.returncode == 0 and " passed" in summary and "skipped" not in summary,
        "summary": summary,
        "seconds": round(time.perf_counter() - t0, 1),
    }


# --- Monte Carlo --------------------------------------------------------------------------------


def _mc_job(paths: int, steps: int) -> tuple[Any, tuple[Any, ...], int]:
    import numpy as np

    from tessera.kernels.montecarlo.gbm import KERNEL, _constants, n_blocks
    from tessera.kernels.rng import seed_key

    params = KERNEL.parse_params(_params(paths, steps))
    consts = np.array(_constants(params), dtype=np.float64)
    key = np.array(seed_key(42), dtype=np.uint64)
    args = (params.samples, params.steps, consts, key, params.antithetic, True)
    return params, args, n_blocks(params)


def _paths_for(rate: float, seconds: float, steps: int, cap: int) -> int:
    """Paths (a multiple of two blocks of antithetic pairs) for about ``seconds`` at ``rate``."""
    unit = 2 * 4096
    return max(unit, min(cap, int(rate * seconds / steps) // unit * unit))


def bench_montecarlo(quick: bool, simulated: bool) -> dict[str, Any]:
    """GPU and all-core CPU path-steps/s on the example job, and their price agreement."""
    import numba

    from tessera.kernels.montecarlo import cpu, gpu
    from tessera.kernels.montecarlo.gbm import KERNEL

    steps = 8 if simulated else 252
    repeats = 1 if simulated else (2 if quick else 3)
    seconds = 0.0 if simulated else (0.5 if quick else 2.0)
    threads = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(threads)

    def cpu_run(paths: int) -> Any:
        _, args, blocks = _mc_job(paths, steps)
        return cpu.simulate_blocks(0, blocks, *args)

    def gpu_run(paths: int, grid: int | None = None) -> Any:
        _, args, blocks = _mc_job(paths, steps)
        return gpu.simulate_blocks(0, blocks, *args, grid=grid)

    case = _params(0, steps)
    out: dict[str, Any] = {
        "steps": steps,
        "products": case["products"],
        "antithetic": case["antithetic"],
    }
    small = 2 * 64 if simulated else 2 * 4096 * 64
    t0 = time.perf_counter()
    gpu_run(small)  # compiles
    out["gpu_first_call_s"] = round(time.perf_counter() - t0, 2)
    cpu_run(small)  # compiles or loads the cache

    # CPU: calibrate, then about `seconds` per run
    paths = small
    if not simulated:
        t_small, _ = _best(lambda: cpu_run(small * 4), 1)
        paths = _paths_for(small * 4 * steps / t_small, seconds, steps, 2**33)
    t_cpu, _ = _best(lambda: cpu_run(paths), repeats)
    out["cpu"] = {
        "threads": threads,
        "paths": paths,
        "seconds": t_cpu,
        "path_steps_per_s": paths * steps / t_cpu,
    }

    # GPU: calibrate, then about `seconds` per run (the kernel, its launch and the rows' copy)
    if not simulated:
        t_small, _ = _best(lambda: gpu_run(small * 16), 1)
        paths = _paths_for(small * 16 * steps / t_small, seconds, steps, 2**33)
    t_gpu, _ = _best(lambda: gpu_run(paths), repeats)
    out["gpu"] = {"paths": paths, "seconds": t_gpu, "path_steps_per_s": paths * steps / t_gpu}
    if not quick and not simulated:  # how the grid size matters (config: CUDA_BLOCKS_PER_SM)
        from numba import cuda

        sms = int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
        grids = {}
        for per_sm in (4, 8, 16, 32, 64):
            t, _ = _best(lambda g=sms * per_sm: gpu_run(paths, grid=g), 2)
            grids[str(per_sm)] = paths * steps / t
        out["gpu_path_steps_per_s_by_blocks_per_sm"] = grids
    gpu_rate, cpu_rate = out["gpu"]["path_steps_per_s"], out["cpu"]["path_steps_per_s"]
    out["gpu_over_cpu"] = gpu_rate / cpu_rate
    out["target"] = {
        "path_steps_per_s": TARGET_PATH_STEPS,
        "or_times_cpu": TARGET_CPU_RATIO,
        "met": bool(gpu_rate >= TARGET_PATH_STEPS or gpu_rate / cpu_rate >= TARGET_CPU_RATIO),
    }

    # agreement on one job computed by both
    paths = 2 * 300 if simulated else (2**22 if quick else 2**24)
    params, args, blocks = _mc_job(paths, steps)
    rows_cpu = cpu.simulate_blocks(0, blocks, *args)
    rows_gpu = gpu.simulate_blocks(0, blocks, *args)
    res_cpu = KERNEL.reduce(params, 42, {"sums": rows_cpu})["products"]
    res_gpu = KERNEL.reduce(params, 42, {"sums": rows_gpu})["products"]
    rel = {
        name: abs(res_gpu[name]["price"] - res_cpu[name]["price"]) / abs(res_cpu[name]["price"])
        for name in res_cpu
    }
    nonzero = rows_cpu != 0
    out["agreement"] = {
        "paths": paths,
        "max_relative_price_difference": max(rel.values()),
        "relative_price_difference": rel,
        "max_relative_row_difference": float(
            (abs(rows_gpu - rows_cpu)[nonzero] / abs(rows_cpu[nonzero])).max()
        ),
        "rows_bit_identical": bool((rows_gpu == rows_cpu).all()),
        "contract_1e-9_met": bool(max(rel.values()) <= 1e-9),
        "prices_cpu": {k: v["price"] for k, v in res_cpu.items()},
        "prices_gpu": {k: v["price"] for k, v in res_gpu.items()},
    }
    return out


# --- downsampling -------------------------------------------------------------------------------


def bench_downsample(quick: bool, simulated: bool) -> dict[str, Any]:
    """GB/s (input + output bytes per second) of the GPU downsample, and of a device-to-device
    copy of the same input (read + write), on device-resident images."""
    import numpy as np
    from numba import cuda

    from tessera.kernels.imaging import gpu as imaging_gpu

    side = 16 if simulated else (2048 if quick else 8192)
    repeats = 1 if simulated else 5
    cases = [("rgb8", 3, np.uint8, False), ("rgba8", 4, np.uint8, False)]
    if not quick:
        cases += [("rgb8-linear-light", 3, np.uint8, True), ("rgb16", 3, np.uint16, False)]
    out: dict[str, Any] = {"side": side, "cases": {}}
    gen = np.random.default_rng(0)
    for name, channels, dtype, gamma in cases:
        top = np.iinfo(dtype).max
        host = gen.integers(0, top + 1, size=(side, side, channels)).astype(dtype)
        src = cuda.to_device(host)
        dst = cuda.device_array(((side + 1) // 2, (side + 1) // 2, channels), dtype=dtype)
        copy = cuda.device_array_like(src)

        def run_downsample(s: Any = src, d: Any = dst, g: bool = gamma) -> None:
            imaging_gpu.downsample2x(s, gamma_correct=g, out=d)
            cuda.synchronize()

        def run_copy(s: Any = src, c: Any = copy) -> None:
            c.copy_to_device(s)
            cuda.synchronize()

        run_downsample()
        run_copy()
        t_down, _ = _best(run_downsample, repeats)
        t_copy, _ = _best(run_copy, repeats)
        moved_down = host.nbytes + host.nbytes // 4
        down_gbps = moved_down / t_down / 1e9
        copy_gbps = 2 * host.nbytes / t_copy / 1e9
        out["cases"][name] = {
            "bytes_in": host.nbytes,
            "downsample_s": t_down,
            "downsample_gb_per_s": down_gbps,
            "copy_s": t_copy,
            "copy_gb_per_s": copy_gbps,
            "fraction_of_copy": down_gbps / copy_gbps,
            "target_met": bool(down_gbps / copy_gbps >= TARGET_COPY_FRACTION),
        }
        # spot check the bytes against the CPU kernel on a corner
        from tessera.kernels.imaging import downsample

        corner = host[:256, :256]
        assert np.array_equal(
            imaging_gpu.downsample2x(corner, gamma_correct=gamma),
            downsample.downsample2x(corner, gamma_correct=gamma),
        ), f"{name}: GPU and CPU downsample differ"
    out["target"] = {
        "fraction_of_copy": TARGET_COPY_FRACTION,
        "met": bool(out["cases"]["rgb8"]["target_met"]),
    }
    return out


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--no-tests", action="store_true", help="skip `pytest -m gpu`")
    parser.add_argument("--results", type=Path, help="folder for gpu.json (benchmarks/results)")
    parser.add_argument(
        "--simulator", action="store_true", help="check this script under the CUDA simulator"
    )
    args = parser.parse_args(argv)
    if args.simulator:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba.cuda is imported
    elif os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        print("error: NUMBA_ENABLE_CUDASIM is set; unset it to measure a device", file=sys.stderr)
        return 2

    from numba import cuda

    from benchmarks.common import RESULTS, write_result

    if not args.simulator and not cuda.is_available():
        print(
            "error: no CUDA device is available (numba.cuda.is_available() is False): run this "
            "on a GPU machine with an NVIDIA driver and `pip install -e '.[gpu]'`",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    device = device_info()
    print(f"device: {device['name']}", flush=True)
    result: dict[str, Any] = {
        "benchmark": "gpu",
        "command": " ".join(["python benchmarks/gpu.py", *(argv or sys.argv[1:])]),
        "device": device,
        "quick": args.quick,
    }
    if not args.no_tests:
        result["gpu_tests"] = run_gpu_tests(timeout=150 if args.quick else 180)
        print(f"gpu tests: {result['gpu_tests']['summary']}", flush=True)
    result["montecarlo"] = bench_montecarlo(args.quick, args.simulator)
    mc = result["montecarlo"]
    print(
        f"montecarlo: GPU {mc['gpu']['path_steps_per_s'] / 1e9:.1f} G path-steps/s, "
        f"CPU ({mc['cpu']['threads']} threads) {mc['cpu']['path_steps_per_s'] / 1e9:.2f} G, "
        f"x{mc['gpu_over_cpu']:.1f}; max relative price difference "
        f"{mc['agreement']['max_relative_price_difference']:.2e}",
        flush=True,
    )
    result["downsample"] = bench_downsample(args.quick, args.simulator)
    for name, case in result["downsample"]["cases"].items():
        print(
            f"downsample {name}: {case['downsample_gb_per_s']:.0f} GB/s, copy "
            f"{case['copy_gb_per_s']:.0f} GB/s ({case['fraction_of_copy']:.0%})",
            flush=True,
        )
    result["seconds"] = round(time.perf_counter() - started, 1)
    name = "gpu-simulator" if args.simulator else "gpu"
    path = write_result(name, result, args.results or RESULTS)
    print(f"wrote {path} in {result['seconds']} s")
    tests_ok = args.simulator or result.get("gpu_tests", {"ok": True})["ok"]
    return 0 if tests_ok and mc["agreement"]["contract_1e-9_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
