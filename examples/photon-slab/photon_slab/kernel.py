"""The ``photon.slab`` kernel: analog Monte Carlo of photons through a 1-D slab.

Monoenergetic photons fall normally on a homogeneous slab of ``thickness`` cm with total
attenuation coefficient ``mu_t`` (1/cm) and single-scattering albedo ``albedo``. Depths are
measured in mean free paths, so the slab is ``tau = mu_t * thickness`` deep. A photon enters at
depth 0 with direction cosine 1, flies ``-log(u)`` mean free paths along its direction, and at
each collision is absorbed with probability ``1 - albedo`` or scattered isotropically (new
direction cosine ``2u - 1``). It ends transmitted (depth >= tau), reflected (depth <= 0) or
absorbed.

Random numbers: Philox4x32-10 keyed by the job's seed; the ``step``-th flight of photon ``p``
uses the block at counter ``(step mod 2**32, p mod 2**32, p div 2**32, step div 2**32)``: word 0
for the flight length, word 1 for absorb-or-scatter, word 2 for the new direction. A history is
a pure function of (seed, photon), whichever shard or thread runs it.

Output: one row per block of ``BLOCK_PHOTONS`` photons with the columns ``COLUMNS``; every entry
is an integer held exactly in a float64, so the sums are exact and ``T + R + A`` equals the
block's photon count in every block.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit, prange

# Logs from tessera's polynomial ``log`` rather than libm's, so that the bits (and so the
# result.json bytes) do not depend on the libm of the machine or container that runs a shard.
from tessera.kernels.fastmath import log
from tessera.kernels.rng import philox_block, seed_key, uniform
from tessera.sdk import BlockKernel, ParamError, param

BLOCK_PHOTONS = 4096
COLUMNS = ("photons", "transmitted", "reflected", "absorbed", "collisions", "collisions_sq")
FATES = ("transmitted", "reflected", "absorbed")
MAX_OPTICAL_THICKNESS = 1000.0
Z95 = 1.959963984540054  # two-sided 95% normal quantile

TRANSMITTED, REFLECTED, ABSORBED = 0, 1, 2
_MASK = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_JIT = {"cache": True, "error_model": "numpy"}


@dataclass(frozen=True)
class Params:
    """``[params]`` of a ``photon.slab`` job."""

    photons: int = param(lo=2, hi=2**48, doc="photon histories")
    thickness: float = param(lo=0.0, lo_open=True, doc="slab thickness, cm")
    mu_t: float = param(lo=0.0, lo_open=True, doc="total attenuation coefficient, 1/cm")
    albedo: float = param(0.0, lo=0.0, hi=1.0, doc="single-scattering albedo mu_s / mu_t")

    @property
    def optical_thickness(self) -> float:
        """The slab's depth in mean free paths, ``mu_t * thickness``."""
        return self.mu_t * self.thickness


@njit(inline="always", **_JIT)
def _history(photon, tau, albedo, k0, k1):
    """Follow photon ``photon`` (uint64) to its end: ``(fate, collisions)``."""
    lo = photon & _MASK
    hi = photon >> _S32
    depth = 0.0
    mu = 1.0
    step = np.uint64(0)
    while True:
        x0, x1, x2, _ = philox_block(step & _MASK, lo, hi, step >> _S32, k0, k1)
        depth += mu * -log(uniform(x0))
        if depth >= tau:
            return TRANSMITTED, step
        if depth <= 0.0:
            return REFLECTED, step
        if uniform(x1) >= albedo:
            return ABSORBED, step + np.uint64(1)
        mu = 2.0 * uniform(x2) - 1.0  # never 0: uniform() is never exactly 1/2
        step += np.uint64(1)


@njit(parallel=True, **_JIT)
def simulate_blocks(first, last, block_photons, n_photons, tau, albedo, k0, k1):
    """Rows ``first .. last`` of the block table (see ``COLUMNS``): block ``b`` holds photons
    ``b * block_photons`` up to ``min((b + 1) * block_photons, n_photons)``."""
    out = np.zeros((last - first, 6))
    for row in prange(last - first):
        start = (first + row) * block_photons
        stop = min(start + block_photons, n_photons)
        counts = np.zeros(3)
        collisions = 0.0
        collisions_sq = 0.0
        for p in range(start, stop):
            fate, n = _history(np.uint64(p), tau, albedo, k0, k1)
            counts[fate] += 1.0
            c = float(n)
            collisions += c
            collisions_sq += c * c
        out[row, 0] = stop - start
        out[row, 1] = counts[TRANSMITTED]
        out[row, 2] = counts[REFLECTED]
        out[row, 3] = counts[ABSORBED]
        out[row, 4] = collisions
        out[row, 5] = collisions_sq
    return out


def wilson_interval(successes: int, n: int) -> list[float]:
    """The 95% Wilson score interval of a binomial proportion: unlike ``p -/+ 1.96 se`` it
    stays inside [0, 1] and is not empty when no photon (or every photon) got through."""
    p = successes / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return [max(0.0, centre - half), min(1.0, centre + half)]


class PhotonSlabKernel(BlockKernel):
    """Transmission, reflection and absorption probabilities of a slab (see the module)."""

    Params = Params
    name = "photon.slab"
    work_unit = "photons"
    columns = COLUMNS
    block_items = BLOCK_PHOTONS

    def parse_params(self, raw: Mapping[str, Any]) -> Params:
        """``Params`` validated field by field, then the slab's optical thickness."""
        params: Params = super().parse_params(raw)
        tau = params.optical_thickness
        if tau > MAX_OPTICAL_THICKNESS:
            raise ParamError(
                "thickness",
                f"mu_t * thickness = {tau:g} mean free paths, more than "
                f"{MAX_OPTICAL_THICKNESS:g}: no photon would get through (thickness is in cm, "
                f"mu_t in 1/cm)",
            )
        return params

    def items(self, params: Params) -> int:
        return params.photons

    def compute_blocks(
        self, params: Params, seed: int, first: int, last: int, block_items: int, n_items: int
    ) -> np.ndarray:
        k0, k1 = seed_key(seed)
        return simulate_blocks(
            first,
            last,
            block_items,
            n_items,
            params.optical_thickness,
            params.albedo,
            np.uint64(k0),
            np.uint64(k1),
        )

    def finish(self, params: Params, totals: dict[str, float]) -> dict[str, Any]:
        """Each fate's probability, standard error and 95% interval, and the mean number of
        collisions per photon. The totals are exact integers, so the arithmetic is too."""
        n = int(totals["photons"])
        fates = {}
        for fate in FATES:
            k = int(totals[fate])
            p = k / n
            fates[fate] = {
                "probability": p,
                "stderr": math.sqrt(p * (1 - p) / n),
                "ci95": wilson_interval(k, n),
            }
        s, ss = int(totals["collisions"]), int(totals["collisions_sq"])
        mean = s / n
        se = math.sqrt((n * ss - s * s) / (n * n * (n - 1)))  # sample variance / n
        return {
            "photons": n,
            "optical_thickness": params.optical_thickness,
            "fates": fates,
            "collisions": {
                "mean": mean,
                "stderr": se,
                "ci95": [mean - Z95 * se, mean + Z95 * se],
            },
        }


KERNEL = PhotonSlabKernel()
