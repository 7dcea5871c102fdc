"""``sampler = "sobol"`` in montecarlo.heston and montecarlo.basket: prices against QuantLib and
closed forms within the replicates' standard error, that error against Philox's at the same
paths, byte-identical answers for any shard count and prefix; and ``reduce_prefix`` (what
``target_stderr`` reads) for their Philox kernels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tessera.kernels.montecarlo import closed_form_basket
from tessera.kernels.montecarlo.basket import KERNEL as BASKET
from tessera.kernels.montecarlo.heston import KERNEL as HESTON
from tests.test_basket import CORR4
from tests.test_heston import DISC_PRICE, SETS, ql_price


def _answer(kernel: Any, raw: dict[str, Any], shards: int = 1, seed: int = 7) -> dict[str, Any]:
    params = kernel.parse_params(raw)
    layout = kernel.layout(params, shards)
    name = layout.arrays[0].name
    rows = [kernel.compute(params, seed, layout, s).arrays[name] for s in range(layout.n_shards)]
    return kernel.reduce(params, seed, {name: np.concatenate(rows)})


def _prefix(kernel: Any, raw: dict[str, Any], shards: int, prefix: int) -> dict[str, Any]:
    params = kernel.parse_params(raw)
    layout = kernel.layout(params, shards)
    name = layout.arrays[0].name
    rows = [kernel.compute(params, 7, layout, s).arrays[name] for s in range(layout.n_shards)]
    return kernel.reduce_prefix(params, 7, layout, {name: np.concatenate(rows)}, prefix)


HESTON_JOB = {
    **SETS["rho-0.7"],
    "paths": 2**18,
    "steps": 32,
    "products": ["european_call", "european_put", "asian_arithmetic_call"],
    "greeks": ["delta", "vega"],
}
BASKET_JOB = {
    "paths": 2**18,
    "steps": 8,
    "spots": [100.0, 95.0, 105.0, 80.0],
    "volatilities": [0.2, 0.35, 0.25, 0.15],
    "weights": [0.3, 0.2, 0.25, 0.25],
    "correlation": CORR4,
    "strike": 95.0,
    "rate": 0.03,
    "maturity": 1.0,
    "products": ["basket_call", "geometric_basket_call", "basket_put"],
}


@pytest.fixture(scope="module")
def heston() -> dict[str, dict[str, Any]]:
    return {
        "sobol": _answer(HESTON, {**HESTON_JOB, "sampler": "sobol"}),
        "philox": _answer(HESTON, HESTON_JOB),
    }


def test_heston_sobol_matches_quantlib_with_a_smaller_error(
    heston: dict[str, dict[str, Any]],
) -> None:
    sobol, philox = heston["sobol"]["products"], heston["philox"]["products"]
    for product, put in (("european_call", False), ("european_put", True)):
        got = sobol[product]
        assert abs(got["price"] - ql_price(SETS["rho-0.7"], put=put)) <= (
            4 * got["stderr"] + DISC_PRICE
        )
        # measured: a third to a quarter of Philox's (antithetic) error at 2^18 paths
        assert got["stderr"] < philox[product]["stderr"] / 2
    assert set(sobol["european_call"]["greeks"]) == {"delta", "vega"}
    for greek in ("delta", "vega"):
        a, b = sobol["european_call"]["greeks"][greek], philox["european_call"]["greeks"][greek]
        assert abs(a["value"] - b["value"]) < 4 * np.hypot(a["stderr"], b["stderr"])
    assert heston["sobol"]["sampler"]["replicates"] == 16
    assert heston["sobol"]["scheme"] == "qe"


def test_heston_sobol_is_the_same_for_any_shard_count_and_prefix() -> None:
    raw = {**HESTON_JOB, "paths": 4 * 16 * 1024, "steps": 8, "sampler": "sobol", "replicates": 4}
    whole = _answer(HESTON, raw)
    assert _answer(HESTON, raw, shards=7) == whole
    assert _prefix(HESTON, raw, 16, 16) == whole
    assert _prefix(HESTON, raw, 16, 4) == _answer(HESTON, {**raw, "paths": 4 * 4 * 1024})


@pytest.mark.parametrize("kernel, raw", [(HESTON, HESTON_JOB), (BASKET, BASKET_JOB)])
def test_philox_prefixes_equal_the_smaller_job(kernel: Any, raw: dict[str, Any]) -> None:
    """The first 4 of 16 shards answer as a job of a quarter of the paths (``target_stderr``
    decides on such prefixes)."""
    small = {**raw, "paths": 2**17, "steps": 4}  # 16 blocks or more, antithetic pairs
    assert kernel.layout(kernel.parse_params(small), 16).n_shards == 16
    assert _prefix(kernel, small, 16, 4) == _answer(kernel, {**small, "paths": 2**15})
    assert _prefix(kernel, small, 16, 16) == _answer(kernel, small)


@pytest.fixture(scope="module")
def basket() -> dict[str, dict[str, Any]]:
    plain = {**BASKET_JOB, "control_variate": False}
    return {
        "sobol": _answer(BASKET, {**plain, "sampler": "sobol"}),
        "philox": _answer(BASKET, plain),
        "sobol_cv": _answer(BASKET, {**BASKET_JOB, "sampler": "sobol"}),
    }


def test_basket_sobol_matches_the_geometric_closed_form_at_a_tenth_of_philox_error(
    basket: dict[str, dict[str, Any]],
) -> None:
    sobol, philox = basket["sobol"]["products"], basket["philox"]["products"]
    ref = closed_form_basket.geometric_basket_call(
        BASKET_JOB["spots"], BASKET_JOB["volatilities"], BASKET_JOB["weights"], CORR4, 95.0,
        0.03, 1.0,
    )  # fmt: skip
    geo = sobol["geometric_basket_call"]
    assert abs(geo["price"] - ref) < 4 * geo["stderr"]
    for product in ("basket_call", "geometric_basket_call", "basket_put"):
        assert sobol[product]["stderr"] <= philox[product]["stderr"] / 10, product
        diff = sobol[product]["price"] - philox[product]["price"]
        assert abs(diff) < 4 * np.hypot(sobol[product]["stderr"], philox[product]["stderr"])
    cv = basket["sobol_cv"]
    assert cv["control_variate"]["stderr_without"] == sobol["basket_call"]["stderr"]
    assert cv["products"]["basket_call"]["stderr"] <= sobol["basket_call"]["stderr"]


def test_basket_sobol_is_the_same_for_any_shard_count_and_prefix() -> None:
    raw = {**BASKET_JOB, "paths": 4 * 16 * 4096, "steps": 3, "sampler": "sobol", "replicates": 4}
    whole = _answer(BASKET, raw)
    assert _answer(BASKET, raw, shards=7) == _answer(BASKET, raw, shards=16) == whole
    assert _prefix(BASKET, raw, 16, 8) == _answer(BASKET, {**raw, "paths": 4 * 8 * 4096})


def test_sobol_refuses_a_gpu() -> None:
    class _Io:
        device = "cuda"

    for kernel, raw in ((HESTON, HESTON_JOB), (BASKET, BASKET_JOB)):
        params = kernel.parse_params({**raw, "paths": 1024, "sampler": "sobol"})
        with pytest.raises(ValueError, match="CPU only"):
            kernel.compute(params, 1, kernel.layout(params, 1), 0, _Io())
