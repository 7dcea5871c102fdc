"""Longstaff-Schwartz on the CPU: Numba kernels for the calibrate and the price stage.

Paths are the Philox GBM paths of :mod:`tessera.kernels.montecarlo.cpu` (x = log S, the same
drift and volatility per step, Box-Muller normals from :mod:`tessera.kernels.rng`), in two
counter domains of the job's key: Philox counter ``(g, s mod 2**32, s div 2**32, DOMAIN)`` for
step group ``g`` of path or sample ``s``, with ``DOMAIN`` = ``PRICE_DOMAIN`` (0, the European
kernel's own counters: a pricing sample is the European kernel's sample of the same seed) or
``CALIBRATION_DOMAIN`` (1: calibration path ``m``). The two sets of paths are independent.

The exercise grid is every ``stride``-th fixing: ``n_dates = steps // stride`` dates, date
``d`` (0-based) at fixing ``(d + 1) * stride``. Each LSM product ``q`` has a row of
``masks[q]`` (1 where it may exercise), its payoff ``max(sign * (S - strike), 0)`` (sign
+1 for a call, -1 for a put) and a row of coefficients ``coefs[q, d, 0..degree]`` per date.

The continuation value at date ``d`` of a path at S is ``sum_k coefs[q, d, k] * phi_k(S /
strike)`` with ``phi_0 = 1`` and, for the Laguerre basis, ``phi_k(x) = exp(-x / 2) L_(k-1)(x)``
(``L_n`` the Laguerre polynomials; degree 3 is Longstaff and Schwartz's constant plus three
weighted Laguerre functions), for the monomial basis ``phi_k(x) = x**k``. A path exercises at
the first date where its payoff is > 0 and >= the continuation value; at maturity it takes its
payoff. A coefficient row whose constant is ``NEVER`` means "do not exercise at this date"
(dates a product may not exercise, and dates with no in-the-money calibration path).

Least squares: Householder QR of the in-the-money paths' basis matrix, written out below
(no BLAS, no LAPACK, fixed loop order, no fast-math), so the coefficients are the same bits on
every x86-64 machine and thread count. QR solves the problem at the basis matrix's condition
number (normal equations square it: monomials to x**6 on an in-the-money range reach 1e6 to
1e8 before squaring), and a column whose remaining norm falls below ``RANK_TOL`` of its own
norm ends the fit there (the later coefficients are 0), so a degenerate date cannot blow up.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tessera.kernels.config import NJIT, NJIT_INLINE, NJIT_PARALLEL
from tessera.kernels.fastmath import exp
from tessera.kernels.montecarlo.cpu import BLOCK_SAMPLES, LANES
from tessera.kernels.rng import philox_block, radius, rotate, uniform

CHUNKS = BLOCK_SAMPLES // LANES
PRICE_DOMAIN = 0
CALIBRATION_DOMAIN = 1

# Row of sums per block: [count, (sum, sum of squares) for each product in PRICE_ORDER].
PRICE_ORDER = ("american_put", "american_call", "bermudan_put", "european_call", "european_put")
N_STATS = 1 + 2 * len(PRICE_ORDER)
COL_COUNT = 0
COL_EURO_CALL = 1 + 2 * PRICE_ORDER.index("european_call")
COL_EURO_PUT = 1 + 2 * PRICE_ORDER.index("european_put")

LAGUERRE = 0
MONOMIAL = 1
BASES = ("laguerre", "monomial")

NEVER = 1.0e308  # a continuation value no payoff reaches
RANK_TOL = 1.0e-10  # relative remaining column norm below which the QR stops (rank-deficient)

# The float64 constants vector of both stages, in this order.
CONSTANTS = ("x0", "drift", "vol", "strike")

_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


def col_sum(product: str) -> int:
    """Column of the discounted payoff sum of ``product`` in a row of sums."""
    return 1 + 2 * PRICE_ORDER.index(product)


def col_sumsq(product: str) -> int:
    """Column of the sum of squared discounted payoffs of ``product``."""
    return 2 + 2 * PRICE_ORDER.index(product)


@njit(**NJIT_INLINE)
def _normals(group, s0, domain, k0, k1, z):
    """z[0..3, lane] = the four normals of step group ``group`` of path s0 + lane."""
    for lane in range(LANES):
        s = s0 + np.uint64(lane)
        w0, w1, w2, w3 = philox_block(group, s & _MASK32, s >> _S32, domain, k0, k1)
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
def _basis_into(x, kind, degree, out, i):
    """out[k, i] = phi_k(x), k = 0..degree (see the module docstring)."""
    out[0, i] = 1.0
    if kind == LAGUERRE:
        w = exp(-0.5 * x)
        prev, cur = 0.0, 1.0
        for k in range(degree):
            out[k + 1, i] = w * cur
            prev, cur = cur, ((2 * k + 1 - x) * cur - k * prev) / (k + 1)
    else:
        m = 1.0
        for k in range(degree):
            m = m * x
            out[k + 1, i] = m


@njit(**NJIT_INLINE)
def _fitted(coefs, q, d, x, kind, degree):
    """The continuation value sum_k coefs[q, d, k] * phi_k(x), in the order k = 0, 1, ..."""
    cont = coefs[q, d, 0]
    if kind == LAGUERRE:
        w = exp(-0.5 * x)
        prev, cur = 0.0, 1.0
        for k in range(degree):
            cont = cont + coefs[q, d, k + 1] * (w * cur)
            prev, cur = cur, ((2 * k + 1 - x) * cur - k * prev) / (k + 1)
    else:
        m = 1.0
        for k in range(degree):
            m = m * x
            cont = cont + coefs[q, d, k + 1] * m
    return cont


# --- calibrate stage ----------------------------------------------------------------------------


@njit(**NJIT)
def _grid_chunk(c, n_paths, steps, stride, consts, key, grid):
    """Simulate calibration paths c * LANES .. (c + 1) * LANES; S at each date into grid."""
    x0, drift, vol = consts[0], consts[1], consts[2]
    k0, k1 = key
    z = np.empty((4, LANES))
    x = np.full(LANES, x0)
    start = c * LANES
    n_valid = min(LANES, n_paths - start)
    s0 = np.uint64(start)
    for g in range((steps + 3) // 4):
        _normals(np.uint64(g), s0, CALIBRATION_DOMAIN, k0, k1, z)
        for j in range(min(4, steps - 4 * g)):
            for lane in range(LANES):
                x[lane] = x[lane] + (drift + vol * z[j, lane])
            step = 4 * g + j + 1
            if step % stride == 0:
                d = step // stride - 1
                for lane in range(n_valid):
                    grid[d, start + lane] = exp(x[lane])


@njit(**NJIT_PARALLEL)
def simulate_grid(n_paths, steps, stride, consts, key):
    """S of calibration paths 0 .. n_paths - 1 at every exercise date: an
    ``(steps // stride, n_paths)`` float64 array (row d = date d)."""
    grid = np.empty((steps // stride, n_paths))
    for c in prange(-(-n_paths // LANES)):
        _grid_chunk(c, n_paths, steps, stride, consts, key, grid)
    return grid


@njit(**NJIT)
def least_squares(xt, y, n, p, coef):
    """Least-squares fit of y[:n] on the columns xt[0..p-1, :n] by Householder QR, into
    coef[0..p-1]; ``xt`` and ``y`` are overwritten. Returns the rank used: the fit stops
    before the first column whose remaining norm is below ``RANK_TOL`` of its own norm (its
    coefficient and the later ones are 0); 0 when n == 0."""
    norms = np.zeros(p)
    for k in range(p):
        acc = 0.0
        for i in range(n):
            acc += xt[k, i] * xt[k, i]
        norms[k] = np.sqrt(acc)
    r = np.zeros((p, p))
    rank = 0
    for k in range(min(p, n)):
        acc = 0.0
        for i in range(k, n):
            acc += xt[k, i] * xt[k, i]
        nrm = np.sqrt(acc)
        if nrm == 0.0 or nrm <= RANK_TOL * norms[k]:
            break
        alpha = -nrm if xt[k, k] >= 0.0 else nrm
        xt[k, k] -= alpha  # the Householder vector v = xt[k, k:n]
        vv = 0.0
        for i in range(k, n):
            vv += xt[k, i] * xt[k, i]
        for j in range(k + 1, p):
            s = 0.0
            for i in range(k, n):
                s += xt[k, i] * xt[j, i]
            f = 2.0 * s / vv
            for i in range(k, n):
                xt[j, i] -= f * xt[k, i]
            r[k, j] = xt[j, k]
        s = 0.0
        for i in range(k, n):
            s += xt[k, i] * y[i]
        f = 2.0 * s / vv
        for i in range(k, n):
            y[i] -= f * xt[k, i]
        r[k, k] = alpha
        rank = k + 1
    for k in range(p):
        coef[k] = 0.0
    for k in range(rank - 1, -1, -1):
        s = y[k]
        for j in range(k + 1, rank):
            s -= r[k, j] * coef[j]
        coef[k] = s / r[k, k]
    return rank


@njit(**NJIT)
def _backward(q, grid, strike, signs, masks, kind, degree, disc_step, coefs, calib):
    """Backward induction of product q on the calibration grid: coefs[q] and calib[q]."""
    n_dates, m_paths = grid.shape
    p = degree + 1
    sign = signs[q]
    inv_k = 1.0 / strike
    value = np.empty(m_paths)  # realised cash flow, discounted to the current date
    xt = np.empty((p, m_paths))
    y = np.empty(m_paths)
    itm = np.empty(m_paths, dtype=np.int64)
    beta = np.empty(p)
    for m in range(m_paths):
        value[m] = max(sign * (grid[n_dates - 1, m] - strike), 0.0)
    for d in range(n_dates - 2, -1, -1):
        for m in range(m_paths):
            value[m] = value[m] * disc_step
        if masks[q, d] == 0:
            coefs[q, d, 0] = NEVER
            continue
        n = 0
        for m in range(m_paths):
            if sign * (grid[d, m] - strike) > 0.0:
                itm[n] = m
                _basis_into(grid[d, m] * inv_k, kind, degree, xt, n)
                y[n] = value[m]
                n += 1
        if least_squares(xt, y, n, p, beta) == 0:
            coefs[q, d, 0] = NEVER
            continue
        for k in range(p):
            coefs[q, d, k] = beta[k]
        for i in range(n):
            m = itm[i]
            pay = sign * (grid[d, m] - strike)
            if pay >= _fitted(coefs, q, d, grid[d, m] * inv_k, kind, degree):
                value[m] = pay
    s = 0.0
    ss = 0.0
    for m in range(m_paths):
        v = value[m] * disc_step
        s += v
        ss += v * v
    calib[q, 0] = s
    calib[q, 1] = ss
    calib[q, 2] = float(m_paths)


@njit(**NJIT_PARALLEL)
def regress(grid, strike, signs, masks, kind, degree, disc_step):
    """Coefficients ``(n_lsm, n_dates, degree + 1)`` and in-sample sums ``(n_lsm, 3)`` =
    (sum, sum of squares of the time-0 cash flows, paths) of every LSM product, by backward
    induction on ``grid`` (``simulate_grid``); ``disc_step`` = exp(-rate * date spacing).
    The maturity row of the coefficients is 0 (unused: a path takes its payoff there).
    Products run in parallel, each whole on one thread."""
    n_lsm = signs.shape[0]
    coefs = np.zeros((n_lsm, grid.shape[0], degree + 1))
    calib = np.zeros((n_lsm, 3))
    for q in prange(n_lsm):
        _backward(q, grid, strike, signs, masks, kind, degree, disc_step, coefs, calib)
    return coefs, calib


# --- price stage --------------------------------------------------------------------------------


@njit(**NJIT_INLINE)
def _exercise(
    x, d, last, strike, inv_k, coefs, masks, signs, kind, degree, disc, s_now, value, alive
):
    """Exercise decisions of every LSM product on one path set at date ``d``."""
    for lane in range(LANES):
        s_now[lane] = exp(x[lane])
    dq = disc[d]
    for q in range(signs.shape[0]):
        if masks[q, d] == 0:
            continue
        sign = signs[q]
        if last:
            for lane in range(LANES):
                pay = max(sign * (s_now[lane] - strike), 0.0)
                value[q, lane] += alive[q, lane] * (pay * dq)
            continue
        for lane in range(LANES):
            pay = sign * (s_now[lane] - strike)
            if alive[q, lane] > 0.0 and pay > 0.0:
                if pay >= _fitted(coefs, q, d, s_now[lane] * inv_k, kind, degree):
                    value[q, lane] += pay * dq
                    alive[q, lane] = 0.0


@njit(**NJIT)
def _price_block(
    b,
    n_samples,
    steps,
    stride,
    consts,
    key,
    antithetic,
    coefs,
    masks,
    signs,
    cols,
    kind,
    degree,
    disc,
    disc_t,
    euro,
    row,
):
    """Simulate pricing block ``b`` and write its row of sums into ``row`` (N_STATS)."""
    x0, drift, vol, strike = consts[0], consts[1], consts[2], consts[3]
    k0, k1 = key
    n_lsm = signs.shape[0]
    n_dates = steps // stride
    inv_k = 1.0 / strike
    n_sets = 2 if antithetic else 1
    z = np.empty((4, LANES))
    xs = np.empty((2, LANES))
    s_now = np.empty(LANES)
    value = np.zeros((2, n_lsm, LANES))
    alive = np.ones((2, n_lsm, LANES))
    acc = np.zeros((N_STATS - 1, LANES))
    first = b * BLOCK_SAMPLES
    count = 0
    for chunk in range(CHUNKS):
        start = first + chunk * LANES
        if start >= n_samples:
            break
        n_valid = min(LANES, n_samples - start)
        count += n_valid
        s0 = np.uint64(start)
        xs[:] = x0
        value[:] = 0.0
        alive[:] = 1.0
        for g in range((steps + 3) // 4):
            _normals(np.uint64(g), s0, PRICE_DOMAIN, k0, k1, z)
            for j in range(min(4, steps - 4 * g)):
                for lane in range(LANES):
                    xs[0, lane] = xs[0, lane] + (drift + vol * z[j, lane])
                if antithetic:
                    for lane in range(LANES):
                        xs[1, lane] = xs[1, lane] + (drift + -vol * z[j, lane])
                step = 4 * g + j + 1
                if step % stride == 0:
                    d = step // stride - 1
                    for s in range(n_sets):
                        _exercise(
                            xs[s],
                            d,
                            d == n_dates - 1,
                            strike,
                            inv_k,
                            coefs,
                            masks,
                            signs,
                            kind,
                            degree,
                            disc,
                            s_now,
                            value[s],
                            alive[s],
                        )
        for lane in range(n_valid):
            for q in range(n_lsm):
                v = value[0, q, lane]
                if antithetic:
                    v = 0.5 * (v + value[1, q, lane])
                c = cols[q] - 1
                acc[c, lane] += v
                acc[c + 1, lane] += v * v
            if euro[0] or euro[1]:
                st = exp(xs[0, lane])
                call = disc_t * max(st - strike, 0.0)
                put = disc_t * max(strike - st, 0.0)
                if antithetic:
                    st = exp(xs[1, lane])
                    call = 0.5 * (call + disc_t * max(st - strike, 0.0))
                    put = 0.5 * (put + disc_t * max(strike - st, 0.0))
                if euro[0]:
                    acc[COL_EURO_CALL - 1, lane] += call
                    acc[COL_EURO_CALL, lane] += call * call
                if euro[1]:
                    acc[COL_EURO_PUT - 1, lane] += put
                    acc[COL_EURO_PUT, lane] += put * put
    row[COL_COUNT] = float(count)
    for k in range(N_STATS - 1):
        total = 0.0
        for lane in range(LANES):  # fixed order: lane 0, 1, ..., 63
            total += acc[k, lane]
        row[1 + k] = total


@njit(**NJIT_PARALLEL)
def price_blocks(
    block_start,
    block_stop,
    n_samples,
    steps,
    stride,
    consts,
    key,
    antithetic,
    coefs,
    masks,
    signs,
    cols,
    kind,
    degree,
    disc,
    disc_t,
    euro,
):
    """Rows of sums ``(block_stop - block_start, N_STATS)`` of pricing blocks.

    ``coefs`` and ``masks`` as the calibrate stage wrote them; ``signs`` (float64) and
    ``cols`` (int64, the product's sum column) per LSM product; ``disc[d]`` the discount
    factor of date d, ``disc_t`` of maturity; ``euro`` (int64) = (european_call wanted,
    european_put wanted). A sample is a path, or with ``antithetic`` the pair driven by z
    and -z (each path exercises by the rule on its own; the sample is their mean). Blocks are
    spread over threads; each is computed whole by one thread."""
    n = block_stop - block_start
    out = np.zeros((n, N_STATS))
    for i in prange(n):
        _price_block(
            block_start + i,
            n_samples,
            steps,
            stride,
            consts,
            key,
            antithetic,
            coefs,
            masks,
            signs,
            cols,
            kind,
            degree,
            disc,
            disc_t,
            euro,
            out[i],
        )
    return out
