"""The benchmark suite behind `make bench` and `tessera bench [--quick]`.

    .venv/bin/python benchmarks/suite.py [--quick] [--only montecarlo,engine,store,imaging]

Sections, each against a baseline measured in the same run:
- montecarlo: the tessera kernel vs NumPy vectorised and QuantLib (bench extra), path-steps/s;
- engine: empty shards through a LocalCluster (us per shard) and efficiency
  (kernel time / (wall x workers)) for 0.1-s and 1-s shards;
- store: write throughput (MB/s) and commit latency on local disk and on SeaweedFS S3;
- imaging: benchmarks/imaging.py (the pyramid vs vips dzsave and Pillow), when present;
- gpu: benchmarks/gpu.py when a CUDA device is present.
It writes benchmarks/results/suite.json (machine, CPU, versions, date, git revision) and
benchmarks/results/suite.png: throughput per dollar by instance type and pricing model, and
the speedup against each baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import RESULTS, write_result  # noqa: E402

SECTIONS = ("imaging", "montecarlo", "engine", "store", "gpu")  # imaging first: it runs in a
# subprocess and measures best on a machine that no cluster or S3 server has just used


def quantlib_rate(paths: int, steps: int) -> float | None:
    """path-steps/s of QuantLib's MCEuropeanEngine (pseudo-random, antithetic), or None."""
    try:
        import QuantLib as ql
    except ImportError:
        return None
    today = ql.Date(27, 11, 2026)
    ql.Settings.instance().evaluationDate = today
    day_count = ql.Actual365Fixed()
    spot = ql.QuoteHandle(ql.SimpleQuote(100.0))
    rates = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.05, day_count))
    divs = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, day_count))
    vol = ql.BlackVolTermStructureHandle(
        ql.BlackConstantVol(today, ql.NullCalendar(), 0.2, day_count)
    )
    process = ql.BlackScholesMertonProcess(spot, divs, rates, vol)
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call, 100.0), ql.EuropeanExercise(today + 365)
    )
    engine = ql.MCEuropeanEngine(
        process,
        "PseudoRandom",
        timeSteps=steps,
        antitheticVariate=True,
        requiredSamples=paths // 2,
        seed=42,
    )
    option.setPricingEngine(engine)
    start = time.perf_counter()
    option.NPV()
    return paths * steps / (time.perf_counter() - start)


def bench_montecarlo(quick: bool) -> dict[str, Any]:
    import numba

    from benchmarks.montecarlo import CASES, base_params, time_numpy, time_tessera

    steps = 252
    paths = 2**18 if quick else 2**21
    raw = {**base_params(paths, steps), **CASES["european-antithetic"]}
    numba.set_num_threads(1)
    seconds, _ = time_tessera(raw, 1, 2 if quick else 5)
    tessera = paths * steps / seconds
    np_paths = 2**13 if quick else 2**16
    np_seconds, _ = time_numpy({**raw, "paths": np_paths}, 1 if quick else 2)
    numpy_rate = np_paths * steps / np_seconds
    ql_paths = 2**12 if quick else 2**15
    ql = quantlib_rate(ql_paths, steps)
    out: dict[str, Any] = {
        "case": "european call, antithetic, 252 steps, 1 thread",
        "tessera_path_steps_per_s": tessera,
        "numpy_path_steps_per_s": numpy_rate,
        "speedup_vs_numpy": tessera / numpy_rate,
        "quantlib_path_steps_per_s": ql,
        "speedup_vs_quantlib": tessera / ql if ql else None,
    }
    print(
        f"montecarlo: tessera {tessera / 1e6:,.0f} M path-steps/s, numpy "
        f"{numpy_rate / 1e6:,.1f} M (x{tessera / numpy_rate:.1f})"
        + (
            f", QuantLib {ql / 1e6:,.1f} M (x{tessera / ql:.0f})"
            if ql
            else ", QuantLib not installed (pip install '.[bench]')"
        )
    )
    return out


def _spin_job(store: str, shards: int, seconds: float, payload_kib: int = 0) -> Any:
    from tessera.engine import spec

    return spec.from_dict(
        {
            "job": {
                "name": "bench-spin",
                "kernel": "benchmarks.spin:KERNEL",
                "store": store,
                "shards": shards,
            },
            "params": {"seconds": seconds, "payload_kib": payload_kib},
        }
    )


def _timed_dask_run(job: Any, workers: int) -> dict[str, float]:
    """Run on a fresh LocalCluster; time from the cluster being up to the last commit."""
    from tessera.engine import executors
    from tessera.engine.events import Message, ShardCommitted
    from tessera.engine.run import run_job

    marks: dict[str, float] = {}

    def listen(event: Any) -> None:
        now = time.perf_counter()
        if isinstance(event, Message) and event.text.startswith("Dask dashboard"):
            marks["up"] = now
        elif isinstance(event, ShardCommitted):
            marks["last"] = now

    start = time.perf_counter()
    outcome = run_job(job, executors.create("dask", workers=workers), listen)
    total = time.perf_counter() - start
    assert outcome.ok, outcome.failures
    return {
        "wall_seconds": marks["last"] - marks["up"],
        "wall_with_startup_seconds": total,
        "startup_seconds": marks["up"] - start,
    }


