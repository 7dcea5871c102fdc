"""Longstaff-Schwartz in ``montecarlo.gbm`` against independent references: the
finite-difference column of Longstaff and Schwartz (2001), Table 1, and QuantLib's
finite-difference Bermudan engine (test-only)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tessera.kernels.montecarlo import lsm_gbm
from tessera.kernels.montecarlo.closed_form import black_scholes_put
from tessera.kernels.montecarlo.params import parse

# Longstaff and Schwartz (2001), Table 1: K = 40, r = 0.06, 50 exercise dates a year; the
# finite-difference American put values, keyed by (spot, volatility, maturity).
TABLE_1_FD = {
    (36.0, 0.2, 1): 4.478,
    (36.0, 0.2, 2): 4.840,
    (36.0, 0.4, 1): 7.101,
    (36.0, 0.4, 2): 8.508,
    (40.0, 0.2, 1): 2.314,
    (40.0, 0.2, 2): 2.885,
    (40.0, 0.4, 1): 5.312,
    (40.0, 0.4, 2): 6.920,
    (44.0, 0.2, 1): 1.110,
    (44.0, 0.2, 2): 1.690,
    (44.0, 0.4, 1): 3.948,
    (44.0, 0.4, 2): 5.647,
}
TOLERANCE = 0.03  # plus 3 standard errors: the estimator is biased low by its exercise rule


def price(raw: dict[str, Any], seed: int = 11) -> dict[str, Any]:
    """The job's answer through the kernel's two stages, in-process."""
    params = parse(raw)
    coefficients, calibration = lsm_gbm.calibrate(params, seed)
    rows = lsm_gbm.price(params, seed, coefficients, 0, lsm_gbm.n_blocks(params))
    return lsm_gbm._answer(params, rows, calibration)


def table_job(spot: float, vol: float, maturity: int, **extra: Any) -> dict[str, Any]:
    return {
        "paths": 100_000,
        "steps": 50 * maturity,
        "spot": spot,
        "strike": 40.0,
        "rate": 0.06,
        "volatility": vol,
        "maturity": float(maturity),
        "products": ["american_put"],
        "lsm": {"calibration_paths": 100_000},
    } | extra


@pytest.mark.slow
@pytest.mark.parametrize(("spot", "vol", "maturity"), list(TABLE_1_FD))
def test_american_put_matches_table_1(spot: float, vol: float, maturity: int) -> None:
    answer = price(table_job(spot, vol, maturity))["products"]["american_put"]
    fd = TABLE_1_FD[spot, vol, maturity]
    assert abs(answer["price"] - fd) <= TOLERANCE + 3 * answer["stderr"], (answer, fd)


@pytest.mark.slow
@pytest.mark.parametrize(("spot", "vol", "maturity"), [(36.0, 0.2, 1), (44.0, 0.4, 2)])
def test_bermudan_put_on_a_finer_grid_exercises_only_at_its_dates(
    spot: float, vol: float, maturity: int
) -> None:
    """Twice the fixings of the table's grid, exercise at every other one: the Bermudan put is
    the table's option, and the American put in the same job (every fixing) is worth more."""
    raw = table_job(spot, vol, maturity, steps=100 * maturity, exercise_dates=50 * maturity)
    raw["products"] = ["bermudan_put"]
    answer = price(raw)["products"]["bermudan_put"]
    fd = TABLE_1_FD[spot, vol, maturity]
    assert abs(answer["price"] - fd) <= TOLERANCE + 3 * answer["stderr"], (answer, fd)


def _quantlib_bermudan_put(spot: float, vol: float, maturity: float, dates: int) -> float:
    ql = pytest.importorskip("QuantLib")
    today = ql.Date(2, 1, 2026)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    days = [round(365 * maturity * k / dates) for k in range(1, dates + 1)]
    exercise = ql.BermudanExercise([today + d for d in days])
    option = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Put, 40.0), exercise)
    process = ql.BlackScholesProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.06, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), vol, dc)),
    )
    option.setPricingEngine(ql.FdBlackScholesVanillaEngine(process, 400, 800))
    return float(option.NPV())


@pytest.mark.parametrize("basis", ["laguerre", "monomial"])
def test_bermudan_put_with_four_dates_matches_quantlib(basis: str) -> None:
    """Four exercise dates a year (every 13th fixing of 52): QuantLib's finite-difference
    Bermudan value, within 0.03 plus 3 SE; the European put of the same paths within 4 SE of
    Black-Scholes and below the Bermudan."""
    raw = table_job(36.0, 0.2, 1, steps=52, exercise_dates=4)
    raw["products"] = ["bermudan_put", "european_put"]
    raw["lsm"] = {"basis": basis, "degree": 3, "calibration_paths": 50_000}
    answer = price(raw)["products"]
    # Days on the 365-day year rounded: the dates differ from k/4 years by under a day.
    reference = _quantlib_bermudan_put(36.0, 0.2, 1.0, 4)
    bermudan = answer["bermudan_put"]
    assert abs(bermudan["price"] - reference) <= TOLERANCE + 3 * bermudan["stderr"]
    european = answer["european_put"]
    bs = black_scholes_put(36.0, 40.0, 0.06, 0.2, 1.0)
    assert abs(european["price"] - bs) <= 4 * european["stderr"]
    assert bermudan["price"] > european["price"] + 10 * bermudan["stderr"]


def test_american_call_without_dividends_is_the_european_call() -> None:
    """Early exercise of a call on a non-dividend stock is never optimal: the American call
    prices at the European call of the same paths, within their standard errors."""
    raw = table_job(40.0, 0.3, 1, paths=65_536)
    raw["products"] = ["american_call", "european_call"]
    raw["lsm"] = {"calibration_paths": 20_000}
    answer = price(raw)["products"]
    american, european = answer["american_call"], answer["european_call"]
    assert abs(american["price"] - european["price"]) <= 3 * european["stderr"]


def test_the_stages_are_deterministic_and_the_in_sample_value_is_reported() -> None:
    raw = table_job(40.0, 0.2, 1, paths=16_384)
    raw["lsm"] = {"calibration_paths": 10_000}
    params = parse(raw)
    a, b = lsm_gbm.calibrate(params, 5), lsm_gbm.calibrate(params, 5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], lsm_gbm.calibrate(params, 6)[0])
    answer = price(raw, seed=5)
    in_sample = answer["lsm"]["in_sample"]["american_put"]
    assert answer["lsm"]["calibration_paths"] == 10_000
    assert math.isfinite(in_sample["price"]) and in_sample["stderr"] > 0
