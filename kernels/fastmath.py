"""Elementary functions in pure float64 arithmetic, for Numba loops that must vectorise.

libm calls (``math.exp`` inside ``@njit``) are opaque to LLVM's loop vectoriser, and their last
bit depends on the libm build. The functions here are plain IEEE arithmetic (add, multiply,
divide, ``llvm.fma``, bit casts), so a loop over lanes that calls them compiles to AVX-512 (or
AVX2) code, and the result bits are the same on every x86-64 machine.

Algorithms: fdlibm's (Sun Microsystems, 1993) reduction and minimax polynomials for ``log``,
``sin`` and ``cos``; for ``exp`` a Cody-Waite reduction to |r| <= ln(2)/2 and the degree-13
Taylor polynomial (truncation error < 6e-18 relative) evaluated by Estrin's scheme. Measured
errors against 80-bit ``numpy.longdouble`` references, 3 million points per function over the
stated domains (``tests/test_fastmath.py`` re-measures them with bounds):

=================  ===========================  =====================================
function           domain                       max error (measured)
=================  ===========================  =====================================
exp(x)             [-708, 709]                  relative 1.56e-16 (1.00 ulp)
log(x)             normal x > 0                 relative 1.48e-16 (0.83 ulp)
sin_kernel(x)      [-pi/4, pi/4]                relative 1.26e-16 (0.70 ulp)
cos_kernel(x)      [-pi/4, pi/4]                relative 1.16e-16 (0.74 ulp)
sincos_2pi(u)      [0, 1]                       absolute 1.17e-16 (sin and cos)
=================  ===========================  =====================================

None of these handle NaN inputs; ``exp`` saturates (0 below -745.2, inf above 709.8).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from tessera.kernels.config import NJIT_INLINE

# --- LLVM intrinsics ---------------------------------------------------------------------------


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` with a single rounding (``llvm.fma.f64``); float64 arguments only."""
    if not all(isinstance(t, types.Float) and t.bitwidth == 64 for t in (a, b, c)):
        return None
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        dbl = ir.DoubleType()
        fnty = ir.FunctionType(dbl, [dbl, dbl, dbl])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.f64")
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def float_bits(typingctx, x):
    """The IEEE 754 bits of a float64, as int64 (a bit cast, no conversion)."""
    if not (isinstance(x, types.Float) and x.bitwidth == 64):
        return None
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def bits_float(typingctx, n):
    """The float64 whose IEEE 754 bits are the int64 ``n`` (a bit cast, no conversion)."""
    if not (isinstance(n, types.Integer) and n.bitwidth == 64):
        return None
    sig = types.float64(n)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


# --- exp ---------------------------------------------------------------------------------------

_INV_LN2 = 1.4426950408889634  # 1/ln 2
_LN2_HI = 6.93147180369123816490e-01  # 0x3fe62e42fee00000: n * _LN2_HI is exact for |n| < 2**20
_LN2_LO = 1.90821492927058770002e-10  # 0x3dea39ef35793c76
# Adding 1.5 * 2**52 rounds a double of magnitude < 2**51 to the nearest integer, which then
# sits in the low mantissa bits: the classic branch-free rint().
_SHIFT = 6755399441055744.0
_SHIFT_BITS = np.int64(0x4338000000000000)
_EXP_MIN = -745.2  # exp(x) rounds to 0 below this
_EXP_MAX = 709.8  # exp(x) overflows above this
# 1/k! for k = 13 .. 2; exp(r) = 1 + r + r^2 * (1/2 + r/6 + ...).
_E13 = 1.0 / 6227020800.0
_E12 = 1.0 / 479001600.0
_E11 = 1.0 / 39916800.0
_E10 = 1.0 / 3628800.0
_E9 = 1.0 / 362880.0
_E8 = 1.0 / 40320.0
_E7 = 1.0 / 5040.0
_E6 = 1.0 / 720.0
_E5 = 1.0 / 120.0
_E4 = 1.0 / 24.0
_E3 = 1.0 / 6.0
_E2 = 0.5
_EXP_BIAS = np.int64(1023)
_I52 = np.int64(52)
_I1 = np.int64(1)


@njit(**NJIT_INLINE)
def exp(x):
    """e**x for float64 ``x``; relative error about 1 ulp on [-708, 709], 0 below -745.2,
    inf above 709.8 (subnormal results are rounded twice, so up to 1 ulp of the subnormal)."""
    x = min(max(x, _EXP_MIN), _EXP_MAX)
    t = x * _INV_LN2 + _SHIFT
    nf = t - _SHIFT  # nearest integer to x / ln 2
    n = float_bits(t) - _SHIFT_BITS
    r = (x - nf * _LN2_HI) - nf * _LN2_LO  # |r| <= ln(2)/2 (+ a rounding)
    # exp(r) = 1 + (r + r^2 q(r)), q of degree 11 by Estrin's scheme (a short dependency
    # chain: the lane loops are latency bound), the 1 added last for accuracy.
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    w0 = fma(fma(r, _E5, _E4), r2, fma(r, _E3, _E2))
    w1 = fma(fma(r, _E9, _E8), r2, fma(r, _E7, _E6))
    w2 = fma(fma(r, _E13, _E12), r2, fma(r, _E11, _E10))
    q = fma(w2, r8, fma(w1, r4, w0))
    p = fma(r2, q, r) + 1.0
    # 2**n as two factors so that n in [-1075, 1024] needs no branch (subnormals, overflow).
    n1 = n >> _I1
    n2 = n - n1
    s1 = bits_float((n1 + _EXP_BIAS) << _I52)
    s2 = bits_float((n2 + _EXP_BIAS) << _I52)
    return p * s1 * s2


