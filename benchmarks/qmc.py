"""Benchmark: accuracy per dollar. Randomized Sobol + Brownian bridge against Philox and
QuantLib's Monte Carlo engines, at the same target standard error.

For a European call and an arithmetic Asian call (S = K = 100, r = 0.05, sigma = 0.2, T = 1,
64 fixings), in one process, every kernel warm (compiled first):

Every tessera time is the best of 5 runs (of one where a run takes over a second).

* Philox (antithetic, the default): a pilot run gives the error per path; the paths the
  target needs follow from the 1/sqrt(N) law (rounded up to whole blocks), and that run is
  timed and must meet the target;
* Sobol (16 replicates, bridge): points per replicate double from 2^6 until the replicates'
  error meets the target (powers of two, where Sobol sets are balanced; a run may overshoot
  the paths it needs by up to 2x); the first run that meets it is timed;
* QuantLib: ``MCEuropeanEngine`` and ``MCDiscreteArithmeticAPEngine`` with
  ``requiredTolerance`` = the target (pseudo-random, antithetic, 64 time steps, one thread):
  QuantLib runs until its own error estimate meets it; that call is timed.

The target is 0.01% of spot (0.01). The Asian is priced without the geometric control variate
(every method's plain estimator), and again with it for tessera's two samplers. Dollars are
core-seconds (wall seconds times the threads used: Numba's for tessera, 1 for QuantLib) at
the per-vCPU price of the catalogue's cheapest spot type of this machine's architecture,
billed per second without a minimum (the work is a part of a larger job).

Also, at one fixed size, the error of every product of ``montecarlo.gbm``, ``montecarlo.heston``
and ``montecarlo.basket`` with both samplers: which payoffs gain how much.

Writes ``benchmarks/results/qmc.json``.

    python benchmarks/qmc.py [--target 0.01] [--no-quantlib]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import RESULTS, machine  # noqa: E402
from tessera.engine.cost import load_catalogue  # noqa: E402
from tessera.kernels.montecarlo.basket import KERNEL as BASKET  # noqa: E402
from tessera.kernels.montecarlo.gbm import KERNEL as GBM  # noqa: E402
from tessera.kernels.montecarlo.heston import KERNEL as HESTON  # noqa: E402

MARKET = {"spot": 100.0, "strike": 100.0, "rate": 0.05, "volatility": 0.2, "maturity": 1.0}
STEPS = 64
REPLICATES = 16
REPEATS = 5


def _run(kernel: Any, raw: dict[str, Any], seed: int = 1) -> tuple[float, dict[str, Any]]:
    """Seconds and answer of a whole job computed in-process (layout, its one shard, reduce):
    the best of ``REPEATS`` runs (of one, for runs over a second)."""
    params = kernel.parse_params(raw)
    kernel.warm(params)
    best, answer = math.inf, {}
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        layout = kernel.layout(params, 1)
        name = layout.arrays[0].name
        rows = kernel.compute(params, seed, layout, 0).arrays[name]
        answer = kernel.reduce(params, seed, {name: rows})
        best = min(best, time.perf_counter() - t0)
        if best > 1.0:
            break
    return best, answer


def _job(product: str, paths: int, **extra: Any) -> dict[str, Any]:
    return {"paths": paths, "steps": STEPS, **MARKET, "products": [product], **extra}


def philox_to_target(product: str, target: float, cv: bool) -> dict[str, Any]:
    pilot_paths = 2**18
    _, pilot = _run(GBM, _job(product, pilot_paths, control_variate=cv))
    se0 = pilot["products"][product]["stderr"]
    block = 2 * 4096  # antithetic pairs of a block
    paths = max(block, math.ceil(pilot_paths * (se0 / target) ** 2 * 1.02 / block) * block)
    while True:
        seconds, answer = _run(GBM, _job(product, paths, control_variate=cv))
        se = answer["products"][product]["stderr"]
        if se <= target:
            return {"paths": paths, "seconds": seconds, "stderr": se, "threads": _threads()}
        paths = math.ceil(paths * 1.1 / block) * block


def sobol_to_target(product: str, target: float, cv: bool) -> dict[str, Any]:
    n = 2**6
    while True:
        raw = _job(product, n * REPLICATES, control_variate=cv, sampler="sobol")
        seconds, answer = _run(GBM, raw | {"replicates": REPLICATES})
        se = answer["products"][product]["stderr"]
        if se <= target:
            return {
                "paths": n * REPLICATES,
                "points_per_replicate": n,
                "seconds": seconds,
                "stderr": se,
                "threads": _threads(),
            }
        n *= 2


def quantlib_to_target(product: str, target: float) -> dict[str, Any]:
    import QuantLib as ql

    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    maturity = today + 365
    spot = ql.QuoteHandle(ql.SimpleQuote(MARKET["spot"]))
    rate = ql.YieldTermStructureHandle(ql.FlatForward(today, MARKET["rate"], dc))
    div = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc))
    vol = ql.BlackVolTermStructureHandle(
        ql.BlackConstantVol(today, ql.NullCalendar(), MARKET["volatility"], dc)
    )
    process = ql.BlackScholesMertonProcess(spot, div, rate, vol)
    payoff = ql.PlainVanillaPayoff(ql.Option.Call, MARKET["strike"])
    if product == "european_call":
        option = ql.VanillaOption(payoff, ql.EuropeanExercise(maturity))
        engine = ql.MCEuropeanEngine(
            process, "PseudoRandom", timeSteps=STEPS, antitheticVariate=True,
            requiredTolerance=target, seed=42,
        )  # fmt: skip
    else:
        fixings = [today + int(round(365 * (i + 1) / STEPS)) for i in range(STEPS)]
        option = ql.DiscreteAveragingAsianOption(
            ql.Average.Arithmetic, 0.0, 0, fixings, payoff, ql.EuropeanExercise(maturity)
        )
        engine = ql.MCDiscreteArithmeticAPEngine(
            process, "PseudoRandom", antitheticVariate=True, controlVariate=False,
            requiredTolerance=target, seed=42,
        )  # fmt: skip
    option.setPricingEngine(engine)
    t0 = time.perf_counter()
    price = option.NPV()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "stderr": option.errorEstimate(), "price": price, "threads": 1}


def _threads() -> int:
    return int(numba.get_num_threads())


def _per_vcpu_second() -> tuple[str, float]:
    """The cheapest spot type of this machine's architecture and its $ per vCPU-second."""
    arch = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
    types = [t for t in load_catalogue().instances.values() if t.arch == arch and not t.gpus]
    best = min(types, key=lambda t: t.spot / t.vcpus)
    return best.name, best.spot / best.vcpus / 3600.0


