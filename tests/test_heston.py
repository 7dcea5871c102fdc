"""montecarlo.heston: European prices against QuantLib's semi-analytic AnalyticHestonEngine
(three parameter sets, one violating Feller), QE against Euler, Greeks against finite
differences of QuantLib prices, a NumPy reference on the kernel's own streams, the step API that
montecarlo.book shares, determinism across shard and thread counts, an engine run, and the
parameter errors.

Tolerances: 4 standard errors plus a stated discretisation bound (``DISC_*``). Measured with
2**21 paths at 32 steps a year, QE's prices of the three sets are within 0.012 (2.3 standard
errors, i.e. no bias detectable at that size) of QuantLib's, and the call's delta, gamma and vega
within 0.0003, 0.0002 and 0.09; at 16 steps the vega bias is visible (-0.20, 3.6 SE).
The Greek references use the kernel's own bumps (spot h = 1 %, v0 k = 1 %) on
QuantLib's prices, so the bump bias of the finite differences is the same on both sides and
drops out; the inner derivative of the reference (its delta) uses a 1e-4 relative bump, whose
error (~1e-8) is far below the standard errors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytest

from tessera.kernels import registry
from tessera.kernels.base import ParamError
from tessera.kernels.montecarlo import heston_cpu, heston_params
from tessera.kernels.montecarlo.heston import KERNEL, kernel_args, n_blocks
from tessera.kernels.montecarlo.heston_cpu import (
    BLOCK_SAMPLES,
    N_STATS,
    SCHEME_EULER,
    SCHEME_QE,
    SCHEME_QE_M,
    heston_step,
    step_constants,
)
from tessera.kernels.rng import seed_key
from tests import naive

ALL = list(heston_cpu.PRODUCT_ORDER)
MODEL_KEYS = ("v0", "kappa", "theta", "xi", "rho")
SETS: dict[str, dict[str, float]] = {
    # rho = -0.7, Feller holds (2 kappa theta = 0.12 > xi^2 = 0.09)
    "rho-0.7": dict(
        spot=100.0, strike=100.0, rate=0.03, maturity=1.0, v0=0.04, kappa=1.5, theta=0.04,
        xi=0.3, rho=-0.7,
    ),
    # in the money, positive correlation, two years
    "rho+0.2": dict(
        spot=100.0, strike=90.0, rate=0.01, maturity=2.0, v0=0.09, kappa=3.0, theta=0.06,
        xi=0.5, rho=0.2,
    ),
    # Feller violated: 2 kappa theta = 0.04 < xi^2 = 1 (Andersen's case I, one year)
    "feller-violated": dict(
        spot=100.0, strike=100.0, rate=0.0, maturity=1.0, v0=0.04, kappa=0.5, theta=0.04,
        xi=1.0, rho=-0.9,
    ),
}  # fmt: skip
DISC_PRICE = 0.01  # stated bound on |QE bias| of a price at 32 steps a year (spot 100)
DISC_GREEK = {"delta": 0.001, "gamma": 0.0002, "vega": 0.25}  # same, for the Greeks


def run(raw: dict[str, Any], seed: int = 1, shards: int = 1):
    """Parse, lay out, compute every shard in-process, reduce: (params, rows, result)."""
    params = KERNEL.parse_params(raw)
    layout = KERNEL.layout(params, shards)
    parts = [KERNEL.compute(params, seed, layout, i).arrays["sums"] for i in range(layout.n_shards)]
    rows = np.concatenate(parts)
    return params, rows, KERNEL.reduce(params, seed, {"sums": rows})


def ql_price(m: dict[str, float], put: bool = False, **change: float) -> float:
    """QuantLib's AnalyticHestonEngine price of a European option (test-only reference)."""
    ql = pytest.importorskip("QuantLib")
    m = {**m, **change}
    today = ql.Date(1, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    curve = ql.YieldTermStructureHandle(ql.FlatForward(today, m["rate"], dc))
    flat0 = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc))
    process = ql.HestonProcess(
        curve,
        flat0,
        ql.QuoteHandle(ql.SimpleQuote(m["spot"])),
        *(m[k] for k in MODEL_KEYS),
    )
    engine = ql.AnalyticHestonEngine(ql.HestonModel(process), 1e-12, 100_000)
    days = round(m["maturity"] * 365)
    assert abs(days / 365 - m["maturity"]) < 1e-12  # year fractions match the kernel's exactly
    kind = ql.Option.Put if put else ql.Option.Call
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(kind, m["strike"]), ql.EuropeanExercise(today + days)
    )
    option.setPricingEngine(engine)
    return float(option.NPV())


