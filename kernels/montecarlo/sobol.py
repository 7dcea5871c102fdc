"""Sobol points for randomized quasi-Monte Carlo: direction numbers, scrambling, skip-ahead,
the inverse normal and the Brownian bridge.

Direction numbers are Joe and Kuo's ``new-joe-kuo-6.21201`` (21,201 dimensions; the primitive
polynomials and initial numbers ``m`` stored in ``data/new-joe-kuo-6.21201.npz``, the same table
scipy ships). Dimension 0 is van der Corput's. ``directions(d)[j, k]`` is the 32-bit direction
number XORed into coordinate ``j`` when bit ``k`` (least significant = 0) of the point's Gray
code flips, so point ``i`` is ``XOR of directions[:, k] over the bits k of i ^ (i >> 1)``: the
order scipy's ``Sobol`` generates (its unscrambled points are these, bit for bit).

Randomization: ``scrambled(d, seed, replicate)`` applies Matoušek's random linear scramble to
every direction number (a random lower-triangular binary matrix with unit diagonal per
dimension, acting on the number's bits from the most significant down) and returns a random
digital shift. The scrambled set is still a (t, m, s)-net in base 2, each point is uniform on
the unit cube, and Owen (2003, "Variance with alternative scramblings of digital nets") showed
this scramble has the same variance as Owen's nested uniform scrambling. Because the scramble
is linear it commutes with the XOR, so skip-ahead (``point``) and the Gray-code step
(``advance``) work on the scrambled numbers unchanged. Its bits come from Philox4x32-10 keyed
by the job's seed, counter ``(word block, dimension, replicate, SCRAMBLE_DOMAIN)``: replicates
are independent, and a dimension's scramble does not depend on how many dimensions a job has.
"""

from __future__ import annotations

import collections
import functools
import math
from pathlib import Path

import numpy as np
from numba import njit

from tessera.kernels.config import NJIT, NJIT_INLINE
from tessera.kernels.fastmath import log
from tessera.kernels.rng import philox4x32_blocks, seed_key

