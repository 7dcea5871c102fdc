"""Accuracy of the polynomial exp/log/sin/cos against 80-bit long double references."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from tessera.kernels import fastmath as fm

L = np.longdouble
EPS = 2.0**-52  # one ulp of 1.0

if np.finfo(L).nmant < 60:  # pragma: no cover - e.g. aarch64 without 80-bit long double
    pytestmark = pytest.mark.skip(reason="needs 80-bit long double for the references")


def _rel(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs((got.astype(L) - ref) / ref)))


def test_exp_relative_error():
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [
            rng.uniform(-708, 709, 300_000),
            rng.uniform(-1, 1, 300_000),
            np.linspace(-20, 20, 100_001),
        ]
    )
    err = _rel(fm.exp_array(x), np.exp(x.astype(L)))
    assert err <= 1.0 * EPS, err  # measured 1.5e-16


def test_exp_saturates_and_handles_subnormals():
    got = fm.exp_array(np.array([-1000.0, -745.3, -740.0, 0.0, 709.7, 709.9, 1000.0]))
    assert got[0] == 0.0 and got[1] == 0.0
    assert got[2] == np.exp(-740.0)  # subnormal
    assert got[3] == 1.0
    assert abs(got[4] / np.exp(709.7) - 1) < 4e-16
    assert np.isinf(got[5]) and np.isinf(got[6])


def test_log_relative_error():
    rng = np.random.default_rng(2)
    # the Box-Muller domain (u = (x + 0.5) 2**-32), then all of the normal range
    u = (rng.integers(0, 2**32, 300_000).astype(np.float64) + 0.5) * 2.0**-32
    x = np.concatenate([u, np.exp(rng.uniform(-700, 700, 300_000)), np.linspace(0.5, 2.0, 100_001)])
    x = x[x != 1.0]
    err = _rel(fm.log_array(x), np.log(x.astype(L)))
    assert err <= 0.75 * EPS, err  # measured 1.5e-16
    assert fm.log(1.0) == 0.0


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_trig_kernels_relative_error(name):
    x = np.linspace(-np.pi / 4, np.pi / 4, 200_001)
    x = x[x != 0.0]
    f = fm.sin_kernel_array if name == "sin" else fm.cos_kernel_array
    ref = np.sin(x.astype(L)) if name == "sin" else np.cos(x.astype(L))
    err = _rel(f(x), ref)
    assert err <= 0.6 * EPS, err  # measured 1.3e-16 (sin), 1.1e-16 (cos)


def test_sincos_2pi_absolute_error():
    rng = np.random.default_rng(3)
    u = np.concatenate(
        [
            (rng.integers(0, 2**32, 300_000).astype(np.float64) + 0.5) * 2.0**-32,
            np.linspace(0.0, 1.0, 100_001),
        ]
    )
    s, c = fm.sincos_2pi_array(u)
    two_pi = 8 * np.arctan(L(1))
    ref_s, ref_c = np.sin(two_pi * u.astype(L)), np.cos(two_pi * u.astype(L))
    assert float(np.max(np.abs(s - ref_s))) <= 0.6 * EPS  # measured 1.2e-16
    assert float(np.max(np.abs(c - ref_c))) <= 0.6 * EPS
    assert np.max(s * s + c * c - 1) < 4 * EPS


@njit
def _fma(a, b, c):
    return fm.fma(a, b, c)


def test_fma_is_fused():
    # (1 + 2**-30)**2 - (1 + 2**-29) = 2**-60 exactly, lost without a single rounding
    a = 1.0 + 2.0**-30
    assert _fma(a, a, -(1.0 + 2.0**-29)) == 2.0**-60