# --- prices against QuantLib --------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SETS))
def test_european_call_and_put_match_quantlib(name):
    m = SETS[name]
    raw = {**m, "paths": 2**20, "steps": 32, "products": ["european_call", "european_put"]}
    _, _, result = run(raw, seed=11)
    for product, put in (("european_call", False), ("european_put", True)):
        ref = ql_price(m, put=put)
        got = result["products"][product]
        assert abs(got["price"] - ref) <= 4 * got["stderr"] + DISC_PRICE, (product, got, ref)
        assert got["stderr"] < 0.03  # the test can fail: the tolerance is a few cents


def test_martingale_corrected_qe_matches_quantlib():
    m = SETS["rho+0.2"]
    raw = {**m, "paths": 2**20, "steps": 16, "martingale_correction": True}
    _, _, result = run(raw, seed=12)
    for product, put in (("european_call", False), ("european_put", True)):
        got = result["products"][product]
        assert abs(got["price"] - ql_price(m, put=put)) <= 4 * got["stderr"] + DISC_PRICE


def test_qe_beats_euler_where_feller_fails():
    """8 steps, Feller violated: full-truncation Euler is biased by ~2 (hundreds of standard
    errors), QE by ~0.015 (a few); QE's bias plus 4 SE stays below Euler's minus 4 SE."""
    m = SETS["feller-violated"]
    ref = ql_price(m)
    bias = {}
    for scheme in ("qe", "euler"):
        raw = {**m, "paths": 2**19, "steps": 8, "scheme": scheme, "products": ["european_call"]}
        _, _, result = run(raw, seed=13)
        got = result["products"]["european_call"]
        bias[scheme] = (abs(got["price"] - ref), got["stderr"])
    (b_qe, se_qe), (b_eu, se_eu) = bias["qe"], bias["euler"]
    assert b_eu > 20 * se_eu, bias  # Euler's bias is significant
    assert b_qe + 4 * se_qe < b_eu - 4 * se_eu, bias
    assert b_qe < 0.05 * b_eu, bias


def test_european_call_greeks_match_quantlib_differences():
    m = SETS["rho-0.7"]
    raw = {
        **m,
        "paths": 2**19,
        "steps": 32,
        "products": ["european_call"],
        "greeks": ["delta", "gamma", "vega"],
    }
    _, _, result = run(raw, seed=14)
    s, v0, h, k, d = m["spot"], m["v0"], heston_cpu.SPOT_BUMP, heston_cpu.VEGA_BUMP, 1e-4

    def delta(spot: float) -> float:
        return (ql_price(m, spot=spot * (1 + d)) - ql_price(m, spot=spot * (1 - d))) / (
            2 * d * spot
        )

    ref = {
        "delta": delta(s),
        # what the kernel's estimators estimate: differences with the kernel's own bumps
        "gamma": (delta(s * (1 + h)) - delta(s * (1 - h))) / (2 * h * s),
        "vega": (ql_price(m, v0=v0 * (1 + k)) - ql_price(m, v0=v0 * (1 - k))) / (2 * k * v0),
    }
    greeks = result["products"]["european_call"]["greeks"]
    assert list(greeks) == ["delta", "gamma", "vega"]
    for name, value in ref.items():
        got = greeks[name]
        assert abs(got["value"] - value) <= 4 * got["stderr"] + DISC_GREEK[name], (name, got, value)
        assert got["stderr"] < 0.05 * abs(value), (name, got)  # tight enough to fail


