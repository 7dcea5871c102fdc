"""Heston path simulation and payoff sums on the CPU: the step functions (shared with
``montecarlo.book``) and the block kernel of ``montecarlo.heston``.

Model (risk neutral), x = log S::

    dx = (rate - v/2) dt + sqrt(v) dW1,   dv = kappa (theta - v) dt + xi sqrt(v) dW2,
    d<W1, W2> = rho dt

Random streams (fixed; part of the kernel's output contract). Step ``j`` (0-based, the step from
t_j to t_{j+1}) of sample ``s`` (a path, or an antithetic pair) of stream ``stream`` uses ONE
Philox4x32-10 block, counter ``(j, s mod 2**32, s div 2**32, stream)``, key
``tessera.kernels.rng.seed_key(seed)``; its words give::

    (zv, zx) = Box-Muller(word 0 -> radius, word 1 -> angle)      (as tessera.kernels.rng)
    u        = (word 2 + 0.5) * 2**-32                           (uniform in (0, 1))
    word 3 unused

``zv`` drives the variance, ``zx`` the part of the log price independent of it, ``u`` the
exponential branch of QE. The antithetic twin of a path uses (-zv, -zx, 1 - u) (exact in
float64). ``montecarlo.heston`` uses stream 0; ``montecarlo.book`` uses the underlying's index.

Schemes (``scheme`` argument, int constants):

- ``SCHEME_QE``: Andersen (2008), quadratic-exponential variance step with psi_c = 1.5 and the
  log-price step ``x += rate dt + K0 + K1 v + K2 v' + sqrt(K3 v + K4 v') zx`` with
  gamma1 = gamma2 = 1/2;
- ``SCHEME_QE_M``: the same with Andersen's martingale correction (K0 replaced per step so that
  E[exp(x') | x, v] = exp(x + rate dt) exactly; where its condition A < 1/(2a) (quadratic
  branch) or A < beta (exponential branch) fails, the step keeps the plain K0);
- ``SCHEME_EULER``: log-Euler with full truncation, v+ = max(v, 0)::

      x' = x + (rate - v+/2) dt + sqrt(v+ dt) (rho zv + sqrt(1 - rho**2) zx)
      v' = v + kappa (theta - v+) dt + xi sqrt(v+ dt) zv       (v' may be negative)

The public step API (used by ``montecarlo.book`` on its non-uniform grids):

- ``step_constants(dt, kappa, theta, xi, rho, rate) -> np.ndarray`` (float64, ``N_STEP_CONSTS``)
  for one interval of length ``dt > 0``;
- ``heston_step(x, v, step, sample, stream, k0, k1, sign, c, scheme) -> (x, v)``: one step with
  the constants ``c`` of its interval, drawing that step's Philox block (``sign`` +1.0 for the
  path, -1.0 for its antithetic twin). It is ``step_draws`` followed by ``step_advance``.

The block kernel below makes the same draws and the same arithmetic, arranged for speed: per
chunk of ``LANES`` samples and per step it draws every lane at once (``_draws``, vectorised, one
draw shared by the pair and the vega scenarios), then advances each path state of every lane,
by ``step_advance`` (Euler) or by ``_qe_lanes``, which is ``step_advance``'s QE arithmetic
written without branches (both branches computed, one selected: the same bits, and 1.3-1.8x
faster than branching, measured). So ``montecarlo.book`` (a loop over ``heston_step``) and this
kernel agree path for path; ``tests/test_heston.py::test_kernel_paths_are_the_public_step_function``
checks it for every scheme.

Elementary functions come from :mod:`tessera.kernels.fastmath` (exp, log) and IEEE sqrt, never
libm, so the bits do not depend on the machine. A block's row of sums is computed whole by one
thread, samples in order, each lane (sample index mod ``LANES``) keeping its own sums, the lanes
added in lane order at the end: a pure function of (params, seed, block index).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from tessera.kernels.config import NJIT, NJIT_INLINE, NJIT_PARALLEL
from tessera.kernels.fastmath import exp, log
from tessera.kernels.rng import box_muller, philox_block, radius, rotate, uniform

SCHEME_EULER = 0
SCHEME_QE = 1
SCHEME_QE_M = 2
PSI_C = 1.5  # QE: quadratic branch for psi <= PSI_C, exponential branch above
GAMMA1 = 0.5  # QE: weights of v and v' in the integrated variance
GAMMA2 = 0.5

# Indices into the vector returned by step_constants.
STEP_CONSTANTS = (
    "dt",
    "e",  # exp(-kappa dt)
    "m1",  # theta (1 - e): the conditional mean of v' is v e + m1
    "s2v",  # xi^2 e (1 - e) / kappa: the conditional variance of v' is v s2v + s2c
    "s2c",  # theta xi^2 (1 - e)^2 / (2 kappa)
    "k0r",  # rate dt + K0, K0 = -rho kappa theta dt / xi
    "k1",
    "k2",
    "k3",
    "k4",
    "a",  # K2 + K4 / 2 (martingale correction)
    "k1h",  # K1 + K3 / 2 (martingale correction)
    "rdt",  # rate dt
    "kdt",  # kappa dt
    "ktdt",  # kappa theta dt
    "xisdt",  # xi sqrt(dt)
    "rho",
    "rhobar",  # sqrt(1 - rho^2)
    "sdt",  # sqrt(dt)
)
(
    C_DT,
    C_E,
    C_M1,
    C_S2V,
    C_S2C,
    C_K0R,
    C_K1,
    C_K2,
    C_K3,
    C_K4,
    C_A,
    C_K1H,
    C_RDT,
    C_KDT,
    C_KTDT,
    C_XISDT,
    C_RHO,
    C_RHOBAR,
    C_SDT,
) = range(len(STEP_CONSTANTS))
N_STEP_CONSTS = len(STEP_CONSTANTS)


def _one_minus_exp(y: float) -> float:
    """1 - exp(-y) for y > 0 without cancellation for small y (Taylor series below 1e-3, whose
    truncation error is < y**7 / 5040, far below an ulp)."""
    if y > 1e-3:
        return 1.0 - float(exp(-y))
    return y * (1 - y / 2 * (1 - y / 3 * (1 - y / 4 * (1 - y / 5 * (1 - y / 6 * (1 - y / 7))))))


def step_constants(
    dt: float, kappa: float, theta: float, xi: float, rho: float, rate: float
) -> np.ndarray:
    """The per-step constants of one interval of length ``dt`` (years, > 0): a float64 array of
    ``N_STEP_CONSTS`` values named by ``STEP_CONSTANTS``, for every scheme. ``kappa``,
    ``theta``, ``xi`` > 0 and ``rho`` in [-1, 1] as validated by ``heston_params``; ``rate``
    continuously compounded per year. Raises ``ValueError`` for ``dt <= 0``. Plain Python
    (exp from ``tessera.kernels.fastmath``), called once per grid interval."""
    if not dt > 0.0:
        raise ValueError(f"dt must be > 0, got {dt!r}")
    y = kappa * dt
    e = float(exp(-y))
    om = _one_minus_exp(y)
    k0 = -rho * kappa * theta * dt / xi
    k1 = GAMMA1 * dt * (kappa * rho / xi - 0.5) - rho / xi
    k2 = GAMMA2 * dt * (kappa * rho / xi - 0.5) + rho / xi
    k3 = GAMMA1 * dt * (1.0 - rho * rho)
    k4 = GAMMA2 * dt * (1.0 - rho * rho)
    values = {
        "dt": dt,
        "e": e,
        "m1": theta * om,
        "s2v": xi * xi * e * om / kappa,
        "s2c": theta * xi * xi * om * om / (2.0 * kappa),
        "k0r": rate * dt + k0,
        "k1": k1,
        "k2": k2,
        "k3": k3,
        "k4": k4,
        "a": k2 + 0.5 * k4,
        "k1h": k1 + 0.5 * k3,
        "rdt": rate * dt,
        "kdt": kappa * dt,
        "ktdt": kappa * theta * dt,
        "xisdt": xi * math.sqrt(dt),
        "rho": rho,
        "rhobar": math.sqrt(max(1.0 - rho * rho, 0.0)),
        "sdt": math.sqrt(dt),
    }
    return np.array([values[name] for name in STEP_CONSTANTS], dtype=np.float64)


_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@njit(**NJIT_INLINE)
def step_draws(step, sample, stream, k0, k1):
    """``(zv, zx, u)`` of step ``step`` of sample ``sample`` in stream ``stream`` (see the
    module docstring for the Philox counter and the use of its words)."""
    s = np.uint64(sample)
    w0, w1, w2, _ = philox_block(np.uint64(step), s & _MASK32, s >> _S32, stream, k0, k1)
    zv, zx = box_muller(w0, w1)
    return zv, zx, uniform(w2)


@njit(**NJIT_INLINE)
def step_advance(x, v, zv, zx, u, sign, c, scheme):
    """``(x', v')``: log price and variance after one step with constants ``c`` (from
    ``step_constants``) driven by ``(sign zv, sign zx)`` and ``u`` (``1 - u`` when sign < 0)."""
    zs = sign * zv
    zp = sign * zx
    if scheme == SCHEME_EULER:
        vp = max(v, 0.0)
        sv = np.sqrt(vp)
        w = c[C_RHO] * zs + c[C_RHOBAR] * zp
        xn = x + (c[C_RDT] - 0.5 * vp * c[C_DT]) + sv * c[C_SDT] * w
        vn = v + (c[C_KTDT] - c[C_KDT] * vp) + c[C_XISDT] * sv * zs
        return xn, vn
    m = v * c[C_E] + c[C_M1]
    s2 = v * c[C_S2V] + c[C_S2C]
    psi = s2 / (m * m)
    k0 = c[C_K0R]
    if psi <= PSI_C:
        ip = 2.0 / psi
        b2 = ip - 1.0 + np.sqrt(ip) * np.sqrt(ip - 1.0)
        a = m / (1.0 + b2)
        zb = np.sqrt(b2) + zs
        vn = a * zb * zb
        if scheme == SCHEME_QE_M:
            aa = c[C_A]
            q = 1.0 - 2.0 * aa * a
            if q > 0.0:
                k0 = c[C_RDT] - aa * b2 * a / q + 0.5 * log(q) - c[C_K1H] * v
    else:
        p = (psi - 1.0) / (psi + 1.0)
        beta = (1.0 - p) / m
        uu = u if sign > 0.0 else 1.0 - u
        vn = 0.0 if uu <= p else log((1.0 - p) / (1.0 - uu)) / beta
        if scheme == SCHEME_QE_M:
            aa = c[C_A]
            if aa < beta:
                k0 = c[C_RDT] - log(p + beta * (1.0 - p) / (beta - aa)) - c[C_K1H] * v
    xn = x + k0 + c[C_K1] * v + c[C_K2] * vn + np.sqrt(c[C_K3] * v + c[C_K4] * vn) * zp
    return xn, vn


@njit(**NJIT_INLINE)
def heston_step(x, v, step, sample, stream, k0, k1, sign, c, scheme):
    """One Heston step: ``(x, v)`` -> ``(x', v')`` for step ``step`` (0-based, the Philox
    counter word 0) of sample ``sample`` (words 1, 2) in stream ``stream`` (word 3), key words
    ``k0, k1``; ``sign`` +1.0 for the path, -1.0 for its antithetic twin; ``c`` the interval's
    ``step_constants``; ``scheme`` one of ``SCHEME_QE``, ``SCHEME_QE_M``, ``SCHEME_EULER``.
    Inlined into the caller (``@njit(inline="always")``)."""
    zv, zx, u = step_draws(step, sample, stream, k0, k1)
    return step_advance(x, v, zv, zx, u, sign, c, scheme)


# --- the montecarlo.heston block kernel --------------------------------------------------------

LANES = 64  # per-lane running sums (a lane holds samples s with s mod LANES = lane)
BLOCK_SAMPLES = 1024  # samples per block (one row of sums); a constant of the kernel
CHUNKS = BLOCK_SAMPLES // LANES
SPOT_BUMP = 0.01  # relative spot bump h of the gamma (and barrier delta) differences
VEGA_BUMP = 0.01  # relative v0 bump of the vega difference (as montecarlo.book's)
NO_MAX = -1.0e308
NO_BARRIER = 1.0e308

PRODUCT_ORDER = ("european_call", "european_put", "asian_arithmetic_call", "barrier_up_out_call")
ESTIMATORS = ("price", "delta", "gamma", "vega")
N_PRODUCTS = len(PRODUCT_ORDER)
N_EST = N_PRODUCTS * len(ESTIMATORS)  # estimator e of product i is est[4 i + e]
N_ACC = 2 * N_EST  # per estimator: sum, sum of squares
COL_COUNT = 0
N_STATS = 1 + N_ACC

# The float64 vector of kernel constants passed to simulate_blocks, in this order.
KERNEL_CONSTANTS = (
    "x0",  # log spot
    "v0",
    "v0_up",  # v0 (1 + VEGA_BUMP)
    "v0_dn",  # v0 (1 - VEGA_BUMP)
    "strike",
    "log_barrier",  # NO_BARRIER for none
    "disc",  # exp(-rate maturity)
    "inv_steps",
    "lam_up",  # 1 + SPOT_BUMP
    "lam_dn",  # 1 - SPOT_BUMP
    "loglam_up",
    "loglam_dn",
    "inv_spot",
    "spot_den",  # spot (lam_up - lam_dn)
    "gamma_den",  # (spot SPOT_BUMP)^2
    "vega_den",  # v0_up - v0_dn
)
# The int64 flags vector: scheme, antithetic, arithmetic Asian wanted, vega wanted.
FLAGS = ("scheme", "antithetic", "asian", "vega")


def col_sum(product: str, estimator: str = "price") -> int:
    """Column of the sum of ``estimator`` of ``product`` in a row of sums."""
    return 1 + 2 * (len(ESTIMATORS) * PRODUCT_ORDER.index(product) + ESTIMATORS.index(estimator))


@njit(**NJIT_INLINE)
def _prices(x, ss, mx, kc):
    """Discounted payoffs of the four products on a path (x_T, sum of S_i, max of x_i)."""
    disc, strike = kc[6], kc[4]
    st = exp(x)
    a = ss * kc[7]
    call = disc * max(st - strike, 0.0)
    put = disc * max(strike - st, 0.0)
    asian = disc * max(a - strike, 0.0)
    barrier = call if mx < kc[5] else 0.0
    return call, put, asian, barrier


@njit(**NJIT_INLINE)
def _add_estimators(x, ss, mx, kc, w, est):
    """est += w * (price, delta, gamma) of each product on one path (vega apart)."""
    disc, strike, log_b = kc[6], kc[4], kc[5]
    lu, ld, llu, lld = kc[8], kc[9], kc[10], kc[11]
    inv_spot, spot_den, gamma_den = kc[12], kc[13], kc[14]
    st = exp(x)
    a = ss * kc[7]
    # european call: pathwise delta; gamma = central difference of the pathwise delta in
    # the scale of the path (every S_i scales with S0)
    r = disc * st * inv_spot
    est[0] += w * (disc * max(st - strike, 0.0))
    est[1] += w * (r if st > strike else 0.0)
    g = (r if lu * st > strike else 0.0) - (r if ld * st > strike else 0.0)
    est[2] += w * (g / spot_den)
    # european put
    est[4] += w * (disc * max(strike - st, 0.0))
    est[5] += w * (-r if st < strike else 0.0)
    g = (r if ld * st < strike else 0.0) - (r if lu * st < strike else 0.0)
    est[6] += w * (g / spot_den)
    # arithmetic Asian call: the average scales with S0 too
    ra = disc * a * inv_spot
    est[8] += w * (disc * max(a - strike, 0.0))
    est[9] += w * (ra if a > strike else 0.0)
    g = (ra if lu * a > strike else 0.0) - (ra if ld * a > strike else 0.0)
    est[10] += w * (g / spot_den)
    # up-and-out barrier call: the knock-out makes the pathwise delta biased; the payoff at
    # S0 lam is exact on the same path (S_T -> lam S_T, max x -> max x + log lam)
    f0 = disc * max(st - strike, 0.0) if mx < log_b else 0.0
    fu = disc * max(lu * st - strike, 0.0) if mx + llu < log_b else 0.0
    fd = disc * max(ld * st - strike, 0.0) if mx + lld < log_b else 0.0
    est[12] += w * f0
    est[13] += w * ((fu - fd) / spot_den)
    est[14] += w * ((fu - 2.0 * f0 + fd) / gamma_den)


@njit(**NJIT_INLINE)
def _draws(step, s0, k0, k1, zv, zx, u):
    """zv, zx, u[lane] = ``step_draws(step, s0 + lane, 0, k0, k1)`` for every lane, in three
    passes without branches (LLVM vectorises them; the same operations as ``box_muller``)."""
    for lane in range(LANES):
        s = s0 + np.uint64(lane)
        w0, w1, w2, _ = philox_block(np.uint64(step), s & _MASK32, s >> _S32, 0, k0, k1)
        zv[lane] = uniform(w0)
        zx[lane] = uniform(w1)
        u[lane] = uniform(w2)
    for lane in range(LANES):
        zv[lane] = radius(zv[lane])
    for lane in range(LANES):
        zv[lane], zx[lane] = rotate(zv[lane], zx[lane])


@njit(**NJIT_INLINE)
def _qe_lanes(xs, vs, zv, zx, u, sign, c, corrected):
    """``step_advance`` of a QE scheme for every lane of one path state (rows ``xs``, ``vs``),
    written without branches: both QE branches (and both martingale corrections) are computed
    and one is selected, which gives ``step_advance``'s bits and lets LLVM vectorise the loop.
    Values of the branch not taken may be NaN; they are never selected."""
    e, m1, s2v, s2c = c[C_E], c[C_M1], c[C_S2V], c[C_S2C]
    k0r, k1, k2, k3, k4 = c[C_K0R], c[C_K1], c[C_K2], c[C_K3], c[C_K4]
    aa, k1h, rdt = c[C_A], c[C_K1H], c[C_RDT]
    for lane in range(LANES):
        x, v = xs[lane], vs[lane]
        zs = sign * zv[lane]
        zp = sign * zx[lane]
        m = v * e + m1
        s2 = v * s2v + s2c
        psi = s2 / (m * m)
        ip = 2.0 / psi
        b2 = ip - 1.0 + np.sqrt(ip) * np.sqrt(ip - 1.0)
        a = m / (1.0 + b2)
        zb = np.sqrt(b2) + zs
        vq = a * zb * zb
        p = (psi - 1.0) / (psi + 1.0)
        beta = (1.0 - p) / m
        uu = u[lane] if sign > 0.0 else 1.0 - u[lane]
        ve = 0.0 if uu <= p else log((1.0 - p) / (1.0 - uu)) / beta
        quad = psi <= PSI_C
        vn = vq if quad else ve
        k0 = k0r
        if corrected:
            q = 1.0 - 2.0 * aa * a
            kq = rdt - aa * b2 * a / q + 0.5 * log(q) - k1h * v
            ke = rdt - log(p + beta * (1.0 - p) / (beta - aa)) - k1h * v
            k0 = (kq if q > 0.0 else k0r) if quad else (ke if aa < beta else k0r)
        xs[lane] = x + k0 + k1 * v + k2 * vn + np.sqrt(k3 * v + k4 * vn) * zp
        vs[lane] = vn


@njit(**NJIT_INLINE)
def _track(xs, ss, mx, asian):
    """Running max of x and (``asian``) sum of exp(x) of one path state, every lane."""
    for lane in range(LANES):
        mx[lane] = max(mx[lane], xs[lane])
    if asian:
        for lane in range(LANES):
            ss[lane] += exp(xs[lane])


@njit(**NJIT_INLINE)
def _finish(lane, xs, ss, mx, kc, antithetic, vega, est):
    """est[:] = the estimators of one sample from its paths' states (the mean over its pair
    with antithetic); state ``3 * side + scenario``, scenario 0 base, 1 v0 up, 2 v0 down."""
    for k in range(N_EST):
        est[k] = 0.0
    w = 0.5 if antithetic else 1.0
    for side in range(2 if antithetic else 1):
        b = 3 * side
        _add_estimators(xs[b, lane], ss[b, lane], mx[b, lane], kc, w, est)
        if vega:
            pu0, pu1, pu2, pu3 = _prices(xs[b + 1, lane], ss[b + 1, lane], mx[b + 1, lane], kc)
            pd0, pd1, pd2, pd3 = _prices(xs[b + 2, lane], ss[b + 2, lane], mx[b + 2, lane], kc)
            den = kc[15]
            est[3] += w * ((pu0 - pd0) / den)
            est[7] += w * ((pu1 - pd1) / den)
            est[11] += w * ((pu2 - pd2) / den)
            est[15] += w * ((pu3 - pd3) / den)


@njit(**NJIT)
def _block(b, n_samples, steps, c, kc, flags, key, row):
    """Simulate block ``b`` and write its row of sums into ``row`` (length N_STATS).

    Per chunk of LANES samples and per step, the draws of all lanes are made at once
    (vectorised), then each path state (x, v, sum of S, max of x) of every lane advances by
    ``step_advance`` (Euler) or ``_qe_lanes`` (QE, branch-free). Every path sees the arithmetic of
    ``heston_step``, so the rows are those of a loop over ``heston_step``."""
    scheme, antithetic, asian, vega = flags[0], flags[1] != 0, flags[2] != 0, flags[3] != 0
    k0, k1 = key[0], key[1]
    x0, v0s = kc[0], (kc[1], kc[2], kc[3])
    acc = np.zeros((N_ACC, LANES))
    est = np.empty(N_EST)
    zv, zx, u = np.empty(LANES), np.empty(LANES), np.empty(LANES)
    xs, vs = np.empty((6, LANES)), np.empty((6, LANES))
    ss, mx = np.empty((6, LANES)), np.empty((6, LANES))
    n_sides = 2 if antithetic else 1
    n_scen = 3 if vega else 1
    first = b * BLOCK_SAMPLES
    count = 0
    for chunk in range(CHUNKS):
        start = first + chunk * LANES
        if start >= n_samples:
            break
        n_valid = min(LANES, n_samples - start)
        count += n_valid
        for side in range(n_sides):
            for scen in range(n_scen):
                i = 3 * side + scen
                xs[i, :] = x0
                vs[i, :] = v0s[scen]
                ss[i, :] = 0.0
                mx[i, :] = NO_MAX
        for j in range(steps):
            _draws(j, np.uint64(start), k0, k1, zv, zx, u)
            for side in range(n_sides):
                sign = 1.0 if side == 0 else -1.0
                for scen in range(n_scen):
                    i = 3 * side + scen
                    if scheme == SCHEME_EULER:
                        for lane in range(LANES):
                            xs[i, lane], vs[i, lane] = step_advance(
                                xs[i, lane], vs[i, lane], zv[lane], zx[lane], u[lane], sign, c,
                                SCHEME_EULER,
                            )  # fmt: skip
                    else:
                        _qe_lanes(xs[i], vs[i], zv, zx, u, sign, c, scheme == SCHEME_QE_M)
                    _track(xs[i], ss[i], mx[i], asian)
        for lane in range(n_valid):
            _finish(lane, xs, ss, mx, kc, antithetic, vega, est)
            for k in range(N_EST):
                e = est[k]
                acc[2 * k, lane] += e
                acc[2 * k + 1, lane] += e * e
    row[COL_COUNT] = float(count)
    for k in range(N_ACC):
        total = 0.0
        for lane in range(LANES):  # fixed order: lane 0, 1, ..., 63
            total += acc[k, lane]
        row[1 + k] = total


@njit(**NJIT_PARALLEL)
def simulate_blocks(block_start, block_stop, n_samples, steps, c, kc, flags, key):
    """Rows of sums of blocks ``block_start .. block_stop``: a ``(stop - start, N_STATS)``
    float64 array (columns: count, then sum and sum of squares of each estimator of each
    product, see ``col_sum``).

    ``n_samples`` is the job's sample count (the last block may be partial); ``c`` the
    ``step_constants`` of dt = maturity / steps; ``kc`` the float64 vector named by
    ``KERNEL_CONSTANTS``; ``flags`` the int64 vector named by ``FLAGS``; ``key`` the two Philox
    key words (uint64). Blocks are spread over threads with ``prange``; each is computed whole
    by one thread.
    """
    n = block_stop - block_start
    out = np.zeros((n, N_STATS))
    for i in prange(n):
        _block(block_start + i, n_samples, steps, c, kc, flags, key, out[i])
    return out
