"""``montecarlo.book`` on the CPU: every trade of a book priced on shared paths, one row of
per-trade sums per block of samples.

Layout of the work. Each underlying has its own time grid: the uniform nodes ``k / steps_per_year``
up to its last maturity, plus every maturity of its trades that is not one of them (node 0 is
time 0). A trade's fixings (Asian averages, barrier checks) are the uniform nodes before its
maturity and the maturity itself. Sample ``s`` (a path, or an antithetic pair) of underlying ``u``
draws its normals from Philox blocks with counter word 3 = ``u``: GBM interval ``j`` takes word
``j % 4`` of the block at counter ``(j // 4, s mod 2**32, s div 2**32, u)`` (Box-Muller as
:mod:`tessera.kernels.rng`); Heston interval ``j`` takes the block of
:func:`tessera.kernels.montecarlo.heston_cpu.heston_step` with stream ``u``. So a path is a pure
function of (seed, underlying, sample) and every trade on an underlying sees the same paths
(common random numbers), whatever shard, thread or executor computes it.

Per sample and underlying the path is simulated once per sign (and once more per sign for each
bumped v0 of a Heston vega); the other Greek scenarios are exact transforms of the same path
(a rate bump shifts x_k by h t_k in both models; a GBM volatility bump rescales its Brownian
part). Each scenario's path is summarised by prefix sums over the uniform nodes (sum of S, sum
of log S, running max of log S, fixing count), so a trade costs O(1) per scenario whatever its
maturity. Blocks are computed whole by one thread, samples in order, so a row depends only on
(params, seed, block).

Greek estimators per trade (columns of a row: sum and sum of squares of each estimator, price
first, then the Greeks in the order asked): delta is pathwise through the scale of the path
(every S_i scales with S0 in both models), except for the barrier, whose knock-out indicator
makes that biased: there a central difference of the payoff at S0 (1 +- h) on the same path;
gamma is the central difference of the pathwise delta at S0 (1 +- h) (second difference of the
payoff for the barrier), on the same path, so no simulation; vega is a common-random-number
central difference in volatility (GBM, exact rescaling) or v0 (Heston, re-simulated); rho a
central difference in the rate (exact shift). Bumps: ``SPOT_BUMP``, ``VOL_BUMP`` (relative),
``RATE_BUMP`` (absolute); the bias of each is O(h**2).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tessera.kernels.config import NJIT, NJIT_INLINE, NJIT_PARALLEL
from tessera.kernels.fastmath import exp
from tessera.kernels.montecarlo.heston_cpu import heston_step
from tessera.kernels.rng import box_muller, philox_block

BLOCK_SAMPLES = 1024  # samples per block (one row of per-trade sums); a constant of the kernel
SPOT_BUMP = 0.01
VOL_BUMP = 0.01
RATE_BUMP = 1.0e-3
NO_BARRIER = 1.0e308
NO_MAX = -1.0e308

MODEL_GBM = 0
MODEL_HESTON = 1
# Product codes (book_params.GBM_PRODUCTS order).
CALL, PUT, ASIAN_A, ASIAN_G, BARRIER = 0, 1, 2, 3, 4
# Greek slots of the estimator vector of one trade: price, delta, gamma, vega, rho.
N_SLOTS = 5
# Scenarios of one sign's path: base, vega up, vega down, rate up, rate down.
N_SCEN = 5

_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@njit(**NJIT_INLINE)
def _gbm_path(x, k0_, k1_, s, stream, sign, x0, drift, vol, n_int):
    """x[0..n_int] = log prices of the GBM path of sample ``s`` (``sign`` -1: its antithetic
    twin) on intervals with per-interval ``drift`` and ``vol``."""
    x[0] = x0
    su = np.uint64(s)
    z0 = z1 = z2 = z3 = 0.0
    for j in range(n_int):
        if j % 4 == 0:
            w0, w1, w2, w3 = philox_block(
                np.uint64(j // 4), su & _MASK32, su >> _S32, np.uint64(stream), k0_, k1_
            )
            z0, z1 = box_muller(w0, w1)
            z2, z3 = box_muller(w2, w3)
        r = j % 4
        z = z0 if r == 0 else (z1 if r == 1 else (z2 if r == 2 else z3))
        x[j + 1] = x[j] + (drift[j] + vol[j] * (sign * z))


@njit(**NJIT_INLINE)
def _heston_path(x, k0_, k1_, s, stream, sign, x0, v0, consts, scheme, n_int):
    """x[0..n_int] = log prices of the Heston path of sample ``s`` from variance ``v0``."""
    x[0] = x0
    xx, v = x0, v0
    for j in range(n_int):
        xx, v = heston_step(xx, v, j, s, stream, k0_, k1_, sign, consts[j], scheme)
        x[j + 1] = xx


@njit(**NJIT_INLINE)
def _prefix(x, uni, n_nodes, cum_s, cum_x, mx, cnt, with_s):
    """Prefix sums over the uniform nodes 1..k: sum of exp(x) (only ``with_s``), sum of x,
    max of x and their count."""
    cum_s[0] = 0.0
    cum_x[0] = 0.0
    mx[0] = NO_MAX
    cnt[0] = 0.0
    for k in range(1, n_nodes):
        if uni[k]:
            cum_s[k] = cum_s[k - 1] + (exp(x[k]) if with_s else 0.0)
            cum_x[k] = cum_x[k - 1] + x[k]
            mx[k] = max(mx[k - 1], x[k])
            cnt[k] = cnt[k - 1] + 1.0
        else:
            cum_s[k] = cum_s[k - 1]
            cum_x[k] = cum_x[k - 1]
            mx[k] = mx[k - 1]
            cnt[k] = cnt[k - 1]


@njit(**NJIT_INLINE)
def _payoff(prod, lam, log_lam, st, a, g, m, strike, log_barrier, disc):
    """Discounted payoff of product ``prod`` on the path scaled by ``lam`` (log ``log_lam``)."""
    if prod == CALL:
        return disc * max(lam * st - strike, 0.0)
    if prod == PUT:
        return disc * max(strike - lam * st, 0.0)
    if prod == ASIAN_A:
        return disc * max(lam * a - strike, 0.0)
    if prod == ASIAN_G:
        return disc * max(lam * g - strike, 0.0)
    if m + log_lam < log_barrier:
        return disc * max(lam * st - strike, 0.0)
    return 0.0


@njit(**NJIT_INLINE)
def _underlying_value(prod, st, a, g):
    """The quantity the payoff is written on (S_T, A or G)."""
    if prod == ASIAN_A:
        return a
    if prod == ASIAN_G:
        return g
    return st


@njit(**NJIT_INLINE)
def _pathwise_delta(prod, lam, value, strike, disc, inv_s0):
    """Pathwise delta at spot lam * S0 (the same path scaled): D 1{ITM} value / S0."""
    if prod == PUT:
        return -disc * value * inv_s0 if lam * value < strike else 0.0
    return disc * value * inv_s0 if lam * value > strike else 0.0


@njit(**NJIT_INLINE)
def _stats(x, uni, cum_s, cum_x, mx, cnt, m):
    """(S_T, A, G, max log S over the fixings) of a trade maturing at node ``m``."""
    xm = x[m]
    if uni[m]:
        c, ss, sx, mmax = cnt[m], cum_s[m], cum_x[m], mx[m]
    else:
        c = cnt[m - 1] + 1.0
        ss = cum_s[m - 1] + exp(xm)
        sx = cum_x[m - 1] + xm
        mmax = max(mx[m - 1], xm)
    return exp(xm), ss / c, exp(sx / c), mmax


@njit(**NJIT_INLINE)
def _scenario_payoff(xs, cum_s, cum_x, mxs, cnt, si, sc, uni, m, prod, strike, logb, disc):
    """The payoff of a trade on scenario ``sc`` of sign ``si``'s path."""
    st, a, g, mmax = _stats(
        xs[si, sc], uni, cum_s[si, sc], cum_x[si, sc], mxs[si, sc], cnt[si, sc], m
    )
    return _payoff(prod, 1.0, 0.0, st, a, g, mmax, strike, logb, disc)