def test_barrier_greeks_equal_repricing_at_bumped_spots():
    """The barrier's delta and gamma are differences of the payoff at S0 (1 +- h) on the same
    path; pricing at those spots with the same seed gives the same paths scaled, so the
    kernel's Greeks equal differences of its own prices (up to rounding of log S0)."""
    m = SETS["rho-0.7"]
    h = heston_cpu.SPOT_BUMP
    raw = {**m, "paths": 2 * 8192, "steps": 12, "barrier": 120.0, "products": ALL}
    _, _, base = run({**raw, "greeks": ["delta", "gamma"]}, seed=15)
    up = run({**raw, "spot": m["spot"] * (1 + h)}, seed=15)[2]["products"]
    dn = run({**raw, "spot": m["spot"] * (1 - h)}, seed=15)[2]["products"]
    b = base["products"]["barrier_up_out_call"]
    p0, pu, pd = b["price"], up["barrier_up_out_call"]["price"], dn["barrier_up_out_call"]["price"]
    s = m["spot"]
    delta = b["greeks"]["delta"]["value"]
    gamma = b["greeks"]["gamma"]["value"]
    assert delta == pytest.approx((pu - pd) / (2 * h * s), rel=1e-9)
    assert gamma == pytest.approx((pu - 2 * p0 + pd) / (h * s) ** 2, rel=1e-6)
    # the vanilla call of the same paths is worth more, and its delta is larger
    call = base["products"]["european_call"]
    assert call["price"] > p0 and call["greeks"]["delta"]["value"] > delta


def test_put_call_parity_and_gamma_of_call_equals_put():
    """Same paths: call - put = D (S_T - K) per path, whose mean is S0 - K D up to MC error,
    and the pathwise call and put gammas are the same estimator."""
    m = SETS["rho-0.7"]
    raw = {**m, "paths": 2**16, "steps": 8, "martingale_correction": True, "greeks": ["gamma"]}
    _, _, result = run(raw, seed=16)
    call, put = result["products"]["european_call"], result["products"]["european_put"]
    parity = m["spot"] - m["strike"] * math.exp(-m["rate"] * m["maturity"])
    assert abs(call["price"] - put["price"] - parity) < 4 * math.hypot(
        call["stderr"], put["stderr"]
    )
    assert call["greeks"]["gamma"]["value"] == pytest.approx(
        put["greeks"]["gamma"]["value"], rel=1e-12
    )


# --- the streams: a NumPy reference and the step API ---------------------------------------------


