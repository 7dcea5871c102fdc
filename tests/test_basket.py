"""montecarlo.basket: prices against closed forms (geometric basket, Margrabe) and QuantLib, the
one-asset case against montecarlo.gbm to the bit, a NumPy reference of the correlated stream,
determinism across shard counts, parameter validation, and one run through the engine."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tessera.kernels.base import ParamError
from tessera.kernels.montecarlo import basket_params, closed_form, closed_form_basket
from tessera.kernels.montecarlo import gbm as gbm_kernel
from tessera.kernels.montecarlo.basket import KERNEL, kernel_args
from tessera.kernels.montecarlo.basket_cpu import BLOCK_SAMPLES, col_sum, col_sumsq
from tests import naive

CORR3 = [[1.0, 0.5, 0.2], [0.5, 1.0, -0.3], [0.2, -0.3, 1.0]]
CORR4 = [
    [1.0, 0.6, 0.3, -0.2],
    [0.6, 1.0, 0.4, 0.1],
    [0.3, 0.4, 1.0, 0.25],
    [-0.2, 0.1, 0.25, 1.0],
]
BASE3: dict[str, Any] = {
    "paths": 2**16,
    "steps": 4,
    "spots": [100.0, 90.0, 110.0],
    "volatilities": [0.2, 0.3, 0.25],
    "weights": [0.4, 0.3, 0.3],
    "correlation": CORR3,
    "strike": 100.0,
    "rate": 0.03,
    "maturity": 1.0,
}


def run(raw: dict[str, Any], seed: int = 1, shards: int = 1) -> tuple[Any, np.ndarray, dict]:
    """Parse, lay out, compute every shard in-process, reduce: (params, rows, result)."""
    params = KERNEL.parse_params(raw)
    layout = KERNEL.layout(params, shards)
    parts = [KERNEL.compute(params, seed, layout, i).arrays["sums"] for i in range(layout.n_shards)]
    rows = np.concatenate(parts)
    return params, rows, KERNEL.reduce(params, seed, {"sums": rows})


def within(result: dict, name: str, reference: float, n_se: float = 4.0) -> None:
    got = result["products"][name]
    assert abs(got["price"] - reference) <= n_se * got["stderr"], (name, got, reference)


# --- prices -----------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [[0.3, 0.2, 0.25, 0.25], [0.5, 0.5, 0.5, 0.5]])
def test_geometric_basket_matches_closed_form(weights):
    raw = {
        **BASE3,
        "spots": [100.0, 95.0, 105.0, 80.0],
        "volatilities": [0.2, 0.35, 0.25, 0.15],
        "weights": weights,
        "correlation": CORR4,
        # weights summing to 2 make G ~ prod S_a ** 0.5, about 9,500: a strike near it
        "strike": 95.0 if sum(weights) == 1 else 9000.0,
        "products": ["geometric_basket_call", "basket_put"],
    }
    params, _, result = run(raw, seed=11)
    ref = closed_form_basket.geometric_basket_call(
        raw["spots"], raw["volatilities"], weights, CORR4, raw["strike"], 0.03, 1.0
    )
    within(result, "geometric_basket_call", ref)
    assert result["assets"] == 4 and result["paths"] == raw["paths"]
    assert list(result["products"]) == ["geometric_basket_call", "basket_put"]
    assert "control_variate" not in result  # no basket_call, nothing adjusted


def test_geometric_closed_form_limits():
    # one asset, weight 1: Black-Scholes; two perfectly correlated equal assets, weights 1/2:
    # the geometric mean is the asset itself
    bs = closed_form.black_scholes_call(100.0, 95.0, 0.04, 0.3, 2.0)
    one = closed_form_basket.geometric_basket_call([100.0], [0.3], [1.0], [[1.0]], 95.0, 0.04, 2.0)
    two = closed_form_basket.geometric_basket_call(
        [100.0, 100.0], [0.3, 0.3], [0.5, 0.5], [[1, 1], [1, 1]], 95.0, 0.04, 2.0
    )
    assert one == pytest.approx(bs, rel=1e-12) and two == pytest.approx(bs, rel=1e-12)
    # Margrabe with S_2 -> 0 and sigma_2 = 0 is the forward S_1 minus nothing
    assert closed_form_basket.margrabe(100.0, 1e-12, 0.2, 0.0, 0.0, 1.0) == pytest.approx(100.0)
    assert closed_form_basket.margrabe(100.0, 90.0, 0.2, 0.2, 1.0, 1.0) == 10.0


@pytest.mark.parametrize("rho", [-0.7, 0.0, 0.6, 1.0])
def test_exchange_matches_margrabe(rho):
    raw = {
        "paths": 2**16,
        "steps": 3,
        "spots": [100.0, 95.0],
        "volatilities": [0.3, 0.2],
        "correlation": [[1.0, rho], [rho, 1.0]],
        "rate": 0.05,
        "maturity": 1.5,
        "products": ["exchange"],
    }
    params, _, result = run(raw, seed=3)
    assert params.strike is None and "strike" not in KERNEL.params_to_dict(params)
    within(result, "exchange", closed_form_basket.margrabe(100.0, 95.0, 0.3, 0.2, rho, 1.5))


@pytest.mark.parametrize("antithetic", [True, False])
def test_one_asset_is_gbm_european_to_the_bit(antithetic):
    # 13 steps: a partial last group of normals; paths not a multiple of the block
    common = {
        "paths": 2 * BLOCK_SAMPLES + 2 * 77,
        "steps": 13,
        "strike": 105.0,
        "rate": 0.03,
        "maturity": 1.25,
        "antithetic": antithetic,
    }
    g_params = gbm_kernel.KERNEL.parse_params(
        {**common, "spot": 100.0, "volatility": 0.25, "products": ["european_call", "european_put"]}
    )
    layout = gbm_kernel.KERNEL.layout(g_params, 2)
    g_rows = np.concatenate(
        [gbm_kernel.KERNEL.compute(g_params, 8, layout, i).arrays["sums"] for i in range(2)]
    )
    g = gbm_kernel.KERNEL.reduce(g_params, 8, {"sums": g_rows})
    _, _, b = run(
        {
            **common,
            "spots": [100.0],
            "volatilities": [0.25],
            "weights": [1.0],
            "correlation": [[1.0]],
            "products": ["basket_call", "basket_put"],
        },
        seed=8,
        shards=3,
    )
    for mine, theirs in (("basket_call", "european_call"), ("basket_put", "european_put")):
        assert b["products"][mine]["price"] == g["products"][theirs]["price"]
        assert b["products"][mine]["stderr"] == g["products"][theirs]["stderr"]
        assert b["products"][mine]["ci95"] == g["products"][theirs]["ci95"]
    assert "control_variate" not in b  # off by default for one asset


def _quantlib_choi(raw: dict[str, Any]) -> float:
    """QuantLib's ChoiBasketEngine (Choi 2018, an accurate quadrature for arithmetic baskets)."""
    ql = pytest.importorskip("QuantLib")
    today = ql.Date(15, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    maturity = today + 365  # one year of Actual/365
    assert dc.yearFraction(today, maturity) == raw["maturity"] == 1.0
    rates = ql.YieldTermStructureHandle(ql.FlatForward(today, raw["rate"], dc))
    divs = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc))
    processes = [
        ql.BlackScholesMertonProcess(
            ql.QuoteHandle(ql.SimpleQuote(s)),
            divs,
            rates,
            ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), v, dc)),
        )
        for s, v in zip(raw["spots"], raw["volatilities"])
    ]
    n = len(raw["spots"])
    rho = ql.Matrix(n, n)
    for i in range(n):
        for j in range(n):
            rho[i][j] = raw["correlation"][i][j]
    payoff = ql.AverageBasketPayoff(
        ql.PlainVanillaPayoff(ql.Option.Call, raw["strike"]), raw["weights"]
    )
    option = ql.BasketOption(payoff, ql.EuropeanExercise(maturity))
    option.setPricingEngine(ql.ChoiBasketEngine(processes, rho, 10.0))
    return option.NPV()


