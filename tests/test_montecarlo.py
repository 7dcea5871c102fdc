"""montecarlo.gbm: prices against closed forms and NumPy references, standard errors against
theory, determinism across shard and thread counts, and parameter validation."""

from __future__ import annotations

import json
import math

import numba
import numpy as np
import pytest

from tessera.kernels import registry
from tessera.kernels.base import ParamError
from tessera.kernels.montecarlo import closed_form
from tessera.kernels.montecarlo.cpu import BLOCK_SAMPLES, N_STATS
from tessera.kernels.montecarlo.gbm import KERNEL, n_blocks
from tests import naive

BASE = {
    "paths": 2**17,
    "steps": 16,
    "spot": 100.0,
    "strike": 105.0,
    "rate": 0.03,
    "volatility": 0.25,
    "maturity": 1.0,
}
ALL = [
    "european_call",
    "european_put",
    "asian_arithmetic_call",
    "asian_geometric_call",
    "barrier_up_out_call",
]


def run(raw, seed=1, shards=1):
    """Parse, lay out, compute every shard in-process, reduce: (params, rows, result)."""
    params = KERNEL.parse_params(raw)
    layout = KERNEL.layout(params, shards)
    parts = [KERNEL.compute(params, seed, layout, i).arrays["sums"] for i in range(layout.n_shards)]
    rows = np.concatenate(parts)
    return params, rows, KERNEL.reduce(params, seed, {"sums": rows})


def within(result, name, reference, n_se=4.0):
    got = result["products"][name]
    assert abs(got["price"] - reference) <= n_se * got["stderr"], (name, got, reference)


def theoretical_stderr(p, put: bool, antithetic: bool, samples: int) -> float:
    """sd of one sample's discounted European payoff by numeric integration over z ~ N(0,1)
    (S_T = S0 exp((r - v^2/2) T + v sqrt(T) z); with antithetic the sample is the mean of the
    payoffs at z and -z), divided by sqrt(samples). Independent of the simulation."""
    z = np.linspace(-12, 12, 480_001)
    phi = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    sd = p["volatility"] * math.sqrt(p["maturity"])
    mu = (p["rate"] - 0.5 * p["volatility"] ** 2) * p["maturity"]
    disc = math.exp(-p["rate"] * p["maturity"])

    def f(zz):
        st = p["spot"] * np.exp(mu + sd * zz)
        return disc * np.maximum((p["strike"] - st) if put else (st - p["strike"]), 0.0)

    y = 0.5 * (f(z) + f(-z)) if antithetic else f(z)
    m1 = np.trapezoid(y * phi, z)
    m2 = np.trapezoid(y * y * phi, z)
    bs = (closed_form.black_scholes_put if put else closed_form.black_scholes_call)(
        p["spot"], p["strike"], p["rate"], p["volatility"], p["maturity"]
    )
    assert abs(m1 - bs) < 1e-6  # the quadrature is accurate
    return math.sqrt(m2 - m1 * m1) / math.sqrt(samples)


# --- prices and standard errors ---------------------------------------------------------------


@pytest.mark.parametrize("antithetic", [True, False])
def test_european_matches_black_scholes_and_stderr_matches_theory(antithetic):
    raw = {**BASE, "antithetic": antithetic, "products": ["european_call", "european_put"]}
    params, _, result = run(raw, seed=2024)
    args = (BASE["spot"], BASE["strike"], BASE["rate"], BASE["volatility"], BASE["maturity"])
    within(result, "european_call", closed_form.black_scholes_call(*args))
    within(result, "european_put", closed_form.black_scholes_put(*args))
    for name, put in (("european_call", False), ("european_put", True)):
        theory = theoretical_stderr(BASE, put, antithetic, params.samples)
        got = result["products"][name]["stderr"]
        assert abs(got / theory - 1) < 0.10, (name, got, theory)
    assert list(result["products"]) == ["european_call", "european_put"]
    assert result["paths"] == BASE["paths"]


def test_geometric_asian_matches_closed_form():
    raw = {**BASE, "steps": 12, "products": ["asian_geometric_call"]}
    _, _, result = run(raw, seed=7)
    ref = closed_form.geometric_asian_call(
        BASE["spot"], BASE["strike"], BASE["rate"], BASE["volatility"], BASE["maturity"], 12
    )
    within(result, "asian_geometric_call", ref)