def numpy_paths(m: dict[str, Any], seed: int, samples: int, steps: int, sign: float, scheme: str):
    """Log prices (samples, steps) of the kernel's paths, recomputed with NumPy: the Philox of
    tests/naive.py, np.log/cos/sin Box-Muller, the QE / Euler formulas written again."""
    key = seed_key(seed)
    s = np.arange(samples, dtype=np.uint64)
    dt = m["maturity"] / steps
    kappa, theta, xi, rho, r = m["kappa"], m["theta"], m["xi"], m["rho"], m["rate"]
    e = math.exp(-kappa * dt)
    k0 = -rho * kappa * theta * dt / xi
    k1 = 0.5 * dt * (kappa * rho / xi - 0.5) - rho / xi
    k2 = 0.5 * dt * (kappa * rho / xi - 0.5) + rho / xi
    k3 = k4 = 0.5 * dt * (1 - rho * rho)
    x = np.full(samples, math.log(m["spot"]))
    v = np.full(samples, m["v0"])
    out = np.empty((samples, steps))
    for j in range(steps):
        counters = np.stack(
            [np.full(samples, j, np.uint64), s & naive.MASK, s >> np.uint64(32), 0 * s], axis=1
        )
        w = (naive.philox4x32(counters, key).astype(np.float64) + 0.5) * 2.0**-32
        rad = np.sqrt(-2.0 * np.log(w[:, 0]))
        zv = sign * rad * np.cos(2 * np.pi * w[:, 1])
        zx = sign * rad * np.sin(2 * np.pi * w[:, 1])
        u = w[:, 2] if sign > 0 else 1.0 - w[:, 2]
        if scheme == "euler":
            vp = np.maximum(v, 0.0)
            x = x + (r - 0.5 * vp) * dt + np.sqrt(vp * dt) * (rho * zv + math.sqrt(1 - rho**2) * zx)
            v = v + kappa * (theta - vp) * dt + xi * np.sqrt(vp * dt) * zv
        else:
            mean = theta + (v - theta) * e
            var = v * xi**2 * e * (1 - e) / kappa + theta * xi**2 * (1 - e) ** 2 / (2 * kappa)
            psi = var / mean**2
            with np.errstate(divide="ignore", invalid="ignore"):
                b2 = 2 / psi - 1 + np.sqrt(2 / psi) * np.sqrt(2 / psi - 1)
                quad = mean / (1 + b2) * (np.sqrt(b2) + zv) ** 2
                p = (psi - 1) / (psi + 1)
                beta = (1 - p) / mean
                expo = np.where(u <= p, 0.0, np.log((1 - p) / (1 - u)) / beta)
            vn = np.where(psi <= 1.5, quad, expo)
            x = x + r * dt + k0 + k1 * v + k2 * vn + np.sqrt(k3 * v + k4 * vn) * zx
            v = vn
        out[:, j] = x
    return out


@pytest.mark.parametrize("scheme", ["qe", "euler"])
def test_every_product_equals_a_numpy_reference_on_the_same_stream(scheme):
    m = {**SETS["feller-violated"], "rate": 0.02}  # both QE branches, negative Euler variance
    samples, steps, seed = 3 * 64 + 5, 6, 21
    raw = {**m, "paths": 2 * samples, "steps": steps, "scheme": scheme}
    raw.update(barrier=115.0, products=ALL)
    _, _, result = run(raw, seed=seed)
    disc = math.exp(-m["rate"] * m["maturity"])
    pay: dict[str, np.ndarray] = dict.fromkeys(ALL, 0.0)  # type: ignore[arg-type]
    for sign in (1.0, -1.0):
        x = numpy_paths(m, seed, samples, steps, sign, scheme)
        st, avg = np.exp(x[:, -1]), np.exp(x).mean(axis=1)
        k = m["strike"]
        pay["european_call"] = pay["european_call"] + 0.5 * disc * np.maximum(st - k, 0)
        pay["european_put"] = pay["european_put"] + 0.5 * disc * np.maximum(k - st, 0)
        pay["asian_arithmetic_call"] = pay["asian_arithmetic_call"] + 0.5 * disc * np.maximum(
            avg - k, 0
        )
        alive = np.exp(x).max(axis=1) < 115.0
        pay["barrier_up_out_call"] = pay["barrier_up_out_call"] + 0.5 * disc * np.where(
            alive, np.maximum(st - k, 0), 0.0
        )
    for name in ALL:
        mean, se = naive.mean_se(pay[name])
        got = result["products"][name]
        assert got["price"] == pytest.approx(mean, rel=1e-9), name
        assert got["stderr"] == pytest.approx(se, rel=1e-6), name


def _step_api_payoffs(m: dict[str, Any], seed: int, samples: int, steps: int, scheme: int):
    """Mean of the antithetic call payoffs through the public heston_step, one call per step."""
    c = step_constants(m["maturity"] / steps, *(m[k] for k in ("kappa", "theta", "xi", "rho")),
                       m["rate"])  # fmt: skip
    k0, k1 = seed_key(seed)
    disc = math.exp(-m["rate"] * m["maturity"])
    total = 0.0
    for s in range(samples):
        pair = 0.0
        for sign in (1.0, -1.0):
            x, v = math.log(m["spot"]), m["v0"]
            for j in range(steps):
                x, v = heston_step(x, v, j, s, 0, k0, k1, sign, c, scheme)
            pair += 0.5 * disc * max(math.exp(x) - m["strike"], 0.0)
        total += pair
    return total / samples


