"""Parameters of ``montecarlo.gbm``: validation of the job's ``[params]`` table.

Every error is a ``ParamError`` naming the key, the value and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tessera.kernels.base import ParamError
from tessera.kernels.validate import boolean, finite_number, integer_in, shown, suggest

PRODUCTS: tuple[str, ...] = (
    "european_call",
    "european_put",
    "asian_arithmetic_call",
    "asian_geometric_call",
    "barrier_up_out_call",
)
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
)
REQUIRED: tuple[str, ...] = ("paths", "steps", "spot", "strike", "rate", "volatility", "maturity")


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

    antithetic = boolean(raw, "antithetic", True)
    if antithetic and (paths % 2 or paths < 4):
        raise ParamError(
            "paths",
            f"expected an even number >= 4 (two antithetic pairs) with antithetic = true, "
            f"got {paths}",
        )
    control_variate = boolean(raw, "control_variate", True)
    greeks = greek_names(raw, "greeks", GREEKS)
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
    )


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
    return out
