"""GBM paths driven by randomized Sobol points on the CPU: one row of sums per (block, replicate).

A replicate is one scrambling of the Sobol sequence (:func:`sobol.scrambled`); its point ``i``
drives path ``i`` of that replicate. Block ``b`` holds points ``b * BLOCK_SAMPLES`` up to the
replicate's last point, and is computed whole by one thread: the first point by skip-ahead
(:func:`sobol.point`), the rest by Gray-code steps (:func:`sobol.advance`), so a row is a pure
function of (params, seed, block, replicate) whatever the shard or thread count.

Per point: coordinate k becomes the normal ``z_k = Phi^-1((x_k + 1/2) 2^-32)``; with the bridge,
normal 0 sets the path's end, normal 1 its midpoint and so on (:func:`sobol.bridge`), so the first
coordinates, where a Sobol set is most uniform, carry the path's large-scale shape; without it,
normal k drives step k. The walk and the payoffs are those of :mod:`cpu`, and the row has its
columns (``N_STATS``): count, sum and sum of squares per product in ``PRODUCT_ORDER``, and the
sum of arithmetic times geometric Asian payoffs.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tessera.kernels.config import NJIT, NJIT_PARALLEL
from tessera.kernels.fastmath import exp
from tessera.kernels.montecarlo.cpu import BLOCK_SAMPLES, COL_COUNT, N_STATS, NO_MAX
from tessera.kernels.montecarlo.sobol import advance, bridge, normal_icdf, point, to_uniform

_N_ACC = N_STATS - 1


@njit(**NJIT)
def _block(b, n_points, consts, v, shift, use_bridge, plan, arith, row):
    """Row of sums of block ``b`` of one replicate (direction numbers ``v``, shift ``shift``)."""
    x0, drift, vol, log_barrier, strike, disc = consts  # cpu.CONSTANTS
    steps = v.shape[0]
    first = b * BLOCK_SAMPLES
    last = min(first + BLOCK_SAMPLES, n_points)
    words = np.empty(steps, dtype=np.uint32)
    z = np.empty(steps)
    dw = np.empty(steps)
    acc = np.zeros(_N_ACC)
    inv_steps = 1.0 / steps
    if first < last:
        point(v, shift, first, words)
    for i in range(first, last):
        if i > first:
            advance(v, i - 1, words)
        for k in range(steps):
            z[k] = normal_icdf(to_uniform(words[k]))
        if use_bridge:
            bridge(plan, z, dw)
        else:
            dw[:] = z
        x, sx, mx, ss = x0, 0.0, NO_MAX, 0.0
        for k in range(steps):
            x += drift + vol * dw[k]
            sx += x
            mx = max(mx, x)
            if arith:
                ss += exp(x)
        st = exp(x)
        call = disc * max(st - strike, 0.0)
        put = disc * max(strike - st, 0.0)
        asian_a = disc * max(ss * inv_steps - strike, 0.0)
        asian_g = disc * max(exp(sx * inv_steps) - strike, 0.0)
        barrier = call if mx < log_barrier else 0.0
        acc[0] += call
        acc[1] += call * call
        acc[2] += put
        acc[3] += put * put
        acc[4] += asian_a
        acc[5] += asian_a * asian_a
        acc[6] += asian_g
        acc[7] += asian_g * asian_g
        acc[8] += barrier
        acc[9] += barrier * barrier
        acc[10] += asian_a * asian_g
    row[COL_COUNT] = float(max(last - first, 0))
    for k in range(_N_ACC):
        row[1 + k] = acc[k]


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