@pytest.mark.parametrize("scheme", ["qe", "qe-m", "euler"])
def test_kernel_paths_are_the_public_step_function(scheme):
    """montecarlo.book re-uses heston_step; the kernel's block code must give its paths."""
    m = SETS["feller-violated"]
    samples, steps = 70, 5
    raw = {**m, "paths": 2 * samples, "steps": steps, "martingale_correction": scheme == "qe-m"}
    raw["scheme"] = "euler" if scheme == "euler" else "qe"
    _, _, result = run(raw, seed=22)
    code = {"qe": SCHEME_QE, "qe-m": SCHEME_QE_M, "euler": SCHEME_EULER}[scheme]
    ref = _step_api_payoffs(m, 22, samples, steps, code)
    assert result["products"]["european_call"]["price"] == pytest.approx(ref, rel=1e-12)


def test_step_constants():
    c = step_constants(0.25, 1.5, 0.04, 0.5, -0.7, 0.03)
    assert c.dtype == np.float64 and c.shape == (heston_cpu.N_STEP_CONSTS,)
    assert c[heston_cpu.C_E] == pytest.approx(math.exp(-0.375), rel=1e-15)
    # the small-dt series and the direct form of 1 - exp(-kappa dt) meet smoothly
    lo, hi = (step_constants(dt, 1.0, 0.04, 0.5, 0.0, 0.0)[heston_cpu.C_M1] for dt in
              (0.999999e-3, 1.000001e-3))  # fmt: skip
    assert lo / 0.04 == pytest.approx(-math.expm1(-0.999999e-3), rel=1e-12)
    assert hi / 0.04 == pytest.approx(-math.expm1(-1.000001e-3), rel=1e-12)
    with pytest.raises(ValueError, match="dt must be > 0"):
        step_constants(0.0, 1.0, 0.04, 0.5, 0.0, 0.0)


# --- determinism ------------------------------------------------------------------------------

DET = {
    **SETS["rho-0.7"],
    "paths": 2 * (20 * BLOCK_SAMPLES + 100),  # 21 blocks, the last one partial
    "steps": 5,
    "barrier": 130.0,
    "products": ALL,
    "greeks": ["delta", "gamma", "vega"],
}


def test_bit_identical_across_shard_counts():
    rows, results = {}, {}
    for shards in (1, 3, 7):
        params, rows[shards], res = run(DET, seed=77, shards=shards)
        results[shards] = json.dumps(res, sort_keys=True)
    assert n_blocks(params) == 21
    np.testing.assert_array_equal(rows[1], rows[3])
    np.testing.assert_array_equal(rows[1], rows[7])
    assert results[1] == results[3] == results[7]


def test_bit_identical_across_thread_counts():
    before = numba.get_num_threads()
    outs = []
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            _, rows, res = run(DET, seed=77, shards=2)
            outs.append((rows, json.dumps(res, sort_keys=True)))
    finally:
        numba.set_num_threads(before)
    for rows, text in outs[1:]:
        np.testing.assert_array_equal(rows, outs[0][0])
        assert text == outs[0][1]


def test_seed_and_scheme_change_the_rows():
    raw = {**SETS["rho-0.7"], "paths": 2 * BLOCK_SAMPLES, "steps": 3}
    a = run(raw, seed=1)[1]
    assert not np.array_equal(a, run(raw, seed=2)[1])
    assert not np.array_equal(a, run({**raw, "scheme": "euler"}, seed=1)[1])


