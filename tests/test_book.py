"""montecarlo.book: a book of trades on GBM and Heston underlyings. Every trade against an
independent reference (closed forms, or the single-trade kernels on other seeds), Greeks against
Black-Scholes, shared paths, the trade file's refusals naming row and column, the per-trade
table in the store, and byte-identical results across shard counts, executors and a kill."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from tessera.engine import executors, spec
from tessera.engine.errors import SpecError
from tessera.engine.run import run_job
from tessera.engine.store import Store
from tessera.kernels.montecarlo import closed_form
from tessera.kernels.montecarlo.book import KERNEL, grid, maturity_node, n_blocks
from tessera.kernels.montecarlo.gbm import KERNEL as GBM

ROOT = Path(__file__).resolve().parent.parent
TESSERA = [sys.executable, "-m", "tessera.engine.cli"]
RATE = 0.03
SPY = 16  # steps per year
UNDERLYINGS = {
    "AAA": {"model": "gbm", "spot": 100.0, "volatility": 0.25},
    "BBB": {"model": "gbm", "spot": 50.0, "volatility": 0.4},
    "HHH": {
        "model": "heston",
        "spot": 100.0,
        "v0": 0.04,
        "kappa": 1.5,
        "theta": 0.05,
        "xi": 0.6,
        "rho": -0.7,
    },
}
PRODUCTS = {
    "gbm": [
        "european_call",
        "european_put",
        "asian_arithmetic_call",
        "asian_geometric_call",
        "barrier_up_out_call",
    ],
    "heston": ["european_call", "european_put", "asian_arithmetic_call", "barrier_up_out_call"],
}


def write_trades(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, ["id", "underlying", "product", "strike", "maturity", "barrier"])
        w.writeheader()
        for row in rows:
            w.writerow(row)
    return path


def random_book(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` trades on the three underlyings: strikes around spot, maturities on the grid."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        name = rnd.choice(sorted(UNDERLYINGS))
        u = UNDERLYINGS[name]
        product = rnd.choice(PRODUCTS[u["model"]])
        spot = u["spot"]
        row = {
            "id": f"T{i:04d}",
            "underlying": name,
            "product": product,
            "strike": rnd.choice([0.9, 1.0, 1.1]) * spot,
            "maturity": rnd.choice([0.5, 1.0]),
            "barrier": "",
        }
        if product == "barrier_up_out_call":
            row["barrier"] = rnd.choice([1.3, 1.5]) * spot
        rows.append(row)
    return rows


def book_job(store: Path, trades: Path, shards: int = 1, **params: Any) -> dict[str, Any]:
    return {
        "job": {
            "name": "book-test",
            "kernel": "montecarlo.book",
            "store": str(store),
            "shards": shards,
            "seed": 17,
        },
        "params": {
            "trades": str(trades),
            "underlyings": UNDERLYINGS,
            "rate": RATE,
            "paths": 2 * 8192,
            "steps_per_year": SPY,
            **params,
        },
    }


def run_book(data: dict[str, Any], executor: str = "local") -> bytes:
    job = spec.from_dict(data)
    outcome = run_job(job, executors.create(executor, workers=2), lambda e: None)
    assert outcome.ok, outcome.failures
    return Store.open_existing(job.store).fs.cat_file(f"{job.store}/result.json")


def in_process(data: dict[str, Any], shards: int = 1) -> dict[str, Any]:
    job = spec.from_dict({**data, "job": {**data["job"], "shards": shards}})
    params, layout = job.params, job.layout
    rows = np.concatenate(
        [KERNEL.compute(params, 17, layout, i).arrays["trade_sums"] for i in range(shards)]
    )
    return KERNEL.reduce(params, 17, {"trade_sums": rows})


# --- references -------------------------------------------------------------------------------


def single_kernel_reference(name: str, product: str, strike: float, maturity: float, barrier):
    """The same trade priced alone by montecarlo.gbm / montecarlo.heston on the same fixings
    (steps = maturity * SPY), another seed, more paths: (price, stderr)."""
    u = UNDERLYINGS[name]
    raw: dict[str, Any] = {
        "spot": u["spot"],
        "strike": strike,
        "rate": RATE,
        "maturity": maturity,
        "steps": round(maturity * SPY),
        "paths": 2 * 200_000,
        "products": [product],
    }
    if barrier:
        raw["barrier"] = barrier
    from tessera.kernels.montecarlo.heston import KERNEL as HESTON

    kernel = GBM if u["model"] == "gbm" else HESTON
    if u["model"] == "gbm":
        raw.update(volatility=u["volatility"], control_variate=False)
    else:
        raw.update({k: u[k] for k in ("v0", "kappa", "theta", "xi", "rho")})
    params = kernel.parse_params(raw)
    layout = kernel.layout(params, 1)
    arrays = kernel.compute(params, 99, layout, 0).arrays
    got = kernel.reduce(params, 99, arrays)["products"][product]
    return got["price"], got["stderr"]


@pytest.mark.slow
def test_200_trade_book_prices_every_trade_within_4_se_of_a_reference(tmp_path):
    rows = random_book(200, seed=1)
    trades = write_trades(tmp_path / "book.csv", rows)
    result = in_process(book_job(tmp_path / "s", trades, paths=2 * 65536))
    refs: dict[tuple, tuple[float, float]] = {}
    for row in rows:
        terms = (row["underlying"], row["product"], row["strike"], row["maturity"], row["barrier"])
        if terms not in refs:
            u = UNDERLYINGS[row["underlying"]]
            if u["model"] == "gbm" and row["product"] in ("european_call", "european_put"):
                f = getattr(closed_form, f"black_scholes_{row['product'].split('_')[1]}")
                refs[terms] = (
                    f(u["spot"], row["strike"], RATE, u["volatility"], row["maturity"]),
                    0.0,
                )
            elif u["model"] == "gbm" and row["product"] == "asian_geometric_call":
                steps = round(row["maturity"] * SPY)
                price = closed_form.geometric_asian_call(
                    u["spot"], row["strike"], RATE, u["volatility"], row["maturity"], steps
                )
                refs[terms] = (price, 0.0)
            else:
                refs[terms] = single_kernel_reference(*terms)
        ref, ref_se = refs[terms]
        got = result["trades"][row["id"]]
        se = math.hypot(got["stderr"], ref_se)
        assert abs(got["price"] - ref) <= 4 * se, (row, got, ref, ref_se)
    assert len(result["trades"]) == 200 and list(result["trades"]) == [r["id"] for r in rows]


def test_greeks_of_gbm_trades_match_black_scholes(tmp_path):
    rows = [
        {
            "id": "c",
            "underlying": "AAA",
            "product": "european_call",
            "strike": 105.0,
            "maturity": 1.0,
            "barrier": "",
        },
        {
            "id": "p",
            "underlying": "BBB",
            "product": "european_put",
            "strike": 50.0,
            "maturity": 0.5,
            "barrier": "",
        },
    ]
    trades = write_trades(tmp_path / "g.csv", rows)
    greeks = ["delta", "gamma", "vega", "rho"]
    result = in_process(book_job(tmp_path / "s", trades, paths=2 * 200_000, greeks=greeks))
    for row in rows:
        u = UNDERLYINGS[row["underlying"]]
        kind = row["product"].split("_")[1]
        ref = closed_form.black_scholes_greeks(
            kind, u["spot"], row["strike"], RATE, u["volatility"], row["maturity"]
        )
        got = result["trades"][row["id"]]["greeks"]
        assert list(got) == greeks
        for g in greeks:
            # the bumps' bias is O(h**2): 1% of spot or volatility, 10 bp of rate
            tol = 4 * got[g]["stderr"] + 2e-3 * abs(ref[g])
            assert abs(got[g]["value"] - ref[g]) <= tol, (row["id"], g, got[g], ref[g])


def test_heston_trade_greeks_agree_with_the_heston_kernel(tmp_path):
    from tessera.kernels.montecarlo.heston import KERNEL as HESTON

    rows = [
        {
            "id": "h",
            "underlying": "HHH",
            "product": "european_call",
            "strike": 100.0,
            "maturity": 1.0,
            "barrier": "",
        }
    ]
    trades = write_trades(tmp_path / "h.csv", rows)
    result = in_process(book_job(tmp_path / "s", trades, paths=2 * 100_000, greeks=["delta"]))
    u = UNDERLYINGS["HHH"]
    raw = {
        "spot": 100.0,
        "strike": 100.0,
        "rate": RATE,
        "maturity": 1.0,
        "steps": SPY,
        "paths": 2 * 200_000,
        "products": ["european_call"],
        "greeks": ["delta"],
        **{k: u[k] for k in ("v0", "kappa", "theta", "xi", "rho")},
    }
    params = HESTON.parse_params(raw)
    layout = HESTON.layout(params, 1)
    ref = HESTON.reduce(params, 5, HESTON.compute(params, 5, layout, 0).arrays)
    ref_delta = ref["products"]["european_call"]["greeks"]["delta"]
    got = result["trades"]["h"]["greeks"]["delta"]
    assert abs(got["value"] - ref_delta["value"]) <= 4 * math.hypot(
        got["stderr"], ref_delta["stderr"]
    )


def test_trades_on_one_underlying_share_paths(tmp_path):
    """Two trades with the same terms get the same numbers (common random numbers), and a
    trade's numbers do not depend on the other trades in the book."""
    same = {
        "underlying": "AAA",
        "product": "asian_arithmetic_call",
        "strike": 100.0,
        "maturity": 1.0,
        "barrier": "",
    }
    other = {
        "id": "x",
        "underlying": "HHH",
        "product": "european_put",
        "strike": 90.0,
        "maturity": 0.5,
        "barrier": "",
    }
    both = in_process(
        book_job(
            tmp_path / "a",
            write_trades(tmp_path / "a.csv", [{"id": "a", **same}, {"id": "b", **same}, other]),
        )
    )
    assert both["trades"]["a"] == both["trades"]["b"]
    alone = in_process(
        book_job(tmp_path / "b", write_trades(tmp_path / "b.csv", [{"id": "a", **same}]))
    )
    assert alone["trades"]["a"] == both["trades"]["a"]


