"""Benchmark: the montecarlo.gbm kernel against a NumPy-vectorised GBM, in the same run.

Prints path-steps per second of the tessera kernel on 1 and 2 (or ``--threads``) Numba threads
and of a NumPy baseline pricing the same products (single-threaded, as NumPy is), the first-call
compile time (cold, in a subprocess with an empty Numba cache) and the first call with a warm
cache, and writes everything to ``benchmarks/results/montecarlo.json``.

    python benchmarks/montecarlo.py [--paths N] [--steps N] [--repeats N] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import machine  # noqa: E402
from tessera.kernels.montecarlo import closed_form  # noqa: E402
from tessera.kernels.montecarlo.gbm import KERNEL  # noqa: E402

PRODUCTS = [
    "european_call",
    "european_put",
    "asian_arithmetic_call",
    "asian_geometric_call",
    "barrier_up_out_call",
]
CASES = {
    # DESIGN.md's example job: every product, antithetic, control variate
    "all-products-antithetic": {"products": PRODUCTS, "antithetic": True},
    "all-products-plain": {"products": PRODUCTS, "antithetic": False},
    "european-antithetic": {"products": ["european_call", "european_put"], "antithetic": True},
}


def base_params(paths: int, steps: int) -> dict[str, Any]:
    return {
        "paths": paths,
        "steps": steps,
        "spot": 100.0,
        "strike": 100.0,
        "rate": 0.05,
        "volatility": 0.2,
        "maturity": 1.0,
        "barrier": 130.0,
        "control_variate": True,
    }


def time_tessera(raw: dict[str, Any], threads: int, repeats: int) -> tuple[float, dict[str, Any]]:
    """Best wall time of computing the whole job as one shard, and the reduced result."""
    numba.set_num_threads(threads)
    params = KERNEL.parse_params(raw)
    layout = KERNEL.layout(params, 1)
    warm = KERNEL.parse_params({**raw, "paths": 8192})
    KERNEL.compute(warm, 1, KERNEL.layout(warm, 1), 0)
    best = math.inf
    rows = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        arrays = KERNEL.compute(params, 1, layout, 0).arrays
        best = min(best, time.perf_counter() - t0)
        rows = arrays["sums"]
    return best, KERNEL.reduce(params, 1, {"sums": rows})


def numpy_gbm(raw: dict[str, Any], seed: int, chunk: int = 4096) -> dict[str, float]:
    """The NumPy-vectorised baseline: chunks of paths, a (chunk, steps) normal matrix from
    NumPy's Generator, cumsum of log increments, exp, and the same products and estimators
    (antithetic pairs; the arithmetic Asian with the geometric control variate)."""
    rng = np.random.default_rng(seed)
    steps, spot, strike = raw["steps"], raw["spot"], raw["strike"]
    rate, vol, mat, barrier = raw["rate"], raw["volatility"], raw["maturity"], raw["barrier"]
    antithetic = raw["antithetic"]
    dtime = mat / steps
    drift, sd = (rate - 0.5 * vol * vol) * dtime, vol * math.sqrt(dtime)
    disc = math.exp(-rate * mat)
    samples = raw["paths"] // 2 if antithetic else raw["paths"]
    want_arith = "asian_arithmetic_call" in raw["products"]
    sums = {p: [0.0, 0.0] for p in PRODUCTS}
    cross = 0.0

    def payoffs(z: np.ndarray) -> dict[str, np.ndarray]:
        logs = math.log(spot) + np.cumsum(drift + sd * z, axis=1)
        st = np.exp(logs[:, -1])
        out = {
            "european_call": disc * np.maximum(st - strike, 0.0),
            "european_put": disc * np.maximum(strike - st, 0.0),
            "asian_geometric_call": disc * np.maximum(np.exp(logs.mean(axis=1)) - strike, 0.0),
        }
        if want_arith:
            a = np.exp(logs).mean(axis=1)
            out["asian_arithmetic_call"] = disc * np.maximum(a - strike, 0.0)
        else:
            out["asian_arithmetic_call"] = np.zeros_like(st)
        alive = logs.max(axis=1) < math.log(barrier)
        out["barrier_up_out_call"] = np.where(alive, out["european_call"], 0.0)
        return out

    done = 0
    while done < samples:
        n = min(chunk, samples - done)
        z = rng.standard_normal((n, steps))
        pay = payoffs(z)
        if antithetic:
            minus = payoffs(-z)
            pay = {k: 0.5 * (pay[k] + minus[k]) for k in pay}
        for k, v in pay.items():
            sums[k][0] += float(v.sum())
            sums[k][1] += float(v @ v)
        cross += float(pay["asian_arithmetic_call"] @ pay["asian_geometric_call"])
        done += n
    prices = {}
    for k in raw["products"]:
        prices[k] = sums[k][0] / samples
    if want_arith:
        mu = closed_form.geometric_asian_call(spot, strike, rate, vol, mat, steps)
        sx, sxx = sums["asian_geometric_call"]
        sy = sums["asian_arithmetic_call"][0]
        beta = (cross - sx * sy / samples) / (sxx - sx * sx / samples)
        prices["asian_arithmetic_call"] = sy / samples - beta * (sx / samples - mu)
    return prices


def time_numpy(raw: dict[str, Any], repeats: int) -> tuple[float, dict[str, float]]:
    best, prices = math.inf, {}
    for r in range(repeats):
        t0 = time.perf_counter()
        prices = numpy_gbm(raw, seed=r)
        best = min(best, time.perf_counter() - t0)
    return best, prices


_FIRST_CALL = """
import time
t0 = time.perf_counter()
from tessera.kernels.montecarlo.gbm import KERNEL
p = KERNEL.parse_params({raw!r})
KERNEL.compute(p, 1, KERNEL.layout(p, 1), 0)
print(time.perf_counter() - t0)
"""


def first_call_seconds(raw: dict[str, Any]) -> dict[str, float]:
    """Import + first compute of a small job in fresh interpreters: with an empty Numba cache
    (the compile time) and then again with the cache it left (a warm start)."""
    small = {**raw, "paths": 8192}
    code = _FIRST_CALL.format(raw=small)
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
        for label in ("cold_s", "cached_s"):
            res = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            out[label] = float(res.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=2**21)
    ap.add_argument("--steps", type=int, default=252)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--numpy-paths", type=int, default=2**16, help="paths for the NumPy baseline")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "montecarlo.json"))
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    threads = [t for t in threads if t <= numba.config.NUMBA_NUM_THREADS]

    info = machine()
    print(
        f"{info['cpu_model']} ({info['simd']}, {info['cores']} CPUs), "
        f"numba {info['versions']['numba']}"
    )
    base = base_params(args.paths, args.steps)
    first = first_call_seconds({**base, **CASES["all-products-antithetic"]})
    print(
        f"first call (import + compile + 8192 paths): cold {first['cold_s']:.1f} s, "
        f"with a warm cache {first['cached_s']:.2f} s"
    )

    results = []
    for case, extra in CASES.items():
        raw = {**base, **extra}
        work = raw["paths"] * raw["steps"]
        row: dict[str, Any] = {"case": case, "paths": raw["paths"], "steps": raw["steps"]}
        for t in threads:
            secs, res = time_tessera(raw, t, args.repeats)
            row[f"tessera_{t}t_path_steps_per_s"] = work / secs
            row["tessera_prices"] = {k: v["price"] for k, v in res["products"].items()}
        np_raw = {**raw, "paths": args.numpy_paths}
        secs, prices = time_numpy(np_raw, max(1, args.repeats // 2))
        row["numpy_path_steps_per_s"] = np_raw["paths"] * raw["steps"] / secs
        row["numpy_prices"] = prices
        one = row[f"tessera_{threads[0]}t_path_steps_per_s"]
        row["speedup_vs_numpy_1t"] = one / row["numpy_path_steps_per_s"]
        if len(threads) > 1:
            row["thread_scaling"] = row[f"tessera_{threads[-1]}t_path_steps_per_s"] / one
        results.append(row)
        rates = ", ".join(
            f"{t} thread{'s' if t > 1 else ''} {row[f'tessera_{t}t_path_steps_per_s'] / 1e6:,.0f} M"
            for t in threads
        )
        print(
            f"{case:26s} tessera {rates}; numpy {row['numpy_path_steps_per_s'] / 1e6:,.1f} M "
            f"path-steps/s; x{row['speedup_vs_numpy_1t']:.1f} vs numpy"
            + (f", {row['thread_scaling']:.2f}x from threads" if len(threads) > 1 else "")
        )

    doc = {
        "benchmark": "montecarlo.gbm",
        "command": "python benchmarks/montecarlo.py " + " ".join(sys.argv[1:]),
        "machine": info,
        "params": base,
        "first_call": first,
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