def to_target(target: float, quantlib: bool) -> dict[str, Any]:
    itype, rate = _per_vcpu_second()
    out: dict[str, Any] = {"target_stderr": target, "instance_type": itype, "pricing": "spot"}
    cases = [("european_call", False), ("asian_arithmetic_call", False)]
    cases.append(("asian_arithmetic_call", True))
    for product, cv in cases:
        key = product + ("+control_variate" if cv else "")
        rows = {
            "philox": philox_to_target(product, target, cv),
            "sobol": sobol_to_target(product, target, cv),
        }
        if quantlib and not cv:
            rows["quantlib"] = quantlib_to_target(product, target)
        for row in rows.values():
            row["usd"] = row["seconds"] * row["threads"] * rate
        rows["philox_over_sobol_usd"] = rows["philox"]["usd"] / rows["sobol"]["usd"]
        if "quantlib" in rows:
            rows["quantlib_over_sobol_usd"] = rows["quantlib"]["usd"] / rows["sobol"]["usd"]
            rows["quantlib_over_philox_usd"] = rows["quantlib"]["usd"] / rows["philox"]["usd"]
        out[key] = rows
    return out


HESTON_MODEL = {"v0": 0.04, "kappa": 1.5, "theta": 0.04, "xi": 0.3, "rho": -0.7}