def test_geometric_asian_closed_form_limits():
    # one fixing at maturity: the geometric average is S_T, so the price is Black-Scholes
    args = (100.0, 95.0, 0.04, 0.3, 2.0)
    assert closed_form.geometric_asian_call(*args, 1) == pytest.approx(
        closed_form.black_scholes_call(*args), rel=1e-12
    )


def test_control_variate_cuts_arithmetic_asian_stderr():
    raw = {**BASE, "steps": 12, "products": ["asian_arithmetic_call", "asian_geometric_call"]}
    _, _, plain = run({**raw, "control_variate": False}, seed=5)
    _, _, cv = run({**raw, "control_variate": True}, seed=5)
    a_plain = plain["products"]["asian_arithmetic_call"]
    a_cv = cv["products"]["asian_arithmetic_call"]
    assert a_cv["stderr"] * 5 <= a_plain["stderr"], (a_cv, a_plain)
    # same samples: the unadjusted stderr is reported alongside, and the prices agree
    assert cv["control_variate"]["stderr_without"] == a_plain["stderr"]
    assert abs(a_cv["price"] - a_plain["price"]) < 4 * a_plain["stderr"]
    # the geometric Asian itself is not adjusted
    assert cv["products"]["asian_geometric_call"] == plain["products"]["asian_geometric_call"]
    lo, hi = a_cv["ci95"]
    assert lo < a_cv["price"] < hi and hi - lo == pytest.approx(2 * 1.959964 * a_cv["stderr"])


@pytest.mark.parametrize("antithetic", [True, False])
def test_all_products_equal_numpy_reference_on_the_same_stream(antithetic):
    """tests/naive.py redraws the kernel's normals with its own Philox and np.log/cos/sin and
    prices in price space: the estimates agree to rounding (30 steps: a partial last group)."""
    seed = 99
    raw = {
        **BASE,
        "paths": 2 * 3000,
        "steps": 30,
        "strike": 100.0,
        "barrier": 125.0,
        "antithetic": antithetic,
        "control_variate": False,
        "products": ALL,
    }
    params, _, result = run(raw, seed=seed)
    z = naive.kernel_normals(seed, np.arange(params.samples), params.steps)
    pay = naive.gbm_payoffs(
        z,
        spot=100.0,
        strike=100.0,
        rate=0.03,
        volatility=0.25,
        maturity=1.0,
        barrier=125.0,
        antithetic=antithetic,
    )
    for name in ALL:
        mean, se = naive.mean_se(pay[name])
        got = result["products"][name]
        assert got["price"] == pytest.approx(mean, rel=1e-10, abs=1e-12), name
        assert got["stderr"] == pytest.approx(se, rel=1e-7), name
        assert abs(got["price"] - mean) <= 4 * got["stderr"]


def test_barrier_agrees_with_numpy_own_generator():
    """An independent check: NumPy's PCG64 normals through the NumPy reference."""
    raw = {
        **BASE,
        "paths": 2**17,
        "steps": 30,
        "strike": 100.0,
        "barrier": 125.0,
        "products": ["barrier_up_out_call"],
    }
    _, _, result = run(raw, seed=3)
    z = np.random.default_rng(12345).standard_normal((2**16, 30))
    pay = naive.gbm_payoffs(
        z,
        spot=100.0,
        strike=100.0,
        rate=0.03,
        volatility=0.25,
        maturity=1.0,
        barrier=125.0,
        antithetic=True,
    )
    mean, se = naive.mean_se(pay["barrier_up_out_call"])
    got = result["products"]["barrier_up_out_call"]
    assert abs(got["price"] - mean) <= 4 * math.hypot(got["stderr"], se), (got, mean, se)
    # the barrier is worth less than the vanilla call
    assert got["price"] < closed_form.black_scholes_call(100.0, 100.0, 0.03, 0.25, 1.0)


