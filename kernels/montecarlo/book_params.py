"""Parameters of ``montecarlo.book``: a book of trades on several underlyings, priced in one job.

``[params]`` holds the models (``[params.underlyings.<name>]``), the trade file's URL
(``trades``), ``rate``, ``paths``, ``steps_per_year``, ``greeks`` and ``antithetic``. The trade
file is a CSV read when the job is planned (:func:`parse_trades`); its rows are then carried in
the params (``rows``), so a resumed job never reads the file again and a later edit of the file
cannot change a run in progress.

Imports neither NumPy nor Numba (the light install checks job files with it). Every error is a
``ParamError`` naming the key (``underlyings.<name>.<key>``, ``trades``) and, for the trade file,
the row and the column.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tessera.kernels.base import ParamError
from tessera.kernels.montecarlo.params import greek_names
from tessera.kernels.validate import boolean, finite_number, integer_in, suggest

MODELS: tuple[str, ...] = ("gbm", "heston")
GBM_PRODUCTS: tuple[str, ...] = (
    "european_call",
    "european_put",
    "asian_arithmetic_call",
    "asian_geometric_call",
    "barrier_up_out_call",
)
HESTON_PRODUCTS: tuple[str, ...] = (
    "european_call",
    "european_put",
    "asian_arithmetic_call",
    "barrier_up_out_call",
)
PRODUCTS: tuple[str, ...] = GBM_PRODUCTS
BOOK_GREEKS: tuple[str, ...] = ("delta", "gamma", "vega", "rho")
SCHEMES: tuple[str, ...] = ("qe", "euler")
COLUMNS: tuple[str, ...] = ("id", "underlying", "product", "strike", "maturity", "barrier")
REQUIRED_COLUMNS: tuple[str, ...] = COLUMNS[:5]
MAX_TRADES = 1_000_000
MAX_UNDERLYINGS = 1024
MAX_PATHS = 2**53
MAX_MATURITY = 50.0

KEYS: tuple[str, ...] = (
    "trades",
    "underlyings",
    "rate",
    "paths",
    "steps_per_year",
    "greeks",
    "antithetic",
    "rows",
)
MODEL_KEYS: dict[str, tuple[str, ...]] = {
    "gbm": ("model", "spot", "volatility"),
    "heston": ("model", "spot", "v0", "kappa", "theta", "xi", "rho", "scheme"),
}


@dataclass(frozen=True)
class Underlying:
    """One underlying's model: ``gbm`` (``volatility``) or ``heston`` (``v0, kappa, theta, xi,
    rho``, ``scheme``); unused fields are 0. ``index`` is its place in sorted name order, which
    also names its random stream."""

    name: str
    index: int
    model: str
    spot: float
    volatility: float = 0.0
    v0: float = 0.0
    kappa: float = 0.0
    theta: float = 0.0
    xi: float = 0.0
    rho: float = 0.0
    scheme: str = "qe"


@dataclass(frozen=True)
class Trade:
    """One row of the trade file. ``barrier`` is ``None`` except for barrier products."""

    id: str
    underlying: str
    product: str
    strike: float
    maturity: float
    barrier: float | None = None


@dataclass(frozen=True)
class Params:
    """Validated book parameters. ``rows`` is ``None`` until the job is planned (the trade
    file read); then it holds every trade, in file order."""

    trades: str
    underlyings: tuple[Underlying, ...]
    rate: float
    paths: int
    steps_per_year: int = 52
    greeks: tuple[str, ...] = ()
    antithetic: bool = True
    rows: tuple[Trade, ...] | None = None

    @property
    def samples(self) -> int:
        """Independent samples: paths, or path pairs with ``antithetic``."""
        return self.paths // 2 if self.antithetic else self.paths

    @property
    def book(self) -> tuple[Trade, ...]:
        """The trades; ``RuntimeError`` before the job is planned."""
        if self.rows is None:
            raise RuntimeError("the trade file has not been read (the job is not planned)")
        return self.rows


def _underlying(name: str, index: int, raw: Any) -> Underlying:
    key = f"underlyings.{name}"
    if not isinstance(raw, Mapping):
        raise ParamError(key, f"expected a table with model and spot, got {raw!r}")
    model = raw.get("model")
    if model not in MODELS:
        raise ParamError(
            f"{key}.model", f"expected one of {', '.join(MODELS)}{suggest(str(model), MODELS)}"
        )
    allowed = MODEL_KEYS[model]
    for k in raw:
        if k not in allowed:
            raise ParamError(
                f"{key}.{k}",
                f"unknown key{suggest(str(k), allowed)} (a {model} underlying takes "
                f"{', '.join(allowed)})",
            )
    missing = [k for k in allowed if k not in raw and k not in ("model", "scheme")]
    if missing:
        raise ParamError(f"{key}.{missing[0]}", f"is required for a {model} underlying")

    def num(k: str, lo: float, hi: float, lo_open: bool = True) -> float:
        value = finite_number(raw, k)
        if (value <= lo if lo_open else value < lo) or value > hi:
            low = f"{'>' if lo_open else '>='} {lo:g}"
            raise ParamError(f"{key}.{k}", f"expected {low} and <= {hi:g}, got {value!r}")
        return value

    try:
        spot = num("spot", 0.0, 1e12)
        if model == "gbm":
            return Underlying(name, index, model, spot, volatility=num("volatility", 0.0, 5.0))
        scheme = raw.get("scheme", "qe")
        if scheme not in SCHEMES:
            raise ParamError(f"{key}.scheme", f"expected one of {', '.join(SCHEMES)}")
        return Underlying(
            name,
            index,
            model,
            spot,
            v0=num("v0", 0.0, 25.0),
            kappa=num("kappa", 0.0, 100.0),
            theta=num("theta", 0.0, 25.0),
            xi=num("xi", 0.0, 25.0),
            rho=num("rho", -1.0, 1.0, lo_open=False),
            scheme=scheme,
        )
    except ParamError as exc:
        if exc.key.startswith(key):
            raise
        raise ParamError(f"{key}.{exc.key}", exc.message) from None


def _underlyings(raw: Any) -> tuple[Underlying, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise ParamError(
            "underlyings",
            f"expected tables [params.underlyings.<name>] with model and spot, got {raw!r}",
        )
    if len(raw) > MAX_UNDERLYINGS:
        raise ParamError("underlyings", f"at most {MAX_UNDERLYINGS} underlyings, got {len(raw)}")
    names = sorted(str(n) for n in raw)
    return tuple(_underlying(name, i, raw[name]) for i, name in enumerate(names))


def _number(text: str, row: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ParamError(
            "trades", f"row {row}, column {column}: {text!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise ParamError("trades", f"row {row}, column {column}: expected a finite number")
    return value


def check_trade(values: Mapping[str, str], row: int, models: Mapping[str, Underlying]) -> Trade:
    """One row of text fields as a :class:`Trade`. ``row`` is the 1-based data row (the header is
    row 0). Raises ``ParamError("trades", "row N, column C: ...")``."""
    tid = values.get("id", "").strip()
    if not tid:
        raise ParamError("trades", f"row {row}, column id: is empty")
    name = values.get("underlying", "").strip()
    if name not in models:
        raise ParamError(
            "trades",
            f"row {row}, column underlying: {name!r} is not an underlying"
            f"{suggest(name, tuple(models))} (params.underlyings has "
            f"{', '.join(sorted(models))})",
        )
    model = models[name].model
    product = values.get("product", "").strip()
    allowed = GBM_PRODUCTS if model == "gbm" else HESTON_PRODUCTS
    if product not in allowed:
        raise ParamError(
            "trades",
            f"row {row}, column product: {product!r} is not a product of a {model} underlying"
            f"{suggest(product, allowed)} (expected one of {', '.join(allowed)})",
        )
    strike = _number(values.get("strike", ""), row, "strike")
    if strike <= 0:
        raise ParamError("trades", f"row {row}, column strike: expected a price > 0, got {strike}")
    maturity = _number(values.get("maturity", ""), row, "maturity")
    if not 0 < maturity <= MAX_MATURITY:
        raise ParamError(
            "trades",
            f"row {row}, column maturity: expected 0 < maturity <= {MAX_MATURITY:g} years, "
            f"got {maturity}",
        )
    barrier_text = (values.get("barrier") or "").strip()
    barrier: float | None = None
    if product == "barrier_up_out_call":
        if not barrier_text:
            raise ParamError("trades", f"row {row}, column barrier: is required by {product}")
        barrier = _number(barrier_text, row, "barrier")
        spot = models[name].spot
        if barrier <= spot:
            raise ParamError(
                "trades",
                f"row {row}, column barrier: expected a level above {name}'s spot {spot:g}, "
                f"got {barrier:g}",
            )
    elif barrier_text:
        raise ParamError(
            "trades",
            f"row {row}, column barrier: {product} has no barrier (got {barrier_text!r}); "
            "leave it empty",
        )
    return Trade(tid, name, product, strike, maturity, barrier)


def parse_trades(text: str, underlyings: Sequence[Underlying], source: str) -> tuple[Trade, ...]:
    """The trades of a CSV file's text: a header row naming the columns (``id, underlying,
    product, strike, maturity`` and, where a barrier product is, ``barrier``), then a trade per
    row; blank lines are skipped. Raises ``ParamError("trades", ...)`` naming the row and the
    column: an unknown or missing column, an unknown underlying or product, a bad number, a
    missing barrier, a non-positive maturity, a duplicate id (with the row of its first use), a
    row with more or fewer fields than the header."""
    models = {u.name: u for u in underlyings}
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise ParamError("trades", f"{source} is empty; expected a header row and trades")
    header = [h.strip() for h in header]
    for h in header:
        if h not in COLUMNS:
            raise ParamError(
                "trades",
                f"{source}: unknown column {h!r}{suggest(h, COLUMNS)} "
                f"(expected {', '.join(COLUMNS)})",
            )
    if len(set(header)) != len(header):
        raise ParamError("trades", f"{source}: a column is named twice in the header {header}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ParamError("trades", f"{source}: the header has no column {missing[0]!r}")
    trades: list[Trade] = []
    first_row: dict[str, int] = {}
    row = 0
    for fields in reader:
        if not fields or all(not f.strip() for f in fields):
            continue
        row += 1
        if len(fields) != len(header):
            raise ParamError(
                "trades",
                f"row {row}: {len(fields)} fields, expected {len(header)} ({', '.join(header)})",
            )
        trade = check_trade(dict(zip(header, fields)), row, models)
        if trade.id in first_row:
            raise ParamError(
                "trades",
                f"row {row}, column id: {trade.id!r} is also the id of row {first_row[trade.id]}",
            )
        first_row[trade.id] = row
        trades.append(trade)
        if len(trades) > MAX_TRADES:
            raise ParamError("trades", f"{source}: more than {MAX_TRADES:,} trades")
    if not trades:
        raise ParamError("trades", f"{source} holds no trades (only a header)")
    return tuple(trades)


def _rows(raw: Any, underlyings: Sequence[Underlying]) -> tuple[Trade, ...]:
    """The ``rows`` a planned job carries: lists ``[id, underlying, product, strike, maturity,
    barrier or null]``, checked as the file's rows are."""
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ParamError("rows", "expected the planned list of trades")
    models = {u.name: u for u in underlyings}
    out: list[Trade] = []
    seen: set[str] = set()
    for i, item in enumerate(raw, start=1):
        if not isinstance(item, (list, tuple)) or len(item) != len(COLUMNS):
            raise ParamError("rows", f"row {i}: expected {len(COLUMNS)} fields, got {item!r}")
        values = {c: "" if v is None else str(v) for c, v in zip(COLUMNS, item)}
        trade = check_trade(values, i, models)
        if trade.id in seen:
            raise ParamError("rows", f"row {i}: duplicate id {trade.id!r}")
        seen.add(trade.id)
        out.append(trade)
    return tuple(out)


