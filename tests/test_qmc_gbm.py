"""``sampler = "sobol"`` in montecarlo.gbm: randomized QMC prices against closed forms, their
standard errors against Philox's at the same paths, and byte-identical results for any shard
count, executor and prefix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import norm

import tessera
from tessera.kernels.base import ParamError
from tessera.kernels.montecarlo import closed_form
from tessera.kernels.montecarlo.gbm import KERNEL


def _black_scholes_call(
    spot: float, strike: float, rate: float, volatility: float, maturity: float
) -> float:
    """Black-Scholes by scipy's normal distribution, independent of the kernel's closed form."""
    d1 = (np.log(spot / strike) + (rate + volatility**2 / 2) * maturity) / (
        volatility * np.sqrt(maturity)
    )
    d2 = d1 - volatility * np.sqrt(maturity)
    return float(spot * norm.cdf(d1) - strike * np.exp(-rate * maturity) * norm.cdf(d2))


MARKET = {"spot": 100.0, "strike": 100.0, "rate": 0.05, "volatility": 0.2, "maturity": 1.0}


def _price(raw: dict[str, Any], seed: int = 11, shards: int = 1) -> dict[str, Any]:
    """The kernel's answer, its shards computed in-process and stacked as the store does."""
    params = KERNEL.parse_params(raw)
    layout = KERNEL.layout(params, shards)
    name = layout.arrays[0].name
    rows = [KERNEL.compute(params, seed, layout, s).arrays[name] for s in range(layout.n_shards)]
    return KERNEL.reduce(params, seed, {name: np.concatenate(rows)})


@pytest.fixture(scope="module")
def books() -> dict[str, dict[str, Any]]:
    """2^16 points x 16 replicates of a 64-step path, and Philox at the same 2^20 paths."""
    raw = {
        "paths": 16 * 2**16,
        "steps": 64,
        **MARKET,
        "products": ["european_call", "asian_arithmetic_call", "asian_geometric_call"]
        + ["barrier_up_out_call"],
        "barrier": 130.0,
        "control_variate": False,
    }
    return {
        "sobol": _price({**raw, "sampler": "sobol", "replicates": 16}),
        "philox": _price(raw),
        "sobol_no_bridge": _price({**raw, "sampler": "sobol", "brownian_bridge": False}),
    }


def test_the_european_call_is_within_4_se_of_black_scholes_at_a_tenth_of_philox_error(
    books: dict[str, dict[str, Any]],
) -> None:
    sobol, philox = books["sobol"]["products"], books["philox"]["products"]
    exact = _black_scholes_call(**MARKET)
    call = sobol["european_call"]
    assert call["stderr"] > 0
    assert abs(call["price"] - exact) < 4 * call["stderr"]
    assert call["stderr"] <= philox["european_call"]["stderr"] / 10
    assert books["sobol"]["sampler"] == {
        "name": "sobol",
        "replicates": 16,
        "points_per_replicate": 2**16,
        "brownian_bridge": True,
    }
    assert books["sobol"]["paths"] == 2**20


def test_the_arithmetic_asian_error_is_at_most_a_fifth_of_philox(
    books: dict[str, dict[str, Any]],
) -> None:
    sobol, philox = books["sobol"]["products"], books["philox"]["products"]
    assert sobol["asian_arithmetic_call"]["stderr"] <= philox["asian_arithmetic_call"]["stderr"] / 5
    # the two estimators agree within their combined error
    diff = sobol["asian_arithmetic_call"]["price"] - philox["asian_arithmetic_call"]["price"]
    both = np.hypot(
        sobol["asian_arithmetic_call"]["stderr"], philox["asian_arithmetic_call"]["stderr"]
    )
    assert abs(diff) < 4 * both


def test_the_geometric_asian_matches_its_discrete_closed_form(
    books: dict[str, dict[str, Any]],
) -> None:
    exact = closed_form.geometric_asian_call(*MARKET.values(), 64)
    for name in ("sobol", "sobol_no_bridge"):
        geo = books[name]["products"]["asian_geometric_call"]
        assert abs(geo["price"] - exact) < 4 * geo["stderr"], name


def test_the_bridge_is_what_makes_the_gain_and_the_barrier_gains_least(
    books: dict[str, dict[str, Any]],
) -> None:
    bridge, plain = books["sobol"]["products"], books["sobol_no_bridge"]["products"]
    philox = books["philox"]["products"]
    assert bridge["european_call"]["stderr"] < plain["european_call"]["stderr"] / 10
    gains = {p: philox[p]["stderr"] / bridge[p]["stderr"] for p in bridge}
    assert gains["barrier_up_out_call"] == min(gains.values())
    # the barrier (a discontinuous, path-wide payoff) still agrees with Philox
    diff = bridge["barrier_up_out_call"]["price"] - philox["barrier_up_out_call"]["price"]
    assert abs(diff) < 4 * np.hypot(
        bridge["barrier_up_out_call"]["stderr"], philox["barrier_up_out_call"]["stderr"]
    )