def test_confidence_intervals_cover_at_95_percent():
    """Over 400 seeds the 95% intervals must cover the true price about 380 times (binomial sd
    4.4): checks the standard errors, including the control-variate one, not just the means."""
    raw = {**BASE, "paths": 2**12, "steps": 8, "products": ALL[:4]}
    args = (BASE["spot"], BASE["strike"], BASE["rate"], BASE["volatility"], BASE["maturity"])
    truth = {
        "european_call": closed_form.black_scholes_call(*args),
        "asian_geometric_call": closed_form.geometric_asian_call(*args, 8),
        # no closed form: a run with 512x the paths (its error is ~1/20 of one small run's)
        "asian_arithmetic_call": run({**raw, "paths": 2**21}, seed=10**6)[2]["products"][
            "asian_arithmetic_call"
        ]["price"],
    }
    covered = dict.fromkeys(truth, 0)
    for seed in range(400):
        res = run(raw, seed=seed)[2]["products"]
        for name, value in truth.items():
            lo, hi = res[name]["ci95"]
            covered[name] += lo <= value <= hi
    for name, hits in covered.items():
        assert 380 - 4 * 4.4 <= hits <= 380 + 4 * 4.4, (name, hits)


# --- determinism ------------------------------------------------------------------------------

DET = {
    **BASE,
    "paths": 2 * (20 * BLOCK_SAMPLES + 100),  # 21 blocks, the last one partial
    "steps": 7,
    "barrier": 130.0,
    "products": ALL,
}


def test_bit_identical_across_shard_counts():
    results = {}
    rows = {}
    for shards in (1, 3, 16):
        params, rows[shards], res = run(DET, seed=77, shards=shards)
        results[shards] = json.dumps(res, sort_keys=True)
    assert n_blocks(params) == 21
    np.testing.assert_array_equal(rows[1], rows[3])
    np.testing.assert_array_equal(rows[1], rows[16])
    assert results[1] == results[3] == results[16]


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


def test_seed_changes_the_stream():
    raw = {**BASE, "paths": 2 * 4096}
    _, a, _ = run(raw, seed=1)
    _, b, _ = run(raw, seed=2)
    assert not np.array_equal(a, b)


# --- layout, stats, memory ----------------------------------------------------------------------


def test_layout_and_compute_stats():
    params = KERNEL.parse_params(DET)
    layout = KERNEL.layout(params, 4)
    (spec,) = layout.arrays
    assert spec.name == "sums" and spec.dtype == "float64" and spec.shape == (21, N_STATS)
    assert layout.bounds == ((0, 6, 12, 18, 21),) and spec.chunks == (6, N_STATS)
    assert layout.work == params.paths * params.steps and layout.work_unit == "path-steps"
    output = KERNEL.compute(params, 1, layout, 3)
    arrays, stats = output.arrays, output.stats
    assert arrays["sums"].shape == (3, N_STATS)
    assert stats == {
        "blocks": 3,
        "paths": 2 * (2 * BLOCK_SAMPLES + 100),
        "path_steps": 2 * (2 * BLOCK_SAMPLES + 100) * 7,
    }
    assert KERNEL.layout(params, 100).n_shards == 21  # one block per shard at most
    with pytest.raises(ValueError, match="out of range"):
        KERNEL.compute(params, 1, layout, 4)


def test_shard_counts_for_size_and_default():
    params = KERNEL.parse_params({**BASE, "paths": 10_000_000, "steps": 252})
    blocks = n_blocks(params)  # 5_000_000 pairs / 4096 = 1221 blocks
    assert blocks == 1221
    assert KERNEL.shards_for_size(params, 10_000_000) == 1
    assert KERNEL.shards_for_size(params, 2 * BLOCK_SAMPLES) == blocks
    assert KERNEL.shards_for_size(params, 1) == blocks
    shards = KERNEL.default_shards(params)
    assert 1 <= shards <= blocks and shards == math.ceil(10_000_000 * 252 / 2**30)
    # re-laying out with the resulting count is stable (engine/plan.py relies on it)
    n = KERNEL.layout(params, 7).n_shards
    assert KERNEL.layout(params, n).n_shards == n


def test_memory_projection_does_not_grow_with_paths_per_row():
    small = KERNEL.parse_params({**BASE, "paths": 2 * BLOCK_SAMPLES * 64})
    big = KERNEL.parse_params({**BASE, "paths": 2 * BLOCK_SAMPLES * 64 * 1000})
    m_small = KERNEL.shard_memory_bytes(small, KERNEL.layout(small, 1), 0)
    m_big = KERNEL.shard_memory_bytes(big, KERNEL.layout(big, 1000), 0)
    assert m_small == m_big < 1 << 20
    # one shard of 2**34 paths: only its rows (N_STATS floats per 4096 samples) add memory
    huge = KERNEL.parse_params({**BASE, "paths": 2**34})
    m_huge = KERNEL.shard_memory_bytes(huge, KERNEL.layout(huge, 1), 0)
    assert m_huge - m_small == 2 * 8 * N_STATS * (n_blocks(huge) - 64)