def _job(store: Path, shards: int) -> dict[str, Any]:
    params = {**SETS["rho-0.7"], "paths": 2 * (3 * BLOCK_SAMPLES + 10), "steps": 4}
    params.update(barrier=130.0, products=ALL, greeks=["delta", "vega"])
    return {
        "job": {
            "name": "heston-e2e",
            "kernel": "montecarlo.heston",
            "store": str(store),
            "shards": shards,
            "seed": 5,
        },
        "params": params,
    }


def test_engine_run_result_is_byte_identical_for_1_and_3_shards(tmp_path):
    from tessera.engine import executors, spec
    from tessera.engine.run import run_job

    blobs = {}
    for shards in (1, 3):
        job = spec.from_dict(_job(tmp_path / f"s{shards}", shards))
        outcome = run_job(job, executors.create("local"), lambda e: None)
        assert outcome.ok, outcome.failures
        blobs[shards] = (tmp_path / f"s{shards}" / "result.json").read_bytes()
    assert blobs[1] == blobs[3]
    result = json.loads(blobs[1])
    assert result["scheme"] == "qe" and result["paths"] == 2 * (3 * BLOCK_SAMPLES + 10)
    assert list(result["products"]) == ALL
    assert list(result["products"]["barrier_up_out_call"]["greeks"]) == ["delta", "vega"]


# --- layout, stats, memory, reduce ---------------------------------------------------------------


def test_layout_stats_and_shard_sizes():
    params = KERNEL.parse_params(DET)
    layout = KERNEL.layout(params, 4)
    (spec,) = layout.arrays
    assert spec.name == "sums" and spec.shape == (21, N_STATS) and spec.chunks == (6, N_STATS)
    assert layout.work == params.paths * params.steps and layout.work_unit == "path-steps"
    stats = KERNEL.compute(params, 1, layout, 3).stats
    assert stats == {"blocks": 3, "paths": 2 * (2 * BLOCK_SAMPLES + 100), "path_steps": 2 * (
        2 * BLOCK_SAMPLES + 100) * 5}  # fmt: skip
    assert KERNEL.layout(params, 100).n_shards == 21
    with pytest.raises(ValueError, match="out of range"):
        KERNEL.compute(params, 1, layout, 4)
    big = KERNEL.parse_params({**DET, "paths": 10_000_000, "steps": 252})
    assert KERNEL.default_shards(big) == math.ceil(10_000_000 * 252 / 2**28)
    assert KERNEL.shards_for_size(big, 10_000_000) == 1
    assert KERNEL.shards_for_size(big, 1) == n_blocks(big)
    with pytest.raises(ParamError, match="shard_size"):
        KERNEL.shards_for_size(big, 0)
    m_small = KERNEL.shard_memory_bytes(params, KERNEL.layout(params, 21), 0)
    m_big = KERNEL.shard_memory_bytes(big, KERNEL.layout(big, n_blocks(big)), 0)
    assert m_small == m_big < 1 << 20


def test_reduce_rejects_incomplete_sums_and_result_is_plain_json():
    params, rows, result = run({**DET, "paths": 4 * BLOCK_SAMPLES})
    json.dumps(result, allow_nan=False)
    bad = rows.copy()
    bad[1] = 0.0
    with pytest.raises(ValueError, match="covers"):
        KERNEL.reduce(params, 1, {"sums": bad})
    with pytest.raises(ValueError, match="shape"):
        KERNEL.reduce(params, 1, {"sums": rows[:1]})
    assert registry.get("montecarlo.heston") is KERNEL
    parse = registry.params_parser(registry.info("montecarlo.heston"))
    assert parse is heston_params.parse
    assert (
        "greeks" not in run({**DET, "paths": 2 * 64, "greeks": []})[2]["products"]["european_call"]
    )


def test_kernel_args_and_warm():
    params = KERNEL.parse_params({**DET, "scheme": "euler"})
    c, kc, flags, key = kernel_args(params, 2**40 + 3)
    assert flags.tolist() == [SCHEME_EULER, 1, 1, 1] and key.tolist() == [3, 256]
    assert len(kc) == len(heston_cpu.KERNEL_CONSTANTS) and len(flags) == len(heston_cpu.FLAGS)
    KERNEL.warm(params)


