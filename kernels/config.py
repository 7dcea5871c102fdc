"""Numba compilation flags for every kernel: the one place to change them.

Determinism comes first. The kernels must give the same bits for any shard count, any thread
count and, as far as IEEE 754 allows, any x86-64 machine, so:

* no LLVM fast-math flags at all: LLVM may then neither reorder a sum nor fuse a multiply-add
  on its own (its choices could differ between an AVX2 and an AVX-512 host). Where a fused
  multiply-add is wanted, ``tessera.kernels.fastmath.fma`` asks for one explicitly (``llvm.fma`` is
  exactly rounded on every target, emulated where the CPU lacks FMA). Measured: enabling
  ``nnan``/``ninf``/``nsz`` changed nothing in speed, so they stay off;
* ``error_model="numpy"``: division by zero gives inf/nan instead of raising, which keeps
  divisions free of a branch so loops vectorise;
* elementary functions (exp, log, sin, cos) come from ``tessera.kernels.fastmath``, pure arithmetic,
  never libm, whose results differ between libm versions and whose calls do not vectorise;
* the lane loops vectorise without reassociation because each lane is independent: lanes are
  summed at the end of a block in a fixed order.

Numba's on-disk cache (``cache=True``) is keyed by the source file of each compiled function:
after editing ``kernels/fastmath.py``, ``kernels/rng.py`` or ``kernels/montecarlo/heston_cpu.py``
(whose step is inlined into ``book_cpu``), delete the ``__pycache__`` folders under ``kernels/``
(functions inlined from those modules are not re-checked).
"""

from __future__ import annotations

from typing import Any

# LLVM fast-math flags for every kernel (none: strict IEEE 754, see above).
FASTMATH: frozenset[str] = frozenset()

# Keyword arguments for every @njit in kernels/.
NJIT: dict[str, Any] = {"cache": True, "error_model": "numpy", "fastmath": set(FASTMATH)}

# Small helpers called from the lane loops: inlined by Numba itself (LLVM does not inline across
# Numba's separately compiled functions, and a call in a loop body stops vectorisation).
NJIT_INLINE: dict[str, Any] = {**NJIT, "inline": "always"}

# Parallel kernels (prange over blocks of paths).
NJIT_PARALLEL: dict[str, Any] = {**NJIT, "parallel": True}

# --- CUDA (kernels/*gpu.py) --------------------------------------------------------------------
# The same policy on the device: no fast-math (so no flush-to-zero, IEEE division and square
# root), exp/log/sin/cos from tessera.kernels.fastmath_gpu (the CPU polynomials), never libdevice.
# NVVM still contracts a * b + c into one fused multiply-add where it sees one (its -fma=1
# default, which Numba does not expose), so a few roundings differ from the CPU's; the explicit
# fma() calls of the polynomials are fused on both.

# Keyword arguments for every cuda.jit kernel / device function in kernels/.
CUDA_KERNEL: dict[str, Any] = {"fastmath": False}
CUDA_DEVICE: dict[str, Any] = {"device": True, "fastmath": False}

# Threads per block of the Monte Carlo kernel. One thread block computes whole blocks of
# BLOCK_SAMPLES samples; thread t takes samples t, t + T, t + 2T, ... of a block and the threads'
# sums are added in thread order. With T = LANES (64) that is exactly the CPU kernel's lane
# order, so only per-path rounding can differ. Changing it changes the GPU's last bits.
CUDA_MC_THREADS = 64

# Thread blocks per streaming multiprocessor that a grid-stride launch asks for (the grid is
# min(work blocks, SMs * this)); enough to hide latency without launching idle blocks.
CUDA_BLOCKS_PER_SM = 16

# Threads per block of the elementwise imaging kernels (one thread per output pixel).
CUDA_IMAGE_THREADS = 256