def _noop(index: int) -> int:
    return index


def dask_noop_seconds(n: int, workers: int) -> float:
    """Baseline: seconds for ``n`` no-op tasks through the same kind of LocalCluster."""
    import logging

    from distributed import Client, LocalCluster, wait

    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        dashboard_address="127.0.0.1:0",
        host="127.0.0.1",
        silence_logs=logging.ERROR,
    ) as cluster:
        with Client(cluster) as client:
            client.submit(_noop, -1).result()
            start = time.perf_counter()
            wait([client.submit(_noop, i, pure=False) for i in range(n)])
            return time.perf_counter() - start


def bench_engine(quick: bool, workers: int = 2) -> dict[str, Any]:
    out: dict[str, Any] = {"workers": workers}
    with tempfile.TemporaryDirectory() as tmp:
        n = 200 if quick else 1000
        timing = _timed_dask_run(_spin_job(f"{tmp}/empty", n, 0.0), workers)
        per_shard = timing["wall_seconds"] * workers / n
        dask_per_task = dask_noop_seconds(n, workers) * workers / n
        out["empty_shards"] = {
            "shards": n,
            **timing,
            "us_per_shard": per_shard * 1e6,
            "shards_per_s": n / timing["wall_seconds"],
            "dask_noop_us_per_task": dask_per_task * 1e6,
            "tessera_over_dask_us": (per_shard - dask_per_task) * 1e6,
        }
        print(
            f"engine: {n} empty shards on {workers} workers: {per_shard * 1e6:,.0f} us per "
            f"shard per worker ({n / timing['wall_seconds']:,.0f} shards/s), commit included; "
            f"bare Dask no-op tasks, same cluster size: {dask_per_task * 1e6:,.0f} us"
        )
        for seconds, shards in ((0.1, 20 if quick else 60), (1.0, 4 if quick else 12)):
            timing = _timed_dask_run(_spin_job(f"{tmp}/spin{seconds}", shards, seconds), workers)
            efficiency = shards * seconds / (timing["wall_seconds"] * workers)
            out[f"shards_{seconds:g}s"] = {"shards": shards, **timing, "efficiency": efficiency}
            print(
                f"engine: {shards} shards of {seconds:g} s: efficiency {efficiency:.1%} "
                f"(kernel time / (wall x {workers} workers), cluster start-up "
                f"{timing['startup_seconds']:.1f} s excluded)"
            )
    return out


