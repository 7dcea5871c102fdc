"""Parameters of ``montecarlo.heston``: validation of the job's ``[params]`` table.

Light on purpose: imports neither NumPy nor Numba (the S3 trigger's Lambda checks job files
with this module alone). Every error is a ``ParamError`` naming the key, the value and what
was expected; an unknown key suggests the closest known one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tessera.kernels.base import ParamError
from tessera.kernels.montecarlo.params import greek_names, product_names
from tessera.kernels.montecarlo.qmc_params import (
    PHILOX,
    Sampler,
    antithetic_default,
    parse_sampler,
    sampler_dict,
)
from tessera.kernels.validate import boolean, choice, finite_number, integer_in, suggest

PRODUCTS: tuple[str, ...] = (
    "european_call",
    "european_put",
    "asian_arithmetic_call",
    "barrier_up_out_call",
)
BARRIER_PRODUCTS: frozenset[str] = frozenset({"barrier_up_out_call"})
DEFAULT_PRODUCTS: tuple[str, ...] = ("european_call", "european_put")
GREEKS: tuple[str, ...] = ("delta", "gamma", "vega")
SCHEMES: tuple[str, ...] = ("qe", "euler")

MAX_PATHS = 2**53  # sample counts stay exact in float64 sums
MAX_STEPS = 100_000

KEYS: tuple[str, ...] = (
    "paths",
    "steps",
    "spot",
    "strike",
    "rate",
    "maturity",
    "v0",
    "kappa",
    "theta",
    "xi",
    "rho",
    "products",
    "barrier",
    "antithetic",
    "scheme",
    "martingale_correction",
    "greeks",
    "sampler",
    "replicates",
    "brownian_bridge",
)
REQUIRED: tuple[str, ...] = (
    "paths",
    "steps",
    "spot",
    "strike",
    "rate",
    "maturity",
    "v0",
    "kappa",
    "theta",
    "xi",
    "rho",
)

# (lo, hi, lo_open) of the model's numbers; the same ranges as montecarlo.book's heston model
_RANGES: dict[str, tuple[float, float, bool, str]] = {
    "v0": (0.0, 25.0, True, "an initial variance"),
    "kappa": (0.0, 100.0, True, "a mean-reversion speed per year"),
    "theta": (0.0, 25.0, True, "a long-run variance"),
    "xi": (0.0, 25.0, True, "a volatility of variance"),
    "rho": (-1.0, 1.0, False, "a correlation"),
}


@dataclass(frozen=True)
class Params:
    """Validated Heston parameters (risk-neutral measure).

    dS = rate S dt + sqrt(v) S dW1, dv = kappa (theta - v) dt + xi sqrt(v) dW2,
    d<W1, W2> = rho dt, v(0) = v0. ``paths`` simulated paths of ``steps`` equal time steps to
    ``maturity`` (years); ``spot``, ``strike``, ``barrier`` in currency units; ``v0`` and
    ``theta`` are variances (per year), ``kappa`` per year, ``xi`` the volatility of variance.
    Asian averages and barrier checks use the fixings t_i = i * maturity / steps, i = 1..steps
    (the spot is not a fixing). ``scheme``: ``"qe"`` (Andersen's quadratic-exponential,
    psi_c = 1.5, gamma1 = gamma2 = 1/2; ``martingale_correction`` makes the discrete discounted
    price an exact martingale) or ``"euler"`` (log-Euler with full truncation). With
    ``antithetic`` a sample is a pair of paths driven by (z, u) and (-z, 1 - u), so there are
    paths / 2 samples. ``greeks`` (any of delta, gamma, vega) are d/dspot, d2/dspot2 and
    d/dv0 (per 1.0 of variance) of each product's price.

    ``sampler`` is Philox or randomized Sobol (:mod:`qmc_params`; a path takes 2 ``steps``
    coordinates of a Sobol point, laid out in :mod:`qmc_heston`). With Sobol the Greeks are the
    same per-path estimators, averaged per replicate.
    """

    paths: int
    steps: int
    spot: float
    strike: float
    rate: float
    maturity: float
    v0: float
    kappa: float
    theta: float
    xi: float
    rho: float
    products: tuple[str, ...] = DEFAULT_PRODUCTS
    barrier: float | None = None
    antithetic: bool = True
    scheme: str = "qe"
    martingale_correction: bool = False
    greeks: tuple[str, ...] = ()
    sampler: Sampler = PHILOX

    @property
    def samples(self) -> int:
        """Independent samples: paths, or path pairs with ``antithetic``."""
        return self.paths // 2 if self.antithetic else self.paths

    @property
    def feller(self) -> bool:
        """True when 2 kappa theta >= xi**2 (the variance never reaches 0)."""
        return 2.0 * self.kappa * self.theta >= self.xi * self.xi


def _model_number(raw: Mapping[str, Any], key: str) -> float:
    lo, hi, lo_open, what = _RANGES[key]
    value = finite_number(raw, key)
    if (value <= lo if lo_open else value < lo) or value > hi:
        low = f"{'>' if lo_open else '>='} {lo:g}"
        raise ParamError(key, f"expected {what} {low} and <= {hi:g}, got {value!r}")
    return value


def parse(raw: Mapping[str, Any]) -> Params:
    """Validate a job's ``[params]`` mapping into :class:`Params`.

    Raises ``ParamError(key, message)`` for an unknown key (suggesting a close match), a
    missing required key (all of them named), a wrong type (a bool is not a number; an int is
    accepted for a float) or a value out of range; the message names the value and what was
    expected.
    """
    if not isinstance(raw, Mapping):
        raise ParamError("params", f"expected a table of parameters, got {type(raw).__name__}")
    for key in raw:
        if key not in KEYS:
            known = ", ".join(KEYS)
            raise ParamError(
                str(key),
                f"unknown parameter{suggest(str(key), KEYS)} (montecarlo.heston takes {known})",
            )
    missing = [key for key in REQUIRED if key not in raw]
    if missing:
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
    maturity = finite_number(raw, "maturity")
    if not 0 < maturity <= 100:
        raise ParamError("maturity", f"expected 0 < maturity <= 100 years, got {maturity!r}")
    model = {key: _model_number(raw, key) for key in _RANGES}
    products = product_names(raw, PRODUCTS, DEFAULT_PRODUCTS, "montecarlo.heston prices")

    barrier: float | None = None
    if "barrier" in raw:
        barrier = finite_number(raw, "barrier")
        if barrier <= spot:
            raise ParamError("barrier", f"expected a barrier above spot {spot!r}, got {barrier!r}")
    elif any(p in BARRIER_PRODUCTS for p in products):
        raise ParamError("barrier", "is required by barrier_up_out_call (a level above spot)")

    sampler = parse_sampler(raw, paths, 2 * steps)
    antithetic = boolean(raw, "antithetic", antithetic_default(raw))
    if antithetic and (paths % 2 or paths < 4):
        raise ParamError(
            "paths",
            f"expected an even number >= 4 (two antithetic pairs) with antithetic = true, "
            f"got {paths}",
        )
    scheme = choice(raw, "scheme", SCHEMES, "qe")
    correction = boolean(raw, "martingale_correction", False)
    if correction and scheme != "qe":
        raise ParamError(
            "martingale_correction",
            f"applies to scheme = 'qe' only, got scheme = {scheme!r}; drop it or use 'qe'",
        )
    greeks = greek_names(raw, "greeks", GREEKS)
    return Params(
        paths=paths,
        steps=steps,
        spot=spot,
        strike=strike,
        rate=rate,
        maturity=maturity,
        products=products,
        barrier=barrier,
        antithetic=antithetic,
        scheme=scheme,
        martingale_correction=correction,
        greeks=greeks,
        sampler=sampler,
        **model,
    )


def to_dict(params: Params) -> dict[str, Any]:
    """The canonical JSON-serialisable form: defaults filled in, floats as float.

    ``barrier`` is present only when given and ``greeks`` only when asked for, so
    ``parse(to_dict(p)) == p``.
    """
    out: dict[str, Any] = {
        "paths": params.paths,
        "steps": params.steps,
        "spot": float(params.spot),
        "strike": float(params.strike),
        "rate": float(params.rate),
        "maturity": float(params.maturity),
        "v0": float(params.v0),
        "kappa": float(params.kappa),
        "theta": float(params.theta),
        "xi": float(params.xi),
        "rho": float(params.rho),
        "products": list(params.products),
        "antithetic": params.antithetic,
        "scheme": params.scheme,
        "martingale_correction": params.martingale_correction,
    }
    if params.barrier is not None:
        out["barrier"] = float(params.barrier)
    if params.greeks:
        out["greeks"] = list(params.greeks)
    out.update(sampler_dict(params.sampler))
    return out