@njit(**NJIT)
def _block(
    b,
    n_samples,
    key,
    antithetic,
    u_model,
    u_x0,
    u_v0,
    u_sigma,
    u_scheme,
    g_off,
    g_times,
    g_uni,
    g_drift,
    g_vol,
    h_consts,
    t_off,
    t_order,
    t_prod,
    t_strike,
    t_node,
    t_logb,
    t_disc,
    t_mat,
    u_has_asian,
    rate,
    slots,
    bumps,
    row,
):
    """Block ``b``'s per-trade sums into ``row`` (n_trades, 2 * len(slots))."""
    k0_, k1_ = key[0], key[1]
    n_under = u_model.shape[0]
    max_nodes = 1
    for u in range(n_under):
        max_nodes = max(max_nodes, g_off[u + 1] - g_off[u])
    n_signs = 2 if antithetic else 1
    # per sign and scenario: x, prefix sums; scratch x for transforms
    xs = np.empty((n_signs, N_SCEN, max_nodes))
    cum_s = np.empty((n_signs, N_SCEN, max_nodes))
    cum_x = np.empty((n_signs, N_SCEN, max_nodes))
    mxs = np.empty((n_signs, N_SCEN, max_nodes))
    cnt = np.empty((n_signs, N_SCEN, max_nodes))
    want_vega = slots[3] >= 0
    want_rho = slots[4] >= 0
    want_delta = slots[1] >= 0 or slots[2] >= 0
    weight = 0.5 if antithetic else 1.0
    h_s, h_v, h_r = bumps[0], bumps[1], bumps[2]
    log_up, log_dn = bumps[3], bumps[4]  # log(1 + h_s), log(1 - h_s)
    est = np.empty(N_SLOTS)
    first = b * BLOCK_SAMPLES
    last = min(first + BLOCK_SAMPLES, n_samples)
    for s in range(first, last):
        for u in range(n_under):
            lo, hi = g_off[u], g_off[u + 1]
            n_nodes = hi - lo
            n_int = n_nodes - 1
            times = g_times[lo:hi]
            uni = g_uni[lo:hi]
            x0 = u_x0[u]
            sigma = u_sigma[u]
            with_s = u_has_asian[u] != 0
            for si in range(n_signs):
                sign = 1.0 if si == 0 else -1.0
                base = xs[si, 0]
                if u_model[u] == MODEL_GBM:
                    _gbm_path(base, k0_, k1_, s, u, sign, x0, g_drift[lo:hi], g_vol[lo:hi], n_int)
                else:
                    _heston_path(
                        base,
                        k0_,
                        k1_,
                        s,
                        u,
                        sign,
                        x0,
                        u_v0[u],
                        h_consts[lo:hi],
                        u_scheme[u],
                        n_int,
                    )
                if want_vega:
                    for d in range(2):
                        bumped = xs[si, 1 + d]
                        f = 1.0 + h_v if d == 0 else 1.0 - h_v
                        if u_model[u] == MODEL_GBM:
                            # the same Brownian path at volatility sigma * f:
                            # x' = x0 + m' t + f (x - x0 - m t)
                            m0 = rate - 0.5 * sigma * sigma
                            s1 = sigma * f
                            m1 = rate - 0.5 * s1 * s1
                            for k in range(n_nodes):
                                bumped[k] = x0 + m1 * times[k] + f * (base[k] - x0 - m0 * times[k])
                        else:
                            _heston_path(
                                bumped,
                                k0_,
                                k1_,
                                s,
                                u,
                                sign,
                                x0,
                                u_v0[u] * f,
                                h_consts[lo:hi],
                                u_scheme[u],
                                n_int,
                            )
                if want_rho:
                    for d in range(2):
                        shifted = xs[si, 3 + d]
                        h = h_r if d == 0 else -h_r
                        for k in range(n_nodes):
                            shifted[k] = base[k] + h * times[k]
                for sc in range(N_SCEN):
                    if (sc == 1 or sc == 2) and not want_vega:
                        continue
                    if (sc == 3 or sc == 4) and not want_rho:
                        continue
                    _prefix(
                        xs[si, sc],
                        uni,
                        n_nodes,
                        cum_s[si, sc],
                        cum_x[si, sc],
                        mxs[si, sc],
                        cnt[si, sc],
                        with_s,
                    )
            inv_s0 = 1.0 / exp(x0)
            for i in range(t_off[u], t_off[u + 1]):
                t = t_order[i]
                prod = t_prod[t]
                strike = t_strike[t]
                m = t_node[t]
                logb = t_logb[t]
                disc = t_disc[t]
                est[:] = 0.0
                for si in range(n_signs):
                    st, a, g, mmax = _stats(
                        xs[si, 0], uni, cum_s[si, 0], cum_x[si, 0], mxs[si, 0], cnt[si, 0], m
                    )
                    est[0] += weight * _payoff(prod, 1.0, 0.0, st, a, g, mmax, strike, logb, disc)
                    if want_delta:
                        up_f, dn_f = 1.0 + h_s, 1.0 - h_s
                        if prod == BARRIER:
                            pu = _payoff(prod, up_f, log_up, st, a, g, mmax, strike, logb, disc)
                            pd = _payoff(prod, dn_f, log_dn, st, a, g, mmax, strike, logb, disc)
                            p0 = _payoff(prod, 1.0, 0.0, st, a, g, mmax, strike, logb, disc)
                            est[1] += weight * (pu - pd) * inv_s0 / (2.0 * h_s)
                            est[2] += weight * (pu - 2.0 * p0 + pd) * inv_s0 * inv_s0 / (h_s * h_s)
                        else:
                            value = _underlying_value(prod, st, a, g)
                            est[1] += weight * _pathwise_delta(
                                prod, 1.0, value, strike, disc, inv_s0
                            )
                            du = _pathwise_delta(prod, up_f, value, strike, disc, inv_s0)
                            dd = _pathwise_delta(prod, dn_f, value, strike, disc, inv_s0)
                            est[2] += weight * (du - dd) * inv_s0 / (2.0 * h_s)
                    if want_vega:
                        pv_up = _scenario_payoff(
                            xs, cum_s, cum_x, mxs, cnt, si, 1, uni, m, prod, strike, logb, disc
                        )
                        pv_dn = _scenario_payoff(
                            xs, cum_s, cum_x, mxs, cnt, si, 2, uni, m, prod, strike, logb, disc
                        )
                        scale = sigma if u_model[u] == MODEL_GBM else u_v0[u]
                        est[3] += weight * (pv_up - pv_dn) / (2.0 * h_v * scale)
                    if want_rho:
                        d_up = disc * exp(-h_r * t_mat[t])
                        d_dn = disc * exp(h_r * t_mat[t])
                        pr_up = _scenario_payoff(
                            xs, cum_s, cum_x, mxs, cnt, si, 3, uni, m, prod, strike, logb, d_up
                        )
                        pr_dn = _scenario_payoff(
                            xs, cum_s, cum_x, mxs, cnt, si, 4, uni, m, prod, strike, logb, d_dn
                        )
                        est[4] += weight * (pr_up - pr_dn) / (2.0 * h_r)
                for k in range(N_SLOTS):
                    c = slots[k]
                    if c >= 0:
                        row[t, 2 * c] += est[k]
                        row[t, 2 * c + 1] += est[k] * est[k]


