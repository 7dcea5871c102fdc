"""montecarlo.gbm Greeks: against Black-Scholes and the geometric Asian's closed form, the
likelihood-ratio estimators against Black-Scholes where the barrier is out of reach, the
pathwise ones against common-random-number differences of the kernel's own prices, standard
errors against the spread over independent seeds, prices unchanged by asking for Greeks, and
determinism across shard counts."""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest

from tessera.engine import executors, spec
from tessera.engine.run import run_job
from tessera.engine.store import Store
from tessera.kernels.base import ParamError
from tessera.kernels.montecarlo import closed_form
from tessera.kernels.montecarlo.gbm import GREEK_ARRAY, KERNEL
from tests.jobs import job_dict

GREEKS = ["delta", "gamma", "vega", "rho", "theta"]
MODEL = {"spot": 100.0, "strike": 105.0, "rate": 0.03, "volatility": 0.25, "maturity": 1.0}
BASE = {**MODEL, "paths": 2 * 200_000, "steps": 16, "greeks": GREEKS}


def run(raw, seed=1, shards=1):
    """Compute every shard in-process and reduce: (arrays, result)."""
    params = KERNEL.parse_params(raw)
    layout = KERNEL.layout(params, shards)
    outs = [KERNEL.compute(params, seed, layout, i).arrays for i in range(layout.n_shards)]
    arrays = {name: np.concatenate([o[name] for o in outs]) for name in outs[0]}
    return arrays, KERNEL.reduce(params, seed, arrays)


def assert_within(got, reference, label, n_se=4.0):
    assert abs(got["value"] - reference) <= n_se * got["stderr"], (label, got, reference)


def geometric(steps, **bump):
    p = {**MODEL, **bump}
    return closed_form.geometric_asian_call(
        p["spot"], p["strike"], p["rate"], p["volatility"], p["maturity"], steps
    )


def geometric_greeks(steps):
    """The geometric Asian's Greeks by central differences of its closed form (errors ~1e-7)."""
    h = 1e-4
    s, v, r, t = (MODEL[k] for k in ("spot", "volatility", "rate", "maturity"))

    def diff(key, x):
        return (geometric(steps, **{key: x + h}) - geometric(steps, **{key: x - h})) / (2 * h)

    gh = 1e-2
    gamma = geometric(steps, spot=s + gh) - 2 * geometric(steps) + geometric(steps, spot=s - gh)
    return {
        "delta": diff("spot", s),
        "gamma": gamma / gh**2,
        "vega": diff("volatility", v),
        "rho": diff("rate", r),
        "theta": -diff("maturity", t),
    }


@pytest.mark.parametrize("antithetic", [True, False])
def test_european_greeks_match_black_scholes(antithetic):
    raw = {**BASE, "products": ["european_call", "european_put"], "antithetic": antithetic}
    _, result = run(raw, seed=3)
    for kind in ("call", "put"):
        ref = closed_form.black_scholes_greeks(kind, *MODEL.values())
        got = result["products"][f"european_{kind}"]["greeks"]
        assert list(got) == GREEKS
        for greek in GREEKS:
            assert_within(got[greek], ref[greek], f"{kind} {greek}")


def test_black_scholes_greeks_closed_form_against_differences():
    """The reference itself: the closed-form Greeks equal differences of the BS price."""
    h = 1e-5
    for kind, price in (
        ("call", closed_form.black_scholes_call),
        ("put", closed_form.black_scholes_put),
    ):
        ref = closed_form.black_scholes_greeks(kind, *MODEL.values())
        args = list(MODEL.values())
        for i, greek in ((0, "delta"), (3, "vega"), (2, "rho"), (4, "theta")):
            up, dn = list(args), list(args)
            up[i] += h
            dn[i] -= h
            d = (price(*up) - price(*dn)) / (2 * h)
            assert math.isclose(-d if greek == "theta" else d, ref[greek], rel_tol=1e-6)


@pytest.mark.parametrize("steps", [1, 12])
def test_geometric_asian_greeks_match_closed_form(steps):
    raw = {**BASE, "steps": steps, "products": ["asian_geometric_call"]}
    _, result = run(raw, seed=5)
    got = result["products"]["asian_geometric_call"]["greeks"]
    ref = geometric_greeks(steps)
    for greek in GREEKS:
        assert_within(got[greek], ref[greek], f"geometric {greek}")


def test_likelihood_ratio_estimators_equal_black_scholes_without_knock_out():
    """A barrier no path reaches makes the up-and-out call a European call: its likelihood-ratio
    Greeks must then estimate the Black-Scholes ones."""
    raw = {**BASE, "products": ["barrier_up_out_call"], "barrier": 1e9}
    _, result = run(raw, seed=9)
    ref = closed_form.black_scholes_greeks("call", *MODEL.values())
    got = result["products"]["barrier_up_out_call"]["greeks"]
    for greek in GREEKS:
        assert_within(got[greek], ref[greek], f"barrier LR {greek}")


def test_pathwise_asian_greeks_equal_common_random_number_differences():
    """Pathwise estimators are the derivatives of the same paths' prices: central differences of
    the kernel's own prices at the same seed agree to a small fraction of a standard error."""
    base = {**MODEL, "paths": 2 * 50_000, "steps": 16, "control_variate": False}
    base["products"] = ["asian_arithmetic_call", "asian_geometric_call"]
    _, result = run({**base, "greeks": GREEKS}, seed=4)

    def price(**bump):
        return run({**base, **bump}, seed=4)[1]["products"]

    bumps = {"delta": ("spot", 0.05), "vega": ("volatility", 1e-4), "rho": ("rate", 1e-4)}
    bumps["theta"] = ("maturity", 1e-4)
    for greek, (key, h) in bumps.items():
        up, dn = price(**{key: base[key] + h}), price(**{key: base[key] - h})
        for name in base["products"]:
            d = (up[name]["price"] - dn[name]["price"]) / (2 * h)
            d = -d if greek == "theta" else d
            got = result["products"][name]["greeks"][greek]
            assert abs(got["value"] - d) <= 0.05 * got["stderr"], (name, greek, got, d)