def test_grid_puts_off_grid_maturities_on_their_own_nodes():
    times, uni = grid([1.0, 0.3], 4)
    assert times == [0.0, 0.25, 0.3, 0.5, 0.75, 1.0]
    assert uni == [False, True, False, True, True, True]
    assert maturity_node(times, 0.3, 4) == 2 and maturity_node(times, 1.0, 4) == 5


def test_off_grid_maturity_european_matches_black_scholes(tmp_path):
    rows = [
        {
            "id": "e",
            "underlying": "AAA",
            "product": "european_call",
            "strike": 100.0,
            "maturity": 0.3,
            "barrier": "",
        }
    ]
    result = in_process(
        book_job(tmp_path / "s", write_trades(tmp_path / "e.csv", rows), paths=2 * 100_000)
    )
    ref = closed_form.black_scholes_call(100.0, 100.0, RATE, 0.25, 0.3)
    got = result["trades"]["e"]
    assert abs(got["price"] - ref) <= 4 * got["stderr"]


# --- the trade file's refusals ------------------------------------------------------------------


GOOD = {
    "id": "t1",
    "underlying": "AAA",
    "product": "european_call",
    "strike": "100",
    "maturity": "1",
    "barrier": "",
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"underlying": "ZZZ"}, "row 2, column underlying: 'ZZZ' is not an underlying"),
        ({"product": "digital_call"}, "row 2, column product: 'digital_call' is not a product"),
        ({"product": "barrier_up_out_call"}, "row 2, column barrier: is required"),
        ({"maturity": "0"}, "row 2, column maturity: expected 0 < maturity"),
        ({"maturity": "-1"}, "row 2, column maturity: expected 0 < maturity"),
        ({"strike": "abc"}, "row 2, column strike: 'abc' is not a number"),
        ({"id": "t1"}, "row 2, column id: 't1' is also the id of row 1"),
        ({"barrier": "130"}, "row 2, column barrier: european_call has no barrier"),
        (
            {"underlying": "HHH", "product": "asian_geometric_call"},
            "row 2, column product: 'asian_geometric_call' is not a product of a heston",
        ),
        (
            {"product": "barrier_up_out_call", "barrier": "90"},
            "row 2, column barrier: expected a level above AAA's spot 100",
        ),
    ],
)
def test_bad_rows_are_refused_with_row_and_column(tmp_path, change, message):
    second = {**GOOD, "id": "t2", **change}
    trades = write_trades(tmp_path / "bad.csv", [GOOD, second])
    with pytest.raises(SpecError) as err:
        spec.from_dict(book_job(tmp_path / "s", trades))
    assert str(err.value).startswith("params.trades: ") and message in str(err.value)
    assert not (tmp_path / "s").exists()