def gains() -> dict[str, Any]:
    """Standard errors of every product at one size, Philox (antithetic) against Sobol with and
    without the bridge: the ratio is the error gain at the same paths (its square the cost
    gain)."""
    gbm = {
        "paths": 2**20,
        "steps": STEPS,
        **MARKET,
        "products": ["european_call", "european_put", "asian_arithmetic_call"]
        + ["asian_geometric_call", "barrier_up_out_call"],
        "barrier": 130.0,
        "control_variate": False,
    }
    heston = {
        "paths": 2**18,
        "steps": 32,
        **{k: v for k, v in MARKET.items() if k != "volatility"},
        **HESTON_MODEL,
        "products": ["european_call", "asian_arithmetic_call", "barrier_up_out_call"],
        "barrier": 130.0,
    }
    basket = {
        "paths": 2**18,
        "steps": 8,
        "spots": [100.0, 95.0, 105.0, 80.0],
        "volatilities": [0.2, 0.35, 0.25, 0.15],
        "weights": [0.3, 0.2, 0.25, 0.25],
        "correlation": [
            [1.0, 0.6, 0.3, -0.2],
            [0.6, 1.0, 0.4, 0.1],
            [0.3, 0.4, 1.0, 0.25],
            [-0.2, 0.1, 0.25, 1.0],
        ],
        "strike": 95.0,
        "rate": 0.03,
        "maturity": 1.0,
        "products": ["basket_call", "basket_put", "geometric_basket_call"],
        "control_variate": False,
    }
    out: dict[str, Any] = {}
    for name, kernel, raw in (
        ("montecarlo.gbm", GBM, gbm),
        ("montecarlo.heston", HESTON, heston),
        ("montecarlo.basket", BASKET, basket),
    ):
        t_p, philox = _run(kernel, raw)
        t_s, sobol = _run(kernel, raw | {"sampler": "sobol"})
        t_n, plain = _run(kernel, raw | {"sampler": "sobol", "brownian_bridge": False})
        rows = {}
        for product in raw["products"]:
            se_p = philox["products"][product]["stderr"]
            se_s = sobol["products"][product]["stderr"]
            se_n = plain["products"][product]["stderr"]
            rows[product] = {
                "philox_stderr": se_p,
                "sobol_stderr": se_s,
                "sobol_no_bridge_stderr": se_n,
                "error_gain": se_p / se_s,
                "error_gain_no_bridge": se_p / se_n,
            }
        out[name] = {
            "paths": raw["paths"],
            "steps": raw["steps"],
            "seconds": {"philox": t_p, "sobol": t_s, "sobol_no_bridge": t_n},
            "products": rows,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=0.01)
    parser.add_argument("--no-quantlib", action="store_true")
    args = parser.parse_args()
    result = {
        "machine": machine(),
        "to_target": to_target(args.target, not args.no_quantlib),
        "gains": gains(),
    }
    t = result["to_target"]
    print(
        f"to a standard error of {t['target_stderr']} ({t['instance_type']} spot, "
        f"core-seconds at its $/vCPU-s):"
    )
    for key, rows in t.items():
        if not isinstance(rows, dict):
            continue
        print(f"  {key}")
        for method in ("philox", "sobol", "quantlib"):
            if method in rows:
                r = rows[method]
                paths = f"{r['paths']:>10,}" if "paths" in r else f"{'':>10}"
                print(
                    f"    {method:9} {paths} paths {r['seconds']:8.4f} s "
                    f"SE {r['stderr']:.5f} ${r['usd']:.3e}"
                )
        line = f"    Philox/Sobol {rows['philox_over_sobol_usd']:.1f}x"
        if "quantlib_over_sobol_usd" in rows:
            line += (
                f", QuantLib/Sobol {rows['quantlib_over_sobol_usd']:.0f}x, "
                f"QuantLib/Philox {rows['quantlib_over_philox_usd']:.1f}x"
            )
        print(line)
    print("error gain at the same paths (Philox SE / Sobol SE; with the bridge, without):")
    for kernel, block in result["gains"].items():
        print(f"  {kernel} ({block['paths']:,} paths, {block['steps']} steps)")
        for product, r in block["products"].items():
            print(f"    {product:24} {r['error_gain']:7.1f}x {r['error_gain_no_bridge']:7.1f}x")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "qmc.json").write_text(json.dumps(result, indent=2, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


if __name__ == "__main__":
    main()
