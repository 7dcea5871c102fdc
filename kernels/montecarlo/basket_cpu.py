"""Correlated GBM baskets on the CPU: Numba kernels, one row of sums per block.

The discipline of :mod:`tessera.kernels.montecarlo.cpu`: blocks of ``BLOCK_SAMPLES`` samples (a
sample is a path of all n assets, or an antithetic pair of such paths), ``LANES`` samples
simulated together with the lane loops innermost and branch-free, per-lane running sums over
the block's chunks, lanes added in lane order 0..63 at the end, ``prange`` over whole blocks.
A block's row is a pure function of (params, seed, block).

Random stream: the independent normal ``k = j * n + a`` of sample ``s`` (step j, asset a) is
normal ``k % 4`` of :func:`tessera.kernels.rng.normal_block` at step group ``k // 4``, i.e. of
the Philox block at counter ``(k // 4, s mod 2**32, s div 2**32, 0)`` (Box-Muller on words
0/1 and 2/3). With one asset this is exactly the stream of ``montecarlo.gbm``. Per step, the
correlated normals are ``e = L z`` (``L`` the lower-triangular Cholesky factor of the
correlation, summed from column 0 upwards) and the log prices move as::

    x_a += drift_a + vol_a * e_a      (drift_a = (rate - s_a**2 / 2) dt, vol_a = s_a sqrt(dt))

the antithetic path by ``drift_a + (-vol_a) * e_a``. At maturity, with ``S_a = exp(x_a)``,
``B = sum_a w_a S_a`` and ``G = exp(sum_a w_a x_a)`` (both summed from asset 0 upwards, the
first term a product, not 0 + product): basket_call ``D max(B - K, 0)``, basket_put
``D max(K - B, 0)``, geometric_basket_call ``D max(G - K, 0)``, exchange ``D max(S_0 - S_1,
0)`` (0 for one asset). With n = 1 and w = [1] every operation is the one ``cpu.py`` does
(``L z = 1.0 * z = z``, ``B = 1.0 * S``), so the European sums have the same bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tessera.kernels.config import NJIT, NJIT_INLINE, NJIT_PARALLEL
from tessera.kernels.fastmath import exp
from tessera.kernels.montecarlo.cpu import BLOCK_SAMPLES, CHUNKS, LANES, _normals

# Row layout: [count, (sum, sum of squares) for each product in PRODUCT_ORDER, cross] where
# cross is the sum of (basket call payoff) * (geometric basket call payoff).
PRODUCT_ORDER = ("basket_call", "basket_put", "geometric_basket_call", "exchange")
N_PRODUCTS = len(PRODUCT_ORDER)
COL_COUNT = 0
COL_CROSS = 1 + 2 * N_PRODUCTS
N_STATS = COL_CROSS + 1
_N_ACC = 2 * N_PRODUCTS + 1

__all__ = ["BLOCK_SAMPLES", "LANES", "N_STATS", "PRODUCT_ORDER", "simulate_blocks"]


def col_sum(product: str) -> int:
    """Column of the payoff sum of ``product`` in a row of sums."""
    return 1 + 2 * PRODUCT_ORDER.index(product)


def col_sumsq(product: str) -> int:
    """Column of the sum of squared payoffs of ``product`` in a row of sums."""
    return 2 + 2 * PRODUCT_ORDER.index(product)


@njit(**NJIT_INLINE)
def _draw_step(k, n, s0, k0, k1, z4, zs):
    """zs[a, lane] = independent normal ``k + a`` of sample s0 + lane, a = 0..n-1; ``z4``
    holds the current group's four normals (refilled whenever ``k + a`` starts a group)."""
    for a in range(n):
        r = (k + a) % 4
        if r == 0:
            _normals(np.uint64((k + a) // 4), s0, k0, k1, z4)
        for lane in range(LANES):
            zs[a, lane] = z4[r, lane]


@njit(**NJIT_INLINE)
def _move(n, chol, drift, vol, antithetic, zs, e, xp, xm):
    """One step of every asset and lane: e = L z, then x_a += drift_a + (+-vol_a) e_a."""
    for a in range(n):
        l0 = chol[a, 0]
        for lane in range(LANES):
            e[lane] = l0 * zs[0, lane]
        for c in range(1, a + 1):
            lc = chol[a, c]
            for lane in range(LANES):
                e[lane] = e[lane] + lc * zs[c, lane]
        da, va = drift[a], vol[a]
        for lane in range(LANES):
            xp[a, lane] = xp[a, lane] + (da + va * e[lane])
        if antithetic:
            nva = -va
            for lane in range(LANES):
                xm[a, lane] = xm[a, lane] + (da + nva * e[lane])


@njit(**NJIT_INLINE)
def _baskets(n, x, weights, bs, lg, s0, s1):
    """Per lane: B = sum w_a exp(x_a), log G = sum w_a x_a, S_0 and S_1 (S_1 = S_0 if n = 1)."""
    w0 = weights[0]
    for lane in range(LANES):
        st = exp(x[0, lane])
        s0[lane] = st
        s1[lane] = st
        bs[lane] = w0 * st
        lg[lane] = w0 * x[0, lane]
    for a in range(1, n):
        wa = weights[a]
        if a == 1:
            for lane in range(LANES):
                st = exp(x[1, lane])
                s1[lane] = st
                bs[lane] = bs[lane] + wa * st
                lg[lane] = lg[lane] + wa * x[1, lane]
        else:
            for lane in range(LANES):
                st = exp(x[a, lane])
                bs[lane] = bs[lane] + wa * st
                lg[lane] = lg[lane] + wa * x[a, lane]


@njit(**NJIT_INLINE)
def _payoffs(lane, n, bs, lg, s0, s1, strike, disc):
    basket = bs[lane]
    call = disc * max(basket - strike, 0.0)
    put = disc * max(strike - basket, 0.0)
    geo = disc * max(exp(lg[lane]) - strike, 0.0)
    exchange = disc * max(s0[lane] - s1[lane], 0.0) if n >= 2 else 0.0
    return call, put, geo, exchange


@njit(**NJIT)
def _block(b, n_samples, steps, x0, drift, vol, weights, chol, strike, disc, key, antithetic, row):
    """Simulate block ``b`` and write its row of sums into ``row`` (length N_STATS)."""
    n = x0.shape[0]
    k0, k1 = key
    xp = np.empty((n, LANES))
    xm = np.empty((n, LANES))
    zs = np.empty((n, LANES))
    z4 = np.empty((4, LANES))
    e = np.empty(LANES)
    bp, gp, ap, cp = np.empty(LANES), np.empty(LANES), np.empty(LANES), np.empty(LANES)
    bm, gm, am, cm = np.empty(LANES), np.empty(LANES), np.empty(LANES), np.empty(LANES)
    acc = np.zeros((_N_ACC, LANES))
    first = b * BLOCK_SAMPLES
    count = 0
    for chunk in range(CHUNKS):
        start = first + chunk * LANES
        if start >= n_samples:
            break
        n_valid = min(LANES, n_samples - start)
        count += n_valid
        s0 = np.uint64(start)
        for a in range(n):
            xa = x0[a]
            for lane in range(LANES):
                xp[a, lane] = xa
                xm[a, lane] = xa
        for j in range(steps):
            _draw_step(j * n, n, s0, k0, k1, z4, zs)
            _move(n, chol, drift, vol, antithetic, zs, e, xp, xm)
        _baskets(n, xp, weights, bp, gp, ap, cp)
        if antithetic:
            _baskets(n, xm, weights, bm, gm, am, cm)
        for lane in range(n_valid):
            p0, p1, p2, p3 = _payoffs(lane, n, bp, gp, ap, cp, strike, disc)
            if antithetic:
                q0, q1, q2, q3 = _payoffs(lane, n, bm, gm, am, cm, strike, disc)
                p0 = 0.5 * (p0 + q0)
                p1 = 0.5 * (p1 + q1)
                p2 = 0.5 * (p2 + q2)
                p3 = 0.5 * (p3 + q3)
            acc[0, lane] += p0
            acc[1, lane] += p0 * p0
            acc[2, lane] += p1
            acc[3, lane] += p1 * p1
            acc[4, lane] += p2
            acc[5, lane] += p2 * p2
            acc[6, lane] += p3
            acc[7, lane] += p3 * p3
            acc[8, lane] += p0 * p2
    row[COL_COUNT] = float(count)
    for k in range(_N_ACC):
        total = 0.0
        for lane in range(LANES):  # fixed order: lane 0, 1, ..., 63
            total += acc[k, lane]
        row[1 + k] = total


@njit(**NJIT_PARALLEL)
def simulate_blocks(
    block_start,
    block_stop,
    n_samples,
    steps,
    x0,
    drift,
    vol,
    weights,
    chol,
    strike,
    disc,
    key,
    antithetic,
):
    """Rows of sums of blocks ``block_start .. block_stop``: a ``(stop - start, N_STATS)``
    float64 array.

    ``n_samples`` is the job's sample count (the last block may be partial); ``x0``, ``drift``,
    ``vol`` and ``weights`` are float64 arrays of length n (log spot, per-step drift and vol,
    basket weights), ``chol`` the (n, n) lower-triangular factor of the correlation, ``strike``
    and ``disc`` (the discount factor) floats, ``key`` the two Philox key words (uint64 array),
    ``antithetic`` pairs z with -z. Blocks are spread over threads with ``prange``; each is
    computed whole by one thread.
    """
    m = block_stop - block_start
    out = np.zeros((m, N_STATS))
    for i in prange(m):
        _block(
            block_start + i,
            n_samples,
            steps,
            x0,
            drift,
            vol,
            weights,
            chol,
            strike,
            disc,
            key,
            antithetic,
            out[i],
        )
    return out