def test_unknown_or_missing_columns_are_refused(tmp_path):
    (tmp_path / "a.csv").write_text("id,underlying,product,strike,maturity,notional\n")
    with pytest.raises(SpecError, match="unknown column 'notional'"):
        spec.from_dict(book_job(tmp_path / "s", tmp_path / "a.csv"))
    (tmp_path / "b.csv").write_text("id,underlying,product,strike\nx,AAA,european_call,1\n")
    with pytest.raises(SpecError, match="the header has no column 'maturity'"):
        spec.from_dict(book_job(tmp_path / "s", tmp_path / "b.csv"))
    (tmp_path / "c.csv").write_text(
        "id,underlying,product,strike,maturity\nx,AAA,european_call,1\n"
    )
    with pytest.raises(SpecError, match="row 1: 4 fields, expected 5"):
        spec.from_dict(book_job(tmp_path / "s", tmp_path / "c.csv"))


def test_params_errors_name_the_key(tmp_path):
    trades = write_trades(tmp_path / "t.csv", [GOOD])
    cases = [
        ({"greeks": ["theta"]}, "params.greeks: theta is not offered by montecarlo.book"),
        (
            {"underlyings": {"AAA": {"model": "sabr", "spot": 1.0}}},
            "params.underlyings.AAA.model: expected one of gbm, heston",
        ),
        (
            {"underlyings": {"AAA": {"model": "gbm", "spot": 1.0}}},
            "params.underlyings.AAA.volatility: is required",
        ),
        (
            {"underlyings": {"AAA": {"model": "gbm", "spot": 1.0, "volatility": 0.2, "v0": 0.1}}},
            "params.underlyings.AAA.v0: unknown key",
        ),
        (
            {"underlyings": {**UNDERLYINGS, "HHH": {**UNDERLYINGS["HHH"], "rho": -1.5}}},
            "params.underlyings.HHH.rho: expected >= -1",
        ),
    ]
    for change, message in cases:
        with pytest.raises(SpecError) as err:
            spec.from_dict(book_job(tmp_path / "s", trades, **change))
        assert message in str(err.value), (change, str(err.value))