def _store_throughput(url: str, shards: int, payload_kib: int) -> dict[str, float]:
    from tessera.engine import executors
    from tessera.engine.run import run_job
    from tessera.engine.store import Store

    job = _spin_job(url, shards, 0.0, payload_kib)
    start = time.perf_counter()
    outcome = run_job(job, executors.create("local"), lambda e: None)
    assert outcome.ok, outcome.failures
    wall = time.perf_counter() - start
    records = outcome.report["per_shard"]
    written = sum(r["bytes"] for r in records)
    shard_seconds = sum(r["seconds"] for r in records)
    store = Store.open_existing(job.store)
    commits = []
    for i in range(20):
        t0 = time.perf_counter()
        store.commit(10_000 + i, {"shard": 10_000 + i, "probe": True})
        commits.append(time.perf_counter() - t0)
    commits.sort()
    return {
        "shards": shards,
        "payload_kib": payload_kib,
        "bytes": written,
        "mb_per_s": written / shard_seconds / 1e6,
        "run_wall_seconds": wall,
        "commit_latency_ms_median": commits[len(commits) // 2] * 1e3,
        "commit_latency_ms_max": commits[-1] * 1e3,
    }


def bench_store(quick: bool) -> dict[str, Any]:
    import os

    shards, kib = (8, 4096) if quick else (32, 16384)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["local"] = _store_throughput(f"{tmp}/store", shards, kib)
        from tests.s3server import SeaweedS3

        with SeaweedS3(Path(tmp) / "seaweed") as server:
            bucket = server.create_bucket("bench")
            saved = {k: os.environ.get(k) for k in server.env()}
            os.environ.update(server.env())
            try:
                out["s3_seaweedfs"] = _store_throughput(f"s3://{bucket}/store", shards, kib)
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
    for name, row in out.items():
        print(
            f"store {name}: {row['mb_per_s']:,.0f} MB/s writing {shards} shards of "
            f"{kib // 1024} MiB; commit latency median {row['commit_latency_ms_median']:.2f} ms"
        )
    return out


def bench_imaging(quick: bool) -> dict[str, Any] | None:
    script = ROOT / "benchmarks" / "imaging.py"
    if not script.exists():
        return None
    name = "imaging-quick" if quick else "imaging"
    args = [sys.executable, str(script), "--out", name]
    args += ["--size", "2048", "--repeats", "1"] if quick else []
    subprocess.run(args, check=True, cwd=ROOT)
    return dict(json.loads((RESULTS / f"{name}.json").read_text()))


def bench_gpu(quick: bool) -> dict[str, Any] | None:
    script = ROOT / "benchmarks" / "gpu.py"
    try:
        from numba import cuda

        present = cuda.is_available()
    except Exception:  # numba-cuda missing or no driver
        present = False
    if not present or not script.exists():
        print("gpu: no CUDA device here; skipped")
        return None
    subprocess.run(
        [sys.executable, str(script)] + (["--quick"] if quick else []), check=True, cwd=ROOT
    )
    return dict(json.loads((RESULTS / "gpu.json").read_text()))


def per_dollar(rate: float) -> list[dict[str, Any]]:
    """Path-steps per dollar on every instance type and pricing model for an hour of one
    1-vCPU shard stream per vCPU at this machine's per-core ``rate``."""
    from tessera.engine import cost

    catalogue = cost.load_catalogue()
    usage = [cost.ShardUsage(3600.0, 1.0, 1024)]
    rows = cost.run_costs(usage, rate * 3600.0, catalogue)
    return [r.to_dict() for r in sorted(rows, key=lambda r: -r.work_per_usd)]


def speedups(results: dict[str, Any]) -> dict[str, float]:
    out = {}
    mc = results.get("montecarlo") or {}
    if mc.get("speedup_vs_numpy"):
        out["MC vs NumPy"] = mc["speedup_vs_numpy"]
    if mc.get("speedup_vs_quantlib"):
        out["MC vs QuantLib"] = mc["speedup_vs_quantlib"]
    imaging = results.get("imaging") or {}
    for key, label in (
        ("speedup_vs_vips", "pyramid vs vips dzsave"),
        ("speedup_vs_pillow", "pyramid vs Pillow"),
        ("downsample_vs_opencv", "downsample vs OpenCV"),
    ):
        if isinstance(imaging.get(key), (int, float)):
            out[label] = float(imaging[key])
    return out


def plot(path: Path, dollars: list[dict[str, Any]], ratios: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.5), width_ratios=(3, 2))
    colours = {
        "spot": "tab:green",
        "on-demand": "tab:blue",
        "fargate-spot": "tab:olive",
        "fargate": "tab:orange",
    }
    shown = dollars[:24]
    labels = [f"{r['target']} ({r['pricing']})" for r in shown][::-1]
    values = [r["work_per_usd"] / 1e12 for r in shown][::-1]
    left.barh(labels, values, color=[colours[r["pricing"]] for r in shown][::-1])
    left.set_xlabel("T path-steps per dollar (Monte Carlo, this machine's per-core rate)")
    left.set_title("Throughput per dollar by instance type and pricing model")
    left.tick_params(axis="y", labelsize=8)
    if ratios:
        right.bar(list(ratios), list(ratios.values()), color="tab:purple")
        right.axhline(1.0, color="grey", linewidth=0.8)
        right.set_ylabel("speedup (x), same run")
        right.set_yscale("log")
        right.tick_params(axis="x", labelrotation=30, labelsize=8)
    right.set_title("tessera vs each baseline")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI: under 2 minutes)")
    parser.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for JSON and PNG")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    runners = {
        "montecarlo": bench_montecarlo,
        "engine": bench_engine,
        "store": bench_store,
        "imaging": bench_imaging,
        "gpu": bench_gpu,
    }
    results: dict[str, Any] = {}
    for name in chosen:
        if name not in runners:
            parser.error(f"unknown section {name!r}; expected some of {','.join(SECTIONS)}")
        started = time.perf_counter()
        results[name] = runners[name](args.quick)
        print(f"  ({name}: {time.perf_counter() - started:.1f} s)")
    rate = (results.get("montecarlo") or {}).get("tessera_path_steps_per_s")
    dollars = per_dollar(rate) if rate else []
    ratios = speedups(results)
    args.results.mkdir(parents=True, exist_ok=True)
    png = args.results / "suite.png"
    plot(png, dollars, ratios)
    path = write_result(
        "suite",
        {
            "benchmark": "suite",
            "command": "python benchmarks/suite.py "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            "quick": args.quick,
            "results": results,
            "throughput_per_dollar": dollars,
            "speedups": ratios,
            "plot": png.name,
        },
        folder=args.results,
    )
    if dollars:
        top = dollars[0]
        print(
            f"best throughput per dollar: {top['target']} {top['pricing']}: "
            f"{top['work_per_usd'] / 1e12:,.1f} T path-steps/$"
        )
    print(f"wrote {path} and {png}")
    return 0 if all(math.isfinite(v) for v in ratios.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
