"""Closed forms for correlated GBM assets: the geometric basket call (the basket kernel's control
variate and a reference) and Margrabe's exchange option. Pure Python.

Risk-neutral dynamics without dividends: ``log S_a(T) = log S_a + (r - s_a**2 / 2) T +
s_a sqrt(T) e_a`` with ``e`` standard normal, ``corr(e_a, e_b) = rho_ab``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tessera.kernels.montecarlo.closed_form import norm_cdf


def geometric_basket_moments(
    spots: Sequence[float],
    volatilities: Sequence[float],
    weights: Sequence[float],
    correlation: Sequence[Sequence[float]],
    rate: float,
    maturity: float,
) -> tuple[float, float]:
    """Mean and variance of ``log G``, ``G = prod_a S_a(T) ** w_a`` (normal, for any real
    weights): ``m = sum_a w_a (log S_a + (r - s_a**2 / 2) T)`` and
    ``v = T sum_ab w_a w_b rho_ab s_a s_b``."""
    n = len(spots)
    mean = math.fsum(
        weights[a] * (math.log(spots[a]) + (rate - 0.5 * volatilities[a] ** 2) * maturity)
        for a in range(n)
    )
    var = maturity * math.fsum(
        weights[a] * weights[b] * correlation[a][b] * volatilities[a] * volatilities[b]
        for a in range(n)
        for b in range(n)
    )
    return mean, max(var, 0.0)


def geometric_basket_call(
    spots: Sequence[float],
    volatilities: Sequence[float],
    weights: Sequence[float],
    correlation: Sequence[Sequence[float]],
    strike: float,
    rate: float,
    maturity: float,
) -> float:
    """Price of ``exp(-r T) max(prod_a S_a(T) ** w_a - K, 0)``: with ``(m, v)`` from
    :func:`geometric_basket_moments`, ``F = exp(m + v / 2)``, ``d2 = (m - log K) / sqrt(v)``,
    ``d1 = d2 + sqrt(v)``, the price is ``exp(-r T) (F N(d1) - K N(d2))`` (Black's formula on
    the lognormal G; ``exp(-r T) max(exp(m) - K, 0)`` when ``v = 0``). The weights are used as
    given (not normalised). Raises ``ValueError`` for non-positive spots, strike or maturity."""
    if min(spots) <= 0 or strike <= 0 or maturity <= 0:
        raise ValueError(
            f"need spots, strike, maturity > 0, got {list(spots)}, {strike}, {maturity}"
        )
    m, v = geometric_basket_moments(spots, volatilities, weights, correlation, rate, maturity)
    disc = math.exp(-rate * maturity)
    if v <= 0.0:
        return disc * max(math.exp(m) - strike, 0.0)
    sd = math.sqrt(v)
    d2 = (m - math.log(strike)) / sd
    d1 = d2 + sd
    return disc * (math.exp(m + 0.5 * v) * norm_cdf(d1) - strike * norm_cdf(d2))


def margrabe(
    spot1: float,
    spot2: float,
    vol1: float,
    vol2: float,
    rho: float,
    maturity: float,
) -> float:
    """Margrabe's price of ``exp(-r T) max(S_1(T) - S_2(T), 0)`` (independent of r):
    ``s = sqrt(s_1**2 + s_2**2 - 2 rho s_1 s_2)``,
    ``d1 = (log(S_1 / S_2) + s**2 T / 2) / (s sqrt(T))``, ``d2 = d1 - s sqrt(T)``,
    price ``S_1 N(d1) - S_2 N(d2)`` (``max(S_1 - S_2, 0)`` when ``s = 0``). Raises
    ``ValueError`` for non-positive spots or maturity."""
    if spot1 <= 0 or spot2 <= 0 or maturity <= 0:
        raise ValueError(f"need spots and maturity > 0, got {spot1}, {spot2}, {maturity}")
    var = max(vol1 * vol1 + vol2 * vol2 - 2.0 * rho * vol1 * vol2, 0.0)
    if var == 0.0:
        return max(spot1 - spot2, 0.0)
    sd = math.sqrt(var * maturity)
    d1 = (math.log(spot1 / spot2) + 0.5 * sd * sd) / sd
    return spot1 * norm_cdf(d1) - spot2 * norm_cdf(d1 - sd)
