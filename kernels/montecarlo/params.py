"""Parameters of ``montecarlo.gbm``: validation of the job's ``[params]`` table.

Every error is a ``ParamError`` naming the key, the value and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tessera.kernels.base import ParamError
from tessera.kernels.montecarlo.qmc_params import (
    PHILOX,
    Sampler,
    antithetic_default,
    parse_sampler,
    sampler_dict,
)
from tessera.kernels.validate import (
    boolean,
    bounded_integer,
    check_keys,
    choice,
    finite_number,
    integer_in,
    shown,
    suggest,
)

PRODUCTS: tuple[str, ...] = (
    "european_call",
    "european_put",
    "asian_arithmetic_call",
    "asian_geometric_call",
    "barrier_up_out_call",
    "american_put",
    "american_call",
    "bermudan_put",
)
# Priced by Longstaff-Schwartz in two stages (calibrate, then price); a job with one of these
# may also list the Europeans, priced on the same pricing paths, and nothing else
LSM_PRODUCTS: tuple[str, ...] = ("american_put", "american_call", "bermudan_put")
LSM_COMPANIONS: frozenset[str] = frozenset({"european_call", "european_put"})
LSM_BASES: tuple[str, ...] = ("laguerre", "monomial")
LSM_KEYS: tuple[str, ...] = ("basis", "degree", "calibration_paths")
DEFAULT_LSM_DEGREE = 3
DEFAULT_CALIBRATION_PATHS = 100_000
MAX_CALIBRATION_PATHS = 10_000_000
BARRIER_PRODUCTS: frozenset[str] = frozenset({"barrier_up_out_call"})
DEFAULT_PRODUCTS: tuple[str, ...] = ("european_call", "european_put")
GREEKS: tuple[str, ...] = ("delta", "gamma", "vega", "rho", "theta")

MAX_PATHS = 2**53  # sample counts stay exact in float64 sums
MAX_STEPS = 100_000

KEYS: tuple[str, ...] = (
    "paths",
    "steps",
    "spot",
    "strike",
    "rate",
    "volatility",
    "maturity",
    "products",
    "barrier",
    "antithetic",
    "control_variate",
    "greeks",
    "sampler",
    "replicates",
    "brownian_bridge",
    "exercise_dates",
    "lsm",
)
REQUIRED: tuple[str, ...] = ("paths", "steps", "spot", "strike", "rate", "volatility", "maturity")


@dataclass(frozen=True)
class Lsm:
    """Longstaff-Schwartz settings: the regression ``basis`` (``"laguerre"``, weighted by
    exp(-x/2) as in Longstaff and Schwartz (2001), or ``"monomial"``) in the moneyness
    x = S / strike, its ``degree`` (1..6: the constant plus ``degree`` functions) and the
    independent ``calibration_paths`` the regression runs on."""

    basis: str = "laguerre"
    degree: int = DEFAULT_LSM_DEGREE
    calibration_paths: int = DEFAULT_CALIBRATION_PATHS


@dataclass(frozen=True)
class Params:
    """Validated GBM parameters (risk-neutral measure).

    ``paths`` simulated paths of ``steps`` equal time steps to ``maturity`` (years); ``spot``,
    ``strike`` and ``barrier`` in currency units; ``rate`` and ``volatility`` per year
    (continuously compounded rate, lognormal volatility). Asian averages and barrier checks use
    the fixings t_i = i * maturity / steps, i = 1..steps (the spot is not a fixing). With
    ``antithetic`` a sample is a pair of paths driven by z and -z, so there are paths / 2
    samples; ``control_variate`` adjusts the arithmetic Asian by the geometric Asian's closed
    form. ``greeks`` (any of delta, gamma, vega, rho, theta) are derivatives of each product's
    price in the parameters' own units: d/dspot, d2/dspot2, d/dvolatility, d/drate and
    -d/dmaturity (per year).

    ``sampler`` is Philox or randomized Sobol (:mod:`qmc_params`). ``american_put`` and
    ``american_call`` may be exercised at every fixing t_i; ``bermudan_put`` at the
    ``exercise_dates`` dates maturity * k / exercise_dates, k = 1..exercise_dates (a divisor
    of ``steps``, so every date is a fixing; time 0 excluded). ``lsm`` holds the
    Longstaff-Schwartz settings; it and ``exercise_dates`` are ``None`` in a job without an
    LSM product.
    """

    paths: int
    steps: int
    spot: float
    strike: float
    rate: float
    volatility: float
    maturity: float
    products: tuple[str, ...] = DEFAULT_PRODUCTS
    barrier: float | None = None
    antithetic: bool = True
    control_variate: bool = True
    greeks: tuple[str, ...] = ()
    sampler: Sampler = PHILOX
    exercise_dates: int | None = None
    lsm: Lsm | None = None

    @property
    def has_lsm(self) -> bool:
        """True when a product is priced by Longstaff-Schwartz (a two-stage job)."""
        return self.lsm is not None

    @property
    def samples(self) -> int:
        """Independent samples: paths, or path pairs with ``antithetic``."""
        return self.paths // 2 if self.antithetic else self.paths


def product_names(
    raw: Mapping[str, Any],
    allowed: tuple[str, ...],
    default: tuple[str, ...],
    listing: str = "expected names from",
) -> tuple[str, ...]:
    """The ``products`` list of ``raw`` (``default`` when absent): at least one name from
    ``allowed``, each once, in the order given. ``ParamError("products", ...)`` otherwise; an
    unknown name's message ends with ``(<listing> <allowed names>)``. Shared by the Monte Carlo
    kernels' params."""
    value = raw.get("products", list(default))
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ParamError("products", f"expected a list of product names, got {shown(value)}")
    if not value:
        raise ParamError("products", f"expected at least one of {', '.join(allowed)}")
    seen: list[str] = []
    for name in value:
        if not isinstance(name, str):
            raise ParamError("products", f"expected product names (strings), got {shown(name)}")
        if name not in allowed:
            raise ParamError(
                "products",
                f"unknown product {name!r}{suggest(name, allowed)} "
                f"({listing} {', '.join(allowed)})",
            )
        if name in seen:
            raise ParamError("products", f"{name!r} is listed twice")
        seen.append(name)
    return tuple(seen)