def test_the_control_variate_applies_per_replicate() -> None:
    raw = {"paths": 8 * 8192, "steps": 16, **MARKET, "products": ["asian_arithmetic_call"]}
    answer = _price({**raw, "sampler": "sobol", "replicates": 8})
    cv = answer["control_variate"]
    assert 0.9 < cv["beta"] < 1.2
    assert answer["products"]["asian_arithmetic_call"]["stderr"] < cv["stderr_without"]


def test_shard_counts_and_prefixes_give_the_same_answer() -> None:
    raw = {"paths": 4 * 16 * 4096, "steps": 8, **MARKET, "sampler": "sobol", "replicates": 4}
    whole = _price(raw)
    for shards in (7, 16):
        assert _price(raw, shards=shards) == whole
    params = KERNEL.parse_params(raw)
    layout = KERNEL.layout(params, 16)
    rows = np.concatenate(
        [KERNEL.compute(params, 11, layout, s).arrays["qmc_sums"] for s in range(16)]
    )
    arrays = {"qmc_sums": rows}
    assert KERNEL.reduce_prefix(params, 11, layout, arrays, 16) == whole
    half = KERNEL.reduce_prefix(params, 11, layout, arrays, 8)
    assert half == _price({**raw, "paths": 4 * 8 * 4096})
    assert half["sampler"]["points_per_replicate"] == 8 * 4096


def _job(store: Path, shards: int) -> dict[str, Any]:
    return {
        "job": {"name": "qmc", "kernel": "montecarlo.gbm", "store": str(store)}
        | {"shards": shards, "seed": 5},
        "params": {
            "paths": 4 * 16 * 4096,
            "steps": 12,
            **MARKET,
            "products": ["european_call", "asian_arithmetic_call"],
            "sampler": "sobol",
            "replicates": 4,
        },
    }


def test_result_json_is_byte_identical_for_1_7_16_shards_and_dask(tmp_path: Path) -> None:
    results = []
    for shards, executor in ((1, "local"), (7, "local"), (16, "local"), (7, "dask")):
        store = tmp_path / f"{executor}-{shards}"
        extra = {"workers": 2} if executor == "dask" else {}
        outcome = tessera.run(_job(store, shards), executor=executor, progress=False, **extra)
        assert outcome.ok, outcome.failures
        results.append((store / "result.json").read_bytes())
    assert len(set(results)) == 1
    assert b'"sampler"' in results[0]


def test_bad_sampler_keys_name_the_key() -> None:
    raw = {"paths": 1024, "steps": 4, **MARKET}
    with pytest.raises(ParamError, match="replicates"):
        KERNEL.parse_params({**raw, "replicates": 8})
    with pytest.raises(ParamError, match="multiple of replicates = 16"):
        KERNEL.parse_params({**raw, "paths": 1000, "sampler": "sobol"})
    with pytest.raises(ParamError, match="antithetic"):
        KERNEL.parse_params({**raw, "sampler": "sobol", "antithetic": True})
    with pytest.raises(ParamError, match="greeks"):
        KERNEL.parse_params({**raw, "sampler": "sobol", "greeks": ["delta"]})
    with pytest.raises(ParamError, match="sampler"):
        KERNEL.parse_params({**raw, "sampler": "halton"})


def test_a_gpu_is_refused_with_the_reason() -> None:
    class _Io:
        device = "cuda"

    params = KERNEL.parse_params({"paths": 1024, "steps": 4, **MARKET, "sampler": "sobol"})
    layout = KERNEL.layout(params, 1)
    with pytest.raises(ValueError, match="CPU only"):
        KERNEL.compute(params, 1, layout, 0, _Io())  # type: ignore[arg-type]


def test_target_stderr_stops_at_the_first_qualifying_wave_of_sobol_points(tmp_path: Path) -> None:
    """Waves of 1, 2, 4, ... of 16 shards: the target lies between the standard errors of the
    2- and 4-shard prefixes, so exactly shards 0..3 run, on 1 and 2 Dask workers alike."""
    data = _job(tmp_path, 16)
    params = KERNEL.parse_params(data["params"])
    layout = KERNEL.layout(params, 16)
    rows = [KERNEL.compute(params, 5, layout, s).arrays["qmc_sums"] for s in range(4)]
    arrays = {"qmc_sums": np.concatenate(rows)}
    se = {k: KERNEL.reduce_prefix(params, 5, layout, arrays, k) for k in (2, 4)}
    se2, se4 = (se[k]["products"]["european_call"]["stderr"] for k in (2, 4))
    assert se4 < se2
    data["job"]["target_stderr"] = float(np.sqrt(se2 * se4))
    results = []
    for workers in (1, 2):
        data["job"]["store"] = str(tmp_path / f"w{workers}")
        outcome = tessera.run(data, executor="dask", workers=workers, progress=False)
        assert outcome.ok, outcome.failures
        results.append((tmp_path / f"w{workers}" / "result.json").read_bytes())
        committed = sorted(p.stem for p in (tmp_path / f"w{workers}" / "_shards").glob("*.json"))
        assert committed == ["0", "1", "2", "3"]
    assert results[0] == results[1]
    result = json.loads(results[0])
    assert result["target"]["shards"] == 4 and result["target"]["met"] is True
    assert result["products"]["european_call"]["stderr"] == se4
