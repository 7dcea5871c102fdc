"""Benchmark: Monte Carlo beyond one GBM option, as ratios in the same run.

1. Heston path-steps/s (QE and Euler) against GBM's, one thread, the same paths and steps;
   and montecarlo.basket's asset-path-steps/s (n = 1, 4, 16) against GBM's.
2. The cost of Greeks: montecarlo.gbm pricing plus all five Greeks against pricing alone
   (European call and put; and all five products), one thread.
3. A book: trade-paths/s of montecarlo.book on a 1,000-trade book over 10 underlyings (GBM and
   Heston), against QuantLib's Monte Carlo engines pricing a sample of the same trades one at a
   time. QuantLib's time is scaled to the book's standard error of each trade
   (time * (se_quantlib / se_book)**2: Monte Carlo error falls as 1/sqrt(paths)).
4. Planning a 10,000-trade book (reading and checking the CSV, laying out the job).

Writes ``benchmarks/results/book.json``.

    python benchmarks/book.py [--paths N] [--quantlib-trades N]
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import numba  # noqa: E402

from benchmarks.common import machine, write_result  # noqa: E402
from tessera.engine import spec  # noqa: E402
from tessera.kernels.montecarlo.book import KERNEL as BOOK  # noqa: E402
from tessera.kernels.montecarlo.gbm import KERNEL as GBM  # noqa: E402
from tessera.kernels.montecarlo.heston import KERNEL as HESTON  # noqa: E402

GREEKS = ["delta", "gamma", "vega", "rho", "theta"]
ALL_GBM = [
    "european_call",
    "european_put",
    "asian_arithmetic_call",
    "asian_geometric_call",
    "barrier_up_out_call",
]
HESTON_MODEL = {"v0": 0.04, "kappa": 1.5, "theta": 0.04, "xi": 0.5, "rho": -0.7}


def best_time(kernel: Any, raw: dict[str, Any], repeats: int) -> float:
    """Best wall time of computing every block of ``raw`` on one shard (warm)."""
    params = kernel.parse_params(raw)
    kernel.warm(params)
    layout = kernel.layout(params, 1)
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        kernel.compute(params, 1, layout, 0)
        best = min(best, time.perf_counter() - t)
    return best


def heston_vs_gbm(paths: int, steps: int, repeats: int) -> dict[str, Any]:
    common = {
        "paths": paths,
        "steps": steps,
        "spot": 100.0,
        "strike": 100.0,
        "rate": 0.03,
        "maturity": 1.0,
        "products": ["european_call", "european_put"],
    }
    gbm = best_time(GBM, {**common, "volatility": 0.2}, repeats)
    out: dict[str, Any] = {
        "paths": paths,
        "steps": steps,
        "gbm_path_steps_per_s": paths * steps / gbm,
    }
    for scheme in ("qe", "euler"):
        t = best_time(HESTON, {**common, **HESTON_MODEL, "scheme": scheme}, repeats)
        out[f"heston_{scheme}_path_steps_per_s"] = paths * steps / t
        out[f"heston_{scheme}_vs_gbm"] = gbm / t
    return out


def basket_vs_gbm(paths: int, steps: int, repeats: int) -> dict[str, Any]:
    """montecarlo.basket's asset-path-steps/s for n = 1, 4, 16 against GBM's path-steps/s."""
    from tessera.kernels.montecarlo.basket import KERNEL as BASKET

    gbm_raw = {
        "paths": paths,
        "steps": steps,
        "spot": 100.0,
        "strike": 100.0,
        "rate": 0.03,
        "volatility": 0.2,
        "maturity": 1.0,
        "products": ["european_call"],
    }
    gbm = paths * steps / best_time(GBM, gbm_raw, repeats)
    out: dict[str, Any] = {"steps": steps, "gbm_path_steps_per_s": gbm}
    for n in (1, 4, 16):
        corr = [[1.0 if i == j else 0.3 for j in range(n)] for i in range(n)]
        p = max(4, (paths // n) // 2 * 2)
        raw = {
            "paths": p,
            "steps": steps,
            "spots": [100.0] * n,
            "volatilities": [0.2] * n,
            "weights": [1.0 / n] * n,
            "correlation": corr,
            "strike": 100.0,
            "rate": 0.03,
            "maturity": 1.0,
            "products": ["basket_call"],
        }
        rate = p * steps * n / best_time(BASKET, raw, repeats)
        out[f"n{n}_asset_path_steps_per_s"] = rate
        out[f"n{n}_vs_gbm"] = rate / gbm
    return out


def greeks_cost(paths: int, steps: int, repeats: int) -> dict[str, Any]:
    base = {
        "paths": paths,
        "steps": steps,
        "spot": 100.0,
        "strike": 105.0,
        "rate": 0.03,
        "volatility": 0.25,
        "maturity": 1.0,
        "barrier": 140.0,
    }
    out: dict[str, Any] = {"paths": paths, "steps": steps}
    for label, products in (("european", ["european_call", "european_put"]), ("all", ALL_GBM)):
        raw = {**base, "products": products}
        alone = best_time(GBM, raw, repeats)
        with_greeks = best_time(GBM, {**raw, "greeks": GREEKS}, repeats)
        out[f"{label}_price_s"] = alone
        out[f"{label}_price_and_greeks_s"] = with_greeks
        out[f"{label}_ratio"] = with_greeks / alone
    return out


def make_book(n_trades: int, n_under: int, seed: int = 0) -> tuple[dict[str, Any], list[dict]]:
    rnd = random.Random(seed)
    unders: dict[str, Any] = {}
    for i in range(n_under):
        spot = rnd.choice([50.0, 100.0, 200.0])
        if i % 2 == 0:
            unders[f"U{i:02d}"] = {
                "model": "gbm",
                "spot": spot,
                "volatility": rnd.choice([0.2, 0.3]),
            }
        else:
            unders[f"U{i:02d}"] = {"model": "heston", "spot": spot, **HESTON_MODEL}
    rows = []
    names = sorted(unders)
    for t in range(n_trades):
        name = rnd.choice(names)
        u = unders[name]
        products = ["european_call", "european_put", "asian_arithmetic_call", "barrier_up_out_call"]
        product = rnd.choice(products)
        row = {
            "id": f"T{t:05d}",
            "underlying": name,
            "product": product,
            "strike": round(u["spot"] * rnd.choice([0.9, 1.0, 1.1]), 2),
            "maturity": rnd.choice([0.25, 0.5, 1.0]),
            "barrier": "",
        }
        if product == "barrier_up_out_call":
            row["barrier"] = round(u["spot"] * 1.4, 2)
        rows.append(row)
    return unders, rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, ["id", "underlying", "product", "strike", "maturity", "barrier"])
        w.writeheader()
        w.writerows(rows)


def book_job(folder: Path, unders: dict[str, Any], paths: int, spy: int) -> dict[str, Any]:
    return {
        "job": {
            "name": "bench-book",
            "kernel": "montecarlo.book",
            "store": str(folder / "store"),
            "shards": 1,
            "seed": 1,
        },
        "params": {
            "trades": str(folder / "book.csv"),
            "underlyings": unders,
            "rate": 0.03,
            "paths": paths,
            "steps_per_year": spy,
        },
    }


def quantlib_trade(
    row: dict[str, Any], u: dict[str, Any], paths: int, spy: int
) -> tuple[float, float]:
    """Price one trade with QuantLib's MC engine on ``paths`` paths: (seconds, stderr)."""
    import QuantLib as ql  # a benchmark-only reference

    today = ql.Date(2, 12, 2026)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    cal = ql.NullCalendar()
    days = round(row["maturity"] * 365)
    expiry = today + days
    spot = ql.QuoteHandle(ql.SimpleQuote(u["spot"]))
    rate = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.03, dc))
    div = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc))
    steps = max(1, round(row["maturity"] * spy))
    if u["model"] == "gbm":
        vol = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, cal, u["volatility"], dc))
        process: Any = ql.BlackScholesMertonProcess(spot, div, rate, vol)
    else:
        m = HESTON_MODEL
        process = ql.HestonProcess(
            rate, div, spot, m["v0"], m["kappa"], m["theta"], m["xi"], m["rho"]
        )
    kind = ql.Option.Put if row["product"] == "european_put" else ql.Option.Call
    payoff = ql.PlainVanillaPayoff(kind, row["strike"])
    exercise = ql.EuropeanExercise(expiry)
    common = {
        "timeSteps": steps,
        "antitheticVariate": True,
        "requiredSamples": paths // 2,
        "seed": 42,
    }
    if row["product"] in ("european_call", "european_put"):
        option = ql.VanillaOption(payoff, exercise)
        if u["model"] == "gbm":
            engine = ql.MCEuropeanEngine(process, "pseudorandom", **common)
        else:
            engine = ql.MCEuropeanHestonEngine(process, "pseudorandom", **common)
    elif row["product"] == "asian_arithmetic_call":
        fixings = [today + round(days * (i + 1) / steps) for i in range(steps)]
        option = ql.DiscreteAveragingAsianOption(
            ql.Average.Arithmetic, 0.0, 0, fixings, payoff, exercise
        )
        if u["model"] == "gbm":
            engine = ql.MCDiscreteArithmeticAPEngine(
                process,
                "pseudorandom",
                brownianBridge=False,
                antitheticVariate=True,
                requiredSamples=paths // 2,
                seed=42,
            )
        else:
            engine = ql.MCDiscreteArithmeticAPHestonEngine(
                process, "pseudorandom", antitheticVariate=True, requiredSamples=paths // 2, seed=42
            )
    else:
        option = ql.BarrierOption(ql.Barrier.UpOut, row["barrier"], 0.0, payoff, exercise)
        if u["model"] != "gbm":
            raise ValueError("QuantLib has no Heston MC barrier engine")
        engine = ql.MCBarrierEngine(
            process,
            "pseudorandom",
            timeSteps=steps,
            brownianBridge=False,
            antitheticVariate=True,
            requiredSamples=paths // 2,
            seed=42,
        )
    option.setPricingEngine(engine)
    t = time.perf_counter()
    option.NPV()
    seconds = time.perf_counter() - t
    return seconds, option.errorEstimate()


