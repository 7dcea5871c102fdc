"""Closed-form prices under Black-Scholes dynamics (the references and the control variate)."""

from __future__ import annotations

import math


def norm_cdf(x: float) -> float:
    """The standard normal distribution function, from ``math.erfc`` (no SciPy)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _check(spot: float, strike: float, volatility: float, maturity: float) -> None:
    if spot <= 0 or strike <= 0 or volatility <= 0 or maturity <= 0:
        raise ValueError(
            f"need spot, strike, volatility, maturity > 0, got {spot}, {strike}, "
            f"{volatility}, {maturity}"
        )


def black_scholes_call(
    spot: float, strike: float, rate: float, volatility: float, maturity: float
) -> float:
    """Black-Scholes price of a European call (no dividends); rate and volatility per year,
    maturity in years. Raises ``ValueError`` for non-positive spot, strike, volatility or
    maturity."""
    _check(spot, strike, volatility, maturity)
    sd = volatility * math.sqrt(maturity)
    d1 = (math.log(spot / strike) + (rate + 0.5 * volatility**2) * maturity) / sd
    d2 = d1 - sd
    return spot * norm_cdf(d1) - strike * math.exp(-rate * maturity) * norm_cdf(d2)


def black_scholes_put(
    spot: float, strike: float, rate: float, volatility: float, maturity: float
) -> float:
    """Black-Scholes price of a European put (see :func:`black_scholes_call`)."""
    _check(spot, strike, volatility, maturity)
    sd = volatility * math.sqrt(maturity)
    d1 = (math.log(spot / strike) + (rate + 0.5 * volatility**2) * maturity) / sd
    d2 = d1 - sd
    return strike * math.exp(-rate * maturity) * norm_cdf(-d2) - spot * norm_cdf(-d1)


def geometric_asian_moments(
    spot: float, rate: float, volatility: float, maturity: float, steps: int
) -> tuple[float, float]:
    """Mean and standard deviation of log G, G the geometric average of S(t_i) over the
    fixings t_i = i * maturity / steps, i = 1..steps (the spot excluded)."""
    n = steps
    mean = math.log(spot) + (rate - 0.5 * volatility**2) * maturity * (n + 1) / (2 * n)
    var = volatility**2 * maturity * (n + 1) * (2 * n + 1) / (6 * n * n)
    return mean, math.sqrt(var)


def geometric_asian_call(
    spot: float, strike: float, rate: float, volatility: float, maturity: float, steps: int
) -> float:
    """Price of a discretely monitored geometric-average Asian call, fixings
    t_i = i * maturity / steps, i = 1..steps (spot excluded): log G is normal, so this is a
    Black-Scholes formula in the moments of log G."""
    _check(spot, strike, volatility, maturity)
    if steps < 1:
        raise ValueError(f"need steps >= 1, got {steps}")
    mu, sd = geometric_asian_moments(spot, rate, volatility, maturity, steps)
    d2 = (mu - math.log(strike)) / sd
    d1 = d2 + sd
    forward = math.exp(mu + 0.5 * sd * sd)
    return math.exp(-rate * maturity) * (forward * norm_cdf(d1) - strike * norm_cdf(d2))


def norm_pdf(x: float) -> float:
    """The standard normal density."""
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def black_scholes_greeks(
    kind: str, spot: float, strike: float, rate: float, volatility: float, maturity: float
) -> dict[str, float]:
    """Black-Scholes Greeks of a European ``kind`` ("call" or "put"): delta = dV/dspot, gamma =
    d2V/dspot2, vega = dV/dvolatility, rho = dV/drate, theta = -dV/dmaturity (per year).
    Raises ``ValueError`` as :func:`black_scholes_call` does, or for another ``kind``."""
    _check(spot, strike, volatility, maturity)
    if kind not in ("call", "put"):
        raise ValueError(f"kind must be 'call' or 'put', got {kind!r}")
    sd = volatility * math.sqrt(maturity)
    d1 = (math.log(spot / strike) + (rate + 0.5 * volatility**2) * maturity) / sd
    d2 = d1 - sd
    disc = math.exp(-rate * maturity)
    gamma = norm_pdf(d1) / (spot * sd)
    vega = spot * norm_pdf(d1) * math.sqrt(maturity)
    decay = -spot * norm_pdf(d1) * volatility / (2.0 * math.sqrt(maturity))
    if kind == "call":
        return {
            "delta": norm_cdf(d1),
            "gamma": gamma,
            "vega": vega,
            "rho": strike * maturity * disc * norm_cdf(d2),
            "theta": decay - rate * strike * disc * norm_cdf(d2),
        }
    return {
        "delta": norm_cdf(d1) - 1.0,
        "gamma": gamma,
        "vega": vega,
        "rho": -strike * maturity * disc * norm_cdf(-d2),
        "theta": decay + rate * strike * disc * norm_cdf(-d2),
    }
