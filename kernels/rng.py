"""Philox4x32-10, the counter-based random number generator of Random123, for Numba.

Philox maps a 128-bit counter and a 64-bit key to 128 random bits with no state: any block of
any stream is computed directly, so a path's random numbers are a pure function of
(seed, path, step), whatever shard, block or thread computes them (DESIGN.md, "Determinism").

Words are uint32 values; Numba code carries them in uint64 variables whose high half is zero
(a 32x32 -> 64-bit product is then one ``vpmuludq`` per lane). The scalar form
:func:`philox_block` is meant to be inlined into loops over lanes.

Normals, as the Monte Carlo kernel draws them (:func:`normal_block`):

* key = (seed mod 2**32, seed div 2**32) for a seed in [0, 2**64);
* the block for step group ``g`` of sample ``s`` has counter ``(g, s mod 2**32, s div 2**32, 0)``
  and gives the words ``(x0, x1, x2, x3)``;
* each word becomes a uniform ``u = (x + 0.5) * 2**-32``, strictly inside (0, 1);
* Box-Muller: ``r = sqrt(-2 log u(x0))``, ``z[4g] = r cos(2 pi u(x1))``,
  ``z[4g+1] = r sin(2 pi u(x1))``; likewise ``z[4g+2]``, ``z[4g+3]`` from ``x2`` (radius) and
  ``x3`` (angle);
* sample ``s`` is path ``s``, or with antithetic sampling the pair of paths ``2s`` (driven by
  ``z``) and ``2s + 1`` (driven by ``-z``); ``z[j]`` is the normal of step ``j`` (0-based,
  the step to fixing t_(j+1)). Words of a last, partial group are left unused.

``log``, ``sin`` and ``cos`` are :mod:`tessera.kernels.fastmath` polynomials (errors of about 1
ulp), so a NumPy reference built on ``np.log``/``np.cos``/``np.sin`` agrees to ~1e-15.

Relation to ``randomgen.Philox(number=4, width=32, counter=c, key=k)``: randomgen packs the words
little-endian (``c = c0 + c1 * 2**32 + ...``, ``k = k0 + k1 * 2**32``) and adds one to the
128-bit counter *before* each block, so its ``random_raw()`` yields the words of the blocks at
counters c + 1, c + 2, ... in order.

The CUDA twin is :mod:`tessera.kernels.rng_gpu` (the same raw stream as device functions). It is a
module of its own because importing ``numba.cuda`` fixes the choice between device and simulator
(``NUMBA_ENABLE_CUDASIM``), and CPU runs never import it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tessera.kernels.config import NJIT, NJIT_INLINE
from tessera.kernels.fastmath import log, sincos_2pi

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_TWO_M32 = 2.0**-32


@njit(**NJIT_INLINE)
def _round(c0, c1, c2, c3, k0, k1):
    p0 = _M0 * c0
    p1 = _M1 * c2
    return (p1 >> _S32) ^ c1 ^ k0, p1 & _MASK, (p0 >> _S32) ^ c3 ^ k1, p0 & _MASK


@njit(**NJIT_INLINE)
def _bump(k0, k1):
    return (k0 + _W0) & _MASK, (k1 + _W1) & _MASK


@njit(**NJIT_INLINE)
def philox_block(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter ``(c0, c1, c2, c3)`` and key ``(k0, k1)``.

    Arguments are 32-bit values in any unsigned integer type (higher bits are dropped); the
    four output words are returned as uint64 values below 2**32.
    """
    c0 = np.uint64(c0) & _MASK
    c1 = np.uint64(c1) & _MASK
    c2 = np.uint64(c2) & _MASK
    c3 = np.uint64(c3) & _MASK
    k0 = np.uint64(k0) & _MASK
    k1 = np.uint64(k1) & _MASK
    # Ten rounds, the key bumped between rounds; written out so that LLVM sees straight code.
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
    k0, k1 = _bump(k0, k1)
    return _round(c0, c1, c2, c3, k0, k1)


@njit(**NJIT_INLINE)
def uniform(x):
    """The uniform ``(x + 0.5) * 2**-32`` in (0, 1) of a 32-bit word ``x`` (exact)."""
    return (float(np.int64(x)) + 0.5) * _TWO_M32


@njit(**NJIT_INLINE)
def radius(u):
    """Box-Muller radius ``sqrt(-2 log u)`` of a uniform ``u`` in (0, 1)."""
    return np.sqrt(-2.0 * log(u))


