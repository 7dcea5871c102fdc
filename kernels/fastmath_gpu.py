"""CUDA device twins of :mod:`tessera.kernels.fastmath`: the same polynomials, constants and
operation order, so the GPU kernels compute what the CPU kernels compute.

Differences from the CPU functions, all exact rewrites (same result bits):

* the CPU reads the integer part of ``t = x * c + 1.5 * 2**52`` from the bits of ``t``; here it
  is ``int64(t - 1.5 * 2**52)``, the same integer;
* the CPU builds ``2**n`` from bits; here ``math.ldexp(1.0, n)`` (exact for these ``n``);
* the CPU's ``log`` splits ``x`` into exponent and mantissa with bit operations; here
  ``math.frexp`` and one doubling, giving the same mantissa in [sqrt(2)/2, sqrt(2)) exactly.

``fma`` is ``cuda.fma`` (``llvm.fma.f64``, one rounding, like the CPU's). Numba's CUDA simulator
implements ``cuda.fma`` as ``a * b + c`` (two roundings), which a real device never does, so
under ``NUMBA_ENABLE_CUDASIM=1`` ``fma`` is the CPU's exactly rounded fma instead: simulated
kernels then compute the real device's arithmetic, and tests can compare bit for bit.

Import this module only where CUDA code is wanted: it imports ``numba.cuda``, and
``NUMBA_ENABLE_CUDASIM`` must be set before that import.
"""

from __future__ import annotations

import math

import numpy as np
from numba import config, cuda, njit

from tessera.kernels import fastmath as cpu
from tessera.kernels.config import CUDA_DEVICE, CUDA_KERNEL, NJIT

_SQRT_HALF = float(np.int64(cpu._SQRT_HALF_BITS).view(np.float64))  # fdlibm: nearest sqrt(2)/2


@njit(**NJIT)
def _exact_fma(a, b, c):
    return cpu.fma(a, b, c)


if config.ENABLE_CUDASIM:
    fma = _exact_fma

    def _pow2(n):
        return math.ldexp(1.0, int(n))  # Python's ldexp wants an int, not a NumPy integer

else:

    @cuda.jit(**CUDA_DEVICE)
    def fma(a, b, c):
        return cuda.fma(a, b, c)

    @cuda.jit(**CUDA_DEVICE)
    def _pow2(n):
        return math.ldexp(1.0, np.int32(n))


@cuda.jit(**CUDA_DEVICE)
def exp(x):
    """e**x for float64 ``x``: :func:`tessera.kernels.fastmath.exp` on the device."""
    x = min(max(x, cpu._EXP_MIN), cpu._EXP_MAX)
    t = x * cpu._INV_LN2 + cpu._SHIFT
    nf = t - cpu._SHIFT
    n = np.int64(nf)
    r = (x - nf * cpu._LN2_HI) - nf * cpu._LN2_LO
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    w0 = fma(fma(r, cpu._E5, cpu._E4), r2, fma(r, cpu._E3, cpu._E2))
    w1 = fma(fma(r, cpu._E9, cpu._E8), r2, fma(r, cpu._E7, cpu._E6))
    w2 = fma(fma(r, cpu._E13, cpu._E12), r2, fma(r, cpu._E11, cpu._E10))
    q = fma(w2, r8, fma(w1, r4, w0))
    p = fma(r2, q, r) + 1.0
    n1 = n >> 1
    n2 = n - n1
    s1 = _pow2(n1)
    s2 = _pow2(n2)
    return p * s1 * s2


@cuda.jit(**CUDA_DEVICE)
def log(x):
    """Natural logarithm of a positive, normal float64: :func:`tessera.kernels.fastmath.log`."""
    m, e = math.frexp(x)  # x = m * 2**e, m in [1/2, 1)
    k = np.int64(e)
    if m < _SQRT_HALF:
        m = m + m
        k -= 1
    f = m - 1.0  # exact: m in [sqrt(2)/2, sqrt(2))
    dk = float(k)
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (cpu._LG2 + w * (cpu._LG4 + w * cpu._LG6))
    t2 = z * (cpu._LG1 + w * (cpu._LG3 + w * (cpu._LG5 + w * cpu._LG7)))
    r = t2 + t1
    return dk * cpu._LN2_HI - ((hfsq - (s * (hfsq + r) + dk * cpu._LN2_LO)) - f)


@cuda.jit(**CUDA_DEVICE)
def sin_kernel(x):
    """sin(x) for |x| <= pi/4: :func:`tessera.kernels.fastmath.sin_kernel`."""
    z = x * x
    v = z * x
    r = cpu._S2 + z * (cpu._S3 + z * (cpu._S4 + z * (cpu._S5 + z * cpu._S6)))
    return x + v * (cpu._S1 + z * r)


@cuda.jit(**CUDA_DEVICE)
def cos_kernel(x):
    """cos(x) for |x| <= pi/4: :func:`tessera.kernels.fastmath.cos_kernel`."""
    z = x * x
    w = z * z
    r = z * (cpu._C1 + z * (cpu._C2 + z * cpu._C3)) + w * w * (
        cpu._C4 + z * (cpu._C5 + z * cpu._C6)
    )
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + z * r)


@cuda.jit(**CUDA_DEVICE)
def sincos_2pi(u):
    """``(sin(2*pi*u), cos(2*pi*u))`` for u in [0, 1]:
    :func:`tessera.kernels.fastmath.sincos_2pi`."""
    t = 4.0 * u + cpu._SHIFT
    qf = t - cpu._SHIFT
    q = np.int64(qf)
    r = u - 0.25 * qf
    theta = fma(r, cpu._TWO_PI_HI, r * cpu._TWO_PI_LO)
    s = sin_kernel(theta)
    c = cos_kernel(theta)
    odd = (q & 1) != 0
    a = c if odd else s
    b = s if odd else c
    sin_v = -a if (q & 2) != 0 else a
    cos_v = -b if ((q + 1) & 2) != 0 else b
    return sin_v, cos_v


# --- array wrappers (tests) ---------------------------------------------------------------------


@cuda.jit(**CUDA_KERNEL)
def _elementwise(fn_code, x, out0, out1):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, x.shape[0], stride):
        v = x[i]
        if fn_code == 0:
            out0[i] = exp(v)
        elif fn_code == 1:
            out0[i] = log(v)
        else:
            out0[i], out1[i] = sincos_2pi(v)


def apply(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run ``exp``, ``log`` or ``sincos_2pi`` over a 1-D float64 array on the device (tests):
    ``(result, second result or zeros)``. Raises ``ValueError`` for another name."""
    codes = {"exp": 0, "log": 1, "sincos_2pi": 2}
    if name not in codes:
        raise ValueError(f"unknown function {name!r}; expected one of {sorted(codes)}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    out0 = np.zeros_like(x)
    out1 = np.zeros_like(x)
    d0, d1 = cuda.to_device(out0), cuda.to_device(out1)
    _elementwise[max(1, min(64, -(-x.size // 128))), 128](codes[name], cuda.to_device(x), d0, d1)
    return d0.copy_to_host(), d1.copy_to_host()