def book_vs_quantlib(paths: int, n_ql: int, spy: int) -> dict[str, Any]:
    unders, rows = make_book(1000, 10)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_csv(folder / "book.csv", rows)
        job = spec.from_dict(book_job(folder, unders, paths, spy))
        params, layout = job.params, job.layout
        BOOK.warm(params)
        t = time.perf_counter()
        out = BOOK.compute(params, 1, layout, 0)
        seconds = time.perf_counter() - t
        result = BOOK.reduce(params, 1, out.arrays)
    trade_paths = len(rows) * paths
    sample = [
        r
        for r in rows
        if not (r["product"] == "barrier_up_out_call" and unders[r["underlying"]]["model"] != "gbm")
    ][:n_ql]
    ql_seconds = 0.0
    ql_scaled = 0.0
    for row in sample:
        s, se = quantlib_trade(row, unders[row["underlying"]], paths, spy)
        ours = result["trades"][row["id"]]["stderr"]
        ql_seconds += s
        ql_scaled += s * (se / ours) ** 2 if ours > 0 else s
    ql_rate = len(sample) * paths / ql_seconds
    ql_rate_same_se = len(sample) * paths / ql_scaled
    book_rate = trade_paths / seconds
    return {
        "trades": len(rows),
        "underlyings": len(unders),
        "paths": paths,
        "steps_per_year": spy,
        "threads": numba.get_num_threads(),
        "book_seconds": seconds,
        "book_trade_paths_per_s": book_rate,
        "quantlib_trades_timed": len(sample),
        "quantlib_trade_paths_per_s": ql_rate,
        "quantlib_trade_paths_per_s_at_book_stderr": ql_rate_same_se,
        "speedup_same_paths": book_rate / ql_rate,
        "speedup_same_stderr": book_rate / ql_rate_same_se,
    }