@njit(**NJIT_PARALLEL)
def simulate_blocks(
    block_start,
    block_stop,
    n_samples,
    n_trades,
    n_cols,
    key,
    antithetic,
    u_model,
    u_x0,
    u_v0,
    u_sigma,
    u_scheme,
    g_off,
    g_times,
    g_uni,
    g_drift,
    g_vol,
    h_consts,
    t_off,
    t_order,
    t_prod,
    t_strike,
    t_node,
    t_logb,
    t_disc,
    t_mat,
    u_has_asian,
    rate,
    slots,
    bumps,
):
    """Per-trade sums of blocks ``block_start .. block_stop``: a float64 array
    ``(stop - start, n_trades, n_cols)``, columns (sum, sum of squares) per slot in ``slots``
    order. The arrays are built by :func:`tessera.kernels.montecarlo.book.plan_arrays`."""
    n = block_stop - block_start
    out = np.zeros((n, n_trades, n_cols))
    for i in prange(n):
        _block(
            block_start + i,
            n_samples,
            key,
            antithetic,
            u_model,
            u_x0,
            u_v0,
            u_sigma,
            u_scheme,
            g_off,
            g_times,
            g_uni,
            g_drift,
            g_vol,
            h_consts,
            t_off,
            t_order,
            t_prod,
            t_strike,
            t_node,
            t_logb,
            t_disc,
            t_mat,
            u_has_asian,
            rate,
            slots,
            bumps,
            out[i],
        )
    return out