def test_basket_call_control_variate_matches_quantlib_and_cuts_stderr():
    raw = {**BASE3, "products": ["basket_call", "basket_put"]}
    params, _, cv = run(raw, seed=21)
    assert params.control_variate  # the default for n >= 2 and positive weights
    _, _, plain = run({**raw, "control_variate": False}, seed=21)
    ref = _quantlib_choi(raw)
    within(cv, "basket_call", ref)
    within(plain, "basket_call", ref)
    a_cv, a_plain = cv["products"]["basket_call"], plain["products"]["basket_call"]
    assert a_cv["stderr"] * 3 <= a_plain["stderr"], (a_cv, a_plain)
    assert cv["control_variate"]["stderr_without"] == a_plain["stderr"]
    assert 0.5 < cv["control_variate"]["beta"] < 1.5
    # only the call is adjusted
    assert cv["products"]["basket_put"] == plain["products"]["basket_put"]
    # put-call parity of the plain estimates on the same samples: C - P = D (F_B - K)
    forward = sum(w * s for w, s in zip(raw["weights"], raw["spots"])) * math.exp(0.03)
    parity = math.exp(-0.03) * (forward - 100.0)
    diff = a_plain["price"] - plain["products"]["basket_put"]["price"]
    assert abs(diff - parity) < 4 * (a_plain["stderr"] + plain["products"]["basket_put"]["stderr"])