def plan_10k(spy: int) -> dict[str, Any]:
    unders, rows = make_book(10_000, 10, seed=5)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_csv(folder / "book.csv", rows)
        t = time.perf_counter()
        job = spec.from_dict(book_job(folder, unders, 2 * 65536, spy))
        seconds = time.perf_counter() - t
        mem = BOOK.shard_memory_bytes(job.params, job.layout, 0)
    return {
        "trades": 10_000,
        "plan_seconds": seconds,
        "shards": job.n_shards,
        "shard_memory_mib": mem / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=2 * 20_000, help="book paths per trade")
    ap.add_argument("--quantlib-trades", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    numba.set_num_threads(1)
    results: dict[str, Any] = {
        "benchmark": "montecarlo book, heston, greeks",
        "command": "python benchmarks/book.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
    }
    results["heston_vs_gbm"] = heston_vs_gbm(2 * 100_000, 64, args.repeats)
    print("heston vs gbm:", results["heston_vs_gbm"])
    results["basket_vs_gbm"] = basket_vs_gbm(2 * 100_000, 64, args.repeats)
    print("basket vs gbm:", results["basket_vs_gbm"])
    results["greeks_cost"] = greeks_cost(2 * 200_000, 64, args.repeats)
    print("greeks cost:", results["greeks_cost"])
    results["book_vs_quantlib"] = book_vs_quantlib(args.paths, args.quantlib_trades, 52)
    print("book vs QuantLib:", results["book_vs_quantlib"])
    results["plan_10k"] = plan_10k(52)
    print("plan 10k:", results["plan_10k"])
    print("wrote", write_result("book", results))


if __name__ == "__main__":
    main()