def test_reduce_rejects_incomplete_sums():
    params, rows, _ = run({**BASE, "paths": 4 * BLOCK_SAMPLES})
    bad = rows.copy()
    bad[1] = 0.0  # a shard that was never written
    with pytest.raises(ValueError, match="covers"):
        KERNEL.reduce(params, 1, {"sums": bad})
    with pytest.raises(ValueError, match="shape"):
        KERNEL.reduce(params, 1, {"sums": rows[:1]})


def test_registry_and_result_is_plain_json():
    assert registry.get("montecarlo.gbm") is KERNEL
    assert KERNEL.name == "montecarlo.gbm" and KERNEL.work_unit == "path-steps"
    _, _, result = run({**BASE, "paths": 2 * BLOCK_SAMPLES, "barrier": 140.0, "products": ALL})
    json.dumps(result, allow_nan=False)
    for entry in result["products"].values():
        assert all(type(v) is float for v in [entry["price"], entry["stderr"], *entry["ci95"]])
    assert list(result["products"]) == ALL


# --- parameters -------------------------------------------------------------------------------


def test_params_defaults_and_canonical_dict():
    params = KERNEL.parse_params({**BASE, "spot": 100, "rate": 0})
    canon = KERNEL.params_to_dict(params)
    assert canon["products"] == ["european_call", "european_put"]
    assert canon["antithetic"] is True and canon["control_variate"] is True
    assert type(canon["spot"]) is float and type(canon["rate"]) is float
    assert "barrier" not in canon
    assert KERNEL.parse_params(canon) == params
    with_barrier = KERNEL.parse_params({**BASE, "barrier": 150, "products": ALL})
    assert KERNEL.params_to_dict(with_barrier)["barrier"] == 150.0
    json.dumps(canon)


@pytest.mark.parametrize(
    "change,key,fragment",
    [
        ({"path": 10}, "path", "did you mean 'paths'"),
        ({"volatilty": 0.2}, "volatilty", "did you mean 'volatility'"),
        ({"paths": 1.5}, "paths", "integer"),
        ({"paths": True}, "paths", "integer"),
        ({"paths": 1}, "paths", "[2, "),
        ({"paths": 2}, "paths", ">= 4"),
        ({"paths": 2**60}, "paths", "1152921504606846976"),
        ({"paths": 11}, "paths", "even"),
        ({"steps": 0}, "steps", "[1, 100000]"),
        ({"steps": 100_001}, "steps", "100001"),
        ({"spot": "100"}, "spot", "number"),
        ({"spot": True}, "spot", "number"),
        ({"spot": -1.0}, "spot", "> 0"),
        ({"strike": 0}, "strike", "> 0"),
        ({"rate": 1.5}, "rate", "[-1, 1]"),
        ({"rate": float("nan")}, "rate", "finite"),
        ({"volatility": 0.0}, "volatility", "0 < volatility <= 5"),
        ({"volatility": 5.5}, "volatility", "5.5"),
        ({"maturity": 101}, "maturity", "<= 100"),
        ({"products": []}, "products", "at least one"),
        ({"products": "european_call"}, "products", "list"),
        ({"products": ["european_cal"]}, "products", "did you mean 'european_call'"),
        ({"products": ["european_call", "european_call"]}, "products", "twice"),
        ({"products": ["barrier_up_out_call"]}, "barrier", "required"),
        ({"barrier": 90.0}, "barrier", "above spot"),
        ({"antithetic": "yes"}, "antithetic", "true or false"),
        ({"control_variate": 1}, "control_variate", "true or false"),
    ],
)
def test_param_errors_name_the_key(change, key, fragment):
    with pytest.raises(ParamError) as info:
        KERNEL.parse_params({**BASE, **change})
    assert info.value.key == key
    assert fragment in info.value.message, info.value.message
    assert isinstance(info.value, ValueError)


def test_missing_required_key():
    raw = dict(BASE)
    del raw["maturity"]
    with pytest.raises(ParamError) as info:
        KERNEL.parse_params(raw)
    assert info.value.key == "maturity"
