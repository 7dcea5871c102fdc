"""End-to-end efficiency of `tessera run` on a LocalCluster against the kernel alone.

    .venv/bin/python benchmarks/engine.py [--workers 2] [--shard-seconds 1 4] [--shards 12]

For each shard size it runs the same Monte Carlo job twice in this process:
- kernel only: the whole job as one ``compute`` call on ``workers`` Numba threads, no store;
- end to end: ``run_job`` on a fresh LocalCluster of ``workers`` single-threaded processes,
  with the Zarr store, commit records, reduce, result.json and report.json.
It prints path-steps/s of both and their ratio, with and without the cluster's start-up, and
measures the peak memory of one shard at two path counts 16x apart (it must not grow).
Results go to benchmarks/results/engine.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numba  # noqa: E402

from benchmarks.common import write_result  # noqa: E402
from tessera.engine import executors, spec  # noqa: E402
from tessera.engine.run import run_job  # noqa: E402

STEPS = 252


def job_data(store: str, paths: int, shards: int) -> dict[str, Any]:
    return {
        "job": {
            "name": "bench-engine",
            "kernel": "montecarlo.gbm",
            "store": store,
            "shards": shards,
            "seed": 1,
        },
        "params": {
            "paths": paths,
            "steps": STEPS,
            "spot": 100.0,
            "strike": 100.0,
            "rate": 0.05,
            "volatility": 0.2,
            "maturity": 1.0,
            "products": [
                "european_call",
                "european_put",
                "asian_arithmetic_call",
                "asian_geometric_call",
                "barrier_up_out_call",
            ],
            "barrier": 130.0,
        },
    }


def kernel_rate(paths: int, threads: int) -> float:
    """path-steps/s of the kernel alone: the whole job in one call on ``threads`` threads."""
    job = spec.from_dict(job_data("/tmp/unused", paths, 1))
    layout = job.kernel.layout(job.params, 1)
    numba.set_num_threads(threads)
    job.kernel.compute(job.params, job.seed, layout, 0)  # warm (compile or load the cache)
    start = time.perf_counter()
    job.kernel.compute(job.params, job.seed, layout, 0)
    return layout.work / (time.perf_counter() - start)


def cluster_start_seconds(workers: int) -> float:
    """Seconds to start and connect to a LocalCluster like the executor's (then close it)."""
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",
        host="127.0.0.1",
    ) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(workers)
            elapsed = time.perf_counter() - start
    return elapsed


def end_to_end(paths: int, shards: int, workers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        job = spec.from_dict(job_data(f"{tmp}/store", paths, shards))
        start = time.perf_counter()
        outcome = run_job(job, executors.create("dask", workers=workers), lambda e: None)
        wall = time.perf_counter() - start
        assert outcome.ok, outcome.failures
        seconds = outcome.report["shards"]
        return {
            "wall_seconds": wall,
            "work": outcome.report["work_total"],
            "shard_seconds_median": seconds["seconds_median"],
        }


def shard_peak_rss_mib(paths: int) -> float:
    """Peak RSS (MiB) of a fresh process that computes one shard of ``paths`` paths."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
import numba
numba.set_num_threads(1)
from tessera.engine import spec
job = spec.from_dict({job_data("/tmp/unused", paths, 1)!r})
layout = job.kernel.layout(job.params, 1)
job.kernel.compute(job.params, job.seed, layout, 0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shards", type=int, default=24)
    parser.add_argument("--shard-seconds", type=float, nargs="+", default=[1.0, 4.0])
    args = parser.parse_args()

    one_thread = kernel_rate(1 << 20, 1)
    startup = cluster_start_seconds(args.workers)
    print(
        f"kernel, 1 thread: {one_thread / 1e6:.0f} M path-steps/s; "
        f"LocalCluster({args.workers}) start-up: {startup:.2f} s"
    )
    rows = []
    for target in args.shard_seconds:
        block = 8192  # keep paths a multiple of the kernel's block of pairs
        paths = max(block, int(one_thread * target / STEPS) // block * block) * args.shards
        kernel = kernel_rate(paths, args.workers)
        e2e = end_to_end(paths, args.shards, args.workers)
        rate = e2e["work"] / e2e["wall_seconds"]
        steady = e2e["work"] / max(e2e["wall_seconds"] - startup, 1e-9)
        row = {
            "shard_seconds_target": target,
            "paths": paths,
            "shards": args.shards,
            "workers": args.workers,
            "kernel_rate": kernel,
            "end_to_end_rate": rate,
            "end_to_end_rate_excluding_startup": steady,
            "cluster_startup_seconds": startup,
            "ratio": rate / kernel,
            "ratio_excluding_startup": steady / kernel,
            **e2e,
        }
        rows.append(row)
        print(
            f"shards of ~{target:g} s (median {e2e['shard_seconds_median']:.2f} s): kernel "
            f"{kernel / 1e6:.0f} M/s, end to end {rate / 1e6:.0f} M/s = {rate / kernel:.0%} "
            f"({steady / kernel:.0%} without the {startup:.1f} s cluster start-up)"
        )
    small, large = 1 << 18, 1 << 22
    rss_small, rss_large = shard_peak_rss_mib(small), shard_peak_rss_mib(large)
    print(
        f"peak RSS of one shard: {rss_small:.0f} MiB at {small:,} paths, "
        f"{rss_large:.0f} MiB at {large:,} paths"
    )
    path = write_result(
        "engine",
        {
            "benchmark": "engine",
            "command": "python benchmarks/engine.py " + " ".join(sys.argv[1:]),
            "kernel_rate_1_thread": one_thread,
            "runs": rows,
            "peak_rss_mib": {str(small): rss_small, str(large): rss_large},
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