@njit(**NJIT_INLINE)
def rotate(r, u):
    """Box-Muller pair ``(r cos(2 pi u), r sin(2 pi u))`` for a radius and a uniform angle."""
    s, c = sincos_2pi(u)
    return r * c, r * s


@njit(**NJIT_INLINE)
def box_muller(xr, xa):
    """Two standard normals from two words: radius from ``xr``, angle from ``xa``.

    Returns ``(r cos(2 pi u(xa)), r sin(2 pi u(xa)))`` with ``r = sqrt(-2 log u(xr))``.
    """
    return rotate(radius(uniform(xr)), uniform(xa))


@njit(**NJIT_INLINE)
def normal_block(group, sample, k0, k1):
    """The four normals of step group ``group`` (steps 4g .. 4g+3) of sample ``sample``.

    ``sample`` is a uint64 sample (path or antithetic pair) index; ``k0, k1`` the key words.
    """
    s = np.uint64(sample)
    x0, x1, x2, x3 = philox_block(group, s & _MASK, s >> _S32, 0, k0, k1)
    z0, z1 = box_muller(x0, x1)
    z2, z3 = box_muller(x2, x3)
    return z0, z1, z2, z3


def seed_key(seed: int) -> tuple[int, int]:
    """The Philox key words ``(seed mod 2**32, seed div 2**32)``; ``ValueError`` unless
    0 <= seed < 2**64."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return seed & 0xFFFFFFFF, seed >> 32


# --- array interfaces --------------------------------------------------------------------------


@njit(**NJIT)
def _blocks(counters, key):
    out = np.empty((counters.shape[0], 4), dtype=np.uint32)
    for i in range(counters.shape[0]):
        x0, x1, x2, x3 = philox_block(
            counters[i, 0], counters[i, 1], counters[i, 2], counters[i, 3], key[0], key[1]
        )
        out[i, 0] = x0
        out[i, 1] = x1
        out[i, 2] = x2
        out[i, 3] = x3
    return out


def _as_words(a: object, ndim: int, width: int, name: str) -> np.ndarray:
    """``a`` as a C-contiguous uint32 array of ``ndim`` dimensions, the last one ``width``."""
    arr = np.asarray(a)
    if arr.ndim != ndim or arr.shape[-1] != width:
        want = f"({width},)" if ndim == 1 else f"(n, {width})"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if arr.dtype != np.uint32:
        if arr.dtype.kind not in "ui" or (arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFFFF)):
            raise ValueError(f"{name} must hold 32-bit unsigned words, got {arr.dtype} values")
        arr = arr.astype(np.uint32)
    return np.ascontiguousarray(arr)


def philox4x32(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Philox4x32-10 of one counter (4 uint32 words) and key (2 words): a (4,) uint32 array.

    Equals Random123's known-answer vectors, e.g. counter 0 and key 0 give
    ``6627e8d5 e169c58d bc57ac4c 9b00dbd8``. Raises ``ValueError`` on other shapes or on
    values that are not 32-bit words.
    """
    c = _as_words(counter, 1, 4, "counter")
    k = _as_words(key, 1, 2, "key")
    return _blocks(c.reshape(1, 4), k)[0]


def philox4x32_blocks(counters: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Philox4x32-10 of many counters: ``(n, 4)`` uint32 counters -> ``(n, 4)`` uint32 blocks."""
    c = _as_words(counters, 2, 4, "counters")
    k = _as_words(key, 1, 2, "key")
    return _blocks(c, k)


@njit(**NJIT)
def _sample_normals(samples, steps, k0, k1):
    n_groups = (steps + 3) // 4
    out = np.empty((samples.shape[0], n_groups * 4))
    for i in range(samples.shape[0]):
        for g in range(n_groups):
            z0, z1, z2, z3 = normal_block(np.uint64(g), samples[i], k0, k1)
            out[i, 4 * g] = z0
            out[i, 4 * g + 1] = z1
            out[i, 4 * g + 2] = z2
            out[i, 4 * g + 3] = z3
    return out[:, :steps].copy()


def sample_normals(seed: int, samples: np.ndarray, steps: int) -> np.ndarray:
    """The normals the Monte Carlo kernel uses: ``(len(samples), steps)`` float64, row i for
    sample index ``samples[i]`` (a path, or an antithetic pair whose second path negates them).
    """
    k0, k1 = seed_key(seed)
    s = np.asarray(samples)
    if s.ndim != 1 or s.dtype.kind not in "ui" or (s.size and s.min() < 0):
        raise ValueError("samples must be a 1-D array of non-negative integers")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return _sample_normals(s.astype(np.uint64), int(steps), np.uint64(k0), np.uint64(k1))