# --- the stream -------------------------------------------------------------------------------


def reference_payoffs(raw: dict[str, Any], seed: int, samples: int) -> dict[str, np.ndarray]:
    """Per-sample discounted payoffs in NumPy: normals from tests/naive.py's own Philox
    (normal k = j * n + a of a sample), e = L z with NumPy's Cholesky, price-space paths."""
    spots = np.array(raw["spots"])
    vols = np.array(raw["volatilities"])
    w = np.array(raw["weights"])
    n, steps = spots.size, raw["steps"]
    chol = np.linalg.cholesky(np.array(raw["correlation"]))
    z = naive.kernel_normals(seed, np.arange(samples), steps * n).reshape(samples, steps, n)
    e = z @ chol.T
    dt = raw["maturity"] / steps
    disc = np.exp(-raw["rate"] * raw["maturity"])
    k = raw["strike"]

    def one(sign: float) -> dict[str, np.ndarray]:
        inc = (raw["rate"] - 0.5 * vols**2) * dt + sign * vols * np.sqrt(dt) * e
        st = spots * np.exp(inc.sum(axis=1))  # (samples, n)
        b = st @ w
        g = np.exp(np.log(st) @ w)
        return {
            "basket_call": disc * np.maximum(b - k, 0.0),
            "basket_put": disc * np.maximum(k - b, 0.0),
            "geometric_basket_call": disc * np.maximum(g - k, 0.0),
            "exchange": disc * np.maximum(st[:, 0] - st[:, 1], 0.0),
        }

    plus = one(1.0)
    if not raw.get("antithetic", True):
        return plus
    minus = one(-1.0)
    return {key: 0.5 * (plus[key] + minus[key]) for key in plus}


@pytest.mark.parametrize("antithetic", [True, False])
def test_sums_equal_numpy_reference_of_the_correlated_stream(antithetic):
    # 5 assets x 7 steps = 35 normals a sample: groups of four straddle the steps
    corr = np.array(
        [
            [1.0, 0.3, -0.2, 0.5, 0.1],
            [0.3, 1.0, 0.4, 0.2, -0.3],
            [-0.2, 0.4, 1.0, 0.0, 0.25],
            [0.5, 0.2, 0.0, 1.0, 0.15],
            [0.1, -0.3, 0.25, 0.15, 1.0],
        ]
    )
    samples = 300
    raw = {
        "paths": samples * (2 if antithetic else 1),
        "steps": 7,
        "spots": [100.0, 80.0, 120.0, 95.0, 105.0],
        "volatilities": [0.2, 0.3, 0.15, 0.4, 0.25],
        "weights": [0.2, 0.3, 0.1, 0.25, 0.15],
        "correlation": corr.tolist(),
        "strike": 98.0,
        "rate": 0.02,
        "maturity": 2.0,
        "antithetic": antithetic,
        "control_variate": False,
        "products": ["basket_call", "basket_put", "geometric_basket_call"],
    }
    params, rows, _ = run(raw, seed=77)
    # the factor the kernel uses is the Cholesky factor NumPy computes
    np.testing.assert_allclose(kernel_args(params)[4], np.linalg.cholesky(corr), rtol=0, atol=1e-15)
    pay = reference_payoffs(raw, 77, samples)
    assert rows.shape[0] == 1 and rows[0, 0] == samples
    for name in raw["products"]:
        got_s, got_ss = rows[0, col_sum(name)], rows[0, col_sumsq(name)]
        assert got_s == pytest.approx(pay[name].sum(), rel=1e-12), name
        assert got_ss == pytest.approx((pay[name] ** 2).sum(), rel=1e-12), name
    cross = (pay["basket_call"] * pay["geometric_basket_call"]).sum()
    assert rows[0, -1] == pytest.approx(cross, rel=1e-12)