def greek_names(raw: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The ``greeks`` list of ``raw[key]``: names from ``allowed``, each once, in the order
    given. ``ParamError`` naming the key otherwise."""
    value = raw.get(key, [])
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ParamError(key, f"expected a list of Greek names, got {value!r}")
    seen: list[str] = []
    for name in value:
        if not isinstance(name, str) or name not in allowed:
            raise ParamError(
                key,
                f"unknown Greek {name!r}{suggest(str(name), allowed)} "
                f"(expected names from {', '.join(allowed)})",
            )
        if name in seen:
            raise ParamError(key, f"{name!r} is listed twice")
        seen.append(name)
    return tuple(seen)


def parse(raw: Mapping[str, Any]) -> Params:
    """Validate a job's ``[params]`` mapping into :class:`Params`.

    Raises ``ParamError(key, message)`` for an unknown key (suggesting a close match), a
    missing required key, a wrong type (a bool is not a number; an int is accepted for a
    float) or a value out of range; the message names the value and what was expected.
    """
    if not isinstance(raw, Mapping):
        raise ParamError("params", f"expected a table of parameters, got {type(raw).__name__}")
    for key in raw:
        if key not in KEYS:
            known = ", ".join(KEYS)
            raise ParamError(
                str(key),
                f"unknown parameter{suggest(str(key), KEYS)} (montecarlo.gbm takes {known})",
            )
    missing = [key for key in REQUIRED if key not in raw]
    if missing:  # every missing key at once, not one per try
        also = f" (also missing: {', '.join(f'params.{k}' for k in missing[1:])})"
        raise ParamError(missing[0], "is required" + (also if len(missing) > 1 else ""))

    paths = integer_in(raw, "paths", 2, MAX_PATHS)
    steps = integer_in(raw, "steps", 1, MAX_STEPS)
    spot = finite_number(raw, "spot")
    if spot <= 0:
        raise ParamError("spot", f"expected a price > 0, got {spot!r}")
    strike = finite_number(raw, "strike")
    if strike <= 0:
        raise ParamError("strike", f"expected a price > 0, got {strike!r}")
    rate = finite_number(raw, "rate")
    if abs(rate) > 1:
        raise ParamError("rate", f"expected a rate per year in [-1, 1], got {rate!r}")
    volatility = finite_number(raw, "volatility")
    if not 0 < volatility <= 5:
        raise ParamError("volatility", f"expected 0 < volatility <= 5 per year, got {volatility!r}")
    maturity = finite_number(raw, "maturity")
    if not 0 < maturity <= 100:
        raise ParamError("maturity", f"expected 0 < maturity <= 100 years, got {maturity!r}")
    products = product_names(raw, PRODUCTS, DEFAULT_PRODUCTS)

    barrier: float | None = None
    wants_barrier = any(p in BARRIER_PRODUCTS for p in products)
    if "barrier" in raw:
        barrier = finite_number(raw, "barrier")
        if barrier <= spot:
            raise ParamError("barrier", f"expected a barrier above spot {spot!r}, got {barrier!r}")
    elif wants_barrier:
        raise ParamError("barrier", "is required by barrier_up_out_call (a level above spot)")

    greeks = greek_names(raw, "greeks", GREEKS)
    sampler = parse_sampler(raw, paths, steps)
    exercise_dates, lsm = _lsm(raw, products, steps, greeks, sampler)
    antithetic = boolean(raw, "antithetic", antithetic_default(raw))
    if antithetic and (paths % 2 or paths < 4):
        raise ParamError(
            "paths",
            f"expected an even number >= 4 (two antithetic pairs) with antithetic = true, "
            f"got {paths}",
        )
    control_variate = boolean(raw, "control_variate", True)
    if sampler.sobol and greeks:
        raise ParamError(
            "greeks",
            'are computed with sampler = "philox" only (leave out greeks or the sampler)',
        )
    return Params(
        paths=paths,
        steps=steps,
        spot=spot,
        strike=strike,
        rate=rate,
        volatility=volatility,
        maturity=maturity,
        products=products,
        barrier=barrier,
        antithetic=antithetic,
        control_variate=control_variate,
        greeks=greeks,
        sampler=sampler,
        exercise_dates=exercise_dates,
        lsm=lsm,
    )


def _lsm(
    raw: Mapping[str, Any],
    products: tuple[str, ...],
    steps: int,
    greeks: tuple[str, ...],
    sampler: Sampler,
) -> tuple[int | None, Lsm | None]:
    """``exercise_dates`` and the ``lsm`` table: both ``None`` without an LSM product (and
    then refused if given)."""
    lsm_products = [p for p in products if p in LSM_PRODUCTS]
    if not lsm_products:
        for key in ("exercise_dates", "lsm"):
            if key in raw:
                raise ParamError(
                    key, f"applies to the products {', '.join(LSM_PRODUCTS)} only, none listed"
                )
        return None, None
    others = [p for p in products if p not in LSM_PRODUCTS and p not in LSM_COMPANIONS]
    if others:
        raise ParamError(
            "products",
            f"{others[0]!r} cannot be priced in a job with {lsm_products[0]!r}: a Longstaff-"
            f"Schwartz job prices {', '.join(LSM_PRODUCTS)} and the Europeans only (run "
            f"{others[0]} as its own job)",
        )
    if greeks:
        raise ParamError("greeks", f"are not computed for {lsm_products[0]} (leave out greeks)")
    if sampler.sobol:
        raise ParamError(
            "sampler",
            f'{lsm_products[0]} is priced with sampler = "philox" only (Longstaff-Schwartz '
            "exercise is not smooth in the path, so QMC gains little)",
        )
    dates = integer_in(raw, "exercise_dates", 1, steps, steps)
    if steps % dates:
        raise ParamError(
            "exercise_dates",
            f"expected a divisor of steps = {steps} (every exercise date must be a fixing), "
            f"got {dates}",
        )
    table = raw.get("lsm", {})
    if not isinstance(table, Mapping):
        raise ParamError(
            "lsm", f"expected a table (basis, degree, calibration_paths), got {shown(table)}"
        )
    check_keys(table, LSM_KEYS, prefix="lsm.")
    named = {"lsm.basis": table["basis"]} if "basis" in table else {}
    basis = choice(named, "lsm.basis", LSM_BASES, "laguerre")
    degree = bounded_integer(table, "degree", 1, 6, DEFAULT_LSM_DEGREE, name="lsm.degree")
    calibration = bounded_integer(
        table,
        "calibration_paths",
        1_000,
        MAX_CALIBRATION_PATHS,
        DEFAULT_CALIBRATION_PATHS,
        name="lsm.calibration_paths",
    )
    return dates, Lsm(basis, degree, calibration)


def to_dict(params: Params) -> dict[str, Any]:
    """The canonical JSON-serialisable form: defaults filled in, floats as float.

    ``barrier`` is present only when it was given, so ``parse(to_dict(p)) == p``.
    """
    out: dict[str, Any] = {
        "paths": params.paths,
        "steps": params.steps,
        "spot": float(params.spot),
        "strike": float(params.strike),
        "rate": float(params.rate),
        "volatility": float(params.volatility),
        "maturity": float(params.maturity),
        "products": list(params.products),
        "antithetic": params.antithetic,
        "control_variate": params.control_variate,
    }
    if params.barrier is not None:
        out["barrier"] = float(params.barrier)
    if params.greeks:
        out["greeks"] = list(params.greeks)
    out.update(sampler_dict(params.sampler))
    if params.lsm is not None:
        out["exercise_dates"] = params.exercise_dates
        out["lsm"] = {
            "basis": params.lsm.basis,
            "degree": params.lsm.degree,
            "calibration_paths": params.lsm.calibration_paths,
        }
    return out