def parse(raw: Mapping[str, Any]) -> Params:
    """Validate a job's ``[params]`` into :class:`Params` (the trade file is read later, when the
    job is planned). Raises ``ParamError`` naming the key."""
    if not isinstance(raw, Mapping):
        raise ParamError("params", f"expected a table of parameters, got {type(raw).__name__}")
    for key in raw:
        if key not in KEYS:
            raise ParamError(
                str(key),
                f"unknown parameter{suggest(str(key), KEYS)} (montecarlo.book takes "
                f"{', '.join(KEYS[:-1])})",
            )
    for key in ("trades", "underlyings", "rate", "paths"):
        if key not in raw:
            raise ParamError(key, "is required")
    trades = raw["trades"]
    if not isinstance(trades, str) or not trades.strip():
        raise ParamError("trades", f"expected the path or URL of a CSV file, got {trades!r}")
    underlyings = _underlyings(raw["underlyings"])
    rate = finite_number(raw, "rate")
    if abs(rate) > 1:
        raise ParamError("rate", f"expected a rate per year in [-1, 1], got {rate!r}")
    paths = integer_in(raw, "paths", 2, MAX_PATHS)
    steps_per_year = integer_in(raw, "steps_per_year", 1, 10_000) if "steps_per_year" in raw else 52
    if "theta" in (raw.get("greeks") or []):
        raise ParamError(
            "greeks",
            "theta is not offered by montecarlo.book: a maturity bump moves each trade's "
            "fixings off the underlying's shared time grid; price the trade with montecarlo.gbm "
            f"for its theta (the book gives {', '.join(BOOK_GREEKS)})",
        )
    greeks = greek_names(raw, "greeks", BOOK_GREEKS)
    antithetic = boolean(raw, "antithetic", True)
    if antithetic and (paths % 2 or paths < 4):
        raise ParamError(
            "paths", f"expected an even number >= 4 with antithetic = true, got {paths}"
        )
    rows = _rows(raw["rows"], underlyings) if "rows" in raw else None
    return Params(
        trades=trades,
        underlyings=underlyings,
        rate=rate,
        paths=paths,
        steps_per_year=steps_per_year,
        greeks=greeks,
        antithetic=antithetic,
        rows=rows,
    )


def to_dict(params: Params) -> dict[str, Any]:
    """Canonical JSON form: defaults filled in, the underlyings by name, ``rows`` once read."""
    unders: dict[str, Any] = {}
    for u in params.underlyings:
        if u.model == "gbm":
            unders[u.name] = {"model": "gbm", "spot": u.spot, "volatility": u.volatility}
        else:
            unders[u.name] = {
                "model": "heston",
                "spot": u.spot,
                "v0": u.v0,
                "kappa": u.kappa,
                "theta": u.theta,
                "xi": u.xi,
                "rho": u.rho,
                "scheme": u.scheme,
            }
    out: dict[str, Any] = {
        "trades": params.trades,
        "underlyings": unders,
        "rate": float(params.rate),
        "paths": params.paths,
        "steps_per_year": params.steps_per_year,
        "greeks": list(params.greeks),
        "antithetic": params.antithetic,
    }
    if params.rows is not None:
        out["rows"] = [
            [t.id, t.underlying, t.product, t.strike, t.maturity, t.barrier] for t in params.rows
        ]
    return out