def test_exchange_sums_equal_numpy_reference():
    raw = {
        "paths": 2 * 200,
        "steps": 5,
        "spots": [100.0, 97.0],
        "volatilities": [0.25, 0.35],
        "weights": [1.0, 1.0],
        "correlation": [[1.0, -0.4], [-0.4, 1.0]],
        "strike": 1.0,
        "rate": 0.01,
        "maturity": 0.5,
        "products": ["exchange"],
    }
    _, rows, _ = run(raw, seed=5)
    pay = reference_payoffs(raw, 5, 200)["exchange"]
    assert rows[0, col_sum("exchange")] == pytest.approx(pay.sum(), rel=1e-12)


def test_rows_are_bit_identical_for_1_3_7_shards():
    raw = {**BASE3, "paths": 2 * (7 * BLOCK_SAMPLES + 123), "products": ["basket_call"]}
    _, rows1, res1 = run(raw, seed=4, shards=1)
    for shards in (3, 7):
        _, rows, res = run(raw, seed=4, shards=shards)
        assert rows.tobytes() == rows1.tobytes()
        assert json.dumps(res) == json.dumps(res1)
    _, other, _ = run(raw, seed=5, shards=1)
    assert other.tobytes() != rows1.tobytes()  # the seed matters


def test_singular_correlation_factor_and_prices():
    # asset 2 is asset 0 (rho = 1), asset 1 anti-correlated: rank 2, PSD
    corr = [[1.0, -0.5, 1.0], [-0.5, 1.0, -0.5], [1.0, -0.5, 1.0]]
    chol = basket_params.semidefinite_cholesky(corr)
    np.testing.assert_allclose(np.array(chol) @ np.array(chol).T, corr, atol=1e-15)
    assert chol[2][2] == 0.0
    raw = {**BASE3, "correlation": corr, "volatilities": [0.2, 0.3, 0.2]}
    raw["products"] = ["geometric_basket_call", "basket_call"]
    _, _, result = run(raw, seed=9)
    ref = closed_form_basket.geometric_basket_call(
        raw["spots"], raw["volatilities"], raw["weights"], corr, 100.0, 0.03, 1.0
    )
    within(result, "geometric_basket_call", ref)
    # perfect negative correlation in an exchange
    ex = {**raw, "spots": [100.0, 95.0], "volatilities": [0.2, 0.3], "weights": [0.5, 0.5]}
    ex["correlation"], ex["products"] = [[1.0, -1.0], [-1.0, 1.0]], ["exchange"]
    _, _, result = run(ex, seed=9)
    within(result, "exchange", closed_form_basket.margrabe(100.0, 95.0, 0.2, 0.3, -1.0, 1.0))


# --- params -----------------------------------------------------------------------------------


def test_params_canonical_round_trip_and_defaults():
    raw = {**BASE3, "correlation": [[1, 0.5, 0.2], [0.5, 1, -0.3], [0.2, -0.3 + 1e-13, 1]]}
    del raw["weights"]
    params = KERNEL.parse_params(raw)
    assert params.weights == (1 / 3, 1 / 3, 1 / 3)
    assert params.products == ("basket_call",) and params.antithetic and params.control_variate
    assert params.correlation[1][2] == params.correlation[2][1]  # the lower triangle is kept
    canon = KERNEL.params_to_dict(params)
    assert type(canon["correlation"][0][0]) is float and type(canon["strike"]) is float
    assert KERNEL.parse_params(json.loads(json.dumps(canon))) == params
    one = KERNEL.parse_params(
        {**BASE3, "spots": [1.0], "volatilities": [0.2], "weights": [1.0], "correlation": [[1.0]]}
    )
    assert not one.control_variate and one.cholesky == ((1.0,),)
    spread = {**BASE3, "weights": [1.0, -1.0, 0.5]}
    assert not KERNEL.parse_params(spread).control_variate  # not valid: off by default


