"""Heston path simulation and payoff sums on a CUDA device: the twin of
:mod:`tessera.kernels.montecarlo.heston_cpu`.

Same blocks, same rows, same streams. One thread block computes whole blocks of
``BLOCK_SAMPLES`` samples, striding over the shard's blocks (grid-stride loop), so a row never
depends on the grid. Inside a block, thread ``t`` of ``T = CUDA_MC_THREADS`` simulates samples
``t, t + T, ...`` one after the other, each path step by step with ``heston_step``'s arithmetic
(the same Philox counter, Box-Muller and QE/Euler formulas as the CPU's, from
:mod:`tessera.kernels.rng_gpu` and :mod:`tessera.kernels.fastmath_gpu`), keeping its running
sums in a local array; the threads' sums then go to shared memory and are added in thread order
0, 1, ..., T - 1 (one thread per column). With T = 64 = ``heston_cpu.LANES`` that is the CPU's
lane order, so under the simulator the rows are bit-identical; on a device NVVM fuses some
multiply-adds and prices move by ~1e-15 relative (the contract is 1e-9, DESIGN.md).

Imports ``numba.cuda``: import this module only to run on a GPU (or the simulator).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

from tessera.kernels import cuda_device
from tessera.kernels import fastmath_gpu as fm
from tessera.kernels.config import CUDA_DEVICE, CUDA_KERNEL, CUDA_MC_THREADS
from tessera.kernels.montecarlo.heston_cpu import (
    BLOCK_SAMPLES,
    C_A,
    C_DT,
    C_E,
    C_K0R,
    C_K1,
    C_K1H,
    C_K2,
    C_K3,
    C_K4,
    C_KDT,
    C_KTDT,
    C_M1,
    C_RDT,
    C_RHO,
    C_RHOBAR,
    C_S2C,
    C_S2V,
    C_SDT,
    C_XISDT,
    COL_COUNT,
    N_ACC,
    N_EST,
    N_STATS,
    NO_MAX,
    PSI_C,
    SCHEME_EULER,
    SCHEME_QE_M,
)
from tessera.kernels.rng_gpu import philox_block, radius, rotate, uniform

THREADS = CUDA_MC_THREADS
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@cuda.jit(**CUDA_DEVICE)
def step_draws(step, sample, stream, k0, k1):
    """:func:`tessera.kernels.montecarlo.heston_cpu.step_draws` on the device."""
    s = np.uint64(sample)
    w0, w1, w2, _ = philox_block(np.uint64(step), s & _MASK32, s >> _S32, stream, k0, k1)
    zv, zx = rotate(radius(uniform(w0)), uniform(w1))
    return zv, zx, uniform(w2)


@cuda.jit(**CUDA_DEVICE)
def step_advance(x, v, zv, zx, u, sign, c, scheme):
    """:func:`tessera.kernels.montecarlo.heston_cpu.step_advance` on the device."""
    zs = sign * zv
    zp = sign * zx
    if scheme == SCHEME_EULER:
        vp = max(v, 0.0)
        sv = math.sqrt(vp)
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
        b2 = ip - 1.0 + math.sqrt(ip) * math.sqrt(ip - 1.0)
        a = m / (1.0 + b2)
        zb = math.sqrt(b2) + zs
        vn = a * zb * zb
        if scheme == SCHEME_QE_M:
            aa = c[C_A]
            q = 1.0 - 2.0 * aa * a
            if q > 0.0:
                k0 = c[C_RDT] - aa * b2 * a / q + 0.5 * fm.log(q) - c[C_K1H] * v
    else:
        p = (psi - 1.0) / (psi + 1.0)
        beta = (1.0 - p) / m
        uu = u if sign > 0.0 else 1.0 - u
        vn = 0.0 if uu <= p else fm.log((1.0 - p) / (1.0 - uu)) / beta
        if scheme == SCHEME_QE_M:
            aa = c[C_A]
            if aa < beta:
                k0 = c[C_RDT] - fm.log(p + beta * (1.0 - p) / (beta - aa)) - c[C_K1H] * v
    xn = x + k0 + c[C_K1] * v + c[C_K2] * vn + math.sqrt(c[C_K3] * v + c[C_K4] * vn) * zp
    return xn, vn


@cuda.jit(**CUDA_DEVICE)
def _prices(x, ss, mx, kc):
    disc, strike = kc[6], kc[4]
    st = fm.exp(x)
    a = ss * kc[7]
    call = disc * max(st - strike, 0.0)
    put = disc * max(strike - st, 0.0)
    asian = disc * max(a - strike, 0.0)
    barrier = call if mx < kc[5] else 0.0
    return call, put, asian, barrier


@cuda.jit(**CUDA_DEVICE)
def _add_estimators(x, ss, mx, kc, w, est):
    """:func:`tessera.kernels.montecarlo.heston_cpu._add_estimators` on the device."""
    disc, strike, log_b = kc[6], kc[4], kc[5]
    lu, ld, llu, lld = kc[8], kc[9], kc[10], kc[11]
    inv_spot, spot_den, gamma_den = kc[12], kc[13], kc[14]
    st = fm.exp(x)
    a = ss * kc[7]
    r = disc * st * inv_spot
    est[0] += w * (disc * max(st - strike, 0.0))
    est[1] += w * (r if st > strike else 0.0)
    g = (r if lu * st > strike else 0.0) - (r if ld * st > strike else 0.0)
    est[2] += w * (g / spot_den)
    est[4] += w * (disc * max(strike - st, 0.0))
    est[5] += w * (-r if st < strike else 0.0)
    g = (r if ld * st < strike else 0.0) - (r if lu * st < strike else 0.0)
    est[6] += w * (g / spot_den)
    ra = disc * a * inv_spot
    est[8] += w * (disc * max(a - strike, 0.0))
    est[9] += w * (ra if a > strike else 0.0)
    g = (ra if lu * a > strike else 0.0) - (ra if ld * a > strike else 0.0)
    est[10] += w * (g / spot_den)
    f0 = disc * max(st - strike, 0.0) if mx < log_b else 0.0
    fu = disc * max(lu * st - strike, 0.0) if mx + llu < log_b else 0.0
    fd = disc * max(ld * st - strike, 0.0) if mx + lld < log_b else 0.0
    est[12] += w * f0
    est[13] += w * ((fu - fd) / spot_den)
    est[14] += w * ((fu - 2.0 * f0 + fd) / gamma_den)


@cuda.jit(**CUDA_DEVICE)
def _sample(s, steps, c, kc, scheme, antithetic, asian, vega, k0, k1, est):
    """est[:] = the estimators of sample ``s`` (the mean over its pair with antithetic), as the
    CPU's ``_block`` and ``_finish`` compute them: one draw per step shared by the pair and the
    vega scenarios (v0 up, v0 down)."""
    for k in range(N_EST):
        est[k] = 0.0
    x0, v0, vu0, vd0 = kc[0], kc[1], kc[2], kc[3]
    w = 0.5 if antithetic else 1.0
    n_signs = 2 if antithetic else 1
    for side in range(n_signs):
        sign = 1.0 if side == 0 else -1.0
        x, v, ss, mx = x0, v0, 0.0, NO_MAX
        xu, vu, ssu, mxu = x0, vu0, 0.0, NO_MAX
        xd, vd, ssd, mxd = x0, vd0, 0.0, NO_MAX
        for j in range(steps):
            zv, zx, u = step_draws(j, s, 0, k0, k1)
            x, v = step_advance(x, v, zv, zx, u, sign, c, scheme)
            mx = max(mx, x)
            if asian:
                ss += fm.exp(x)
            if vega:
                xu, vu = step_advance(xu, vu, zv, zx, u, sign, c, scheme)
                xd, vd = step_advance(xd, vd, zv, zx, u, sign, c, scheme)
                mxu = max(mxu, xu)
                mxd = max(mxd, xd)
                if asian:
                    ssu += fm.exp(xu)
                    ssd += fm.exp(xd)
        _add_estimators(x, ss, mx, kc, w, est)
        if vega:
            pu0, pu1, pu2, pu3 = _prices(xu, ssu, mxu, kc)
            pd0, pd1, pd2, pd3 = _prices(xd, ssd, mxd, kc)
            den = kc[15]
            est[3] += w * ((pu0 - pd0) / den)
            est[7] += w * ((pu1 - pd1) / den)
            est[11] += w * ((pu2 - pd2) / den)
            est[15] += w * ((pu3 - pd3) / den)


@cuda.jit(**CUDA_KERNEL)
def _simulate(block_start, n_rows, block_samples, n_samples, steps, c, kc, flags, k0, k1, out):
    part = cuda.shared.array((N_ACC, THREADS), float64)
    acc = cuda.local.array(N_ACC, float64)
    est = cuda.local.array(N_EST, float64)
    t = cuda.threadIdx.x
    scheme = flags[0]
    antithetic = flags[1] != 0
    asian = flags[2] != 0
    vega = flags[3] != 0
    for i in range(cuda.blockIdx.x, n_rows, cuda.gridDim.x):  # grid-stride over blocks
        first = (block_start + i) * block_samples
        last = min(first + block_samples, n_samples)
        for k in range(N_ACC):
            acc[k] = 0.0
        for s in range(first + t, last, THREADS):
            _sample(s, steps, c, kc, scheme, antithetic, asian, vega, k0, k1, est)
            for k in range(N_EST):
                e = est[k]
                acc[2 * k] += e
                acc[2 * k + 1] += e * e
        for k in range(N_ACC):
            part[k, t] = acc[k]
        cuda.syncthreads()
        if t < N_ACC:  # one thread per column adds the threads' sums in thread order
            total = 0.0
            for j in range(THREADS):
                total += part[t, j]
            out[i, 1 + t] = total
        if t == 0:
            out[i, COL_COUNT] = float(last - first)
        cuda.syncthreads()  # part is rewritten by the next block


def simulate_blocks(
    block_start: int,
    block_stop: int,
    n_samples: int,
    steps: int,
    c: np.ndarray,
    kc: np.ndarray,
    flags: np.ndarray,
    key: np.ndarray,
    *,
    block_samples: int = BLOCK_SAMPLES,
    grid: int | None = None,
) -> np.ndarray:
    """:func:`tessera.kernels.montecarlo.heston_cpu.simulate_blocks` on the device: rows of
    sums of blocks ``block_start .. block_stop``, a ``(stop - start, N_STATS)`` float64 host
    array. Arguments as the CPU function's; ``block_samples`` (the kernel's constant; other
    values are for tests) and ``grid`` (thread blocks; default: enough to fill the device) do
    not change a row, except through ``block_samples``' choice of samples. Raises
    ``NoDeviceError`` without a usable device, ``ValueError`` for an empty or out-of-range
    block range."""
    cuda_device.require()
    n_rows = block_stop - block_start
    if n_rows < 1 or block_start < 0 or block_start * block_samples >= n_samples:
        raise ValueError(
            f"blocks {block_start}..{block_stop} hold no samples of {n_samples} "
            f"({block_samples} per block)"
        )
    if THREADS < N_ACC:
        raise ValueError(f"CUDA_MC_THREADS must be >= {N_ACC}, got {THREADS}")
    k0, k1 = (int(k) for k in key)
    out = cuda.device_array((n_rows, N_STATS), dtype=np.float64)
    blocks = grid if grid is not None else cuda_device.grid_size(n_rows)
    _simulate[blocks, THREADS](
        int(block_start),
        int(n_rows),
        int(block_samples),
        int(n_samples),
        int(steps),
        cuda.to_device(np.ascontiguousarray(c, dtype=np.float64)),
        cuda.to_device(np.ascontiguousarray(kc, dtype=np.float64)),
        cuda.to_device(np.ascontiguousarray(flags, dtype=np.int64)),
        np.uint32(k0),
        np.uint32(k1),
        out,
    )
    return out.copy_to_host()