def test_planned_job_carries_the_rows(tmp_path):
    """The trade file is read once, at plan time: the stored job holds the rows, so editing
    the file later cannot change a run that resumes."""
    trades = write_trades(tmp_path / "t.csv", [GOOD])
    job = spec.from_dict(book_job(tmp_path / "s", trades))
    stored = KERNEL.params_to_dict(job.params)
    assert stored["rows"] == [["t1", "AAA", "european_call", 100.0, 1.0, None]]
    trades.write_text("garbage")
    again = KERNEL.parse_params(stored)
    assert again == job.params


def test_ten_thousand_trade_book_validates(tmp_path):
    rows = random_book(10_000, seed=3)
    trades = write_trades(tmp_path / "big.csv", rows)
    job = spec.from_dict(book_job(tmp_path / "s", trades, paths=2 * 4096))
    assert len(job.params.book) == 10_000
    mem = KERNEL.shard_memory_bytes(job.params, job.layout, 0)
    assert mem < 64 * 2**20  # bounded: 4 blocks of 10,000 trades and 2 columns


# --- the engine: store table, shard counts, executors, a kill -------------------------------


def _book_files(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    rows = random_book(40, seed=7)
    return write_trades(tmp_path / "book.csv", rows), rows


def test_store_holds_the_per_trade_table(tmp_path):
    trades, rows = _book_files(tmp_path)
    data = book_job(tmp_path / "s", trades, shards=3, greeks=["delta", "vega"])
    result = json.loads(run_book(data))
    table = zarr.open_array(str(tmp_path / "s" / "trade_sums"), mode="r")
    job = spec.from_dict(data)
    assert table.shape == (n_blocks(job.params), 40, 6)
    sums = np.asarray(table[...]).sum(axis=0)
    n = job.params.samples
    for t, row in enumerate(rows):
        assert math.isclose(sums[t, 0] / n, result["trades"][row["id"]]["price"], rel_tol=1e-12)


@pytest.mark.slow
def test_result_identical_for_shard_counts_executors_and_a_kill(tmp_path):
    trades, _ = _book_files(tmp_path)
    base = book_job(tmp_path / "s1", trades, shards=1, paths=2 * 16 * 1024)
    reference = run_book(base)
    for shards in (7, 16):
        data = book_job(tmp_path / f"s{shards}", trades, shards=shards, paths=2 * 16 * 1024)
        assert run_book(data) == reference, shards
    dask = book_job(tmp_path / "dask", trades, shards=7, paths=2 * 16 * 1024)
    assert run_book(dask, executor="dask") == reference
    # A process killed at its 9th shard (os._exit(137), as SIGKILL), then resumed.
    killed = book_job(tmp_path / "killed", trades, shards=16, paths=2 * 16 * 1024)
    path = tmp_path / "killed.json"
    path.write_text(json.dumps(killed))
    env = {**os.environ, "TESSERA_FAULTS": "9:exit:1"}
    first = subprocess.run(
        [*TESSERA, "run", str(path), "--executor", "local"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert first.returncode == 137, first.stderr
    committed = Store.open_existing(str(tmp_path / "killed")).commit_records()
    assert 0 < len(committed) < 16
    second = subprocess.run(
        [*TESSERA, "run", str(path), "--executor", "local"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "killed" / "result.json").read_bytes() == reference


def test_example_book_validates():
    """examples/book.toml (run from the repository root) plans its 12 trades."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        job = spec.load("examples/book.toml")
    finally:
        os.chdir(cwd)
    assert len(job.params.book) == 12
    assert [u.model for u in job.params.underlyings] == ["gbm", "gbm", "heston"]


@pytest.mark.s3
def test_trade_file_and_store_on_s3(seaweed_s3: Any, monkeypatch, tmp_path):
    """The trade file by s3:// URL (SeaweedFS), the store on S3 too; the same result as from
    local files."""
    import s3fs

    for key, value in seaweed_s3.env().items():
        monkeypatch.setenv(key, value)
    bucket = seaweed_s3.create_bucket("tessera-book")
    fs = s3fs.S3FileSystem(**seaweed_s3.storage_options())
    trades, _ = _book_files(tmp_path)
    fs.pipe_file(f"{bucket}/books/eod.csv", trades.read_bytes())
    local = run_book(book_job(tmp_path / "local", trades, shards=2))
    remote = book_job(f"s3://{bucket}/runs/eod", f"s3://{bucket}/books/eod.csv", shards=2)
    got, want = json.loads(run_book(remote)), json.loads(local)
    assert got["trades"] == want["trades"] and got["params"]["rows"] == want["params"]["rows"]
    missing = book_job(f"s3://{bucket}/runs/x", f"s3://{bucket}/books/none.csv")
    with pytest.raises(SpecError, match="none.csv"):
        spec.from_dict(missing)


def quantlib_heston_call(strike: float, maturity_days: int, v0: float) -> float:
    """QuantLib's AnalyticHestonEngine price of a call on HHH (a test-only reference)."""
    import QuantLib as ql

    today = ql.Date(2, 12, 2026)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    u = UNDERLYINGS["HHH"]
    flat = ql.YieldTermStructureHandle(ql.FlatForward(today, RATE, dc))
    div = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc))
    process = ql.HestonProcess(
        flat,
        div,
        ql.QuoteHandle(ql.SimpleQuote(u["spot"])),
        v0,
        u["kappa"],
        u["theta"],
        u["xi"],
        u["rho"],
    )
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call, strike), ql.EuropeanExercise(today + maturity_days)
    )
    option.setPricingEngine(ql.AnalyticHestonEngine(ql.HestonModel(process)))
    return option.NPV()