def _corr_error(corr: list[list[float]]) -> ParamError:
    n = len(corr)
    raw = {**BASE3, "spots": [100.0] * n, "volatilities": [0.2] * n, "weights": [1 / n] * n}
    with pytest.raises(ParamError) as info:
        basket_params.parse({**raw, "correlation": corr})
    return info.value


def test_not_positive_semidefinite_names_the_minor_and_eigenvalue():
    corr = [[1.0, 0.9, 0.1], [0.9, 1.0, 0.9], [0.1, 0.9, 1.0]]  # pairwise fine, jointly not
    err = _corr_error(corr)
    lam = float(np.linalg.eigvalsh(np.array(corr)).min())
    assert err.key == "correlation" and "not positive semi-definite" in err.message
    assert "leading 3x3 block" in err.message and "row 2" in err.message
    assert f"{lam:.6g}" in err.message, (err.message, lam)
    # singular in rows 0..1 (rho = 1) but row 2 not consistent with it
    err = _corr_error([[1.0, 1.0, 0.5], [1.0, 1.0, 0.0], [0.5, 0.0, 1.0]])
    assert "not positive semi-definite" in err.message and "singular at row 1" in err.message


@pytest.mark.parametrize(
    "change,key,fragment",
    [
        (
            {"correlation": [[1.0, 0.5, 0.2], [0.4, 1.0, -0.3], [0.2, -0.3, 1.0]]},
            "correlation[1][0]",
            "correlation[0][1] = 0.5",
        ),
        (
            {"correlation": [[1.0, 0.5, 0.2], [0.5, 0.9, -0.3], [0.2, -0.3, 1.0]]},
            "correlation[1][1]",
            "expected 1 on the diagonal",
        ),
        (
            {"correlation": [[1.0, 0.5, 0.2], [0.5, 1.0, -1.3], [0.2, -1.3, 1.0]]},
            "correlation[1][2]",
            "[-1, 1]",
        ),
        ({"correlation": [[1.0, 0.5], [0.5, 1.0]]}, "correlation", "3x3"),
        (
            {"correlation": [[1.0, 0.5, 0.2], [0.5, 1.0], [0.2, -0.3, 1.0]]},
            "correlation[1]",
            "row of 3 numbers",
        ),
        (
            {"correlation": [[1.0, 0.5, 0.2], [0.5, 1.0, "x"], [0.2, -0.3, 1.0]]},
            "correlation[1][2]",
            "a number",
        ),
        ({"volatilities": [0.2, 0.3]}, "volatilities", "2 entries, expected 3"),
        ({"weights": [0.2, 0.3, 0.1, 0.4]}, "weights", "4 entries, expected 3"),
        ({"volatilities": [0.2, 0.3, -0.1]}, "volatilities[2]", "0 < volatility"),
        ({"spots": [100.0, True, 3.0]}, "spots[1]", "a number"),
        ({"spots": [100.0, 0.0, 3.0]}, "spots[1]", "> 0"),
        (
            {"weights": [0.5, 0.5, -0.1], "products": ["geometric_basket_call"]},
            "weights[2]",
            "positive weights",
        ),
        (
            {"weights": [0.5, 0.5, -0.1], "control_variate": True},
            "control_variate",
            "positive weights",
        ),
        ({"weights": [0.0, 0.0, 0.0]}, "weights", "nonzero"),
        ({"products": ["exchange"]}, "products", "exactly 2 assets, got 3"),
        ({"products": ["basket_cal"]}, "products", "did you mean 'basket_call'"),
        ({"spot": 100.0}, "spot", "did you mean 'spots'"),
        ({"strike": -1.0}, "strike", "> 0"),
        ({"paths": 11}, "paths", "even"),
    ],
)
def test_param_errors_name_the_key(change, key, fragment):
    with pytest.raises(ParamError) as info:
        KERNEL.parse_params({**BASE3, **change})
    assert info.value.key == key, info.value
    assert fragment in str(info.value), info.value


