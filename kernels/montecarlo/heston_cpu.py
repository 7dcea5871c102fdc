"""Heston path steps on the CPU: Andersen's quadratic-exponential scheme and full-truncation
Euler, one step at a time (a placeholder with the interface ``montecarlo.book`` uses; the
``montecarlo.heston`` kernel's module replaces it).

Step ``j`` of sample ``s`` on stream ``stream`` draws one Philox4x32-10 block at counter
``(j, s mod 2**32, s div 2**32, stream)``: words 0 and 1 give the normals ``(z_v, z_x)`` by
Box-Muller, word 2 the uniform ``u`` of QE's exponential branch. The antithetic twin
(``sign = -1``) uses ``(-z_v, -z_x, 1 - u)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from tessera.kernels.config import NJIT_INLINE
from tessera.kernels.fastmath import exp, log
from tessera.kernels.rng import box_muller, philox_block, uniform

SCHEME_QE = 0
SCHEME_EULER = 1
PSI_C = 1.5  # QE's switch between the quadratic and the exponential branch
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
# step_constants' vector, in this order
CONSTANTS = (
    "e",
    "c1",
    "c2",
    "k0",
    "k1",
    "k2",
    "k3",
    "k4",
    "dt",
    "kappa_dt",
    "theta",
    "xi",
    "rho",
    "rho_bar",
    "rate_dt",
)


def step_constants(
    dt: float, kappa: float, theta: float, xi: float, rho: float, rate: float
) -> np.ndarray:
    """The constants of one step of length ``dt`` (years), named by ``CONSTANTS``."""
    e = float(exp(-kappa * dt))
    c1 = xi * xi * e * (1.0 - e) / kappa
    c2 = theta * xi * xi * (1.0 - e) ** 2 / (2.0 * kappa)
    g1 = g2 = 0.5
    k0 = -rho * kappa * theta * dt / xi
    k1 = g1 * dt * (kappa * rho / xi - 0.5) - rho / xi
    k2 = g2 * dt * (kappa * rho / xi - 0.5) + rho / xi
    k3 = g1 * dt * (1.0 - rho * rho)
    k4 = g2 * dt * (1.0 - rho * rho)
    values = (
        e,
        c1,
        c2,
        k0,
        k1,
        k2,
        k3,
        k4,
        dt,
        kappa * dt,
        theta,
        xi,
        rho,
        math.sqrt(1.0 - rho * rho),
        rate * dt,
    )
    return np.array(values, dtype=np.float64)


@njit(**NJIT_INLINE)
def heston_step(x, v, step, sample, stream, k0, k1, sign, c, scheme):
    """Advance log price ``x`` and variance ``v`` by one step with constants ``c``."""
    s = np.uint64(sample)
    w0, w1, w2, _w3 = philox_block(
        np.uint64(step), s & _MASK32, s >> _S32, np.uint64(stream), k0, k1
    )
    zv, zx = box_muller(w0, w1)
    u = uniform(w2)
    if sign < 0.0:
        zv = -zv
        zx = -zx
        u = 1.0 - u
    if scheme == SCHEME_EULER:
        vp = max(v, 0.0)
        sd = np.sqrt(vp * c[8])
        x_new = x + c[14] - 0.5 * vp * c[8] + sd * (c[12] * zv + c[13] * zx)
        v_new = v + c[9] * (c[10] - vp) + c[11] * sd * zv
        return x_new, v_new
    m = c[10] + (v - c[10]) * c[0]
    s2 = v * c[1] + c[2]
    psi = s2 / (m * m)
    if psi <= PSI_C:
        inv = 2.0 / psi
        b2 = inv - 1.0 + np.sqrt(inv) * np.sqrt(inv - 1.0)
        a = m / (1.0 + b2)
        b = np.sqrt(b2)
        v_new = a * (b + zv) * (b + zv)
    else:
        p = (psi - 1.0) / (psi + 1.0)
        beta = (1.0 - p) / m
        v_new = 0.0 if u <= p else log((1.0 - p) / (1.0 - u)) / beta
    x_new = x + c[14] + c[3] + c[4] * v + c[5] * v_new + np.sqrt(c[6] * v + c[7] * v_new) * zx
    return x_new, v_new
