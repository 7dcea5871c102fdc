"""GBM prices and Greeks in one pass on the CPU: the kernel of ``montecarlo.gbm`` when the job
asks for ``greeks``.

The paths, the normals and the price sums are those of :mod:`tessera.kernels.montecarlo.cpu`
(the same inlined functions in the same order, so the ``sums`` rows are bit-identical to the
kernel without Greeks). Each sample also yields one estimator per (product, Greek), and a block's
second row holds their sums and sums of squares, columns ``greek_col(product, greek)`` and the
next one; lanes are added in lane order as for the prices.

Estimators, per path (D = exp(-rT), m = r - sigma**2 / 2, n = steps, dt = T / n, t_i = i dt,
W_T = (x_n - x0 - m T) / sigma the Brownian motion at maturity, Y = sum_i W_(t_i) =
(sum_i x_i - n x0 - m T (n + 1) / 2) / sigma, z_1 the first step's normal, Q = sum_i z_i**2):

* european_call / european_put: pathwise delta D 1{ITM} (+-S_T) / S0, vega D 1{ITM} (+-S_T)
  (W_T - sigma T), rho -T V + D 1{ITM} (+-S_T) T, theta r V - D 1{ITM} (+-S_T)
  (m + sigma W_T / (2T)); gamma by the mixed likelihood-ratio/pathwise estimator
  D 1{ITM} (+-S_T) / S0**2 (W_T / (sigma T) - 1) (the pathwise second derivative is a Dirac).
* asian_geometric_call: pathwise delta, vega (dG/dsigma = G (Y - sigma T (n+1)/2) / n), rho
  (dG/dr = G T (n+1) / (2n)) and theta (d log G/dT = (m T (n+1) / 2 + sigma Y / 2) / (n T));
  gamma mixed, with the score of the first increment replaced by its conditional expectation
  given Y (the payoff depends on the path only through Y): E[z_1 | Y] / (sigma sqrt(dt)) =
  T Y / (sigma dt Var(Y)), Var(Y) = dt n (n+1) (2n+1) / 6. Exact, no bump.
* asian_arithmetic_call: pathwise delta (A scales with S0), vega (dA/dsigma = (1/n) sum_i S_i
  (W_(t_i) - sigma t_i)), rho and theta, from the extra running sums sum S_i x_i and sum S_i i;
  gamma by a common-random-number central difference of the pathwise delta in S0 with relative
  bump ``GAMMA_BUMP``: the path at S0 (1 +- h) is the same path scaled, so the bumped deltas cost
  no simulation (D (A/S0) (1{A (1+h) > K} - 1{A (1-h) > K}) / (2 h S0)). Bias O(h**2).
* barrier_up_out_call: the knock-out indicator makes pathwise estimators biased, so all five
  are likelihood ratios: delta B z_1 / (S0 sigma sqrt(dt)), gamma B (z_1**2 - 1 - sigma sqrt(dt)
  z_1) / (S0**2 sigma**2 dt), vega B ((Q - n) / sigma - W_T), rho -T V + B W_T / sigma, theta
  r V - B (m W_T / (sigma dt) + (Q - n) / (2 dt)) / n (the fixings scale with T). Their variance
  grows with ``steps`` (delta and gamma use only the first step's density).

With antithetic sampling a sample's estimator is the mean over the pair, as for prices.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tessera.kernels.config import NJIT, NJIT_INLINE, NJIT_PARALLEL
from tessera.kernels.fastmath import exp
from tessera.kernels.montecarlo.cpu import (
    _N_ACC,
    BLOCK_SAMPLES,
    CHUNKS,
    COL_COUNT,
    LANES,
    N_STATS,
    NO_MAX,
    PRODUCT_ORDER,
    _advance,
    _normals,
    _payoffs,
)

GREEK_ORDER = ("delta", "gamma", "vega", "rho", "theta")
N_GREEKS = len(GREEK_ORDER)
N_GREEK_STATS = 2 * len(PRODUCT_ORDER) * N_GREEKS  # (sum, sum of squares) per product and Greek
GAMMA_BUMP = 0.01  # relative spot bump of the arithmetic Asian's CRN gamma

# The int64 flags vector: Q wanted, arithmetic Asian extras wanted, then one per PRODUCT_ORDER
# product (its estimators wanted).
FLAGS = ("squares", "arith_sums", *PRODUCT_ORDER)
# The float64 vector of model constants passed next to cpu.CONSTANTS, in this order.
GREEK_CONSTANTS = ("spot", "sigma", "rate", "maturity", "dt", "m", "bump")


def greek_col(product: str, greek: str) -> int:
    """Column of the estimator sum of ``greek`` of ``product`` in a row of Greek sums (the sum of
    squares is the next column)."""
    return 2 * (PRODUCT_ORDER.index(product) * N_GREEKS + GREEK_ORDER.index(greek))


@njit(**NJIT_INLINE)
def _squares(z, n, q):
    """Q += z**2 over the ``n`` normals of this step group (the pair shares Q)."""
    for j in range(n):
        for lane in range(LANES):
            q[lane] = q[lane] + z[j, lane] * z[j, lane]


@njit(**NJIT_INLINE)
def _arith_sums(z, n, ss, sxs, sis, step0):
    """sum S_i += exp(x_i) in step order (the additions of cpu._exp_sums, so the same bits),
    with sum S_i x_i and sum S_i i from the same exponentials."""
    for j in range(n):
        i = float(step0 + j + 1)
        for lane in range(LANES):
            s = exp(z[4 + j, lane])
            ss[lane] = ss[lane] + s
            sxs[lane] = sxs[lane] + s * z[4 + j, lane]
            sis[lane] = sis[lane] + s * i


@njit(**NJIT_INLINE)
def _greeks(est, weight, state, extras, z1, q, steps, consts, gc, want):
    """The Greek estimators of one path set, every lane, added times ``weight`` (1 for lone
    paths, 0.5 for each path of an antithetic pair; ``z1`` is negated by the caller for the
    minus paths) into ``est`` (rows product-major in GREEK_ORDER, a column per lane), for the
    products ``want`` flags (PRODUCT_ORDER). Loops over lanes free of branches (selects), so
    that they vectorise."""
    xs, sxs_, mxs, sss = state[0], state[1], state[2], state[3]
    sx_s, si_s = extras[0], extras[1]
    x0, vol, log_barrier, strike, disc = consts[0], consts[2], consts[3], consts[4], consts[5]
    sigma, rate, mat, dt, m, h = gc[1], gc[2], gc[3], gc[4], gc[5], gc[6]
    inv_s0, inv_sigma, inv_mat = 1.0 / gc[0], 1.0 / gc[1], 1.0 / gc[3]
    n = float(steps)
    inv_n = 1.0 / n
    inv_dt = 1.0 / dt
    inv_vol = 1.0 / vol
    if want[0] or want[1] or want[4]:
        for lane in range(LANES):
            x = xs[lane]
            st = exp(x)
            w = (x - x0 - m * mat) * inv_sigma
            call = disc * max(st - strike, 0.0)
            put = disc * max(strike - st, 0.0)
            mixed = (w * inv_sigma * inv_mat - 1.0) * inv_s0 * inv_s0
            dsig = w - sigma * mat
            dtee = m + 0.5 * sigma * w * inv_mat
            # european call and put: pathwise, gamma mixed
            dc = disc * st if st > strike else 0.0
            dp = -disc * st if st < strike else 0.0
            est[0, lane] += weight * dc * inv_s0
            est[1, lane] += weight * dc * mixed
            est[2, lane] += weight * dc * dsig
            est[3, lane] += weight * (dc - call) * mat
            est[4, lane] += weight * (rate * call - dc * dtee)
            est[5, lane] += weight * dp * inv_s0
            est[6, lane] += weight * dp * mixed
            est[7, lane] += weight * dp * dsig
            est[8, lane] += weight * (dp - put) * mat
            est[9, lane] += weight * (rate * put - dp * dtee)
            # up-and-out barrier call: likelihood ratios
            bw = weight * (call if mxs[lane] < log_barrier else 0.0)
            zz = z1[lane]
            qq = q[lane] - n
            est[20, lane] += bw * zz * inv_s0 * inv_vol
            est[21, lane] += bw * (zz * zz - 1.0 - vol * zz) * inv_s0 * inv_s0 * inv_vol * inv_vol
            est[22, lane] += bw * (qq * inv_sigma - w)
            est[23, lane] += bw * (w * inv_sigma - mat)
            est[24, lane] += bw * (rate - (m * w * inv_sigma + 0.5 * qq) * inv_dt * inv_n)
    if want[2]:  # arithmetic Asian: pathwise, gamma by the CRN scale bump
        for lane in range(LANES):
            ss, sxs, sis = sss[lane], sx_s[lane], si_s[lane]
            a = ss * inv_n
            asian_a = disc * max(a - strike, 0.0)
            da = disc if a > strike else 0.0
            up = disc if a * (1.0 + h) > strike else 0.0
            down = disc if a * (1.0 - h) > strike else 0.0
            sum_sw = (sxs - x0 * ss - m * dt * sis) * inv_sigma  # sum_i S_i W_(t_i)
            dadt = (0.5 * m * dt * sis + 0.5 * (sxs - x0 * ss)) * inv_mat * inv_n
            est[10, lane] += weight * da * a * inv_s0
            est[11, lane] += weight * (up - down) * a * inv_s0 * inv_s0 / (2.0 * h)
            est[12, lane] += weight * da * (sum_sw - sigma * dt * sis) * inv_n
            est[13, lane] += weight * (da * dt * sis * inv_n - mat * asian_a)
            est[14, lane] += weight * (rate * asian_a - da * dadt)
    if want[3]:  # geometric Asian: pathwise, gamma mixed with the score given Y
        var_y = dt * n * (n + 1.0) * (2.0 * n + 1.0) / 6.0
        for lane in range(LANES):
            sx = sxs_[lane]
            g = exp(sx * inv_n)
            y = (sx - n * x0 - 0.5 * m * mat * (n + 1.0)) * inv_sigma
            asian_g = disc * max(g - strike, 0.0)
            dg = disc * g if g > strike else 0.0
            score = mat * y * inv_sigma / (dt * var_y)
            dlogg = 0.5 * (m * mat * (n + 1.0) + sigma * y) * inv_n * inv_mat
            est[15, lane] += weight * dg * inv_s0
            est[16, lane] += weight * dg * (score - 1.0) * inv_s0 * inv_s0
            est[17, lane] += weight * dg * (y - 0.5 * sigma * mat * (n + 1.0)) * inv_n
            est[18, lane] += weight * (dg * 0.5 * mat * (n + 1.0) * inv_n - mat * asian_g)
            est[19, lane] += weight * (rate * asian_g - dg * dlogg)


@njit(**NJIT)
def _block(b, n_samples, steps, consts, greek_consts, key, antithetic, arith, flags, row, grow):
    """Block ``b``: its price row (as cpu._block) into ``row``, its Greek sums into ``grow``.

    ``flags``: see FLAGS."""
    x0, drift, vol, log_barrier, strike, disc = consts
    k0, k1 = key
    with_q = flags[0] != 0
    with_arith = flags[1] != 0
    want = flags[2:] != 0
    n_products = len(PRODUCT_ORDER)
    n_g = n_products * N_GREEKS
    plus = (np.empty(LANES), np.empty(LANES), np.empty(LANES), np.empty(LANES))
    minus = (np.empty(LANES), np.empty(LANES), np.empty(LANES), np.empty(LANES))
    extra_p = (np.empty(LANES), np.empty(LANES))
    extra_m = (np.empty(LANES), np.empty(LANES))
    q = np.empty(LANES)
    z1 = np.empty(LANES)
    z = np.empty((8, LANES))
    acc = np.zeros((_N_ACC, LANES))
    gacc = np.zeros((2 * n_g, LANES))
    est = np.empty((n_g, LANES))
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
        for e in (extra_p, extra_m):
            e[0][:] = 0.0
            e[1][:] = 0.0
        q[:] = 0.0
        for g in range(n_groups + (n_rem > 0)):
            n = 4 if g < n_groups else n_rem
            _normals(np.uint64(g), s0, k0, k1, z)
            if g == 0:
                for lane in range(LANES):
                    z1[lane] = z[0, lane]
            if with_q:
                _squares(z, n, q)
            if with_arith:  # sum S_i here, with the extras, instead of in _advance
                _advance(z, n, drift, vol, False, plus[0], plus[1], plus[2], plus[3])
                _arith_sums(z, n, plus[3], extra_p[0], extra_p[1], 4 * g)
                if antithetic:
                    _advance(z, n, drift, -vol, False, minus[0], minus[1], minus[2], minus[3])
                    _arith_sums(z, n, minus[3], extra_m[0], extra_m[1], 4 * g)
            else:
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
        est[:, :] = 0.0
        weight = 0.5 if antithetic else 1.0
        _greeks(est, weight, plus, extra_p, z1, q, steps, consts, greek_consts, want)
        if antithetic:
            for lane in range(LANES):
                z1[lane] = -z1[lane]
            _greeks(est, weight, minus, extra_m, z1, q, steps, consts, greek_consts, want)
        for prod in range(n_products):
            if want[prod]:
                for k in range(prod * N_GREEKS, (prod + 1) * N_GREEKS):
                    for lane in range(n_valid):
                        gacc[2 * k, lane] += est[k, lane]
                        gacc[2 * k + 1, lane] += est[k, lane] * est[k, lane]
    row[COL_COUNT] = float(count)
    for k in range(_N_ACC):
        total = 0.0
        for lane in range(LANES):  # fixed order: lane 0, 1, ..., 63
            total += acc[k, lane]
        row[1 + k] = total
    for k in range(2 * n_g):
        total = 0.0
        for lane in range(LANES):
            total += gacc[k, lane]
        grow[k] = total


@njit(**NJIT_PARALLEL)
def simulate_blocks_greeks(
    block_start, block_stop, n_samples, steps, consts, greek_consts, key, antithetic, arith, flags
):
    """Rows of price sums ``(stop - start, N_STATS)`` (equal to cpu.simulate_blocks') and of Greek
    sums ``(stop - start, N_GREEK_STATS)`` of blocks ``block_start .. block_stop``.

    ``consts`` as cpu.CONSTANTS, ``greek_consts`` as GREEK_CONSTANTS, ``flags`` the int64
    vector named by FLAGS: the per-step sums only some Greeks need, and the products whose
    estimators are wanted (the others' columns stay 0)."""
    n = block_stop - block_start
    out = np.zeros((n, N_STATS))
    gout = np.zeros((n, N_GREEK_STATS))
    for i in prange(n):
        _block(
            block_start + i,
            n_samples,
            steps,
            consts,
            greek_consts,
            key,
            antithetic,
            arith,
            flags,
            out[i],
            gout[i],
        )
    return out, gout
