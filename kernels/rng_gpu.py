"""CUDA twin of :mod:`tessera.kernels.rng`: Philox4x32-10 and the normal mapping as device
functions.

The raw stream is identical to the CPU one (integer arithmetic: same counter, key and words),
and so are the normals up to the device's rounding (the same :mod:`tessera.kernels.fastmath`
polynomials, from :mod:`tessera.kernels.fastmath_gpu`; bit for bit under the CUDA simulator). See
:mod:`tessera.kernels.rng` for the counter layout and the Box-Muller mapping.

The four state words are carried as uint32 and multiplied as zero-extended uint64, which NVVM
turns into one ``mul.wide.u32`` per product (the CPU kernel does the same in uint64 lanes).

Imports ``numba.cuda``; set ``NUMBA_ENABLE_CUDASIM`` before importing this module.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from tessera.kernels import fastmath_gpu as fm
from tessera.kernels.config import CUDA_DEVICE, CUDA_KERNEL
from tessera.kernels.rng import _M0, _M1, _S32, _TWO_M32, _W0, _W1, _as_words, seed_key


@cuda.jit(**CUDA_DEVICE)
def _round(c0, c1, c2, c3, k0, k1):
    p0 = np.uint64(c0) * _M0
    p1 = np.uint64(c2) * _M1
    return (
        np.uint32(np.uint32(p1 >> _S32) ^ c1 ^ k0),
        np.uint32(p1),
        np.uint32(np.uint32(p0 >> _S32) ^ c3 ^ k1),
        np.uint32(p0),
    )


@cuda.jit(**CUDA_DEVICE)
def philox_block(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter ``(c0, c1, c2, c3)`` and key ``(k0, k1)`` on the device.

    Arguments are any unsigned integers (only their low 32 bits count); returns four uint32
    words, equal to :func:`tessera.kernels.rng.philox_block`.
    """
    c0 = np.uint32(c0)
    c1 = np.uint32(c1)
    c2 = np.uint32(c2)
    c3 = np.uint32(c3)
    k0 = np.uint32(k0)
    k1 = np.uint32(k1)
    for _ in range(9):  # ten rounds, the key bumped between them
        c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
        k0 = np.uint32(np.uint64(k0) + _W0)
        k1 = np.uint32(np.uint64(k1) + _W1)
    return _round(c0, c1, c2, c3, k0, k1)


@cuda.jit(**CUDA_DEVICE)
def uniform(x):
    """The uniform ``(x + 0.5) * 2**-32`` in (0, 1) of a 32-bit word (exact)."""
    return (float(np.int64(x)) + 0.5) * _TWO_M32


@cuda.jit(**CUDA_DEVICE)
def radius(u):
    """Box-Muller radius ``sqrt(-2 log u)``."""
    return math.sqrt(-2.0 * fm.log(u))


@cuda.jit(**CUDA_DEVICE)
def rotate(r, u):
    """``(r cos(2 pi u), r sin(2 pi u))``."""
    s, c = fm.sincos_2pi(u)
    return r * c, r * s


@cuda.jit(**CUDA_DEVICE)
def normal_block(group, sample, k0, k1):
    """The four normals of step group ``group`` of sample ``sample`` (a uint64 index):
    :func:`tessera.kernels.rng.normal_block` on the device."""
    s = np.uint64(sample)
    x0, x1, x2, x3 = philox_block(group, s & np.uint64(0xFFFFFFFF), s >> _S32, 0, k0, k1)
    z0, z1 = rotate(radius(uniform(x0)), uniform(x1))
    z2, z3 = rotate(radius(uniform(x2)), uniform(x3))
    return z0, z1, z2, z3


# --- array interfaces (tests, benchmarks) -------------------------------------------------------


@cuda.jit(**CUDA_KERNEL)
def _blocks(counters, key, out):
    for i in range(cuda.grid(1), counters.shape[0], cuda.gridsize(1)):
        x0, x1, x2, x3 = philox_block(
            counters[i, 0], counters[i, 1], counters[i, 2], counters[i, 3], key[0], key[1]
        )
        out[i, 0] = x0
        out[i, 1] = x1
        out[i, 2] = x2
        out[i, 3] = x3


@cuda.jit(**CUDA_KERNEL)
def _normals(samples, n_groups, k0, k1, out):
    for i in range(cuda.grid(1), samples.shape[0] * n_groups, cuda.gridsize(1)):
        row = i // n_groups
        g = i - row * n_groups
        z0, z1, z2, z3 = normal_block(np.uint64(g), samples[row], k0, k1)
        out[row, 4 * g] = z0
        out[row, 4 * g + 1] = z1
        out[row, 4 * g + 2] = z2
        out[row, 4 * g + 3] = z3


def _grid(n: int, threads: int = 128) -> tuple[int, int]:
    return max(1, min(1024, -(-n // threads))), threads


def philox4x32_blocks(counters: np.ndarray, key: np.ndarray) -> np.ndarray:
    """:func:`tessera.kernels.rng.philox4x32_blocks` on the device: ``(n, 4)`` uint32 counters and a
    (2,) key -> ``(n, 4)`` uint32 blocks. Raises ``ValueError`` like the CPU function."""
    c = _as_words(counters, 2, 4, "counters")
    k = _as_words(key, 1, 2, "key")
    out = cuda.device_array((c.shape[0], 4), dtype=np.uint32)
    if c.shape[0]:
        _blocks[_grid(c.shape[0])](cuda.to_device(c), cuda.to_device(k), out)
    return out.copy_to_host()


def sample_normals(seed: int, samples: np.ndarray, steps: int) -> np.ndarray:
    """:func:`tessera.kernels.rng.sample_normals` on the device: the Monte Carlo kernel's normals,
    ``(len(samples), steps)`` float64."""
    k0, k1 = seed_key(seed)
    s = np.asarray(samples)
    if s.ndim != 1 or s.dtype.kind not in "ui" or (s.size and s.min() < 0):
        raise ValueError("samples must be a 1-D array of non-negative integers")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    n_groups = (steps + 3) // 4
    out = cuda.device_array((s.size, 4 * n_groups), dtype=np.float64)
    if s.size:
        _normals[_grid(s.size * n_groups)](
            cuda.to_device(s.astype(np.uint64)), n_groups, np.uint32(k0), np.uint32(k1), out
        )
    return out.copy_to_host()[:, :steps].copy()
