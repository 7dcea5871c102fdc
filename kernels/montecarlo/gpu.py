"""GBM path simulation and payoff sums on a CUDA device: the twin of
:mod:`tessera.kernels.montecarlo.cpu`.

Same blocks, same rows. Work is cut into blocks of ``BLOCK_SAMPLES`` samples and a block yields
one row of sums (columns as in :mod:`tessera.kernels.montecarlo.cpu`). One thread block computes
whole blocks, striding over the shard's blocks (grid-stride loop), so a row never depends on the
grid. Inside a block, thread ``t`` of ``T = CUDA_MC_THREADS`` simulates samples ``t, t + T, ...``
one after the other, each path step by step, keeping eleven running sums in registers; the threads'
sums then go to shared memory and are added in thread order 0, 1, ..., T - 1 (one thread per
column). A row is therefore a pure function of (params, seed, block, T): deterministic, and with
T = 64 the additions happen in exactly the CPU kernel's order (its lane l is thread l here).

Per sample the arithmetic is the CPU's: the Philox counter and key, the normals from the same
polynomials (:mod:`tessera.kernels.rng_gpu`, :mod:`tessera.kernels.fastmath_gpu`), then per step
``x += drift + vol * z`` (``-vol`` for the antithetic path), ``sum_x += x``, ``max_x`` and
``sum_s += exp(x)``, and the same payoff formulas. Where a device rounds differently (NVVM fuses
some multiply-adds), prices move by ~1e-15 relative; the contract is 1e-9 (DESIGN.md).

Imports ``numba.cuda``: import this module only to run on a GPU (or the simulator).
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float64

from tessera.kernels import cuda_device
from tessera.kernels import fastmath_gpu as fm
from tessera.kernels.config import CUDA_DEVICE, CUDA_KERNEL, CUDA_MC_THREADS
from tessera.kernels.montecarlo.cpu import _N_ACC, BLOCK_SAMPLES, COL_COUNT, N_STATS, NO_MAX
from tessera.kernels.rng_gpu import normal_block

THREADS = CUDA_MC_THREADS


@cuda.jit(**CUDA_DEVICE)
def _payoffs(x, sx, mx, ss, inv_steps, log_barrier, strike, disc):
    st = fm.exp(x)
    g = fm.exp(sx * inv_steps)
    a = ss * inv_steps
    call = disc * max(st - strike, 0.0)
    put = disc * max(strike - st, 0.0)
    asian_a = disc * max(a - strike, 0.0)
    asian_g = disc * max(g - strike, 0.0)
    barrier = call if mx < log_barrier else 0.0
    return call, put, asian_a, asian_g, barrier


@cuda.jit(**CUDA_DEVICE)
def _step(x, sx, mx, ss, inc, arith):
    x = x + inc
    sx = sx + x
    mx = max(mx, x)
    if arith:
        ss = ss + fm.exp(x)
    return x, sx, mx, ss


@cuda.jit(**CUDA_DEVICE)
def _sample(s, steps, x0, drift, vol, log_barrier, strike, disc, k0, k1, antithetic, arith):
    """The five payoffs of sample ``s`` (the mean of the pair's payoffs with antithetic)."""
    xp, sxp, mxp, ssp = x0, 0.0, NO_MAX, 0.0
    xm, sxm, mxm, ssm = x0, 0.0, NO_MAX, 0.0
    mvol = -vol
    n_groups = (steps + 3) // 4
    for g in range(n_groups):
        z0, z1, z2, z3 = normal_block(np.uint64(g), np.uint64(s), k0, k1)
        n = min(4, steps - 4 * g)
        for j in range(n):
            z = z0 if j == 0 else (z1 if j == 1 else (z2 if j == 2 else z3))
            xp, sxp, mxp, ssp = _step(xp, sxp, mxp, ssp, drift + vol * z, arith)
            if antithetic:
                xm, sxm, mxm, ssm = _step(xm, sxm, mxm, ssm, drift + mvol * z, arith)
    inv_steps = 1.0 / steps
    p0, p1, p2, p3, p4 = _payoffs(xp, sxp, mxp, ssp, inv_steps, log_barrier, strike, disc)
    if antithetic:
        q0, q1, q2, q3, q4 = _payoffs(xm, sxm, mxm, ssm, inv_steps, log_barrier, strike, disc)
        p0 = 0.5 * (p0 + q0)
        p1 = 0.5 * (p1 + q1)
        p2 = 0.5 * (p2 + q2)
        p3 = 0.5 * (p3 + q3)
        p4 = 0.5 * (p4 + q4)
    return p0, p1, p2, p3, p4


@cuda.jit(**CUDA_KERNEL)
def _simulate(
    block_start,
    n_rows,
    block_samples,
    n_samples,
    steps,
    x0,
    drift,
    vol,
    log_barrier,
    strike,
    disc,
    k0,
    k1,
    antithetic,
    arith,
    out,
):
    part = cuda.shared.array((_N_ACC, THREADS), float64)
    t = cuda.threadIdx.x
    for i in range(cuda.blockIdx.x, n_rows, cuda.gridDim.x):  # grid-stride over blocks
        first = (block_start + i) * block_samples
        last = min(first + block_samples, n_samples)
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = 0.0
        for s in range(first + t, last, THREADS):
            p0, p1, p2, p3, p4 = _sample(
                s, steps, x0, drift, vol, log_barrier, strike, disc, k0, k1, antithetic, arith
            )
            a0 += p0
            a1 += p0 * p0
            a2 += p1
            a3 += p1 * p1
            a4 += p2
            a5 += p2 * p2
            a6 += p3
            a7 += p3 * p3
            a8 += p4
            a9 += p4 * p4
            a10 += p2 * p3
        part[0, t] = a0
        part[1, t] = a1
        part[2, t] = a2
        part[3, t] = a3
        part[4, t] = a4
        part[5, t] = a5
        part[6, t] = a6
        part[7, t] = a7
        part[8, t] = a8
        part[9, t] = a9
        part[10, t] = a10
        cuda.syncthreads()
        if t < _N_ACC:  # one thread per column adds the threads' sums in thread order
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
    consts: np.ndarray,
    key: np.ndarray,
    antithetic: bool,
    arith: bool,
    *,
    block_samples: int = BLOCK_SAMPLES,
    grid: int | None = None,
) -> np.ndarray:
    """:func:`tessera.kernels.montecarlo.cpu.simulate_blocks` on the device: rows of sums of blocks
    ``block_start .. block_stop``, a ``(stop - start, N_STATS)`` float64 host array.

    Arguments as the CPU function's (``consts`` the vector named by ``cpu.CONSTANTS``, ``key``
    the two Philox key words). ``block_samples`` (the kernel's constant; other values are for
    tests) and ``grid`` (thread blocks; default: enough to fill the device) do not change a
    row, except through ``block_samples``' choice of samples. Raises ``NoDeviceError`` without
    a usable device, ``ValueError`` for an empty or out-of-range block range.
    """
    cuda_device.require()
    n_rows = block_stop - block_start
    if n_rows < 1 or block_start < 0 or block_start * block_samples >= n_samples:
        raise ValueError(
            f"blocks {block_start}..{block_stop} hold no samples of {n_samples} "
            f"({block_samples} per block)"
        )
    if THREADS < _N_ACC:
        raise ValueError(f"CUDA_MC_THREADS must be >= {_N_ACC}, got {THREADS}")
    x0, drift, vol, log_barrier, strike, disc = (float(c) for c in consts)
    k0, k1 = (int(k) for k in key)
    out = cuda.device_array((n_rows, N_STATS), dtype=np.float64)
    blocks = grid if grid is not None else cuda_device.grid_size(n_rows)
    _simulate[blocks, THREADS](
        int(block_start),
        int(n_rows),
        int(block_samples),
        int(n_samples),
        int(steps),
        x0,
        drift,
        vol,
        log_barrier,
        strike,
        disc,
        np.uint32(k0),
        np.uint32(k1),
        bool(antithetic),
        bool(arith),
        out,
    )
    return out.copy_to_host()