def test_too_many_assets_and_missing_keys():
    n = 65
    with pytest.raises(ParamError) as info:
        KERNEL.parse_params({**BASE3, "spots": [100.0] * n})
    assert info.value.key == "spots" and "1 to 64 assets, got 65" in info.value.message
    raw = {k: v for k, v in BASE3.items() if k not in ("strike", "correlation")}
    with pytest.raises(ParamError) as info:
        KERNEL.parse_params(raw)
    assert info.value.key == "correlation"
    with pytest.raises(ParamError) as info:
        KERNEL.parse_params({k: v for k, v in BASE3.items() if k != "strike"})
    assert info.value.key == "strike"
    # 64 assets, identity correlation: accepted
    eye = [[float(i == j) for j in range(64)] for i in range(64)]
    p = KERNEL.parse_params(
        {
            **BASE3,
            "spots": [1.0] * 64,
            "volatilities": [0.1] * 64,
            "weights": [1.0] * 64,
            "correlation": eye,
        }
    )
    assert p.assets == 64


def test_light_params_module_imports_no_numpy():
    code = (
        "import sys\n"
        "from tessera.kernels.montecarlo import basket_params\n"
        "assert 'numpy' not in sys.modules and 'numba' not in sys.modules, sorted(sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


class _CudaIO:
    device = "cuda"


def test_refuses_a_gpu():
    params = KERNEL.parse_params(BASE3)
    layout = KERNEL.layout(params, 1)
    with pytest.raises(ValueError, match="no CUDA twin.*resources.gpus = 0"):
        KERNEL.compute(params, 1, layout, 0, io=_CudaIO())  # type: ignore[arg-type]


# --- the engine -------------------------------------------------------------------------------


def _run_job(store: Path, shards: int) -> bytes:
    from tessera.engine import executors, spec
    from tessera.engine.run import run_job
    from tessera.engine.store import Store

    data = {
        "job": {
            "name": "basket-test",
            "kernel": "montecarlo.basket",
            "store": str(store),
            "shards": shards,
            "seed": 13,
        },
        "params": {
            **BASE3,
            "paths": 2 * 5 * BLOCK_SAMPLES,
            "products": ["basket_call", "geometric_basket_call"],
        },
        "retry": {"attempts": 1},
    }
    job = spec.from_dict(data)
    outcome = run_job(job, executors.create("local"), lambda e: None)
    assert outcome.ok, outcome.failures
    return Store.open_existing(job.store).fs.cat_file(f"{job.store}/result.json")


def test_engine_result_is_byte_identical_for_1_and_4_shards(tmp_path: Path) -> None:
    one = _run_job(tmp_path / "s1", 1)
    assert _run_job(tmp_path / "s4", 4) == one
    result = json.loads(one)
    assert result["kernel"] == "montecarlo.basket" and result["seed"] == 13
    assert result["assets"] == 3 and set(result["products"]) == {
        "basket_call",
        "geometric_basket_call",
    }
    assert result["params"]["correlation"] == CORR3 and "beta" in result["control_variate"]


def test_registered_with_its_light_parser():
    from tessera.kernels import registry

    assert registry.get("montecarlo.basket") is KERNEL
    parse = registry.params_parser(registry.info("montecarlo.basket"))
    assert parse is basket_params.parse


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 5])  # Choi: 30 s at n = 8, out of memory at 16
def test_control_variate_matches_quantlib_for_more_assets(n):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, n + 2))
    cov = a @ a.T
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    raw = {
        **BASE3,
        "paths": 2**18,
        "steps": 2,
        "spots": (80 + 40 * rng.random(n)).tolist(),
        "volatilities": (0.1 + 0.3 * rng.random(n)).tolist(),
        "weights": (np.ones(n) / n).tolist(),
        "correlation": ((corr + corr.T) / 2).tolist(),
    }
    for i in range(n):
        raw["correlation"][i][i] = 1.0
    _, _, result = run(raw, seed=100 + n)
    within(result, "basket_call", _quantlib_choi(raw))
    cv = result["control_variate"]
    assert result["products"]["basket_call"]["stderr"] < cv["stderr_without"]