def test_arithmetic_asian_gamma_near_geometric_differences():
    """The CRN-bump gamma of the arithmetic Asian: within 4 SE of a second difference of the
    kernel's arithmetic prices at a wider bump on many more paths (independent seed)."""
    raw = {**MODEL, "paths": 2 * 200_000, "steps": 8, "products": ["asian_arithmetic_call"]}
    _, result = run({**raw, "greeks": ["gamma"]}, seed=21)
    got = result["products"]["asian_arithmetic_call"]["greeks"]["gamma"]
    h = 2.0
    ref_raw = {**raw, "paths": 2 * 1_000_000}
    prices = [
        run({**ref_raw, "spot": MODEL["spot"] + d}, seed=22)[1]["products"][
            "asian_arithmetic_call"
        ]["price"]
        for d in (-h, 0.0, h)
    ]
    ref = (prices[0] - 2 * prices[1] + prices[2]) / h**2
    # the reference's own noise: CRN second differences of a convex payoff are smooth in h
    assert abs(got["value"] - ref) <= 4 * got["stderr"] + 0.02 * ref, (got, ref)


def test_reported_stderr_matches_spread_over_seeds():
    """Each Greek's reported standard error is within 15% of the standard deviation of its value
    over 400 independent seeds (the spread's own sampling error is about 3.5%)."""
    raw = {
        **MODEL,
        "paths": 2 * 4096,
        "steps": 8,
        "products": ["european_call", "asian_geometric_call"],
        "greeks": GREEKS,
    }
    values: dict[tuple[str, str], list[float]] = {}
    errors: dict[tuple[str, str], list[float]] = {}
    for seed in range(400):
        products = run(raw, seed=1000 + seed)[1]["products"]
        for name, entry in products.items():
            for greek, g in entry["greeks"].items():
                values.setdefault((name, greek), []).append(g["value"])
                errors.setdefault((name, greek), []).append(g["stderr"])
    for key, vals in values.items():
        spread = float(np.std(vals, ddof=1))
        reported = float(np.sqrt(np.mean(np.square(errors[key]))))
        assert abs(reported / spread - 1.0) <= 0.15, (key, reported, spread)


def test_prices_unchanged_by_greeks_and_rows_identical_across_shards():
    raw = {
        **MODEL,
        "paths": 2 * 4096 * 5 + 6,
        "steps": 7,
        "barrier": 140.0,
        "products": [
            "european_call",
            "european_put",
            "asian_arithmetic_call",
            "asian_geometric_call",
            "barrier_up_out_call",
        ],
    }
    plain, plain_result = run(raw, seed=11)
    with_greeks, result = run({**raw, "greeks": GREEKS}, seed=11)
    np.testing.assert_array_equal(plain["sums"], with_greeks["sums"])
    for name, entry in result["products"].items():
        assert {k: v for k, v in entry.items() if k != "greeks"} == plain_result["products"][name]
    for shards in (3, 6):
        arrays, other = run({**raw, "greeks": GREEKS}, seed=11, shards=shards)
        np.testing.assert_array_equal(arrays[GREEK_ARRAY], with_greeks[GREEK_ARRAY])
        assert json.dumps(other, sort_keys=True) == json.dumps(result, sort_keys=True)


def test_greeks_only_for_what_was_asked():
    _, result = run({**BASE, "paths": 2 * 4096, "products": ["european_put"], "greeks": ["rho"]})
    assert list(result["products"]["european_put"]["greeks"]) == ["rho"]
    params = KERNEL.parse_params({**BASE, "greeks": []})
    assert "greeks" not in KERNEL.params_to_dict(params)  # old jobs keep their spec hash
    assert [a.name for a in KERNEL.layout(params, 2).arrays] == ["sums"]


@pytest.mark.parametrize(
    "value, fragment",
    [
        (["delta", "vanna"], "unknown Greek 'vanna'"),
        (["vega", "vega"], "'vega' is listed twice"),
        ("delta", "expected a list of Greek names"),
        (["thetta"], "did you mean 'theta'"),
    ],
)
def test_greek_errors_name_the_key(value, fragment):
    with pytest.raises(ParamError) as err:
        KERNEL.parse_params({**BASE, "greeks": value})
    assert err.value.key == "greeks" and fragment in str(err.value)


def test_greeks_refused_on_the_cuda_twin():
    params = KERNEL.parse_params({**BASE, "paths": 2 * 4096})
    layout = KERNEL.layout(params, 1)
    with pytest.raises(ValueError, match="greeks are computed by the CPU kernel only"):
        KERNEL.compute(params, 1, layout, 0, types.SimpleNamespace(device="cuda"))


def test_engine_run_writes_greeks_to_result_json(tmp_path):
    params = {**BASE, "paths": 2 * 4096 * 3, "products": ["european_call"], "greeks": GREEKS}
    texts = []
    for shards in (1, 3):
        job = spec.from_dict(job_dict(tmp_path / f"s{shards}", shards=shards, **params))
        assert run_job(job, executors.create("local"), lambda e: None).ok
        texts.append(Store.open_existing(job.store).fs.cat_file(f"{job.store}/result.json"))
    assert texts[0] == texts[1]
    greeks = json.loads(texts[0])["products"]["european_call"]["greeks"]
    assert set(greeks) == set(GREEKS) and set(greeks["vega"]) == {"value", "stderr"}