MAX_DIMENSION = 21201
BITS = 32
SCRAMBLE_DOMAIN = 0x50B01  # the fourth Philox counter word of every scramble draw
_TABLE = Path(__file__).parent / "data" / "new-joe-kuo-6.21201.npz"
_WORDS = BITS + 1  # per dimension: one random word per matrix row, then the shift
_BLOCKS = -(-_WORDS // 4)  # Philox blocks per dimension


def _check_dimension(d: int) -> None:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 1 <= d <= MAX_DIMENSION:
        raise ValueError(f"a Sobol dimension must be in 1..{MAX_DIMENSION}, got {d!r}")


@functools.lru_cache(maxsize=8)
def _table(d: int) -> np.ndarray:
    with np.load(_TABLE) as table:
        poly = table["poly"][:d].astype(np.int64)
        m_init = table["m"][:d].astype(np.uint64)
    m = np.zeros((d, BITS), dtype=np.uint64)
    m[0] = 1  # van der Corput: every m_k = 1
    for j in range(1, d):
        s = int(poly[j]).bit_length() - 1  # the polynomial's degree
        a = int(poly[j])
        m[j, :s] = m_init[j, :s]
        for k in range(s, BITS):
            # Joe and Kuo (2008), eq. (2): m_k = 2 a_1 m_(k-1) ^ ... ^ 2^s m_(k-s) ^ m_(k-s)
            value = int(m[j, k - s]) ^ (int(m[j, k - s]) << s)
            for i in range(1, s):
                if (a >> (s - i)) & 1:
                    value ^= int(m[j, k - i]) << i
            m[j, k] = value
    shifts = np.array([BITS - 1 - k for k in range(BITS)], dtype=np.uint64)
    v = (m << shifts[None, :]) & np.uint64(0xFFFFFFFF)
    out = np.ascontiguousarray(v.astype(np.uint32))
    out.setflags(write=False)
    return out


def directions(d: int) -> np.ndarray:
    """The direction numbers of the first ``d`` dimensions: uint32 ``(d, 32)``, read-only.
    Raises ``ValueError`` for ``d`` outside 1..MAX_DIMENSION."""
    _check_dimension(d)
    return _table(int(d))


@njit(**NJIT)
def _linear_scramble(v, rows):
    out = np.empty_like(v)
    for j in range(v.shape[0]):
        for k in range(v.shape[1]):
            x = v[j, k]
            y = np.uint32(0)
            for i in range(32):
                parity = np.uint32(0)
                bits = rows[j, i] & x
                while bits:  # the parity of the row's and the number's common bits
                    parity ^= np.uint32(1)
                    bits &= bits - np.uint32(1)
                y |= parity << np.uint32(31 - i)
            out[j, k] = y
    return out


def scrambled(d: int, seed: int, replicate: int) -> tuple[np.ndarray, np.ndarray]:
    """Randomized direction numbers (uint32 ``(d, 32)``) and digital shift (uint32 ``(d,)``)
    of one replicate. Raises ``ValueError`` for a dimension out of range, a seed outside
    [0, 2**64) or a replicate outside [0, 2**32)."""
    _check_dimension(d)
    k0, k1 = seed_key(seed)
    if isinstance(replicate, bool) or not isinstance(replicate, (int, np.integer)):
        raise ValueError(f"replicate must be an integer, got {replicate!r}")
    if not 0 <= replicate < 2**32:
        raise ValueError(f"replicate must be in [0, 2**32), got {replicate}")
    counters = np.zeros((d, _BLOCKS, 4), dtype=np.uint32)
    counters[:, :, 0] = np.arange(_BLOCKS, dtype=np.uint32)[None, :]
    counters[:, :, 1] = np.arange(d, dtype=np.uint32)[:, None]
    counters[:, :, 2] = replicate
    counters[:, :, 3] = SCRAMBLE_DOMAIN
    key = np.array([k0, k1], dtype=np.uint32)
    words = philox4x32_blocks(counters.reshape(-1, 4), key).reshape(d, _BLOCKS * 4)[:, :_WORDS]
    # Row i of a matrix makes output bit 31 - i: its own bit (the unit diagonal) plus random
    # bits of the more significant positions only (lower triangular, most significant first).
    high = np.array([(0xFFFFFFFF << (32 - i)) & 0xFFFFFFFF for i in range(BITS)], np.uint64)
    diagonal = np.array([1 << (31 - i) for i in range(BITS)], dtype=np.uint64)
    rows = ((words[:, :BITS].astype(np.uint64) & high) | diagonal).astype(np.uint32)
    v = _linear_scramble(directions(d), np.ascontiguousarray(rows))
    shift = np.ascontiguousarray(words[:, BITS])
    return v, shift


@njit(**NJIT_INLINE)
def point(v, shift, index, out):
    """``out[j]`` = coordinate ``j`` of point ``index`` (Gray-code order) as a 32-bit word:
    the shift XOR the direction numbers of the set bits of ``index ^ (index >> 1)``."""
    g = np.uint64(index) ^ (np.uint64(index) >> np.uint64(1))
    for j in range(out.shape[0]):
        out[j] = shift[j]
    k = 0
    while g:
        if g & np.uint64(1):
            for j in range(out.shape[0]):
                out[j] ^= v[j, k]
        g >>= np.uint64(1)
        k += 1


@njit(**NJIT_INLINE)
def advance(v, index, x):
    """From point ``index`` to point ``index + 1`` in place: one Gray-code bit flips, the
    lowest set bit of ``index + 1``."""
    n = np.uint64(index) + np.uint64(1)
    k = 0
    while not n & np.uint64(1):
        n >>= np.uint64(1)
        k += 1
    for j in range(x.shape[0]):
        x[j] ^= v[j, k]


@njit(**NJIT_INLINE)
def to_uniform(x):
    """A 32-bit coordinate as a float in (0, 1): (x + 0.5) * 2**-32, never 0 or 1."""
    return (np.float64(x) + 0.5) * 2.3283064365386963e-10


# AS241's three rational approximations, each as (numerator, denominator): the centre in
# r = 0.180625 - q^2, and the tails in t = sqrt(-log(min(p, 1 - p))) - 1.6 (t <= 5) or - 5.


@njit(**NJIT_INLINE)
def _centre(r):
    num = (
        (
            (
                (
                    (
                        (2509.0809287301226727 * r + 33430.575583588128105) * r
                        + 67265.770927008700853
                    )
                    * r
                    + 45921.953931549871457
                )
                * r
                + 13731.693765509461125
            )
            * r
            + 1971.5909503065514427
        )
        * r
        + 133.14166789178437745
    ) * r + 3.387132872796366608
    den = (
        (
            (
                (
                    ((5226.495278852854561 * r + 28729.085735721942674) * r + 39307.89580009271061)
                    * r
                    + 21213.794301586595867
                )
                * r
                + 5394.1960214247511077
            )
            * r
            + 687.1870074920579083
        )
        * r
        + 42.313330701600911252
    ) * r + 1.0
    return num, den


@njit(**NJIT_INLINE)
def _near_tail(r):
    num = (
        (
            (
                (
                    (
                        (7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r
                        + 0.24178072517745061177
                    )
                    * r
                    + 1.27045825245236838258
                )
                * r
                + 3.64784832476320460504
            )
            * r
            + 5.7694972214606914055
        )
        * r
        + 4.6303378461565452959
    ) * r + 1.42343711074968357734
    den = (
        (
            (
                (
                    (
                        (1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r
                        + 0.0151986665636164571966
                    )
                    * r
                    + 0.14810397642748007459
                )
                * r
                + 0.68976733498510000455
            )
            * r
            + 1.6763848301838038494
        )
        * r
        + 2.05319162663775882187
    ) * r + 1.0
    return num, den


@njit(**NJIT_INLINE)
def _far_tail(r):
    num = (
        (
            (
                (
                    (
                        (2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r
                        + 0.0012426609473880784386
                    )
                    * r
                    + 0.026532189526576123093
                )
                * r
                + 0.29656057182850489123
            )
            * r
            + 1.7848265399172913358
        )
        * r
        + 5.4637849111641143699
    ) * r + 6.6579046435011037772
    den = (
        (
            (
                (
                    (
                        (2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r
                        + 1.8463183175100546818e-5
                    )
                    * r
                    + 7.868691311456132591e-4
                )
                * r
                + 0.0148753612908506148525
            )
            * r
            + 0.13692988092273580531
        )
        * r
        + 0.59983220655588793769
    ) * r + 1.0
    return num, den


@njit(**NJIT_INLINE)
def normal_icdf(p):
    """The standard normal quantile of ``p`` in (0, 1): Wichura's AS241 (PPND16), relative
    error about 1e-16, with the library's own logarithm (no libm: the same bits everywhere)."""
    q = p - 0.5
    if abs(q) <= 0.425:
        num, den = _centre(0.180625 - q * q)
        return q * num / den
    return _tail(p, q)


@njit(**NJIT_INLINE)
def _tail(p, q):
    """AS241's tail branch (|q| > 0.425): the quantile of p = q + 1/2."""
    r = math.sqrt(-log(p if q < 0.0 else 1.0 - p))
    if r <= 5.0:
        num, den = _near_tail(r - 1.6)
    else:
        num, den = _far_tail(r - 5.0)
    value = num / den
    return -value if q < 0.0 else value


@njit(**NJIT_INLINE)
def normals(words, z, tails, scratch):
    """``z[k] = normal_icdf(to_uniform(words[k]))`` for every k, with the same bits, by passes
    that LLVM vectorises: the centre's rational function for every coordinate; the indices of
    the coordinates in the tails (|p - 1/2| > 0.425, 15% of them) into the int64 scratch
    ``tails``; their p gathered into the float64 ``scratch`` (both as long as ``z``); the tail
    formula on those without branches (both tail rationals computed, one selected); and the
    scatter back. About 4x faster than the quantile called per coordinate, whose tails are
    a long chain of dependent operations (log, sqrt, division) one coordinate at a time."""
    n = z.shape[0]
    for k in range(n):
        q = to_uniform(words[k]) - 0.5
        num, den = _centre(0.180625 - q * q)
        z[k] = q * num / den
    m = 0
    for k in range(n):
        if abs(to_uniform(words[k]) - 0.5) > 0.425:
            tails[m] = k
            m += 1
    for i in range(m):
        scratch[i] = to_uniform(words[tails[i]])
    for i in range(m):
        p = scratch[i]
        q = p - 0.5
        r = math.sqrt(-log(p if q < 0.0 else 1.0 - p))
        n_num, n_den = _near_tail(r - 1.6)
        f_num, f_den = _far_tail(r - 5.0)
        near = r <= 5.0
        value = (n_num if near else f_num) / (n_den if near else f_den)
        scratch[i] = -value if q < 0.0 else value
    for i in range(m):
        z[tails[i]] = scratch[i]


def bridge_plan(
    n: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A Brownian bridge over ``n`` equal steps, W at times 1..n (in steps) built coarse to
    fine: normal 0 makes W(n) = sqrt(n) z, then each normal fills the midpoint of the
    widest-first unfilled run between two known points (breadth first; any n). Returns, per
    normal in construction order: the index it fills, its left and right known indices (-1:
    W(0) = 0, or none), their weights and the conditional standard deviation. Raises
    ``ValueError`` for ``n < 1``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"a Brownian bridge needs n >= 1 steps, got {n!r}")
    n = int(n)
    order = np.empty(n, dtype=np.int64)
    left = np.full(n, -1, dtype=np.int64)
    right = np.full(n, -1, dtype=np.int64)
    w_left = np.zeros(n)
    w_right = np.zeros(n)
    sd = np.zeros(n)
    order[0], sd[0] = n - 1, math.sqrt(n)
    runs = collections.deque(
        [(-1, n - 1)]
    )  # known endpoints (exclusive) of an unfilled run of indices
    i = 1
    while runs:
        a, b = runs.popleft()
        if b - a < 2:
            continue
        mid = a + (b - a) // 2
        t_a, t_m, t_b = a + 1, mid + 1, b + 1  # times of W[a], W[mid], W[b]
        order[i], left[i], right[i] = mid, a, b
        w_left[i] = (t_b - t_m) / (t_b - t_a)
        w_right[i] = (t_m - t_a) / (t_b - t_a)
        sd[i] = math.sqrt((t_m - t_a) * (t_b - t_m) / (t_b - t_a))
        i += 1
        runs.extend([(a, mid), (mid, b)])
    return order, left, right, w_left, w_right, sd


@njit(**NJIT_INLINE)
def bridge(plan, z, dw):
    """Brownian increments from normals in construction order: ``dw[k] = W(k+1) - W(k)``,
    each of unit variance (multiply by sqrt(dt))."""
    order, left, right, w_left, w_right, sd = plan
    n = dw.shape[0]
    dw[order[0]] = sd[0] * z[0]
    for i in range(1, n):
        w = sd[i] * z[i] + w_right[i] * dw[right[i]]
        if left[i] >= 0:
            w += w_left[i] * dw[left[i]]
        dw[order[i]] = w
    for k in range(n - 1, 0, -1):
        dw[k] -= dw[k - 1]