def test_heston_trade_price_and_v0_vega_match_quantlib(tmp_path):
    """A Heston call in the book (QE, 73 steps a year so that 1 year = 365 days is on the grid)
    against QuantLib's semi-analytic price and its v0 difference; the QE bias at this step is
    below 0.2% of the price (tests/test_heston.py measures the scheme)."""
    rows = [
        {
            "id": "h",
            "underlying": "HHH",
            "product": "european_call",
            "strike": 100.0,
            "maturity": 1.0,
            "barrier": "",
        }
    ]
    trades = write_trades(tmp_path / "h.csv", rows)
    data = book_job(tmp_path / "s", trades, paths=2 * 200_000, steps_per_year=73, greeks=["vega"])
    got = in_process(data)["trades"]["h"]
    v0 = UNDERLYINGS["HHH"]["v0"]
    ref = quantlib_heston_call(100.0, 365, v0)
    assert abs(got["price"] - ref) <= 4 * got["stderr"] + 2e-3 * ref, (got, ref)
    h = 1e-4
    ref_vega = (
        quantlib_heston_call(100.0, 365, v0 + h) - quantlib_heston_call(100.0, 365, v0 - h)
    ) / (2 * h)
    vega = got["greeks"]["vega"]
    assert abs(vega["value"] - ref_vega) <= 4 * vega["stderr"] + 5e-3 * abs(ref_vega), (
        vega,
        ref_vega,
    )