# --- parameters -------------------------------------------------------------------------------

BASE = {**SETS["rho-0.7"], "paths": 1000, "steps": 10}


def test_params_defaults_and_canonical_dict():
    params = KERNEL.parse_params({**BASE, "spot": 100, "rate": 0})
    canon = KERNEL.params_to_dict(params)
    assert canon["products"] == ["european_call", "european_put"] and canon["scheme"] == "qe"
    assert canon["antithetic"] is True and canon["martingale_correction"] is False
    assert type(canon["spot"]) is float and "barrier" not in canon and "greeks" not in canon
    assert KERNEL.parse_params(canon) == params
    full = KERNEL.parse_params({**BASE, "barrier": 150, "products": ALL, "greeks": ["vega"]})
    assert KERNEL.parse_params(KERNEL.params_to_dict(full)) == full
    assert params.feller and not KERNEL.parse_params({**BASE, **SETS["feller-violated"]}).feller


def test_light_params_module_imports_no_numpy():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from tessera.kernels.montecarlo import heston_params\n"
        "assert 'numpy' not in sys.modules and 'numba' not in sys.modules, sorted(sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    "change,key,fragment",
    [
        ({"vol": 0.2}, "vol", "unknown parameter"),
        ({"kapa": 1.0}, "kapa", "did you mean 'kappa'"),
        ({"volatility": 0.2}, "volatility", "montecarlo.heston takes"),
        ({"paths": 1.5}, "paths", "integer"),
        ({"paths": 11}, "paths", "even"),
        ({"steps": 0}, "steps", "[1, 100000]"),
        ({"spot": -1.0}, "spot", "> 0"),
        ({"strike": True}, "strike", "number"),
        ({"rate": 2.0}, "rate", "[-1, 1]"),
        ({"maturity": 0}, "maturity", "0 < maturity"),
        ({"v0": 0.0}, "v0", "initial variance > 0"),
        ({"v0": "0.04"}, "v0", "number"),
        ({"kappa": -1.0}, "kappa", "> 0"),
        ({"theta": 30.0}, "theta", "<= 25"),
        ({"xi": 0.0}, "xi", "volatility of variance > 0"),
        ({"rho": -1.5}, "rho", "correlation >= -1"),
        ({"rho": float("nan")}, "rho", "finite"),
        ({"products": []}, "products", "at least one"),
        ({"products": ["asian_geometric_call"]}, "products", "montecarlo.heston prices"),
        ({"products": ["european_cal"]}, "products", "did you mean 'european_call'"),
        ({"products": ["barrier_up_out_call"]}, "barrier", "required"),
        ({"barrier": 90.0}, "barrier", "above spot"),
        ({"antithetic": "yes"}, "antithetic", "true or false"),
        ({"scheme": "milstein"}, "scheme", "not one of qe, euler"),
        ({"scheme": "eular"}, "scheme", "did you mean 'euler'"),
        ({"martingale_correction": 1}, "martingale_correction", "true or false"),
        ({"scheme": "euler", "martingale_correction": True}, "martingale_correction", "'qe'"),
        ({"greeks": ["rho"]}, "greeks", "unknown Greek 'rho'"),
        ({"greeks": ["vega", "vega"]}, "greeks", "twice"),
        ({"greeks": "delta"}, "greeks", "list"),
    ],
)
def test_param_errors_name_the_key(change, key, fragment):
    with pytest.raises(ParamError) as info:
        heston_params.parse({**BASE, **change})
    assert info.value.key == key
    assert fragment in info.value.message, info.value.message


def test_missing_keys_are_all_named():
    raw = {k: v for k, v in BASE.items() if k not in ("kappa", "xi")}
    with pytest.raises(ParamError) as info:
        KERNEL.parse_params(raw)
    assert info.value.key == "kappa" and "params.xi" in info.value.message
