"""Slow, plain NumPy references for the Monte Carlo kernel (no Numba, no tessera.kernels.fastmath).

* :func:`philox4x32` is Philox4x32-10 written again from the Random123 paper, vectorised over
  counters with uint64 NumPy arithmetic.
* :func:`kernel_normals` draws the kernel's normals through it, with ``np.log``, ``np.cos`` and
  ``np.sin`` (the same counter and word mapping as ``tessera.kernels.rng``, documented there).
* :func:`gbm_payoffs` simulates whole paths in price space (``S = S0 * exp(cumsum(...))``) and
  evaluates every product from them; it accepts any normals, e.g. NumPy's own generator's.
"""

from __future__ import annotations

import numpy as np

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
MASK = np.uint64(0xFFFFFFFF)


def philox4x32(counters: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox4x32-10 of ``(n, 4)`` counters (any integer dtype, 32-bit values) -> ``(n, 4)``
    uint32."""
    c = [np.asarray(counters[:, i], dtype=np.uint64) & MASK for i in range(4)]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
        p0 = M0 * c[0]
        p1 = M1 * c[2]
        c = [
            (p1 >> np.uint64(32)) ^ c[1] ^ k0,
            p1 & MASK,
            (p0 >> np.uint64(32)) ^ c[3] ^ k1,
            p0 & MASK,
        ]
    return np.stack(c, axis=1).astype(np.uint32)


def kernel_normals(seed: int, samples: np.ndarray, steps: int) -> np.ndarray:
    """``(len(samples), steps)`` normals of the kernel's stream: counter (g, s_lo, s_hi, 0),
    key (seed_lo, seed_hi), u = (x + 0.5) / 2**32, Box-Muller with radius from words 0/2 and
    angle from words 1/3, cos first."""
    key = (seed & 0xFFFFFFFF, seed >> 32)
    s = np.asarray(samples, dtype=np.uint64)
    n_groups = -(-steps // 4)
    out = np.empty((s.size, 4 * n_groups))
    for g in range(n_groups):
        counters = np.stack(
            [
                np.full(s.size, g, np.uint64),
                s & MASK,
                s >> np.uint64(32),
                np.zeros(s.size, np.uint64),
            ],
            axis=1,
        )
        u = (philox4x32(counters, key).astype(np.float64) + 0.5) * 2.0**-32
        for pair in range(2):
            r = np.sqrt(-2.0 * np.log(u[:, 2 * pair]))
            angle = 2.0 * np.pi * u[:, 2 * pair + 1]
            out[:, 4 * g + 2 * pair] = r * np.cos(angle)
            out[:, 4 * g + 2 * pair + 1] = r * np.sin(angle)
    return out[:, :steps]


def gbm_payoffs(
    z: np.ndarray,
    *,
    spot: float,
    strike: float,
    rate: float,
    volatility: float,
    maturity: float,
    barrier: float | None = None,
    antithetic: bool = True,
) -> dict[str, np.ndarray]:
    """Per-sample discounted payoffs of every product from normals ``z`` (samples, steps).

    Fixings t_i = i * maturity / steps, i = 1..steps; the barrier knocks out when any
    S(t_i) >= barrier. With ``antithetic`` a sample's payoff is the mean over z and -z.
    """
    steps = z.shape[1]
    dt = maturity / steps
    drift = (rate - 0.5 * volatility**2) * dt
    vol = volatility * np.sqrt(dt)
    disc = np.exp(-rate * maturity)

    def one(sign: float) -> dict[str, np.ndarray]:
        logs = np.log(spot) + np.cumsum(drift + sign * vol * z, axis=1)
        s = np.exp(logs)
        st = s[:, -1]
        out = {
            "european_call": disc * np.maximum(st - strike, 0.0),
            "european_put": disc * np.maximum(strike - st, 0.0),
            "asian_arithmetic_call": disc * np.maximum(s.mean(axis=1) - strike, 0.0),
            "asian_geometric_call": disc * np.maximum(np.exp(logs.mean(axis=1)) - strike, 0.0),
        }
        alive = np.ones(len(st), bool) if barrier is None else (s < barrier).all(axis=1)
        out["barrier_up_out_call"] = np.where(alive, out["european_call"], 0.0)
        return out

    plus = one(1.0)
    if not antithetic:
        return plus
    minus = one(-1.0)
    return {k: 0.5 * (plus[k] + minus[k]) for k in plus}


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """Sample mean and its standard error."""
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size))
