"""GBM path simulation and payoff sums on the CPU: Numba kernels, one row of sums per block.

Work is cut into blocks of ``BLOCK_SAMPLES`` samples (a sample is one path, or an antithetic
pair of paths), a constant of the kernel: block ``b`` holds samples
``b * BLOCK_SAMPLES ..`` up to the job's last sample. A block is simulated ``LANES`` samples at
a time: the lanes' states live in small arrays, and the loops over lanes are free of branches
so that LLVM turns them into SIMD code (8 lanes per AVX-512 instruction). Each lane keeps its
own running sums across the block; at the end of the block the lanes are added in lane order.
``prange`` spreads blocks over threads, and a block is always computed whole by one thread,
so a block's row of sums depends only on (params, seed, block index): never on the shard
count, the thread count or the executor.

Per step and path (x = log S, dt = maturity / steps, z from :mod:`tessera.kernels.rng`)::

    x += (rate - volatility**2 / 2) * dt + volatility * sqrt(dt) * z
    sum_x += x;  max_x = max(max_x, x);  sum_s += exp(x)   (the last only for arithmetic Asians)

and at the end, with D = exp(-rate * maturity), S_T = exp(x), A = sum_s / steps,
G = exp(sum_x / steps): european_call D max(S_T - K, 0), european_put D max(K - S_T, 0),
asian_arithmetic_call D max(A - K, 0), asian_geometric_call D max(G - K, 0),
barrier_up_out_call D max(S_T - K, 0) if max_x < log(barrier) else 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tessera.kernels.config import NJIT, NJIT_INLINE, NJIT_PARALLEL
from tessera.kernels.fastmath import exp
from tessera.kernels.rng import philox_block, radius, rotate, uniform

LANES = 64  # samples simulated together in the inner loops
BLOCK_SAMPLES = 4096  # samples per block (one row of sums); a constant of the kernel
CHUNKS = BLOCK_SAMPLES // LANES

# Row layout: [count, (sum, sum of squares) for each product in PRODUCT_ORDER, cross]
# where cross is the sum of (arithmetic Asian payoff) * (geometric Asian payoff).
PRODUCT_ORDER = (
    "european_call",
    "european_put",
    "asian_arithmetic_call",
    "asian_geometric_call",
    "barrier_up_out_call",
)
N_PRODUCTS = len(PRODUCT_ORDER)
COL_COUNT = 0
COL_CROSS = 1 + 2 * N_PRODUCTS
N_STATS = COL_CROSS + 1
_N_ACC = 2 * N_PRODUCTS + 1  # per-lane accumulators: sums, sums of squares, cross

# Finite stand-ins for -inf / +inf (no infinities in the hot loops).
NO_MAX = -1.0e308
NO_BARRIER = 1.0e308

# The float64 constants vector passed to simulate_blocks, in this order.
CONSTANTS = ("x0", "drift", "vol", "log_barrier", "strike", "disc")


def col_sum(product: str) -> int:
    """Column of the payoff sum of ``product`` in a row of sums."""
    return 1 + 2 * PRODUCT_ORDER.index(product)


def col_sumsq(product: str) -> int:
    """Column of the sum of squared payoffs of ``product`` in a row of sums."""
    return 2 + 2 * PRODUCT_ORDER.index(product)


_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


# --- one group of (up to) four steps, in passes over the lanes ----------------------------------
# Each pass is a short loop over LANES with no branch in its body, which LLVM vectorises; the
# buffer z (8 x LANES float64, in L1) carries values between passes. Splitting the work this way
# measured 1.4x faster than one fused loop, whose body spilled registers. The flags (antithetic,
# arith, a partial group) only choose between passes, outside the lane loops.
# A path set's state is four LANES-long arrays: x, sum of x, max of x, sum of exp(x), bundled
# as a tuple in _block but unbundled before the lane loops (a tuple argument there cost 10%).
# Everything is inlined into _block, where the arrays are allocated, so that LLVM can see that
# they do not overlap (as arguments of a separate function they would block vectorisation).


@njit(**NJIT_INLINE)
def _normals(group, s0, k0, k1, z):
    """z[0..3, lane] = the four normals of step group ``group`` of sample s0 + lane."""
    for lane in range(LANES):
        s = s0 + np.uint64(lane)
        w0, w1, w2, w3 = philox_block(group, s & _MASK32, s >> _S32, 0, k0, k1)
        z[0, lane] = uniform(w0)
        z[1, lane] = uniform(w1)
        z[2, lane] = uniform(w2)
        z[3, lane] = uniform(w3)
    for lane in range(LANES):
        z[0, lane] = radius(z[0, lane])
        z[2, lane] = radius(z[2, lane])
    for lane in range(LANES):
        z[0, lane], z[1, lane] = rotate(z[0, lane], z[1, lane])
        z[2, lane], z[3, lane] = rotate(z[2, lane], z[3, lane])


@njit(**NJIT_INLINE)
def _walk(x, sx, mx, inc):
    x = x + inc
    return x, sx + x, max(mx, x)


@njit(**NJIT_INLINE)
def _walk4(z, drift, vol, xs, sxs, mxs):
    """Four steps of every lane driven by z[0..3]; log prices after each step to z[4..7]."""
    for lane in range(LANES):
        x, sx, mx = xs[lane], sxs[lane], mxs[lane]
        x, sx, mx = _walk(x, sx, mx, drift + vol * z[0, lane])
        z[4, lane] = x
        x, sx, mx = _walk(x, sx, mx, drift + vol * z[1, lane])
        z[5, lane] = x
        x, sx, mx = _walk(x, sx, mx, drift + vol * z[2, lane])
        z[6, lane] = x
        x, sx, mx = _walk(x, sx, mx, drift + vol * z[3, lane])
        z[7, lane] = x
        xs[lane], sxs[lane], mxs[lane] = x, sx, mx


@njit(**NJIT_INLINE)
def _walk_part(z, n, drift, vol, xs, sxs, mxs):
    """Like _walk4 for the first ``n`` (< 4) normals: the last, partial group."""
    for j in range(n):
        for lane in range(LANES):
            x, sx, mx = _walk(xs[lane], sxs[lane], mxs[lane], drift + vol * z[j, lane])
            z[4 + j, lane] = x
            xs[lane], sxs[lane], mxs[lane] = x, sx, mx


@njit(**NJIT_INLINE)
def _exp_sums(z, n, ss):
    """sum of exp(x) += exp of the ``n`` log prices in z[4 .. 4 + n], in step order."""
    if n == 4:
        for lane in range(LANES):
            acc = ss[lane] + exp(z[4, lane])
            acc = acc + exp(z[5, lane])
            acc = acc + exp(z[6, lane])
            ss[lane] = acc + exp(z[7, lane])
    else:
        for j in range(n):
            for lane in range(LANES):
                ss[lane] = ss[lane] + exp(z[4 + j, lane])


@njit(**NJIT_INLINE)
def _advance(z, n, drift, vol, arith, xs, sxs, mxs, ss):
    """Move one set of paths by the ``n`` normals in z (times ``vol``; negative: antithetic)."""
    if n == 4:
        _walk4(z, drift, vol, xs, sxs, mxs)
    else:
        _walk_part(z, n, drift, vol, xs, sxs, mxs)
    if arith:
        _exp_sums(z, n, ss)


@njit(**NJIT_INLINE)
def _payoffs(state, lane, inv_steps, log_barrier, strike, disc):
    x, sx, mx, ss = state[0][lane], state[1][lane], state[2][lane], state[3][lane]
    st = exp(x)
    g = exp(sx * inv_steps)
    a = ss * inv_steps
    call = disc * max(st - strike, 0.0)
    put = disc * max(strike - st, 0.0)
    asian_a = disc * max(a - strike, 0.0)
    asian_g = disc * max(g - strike, 0.0)
    barrier = call if mx < log_barrier else 0.0
    return call, put, asian_a, asian_g, barrier


@njit(**NJIT)
def _block(b, n_samples, steps, consts, key, antithetic, arith, row):
    """Simulate block ``b`` and write its row of sums into ``row`` (length N_STATS)."""
    x0, drift, vol, log_barrier, strike, disc = consts  # see CONSTANTS
    k0, k1 = key
    plus = (np.empty(LANES), np.empty(LANES), np.empty(LANES), np.empty(LANES))
    minus = (np.empty(LANES), np.empty(LANES), np.empty(LANES), np.empty(LANES))
    z = np.empty((8, LANES))
    acc = np.zeros((_N_ACC, LANES))
    inv_steps = 1.0 / steps
    n_groups, n_rem = steps // 4, steps % 4
    first = b * BLOCK_SAMPLES
    count = 0
    for chunk in range(CHUNKS):
        start = first + chunk * LANES
        if start >= n_samples:
            break
        n_valid = min(LANES, n_samples - start)
        count += n_valid
        s0 = np.uint64(start)
        for state in (plus, minus):
            state[0][:] = x0
            state[1][:] = 0.0
            state[2][:] = NO_MAX
            state[3][:] = 0.0
        for g in range(n_groups + (n_rem > 0)):
            # steps 4g .. 4g + n - 1: the paths driven by z (plus) and by -z (minus)
            n = 4 if g < n_groups else n_rem
            _normals(np.uint64(g), s0, k0, k1, z)
            _advance(z, n, drift, vol, arith, plus[0], plus[1], plus[2], plus[3])
            if antithetic:
                _advance(z, n, drift, -vol, arith, minus[0], minus[1], minus[2], minus[3])
        for lane in range(n_valid):
            p0, p1, p2, p3, p4 = _payoffs(plus, lane, inv_steps, log_barrier, strike, disc)
            if antithetic:
                q0, q1, q2, q3, q4 = _payoffs(minus, lane, inv_steps, log_barrier, strike, disc)
                p0 = 0.5 * (p0 + q0)
                p1 = 0.5 * (p1 + q1)
                p2 = 0.5 * (p2 + q2)
                p3 = 0.5 * (p3 + q3)
                p4 = 0.5 * (p4 + q4)
            acc[0, lane] += p0
            acc[1, lane] += p0 * p0
            acc[2, lane] += p1
            acc[3, lane] += p1 * p1
            acc[4, lane] += p2
            acc[5, lane] += p2 * p2
            acc[6, lane] += p3
            acc[7, lane] += p3 * p3
            acc[8, lane] += p4
            acc[9, lane] += p4 * p4
            acc[10, lane] += p2 * p3
    row[COL_COUNT] = float(count)
    for k in range(_N_ACC):
        total = 0.0
        for lane in range(LANES):  # fixed order: lane 0, 1, ..., 63
            total += acc[k, lane]
        row[1 + k] = total


@njit(**NJIT_PARALLEL)
def simulate_blocks(block_start, block_stop, n_samples, steps, consts, key, antithetic, arith):
    """Rows of sums of blocks ``block_start .. block_stop``: a ``(stop - start, N_STATS)``
    float64 array.

    ``n_samples`` is the job's sample count (the last block may be partial); ``consts`` the
    float64 vector named by ``CONSTANTS``: x0 = log spot, drift and vol per step, log barrier
    (``NO_BARRIER`` for none), strike, discount factor; ``key`` the two Philox key words
    (uint64 array); ``antithetic`` pairs z with -z; ``arith`` accumulates exp(x) for the
    arithmetic Asian (its columns are 0 otherwise). Blocks are spread over threads with
    ``prange``; each is computed whole by one thread.
    """
    n = block_stop - block_start
    out = np.zeros((n, N_STATS))
    for i in prange(n):
        _block(block_start + i, n_samples, steps, consts, key, antithetic, arith, out[i])
    return out
