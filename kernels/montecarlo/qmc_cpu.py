"""GBM paths driven by randomized Sobol points on the CPU: one row of sums per (block, replicate).

A replicate is one scrambling of the Sobol sequence (:func:`sobol.scrambled`); its point ``i``
drives path ``i`` of that replicate. Block ``b`` holds points ``b * BLOCK_SAMPLES`` up to the
replicate's last point and is computed whole by one thread, ``QLANES`` points at a time: the
chunk's first point by skip-ahead, the rest by Gray-code steps, so a row is a pure function of
(params, seed, block, replicate) whatever the shard or thread count.

Per point, coordinate k becomes the normal ``z_k = Phi^-1((x_k + 1/2) 2^-32)``
(:func:`sobol.normals`); with the bridge, normal 0 sets the path's end W(n), normal 1 its
midpoint and so on (:func:`sobol.bridge_plan`), so the first coordinates, where a Sobol set is
most uniform, carry the path's large-scale shape; without it W is the running sum of the z.
Then, with W_k = W(k + 1) in units of one step, ``x_k = x0 + drift (k + 1) + vol W_k``, and
the payoffs are those of :mod:`cpu` on the x_k (the running sum, maximum and sum of exp). The
row has :mod:`cpu`'s columns (``N_STATS``): count, sum and sum of squares per product in
``PRODUCT_ORDER``, and the sum of arithmetic times geometric Asian payoffs.

Measured (benchmarks/qmc.py): about 5x the Philox kernel's time per path-step (which shares
its normals between antithetic pairs and draws them four at a time), of which the inverse
normal is more than half.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tessera.kernels.config import NJIT, NJIT_INLINE, NJIT_PARALLEL
from tessera.kernels.fastmath import exp
from tessera.kernels.montecarlo.cpu import BLOCK_SAMPLES, COL_COUNT, N_STATS, NO_MAX
from tessera.kernels.montecarlo.sobol import normals

_N_ACC = N_STATS - 1
QLANES = 16  # points simulated together (their coordinates side by side, for SIMD)


@njit(**NJIT_INLINE)
def _points(v, shift, first, count, words):
    """``words[k, lane]`` = coordinate k of point ``first + lane``, lane < count: the first
    by skip-ahead, the others by one Gray-code step each."""
    d = v.shape[0]
    g = np.uint64(first) ^ (np.uint64(first) >> np.uint64(1))
    for k in range(d):
        words[k, 0] = shift[k]
    bit = 0
    while g:
        if g & np.uint64(1):
            for k in range(d):
                words[k, 0] ^= v[k, bit]
        g >>= np.uint64(1)
        bit += 1
    for lane in range(1, count):
        n = np.uint64(first + lane)  # the Gray code of n differs from n - 1's in n's lowest set bit
        c = 0
        while not n & np.uint64(1):
            n >>= np.uint64(1)
            c += 1
        for k in range(d):
            words[k, lane] = words[k, lane - 1] ^ v[k, c]


@njit(**NJIT_INLINE)
def _path(z, w, use_bridge, plan):
    """``w[k, lane]`` = W(k + 1) of every lane's unit-variance Brownian path from the normals
    ``z[k, lane]``: by the bridge (z in construction order), or as running sums."""
    d, lanes = z.shape
    if use_bridge:
        order, left, right, w_left, w_right, sd = plan
        top = order[0]
        for lane in range(lanes):
            w[top, lane] = sd[0] * z[0, lane]
        for i in range(1, d):
            at, r, lo = order[i], right[i], left[i]
            s, wr, wl = sd[i], w_right[i], w_left[i]
            if lo >= 0:
                for lane in range(lanes):
                    w[at, lane] = s * z[i, lane] + wr * w[r, lane] + wl * w[lo, lane]
            else:
                for lane in range(lanes):
                    w[at, lane] = s * z[i, lane] + wr * w[r, lane]
    else:
        for lane in range(lanes):
            w[0, lane] = z[0, lane]
        for k in range(1, d):
            for lane in range(lanes):
                w[k, lane] = w[k - 1, lane] + z[k, lane]


@njit(**NJIT)
def _block(b, n_points, consts, v, shift, use_bridge, plan, arith, row):
    """Row of sums of block ``b`` of one replicate (direction numbers ``v``, shift ``shift``).

    ``QLANES`` points at a time: their words, normals and Brownian paths as (steps, QLANES)
    arrays, each step's update a loop over the lanes (vectorised); each lane keeps its own
    sums, added in lane order at the end of the block."""
    x0, drift, vol, log_barrier, strike, disc = consts  # cpu.CONSTANTS
    steps = v.shape[0]
    first = b * BLOCK_SAMPLES
    last = min(first + BLOCK_SAMPLES, n_points)
    words = np.empty((steps, QLANES), dtype=np.uint32)
    z = np.empty((steps, QLANES))
    w = np.empty((steps, QLANES))
    tails = np.empty(steps * QLANES, dtype=np.int64)
    scratch = np.empty(steps * QLANES)
    x = np.empty(QLANES)
    sx = np.empty(QLANES)
    mx = np.empty(QLANES)
    ss = np.empty(QLANES)
    acc = np.zeros((_N_ACC, QLANES))
    inv_steps = 1.0 / steps
    for start in range(first, last, QLANES):
        count = min(QLANES, last - start)
        _points(v, shift, start, count, words)
        normals(words.ravel(), z.ravel(), tails, scratch)
        _path(z, w, use_bridge, plan)
        sx[:] = 0.0
        mx[:] = NO_MAX
        ss[:] = 0.0
        for k in range(steps):
            t = drift * (k + 1)
            for lane in range(QLANES):
                xk = x0 + (t + vol * w[k, lane])
                x[lane] = xk
                sx[lane] += xk
                mx[lane] = max(mx[lane], xk)
            if arith:
                for lane in range(QLANES):
                    ss[lane] += exp(x[lane])
        for lane in range(count):
            st = exp(x[lane])
            call = disc * max(st - strike, 0.0)
            put = disc * max(strike - st, 0.0)
            asian_a = disc * max(ss[lane] * inv_steps - strike, 0.0)
            asian_g = disc * max(exp(sx[lane] * inv_steps) - strike, 0.0)
            barrier = call if mx[lane] < log_barrier else 0.0
            acc[0, lane] += call
            acc[1, lane] += call * call
            acc[2, lane] += put
            acc[3, lane] += put * put
            acc[4, lane] += asian_a
            acc[5, lane] += asian_a * asian_a
            acc[6, lane] += asian_g
            acc[7, lane] += asian_g * asian_g
            acc[8, lane] += barrier
            acc[9, lane] += barrier * barrier
            acc[10, lane] += asian_a * asian_g
    row[COL_COUNT] = float(max(last - first, 0))
    for k in range(_N_ACC):
        total = 0.0
        for lane in range(QLANES):  # fixed order: lane 0, 1, ..., QLANES - 1
            total += acc[k, lane]
        row[1 + k] = total


@njit(**NJIT_PARALLEL)
def simulate_blocks(block_start, block_stop, n_points, consts, v, shift, use_bridge, plan, arith):
    """Rows of sums ``(block_stop - block_start, replicates, N_STATS)`` float64.

    ``n_points`` is the points per replicate; ``consts`` the vector named by
    ``cpu.CONSTANTS``; ``v`` the replicates' scrambled direction numbers, uint32
    ``(replicates, steps, 32)``, and ``shift`` their digital shifts ``(replicates, steps)``;
    ``plan`` a :func:`sobol.bridge_plan` of ``steps`` (used when ``use_bridge``); ``arith``
    accumulates exp(x) for the arithmetic Asian (its columns are 0 otherwise). The
    (block, replicate) pairs are spread over threads with ``prange``."""
    n = block_stop - block_start
    replicates = v.shape[0]
    out = np.zeros((n, replicates, N_STATS))
    for t in prange(n * replicates):
        i, r = t // replicates, t % replicates
        _block(
            block_start + i, n_points, consts, v[r], shift[r], use_bridge, plan, arith, out[i, r]
        )
    return out