# --- log ---------------------------------------------------------------------------------------

_LG1 = 6.666666666666735130e-01  # 0x3fe5555555555593
_LG2 = 3.999999999940941908e-01  # 0x3fd999999997fa04
_LG3 = 2.857142874366239149e-01  # 0x3fd2492494229359
_LG4 = 2.222219843214978396e-01  # 0x3fcc71c51d8e78af
_LG5 = 1.818357216161805012e-01  # 0x3fc7466496cb03de
_LG6 = 1.531383769920937332e-01  # 0x3fc39a09d078c69f
_LG7 = 1.479819860511658591e-01  # 0x3fc2f112df3e5244
_SQRT_HALF_BITS = np.int64(0x3FE6A09E667F3BCD)  # bits of sqrt(2)/2


@njit(**NJIT_INLINE)
def log(x):
    """Natural logarithm of a positive, normal (not subnormal) float64; < 1 ulp (fdlibm)."""
    bits = float_bits(x)
    # x = m * 2**k with m in [sqrt(2)/2, sqrt(2)): the exponent comes from an integer shift.
    k = (bits - _SQRT_HALF_BITS) >> _I52
    f = bits_float(bits - (k << _I52)) - 1.0
    dk = float(k)
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    return dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)


# --- sin and cos -------------------------------------------------------------------------------

_S1 = -1.66666666666666324348e-01  # 0xbfc5555555555549
_S2 = 8.33333333332248946124e-03  # 0x3f8111111110f8a6
_S3 = -1.98412698298579493134e-04  # 0xbf2a01a019c161d5
_S4 = 2.75573137070700676789e-06  # 0x3ec71de357b1fe7d
_S5 = -2.50507602534068634195e-08  # 0xbe5ae5e68a2b9ceb
_S6 = 1.58969099521155010221e-10  # 0x3de5d93a5acfd57c
_C1 = 4.16666666666666019037e-02  # 0x3fa555555555554c
_C2 = -1.38888888888741095749e-03  # 0xbf56c16c16c15177
_C3 = 2.48015872894767294178e-05  # 0x3efa01a019cb1590
_C4 = -2.75573143513906633035e-07  # 0xbe927e4f809c52ad
_C5 = 2.08757232129817482790e-09  # 0x3e21ee9ebdb4b1c4
_C6 = -1.13596475577881948265e-11  # 0xbda8fae9be8838d4


@njit(**NJIT_INLINE)
def sin_kernel(x):
    """sin(x) for |x| <= pi/4 (fdlibm ``__kernel_sin``); no argument reduction."""
    z = x * x
    v = z * x
    r = _S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))
    return x + v * (_S1 + z * r)


@njit(**NJIT_INLINE)
def cos_kernel(x):
    """cos(x) for |x| <= pi/4 (FreeBSD ``__kernel_cos``); no argument reduction."""
    z = x * x
    w = z * z
    r = z * (_C1 + z * (_C2 + z * _C3)) + w * w * (_C4 + z * (_C5 + z * _C6))
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + z * r)


_TWO_PI_HI = 6.283185307179586  # 2*pi rounded to float64
_TWO_PI_LO = 2.4492935982947064e-16  # 2*pi - _TWO_PI_HI
_I2 = np.int64(2)


@njit(**NJIT_INLINE)
def sincos_2pi(u):
    """``(sin(2*pi*u), cos(2*pi*u))`` for u in [0, 1] (any |u| < 2**50 works), branch free.

    The reduction is exact: q = rint(4u), r = u - q/4 in [-1/8, 1/8]; then 2*pi*r is formed with
    a two-part 2*pi and one fma, and the quadrant q mod 4 picks and signs the two kernels.
    Absolute error <= 1.2e-16 on [0, 1].
    """
    t = 4.0 * u + _SHIFT
    qf = t - _SHIFT
    q = float_bits(t) - _SHIFT_BITS
    r = u - 0.25 * qf
    theta = fma(r, _TWO_PI_HI, r * _TWO_PI_LO)
    s = sin_kernel(theta)
    c = cos_kernel(theta)
    odd = (q & _I1) != 0
    a = c if odd else s
    b = s if odd else c
    sin_v = -a if (q & _I2) != 0 else a
    cos_v = -b if ((q + _I1) & _I2) != 0 else b
    return sin_v, cos_v


# --- vectorised wrappers (tests, benchmarks, and callers outside Numba) -----------------------


@njit(**NJIT_INLINE)
def exp_array(x):
    """Elementwise :func:`exp` of a float64 array."""
    out = np.empty_like(x)
    for i in range(x.size):
        out.flat[i] = exp(x.flat[i])
    return out


@njit(**NJIT_INLINE)
def log_array(x):
    """Elementwise :func:`log` of a float64 array."""
    out = np.empty_like(x)
    for i in range(x.size):
        out.flat[i] = log(x.flat[i])
    return out


@njit(**NJIT_INLINE)
def sincos_2pi_array(u):
    """Elementwise :func:`sincos_2pi` of a float64 array: ``(sin, cos)`` arrays."""
    s = np.empty_like(u)
    c = np.empty_like(u)
    for i in range(u.size):
        s.flat[i], c.flat[i] = sincos_2pi(u.flat[i])
    return s, c


@njit(**NJIT_INLINE)
def sin_kernel_array(x):
    """Elementwise :func:`sin_kernel` (|x| <= pi/4)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out.flat[i] = sin_kernel(x.flat[i])
    return out


@njit(**NJIT_INLINE)
def cos_kernel_array(x):
    """Elementwise :func:`cos_kernel` (|x| <= pi/4)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out.flat[i] = cos_kernel(x.flat[i])
    return out
