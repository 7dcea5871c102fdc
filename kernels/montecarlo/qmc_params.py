"""The sampler keys shared by the Monte Carlo kernels: ``sampler``, ``replicates`` and
``brownian_bridge`` (``montecarlo.gbm``, ``montecarlo.heston`` and ``montecarlo.basket``).

``sampler = "philox"`` (the default) draws pseudo-random normals from Philox4x32-10, as
before; ``"sobol"`` draws randomized quasi-Monte Carlo points: ``replicates`` independent
scramblings of one Sobol sequence, ``paths / replicates`` points each, with the standard error
taken from the spread of the replicates. With Sobol, ``brownian_bridge`` (default true) orders
the point's coordinates by a Brownian bridge; antithetic pairs are refused (a scrambled Sobol
set is already balanced, and pairing its points breaks the standard error's independence).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tessera.kernels.base import ParamError
from tessera.kernels.validate import boolean, choice, integer_in

SAMPLERS: tuple[str, ...] = ("philox", "sobol")
KEYS: tuple[str, ...] = ("sampler", "replicates", "brownian_bridge")
DEFAULT_REPLICATES = 16
MAX_REPLICATES = 1024
# Sobol's direction numbers (Joe and Kuo, new-joe-kuo-6.21201) cover this many coordinates
MAX_DIMENSION = 21201


@dataclass(frozen=True)
class Sampler:
    """``name`` is ``"philox"`` or ``"sobol"``; ``replicates`` and ``brownian_bridge`` apply
    to Sobol only (1 and false for Philox)."""

    name: str = "philox"
    replicates: int = 1
    brownian_bridge: bool = False

    @property
    def sobol(self) -> bool:
        return self.name == "sobol"


PHILOX = Sampler()


def parse_sampler(raw: Mapping[str, Any], paths: int, dimension: int) -> Sampler:
    """The sampler keys of ``raw``. ``paths`` is the job's path count, ``dimension`` the
    coordinates one path takes from a Sobol point (steps, times factors or assets).

    Raises ``ParamError`` naming the key: an unknown sampler; ``replicates`` or
    ``brownian_bridge`` given with Philox; ``replicates`` out of 2..1024 or not dividing
    ``paths``; ``antithetic = true`` with Sobol; more coordinates than the direction numbers
    cover."""
    name = choice(raw, "sampler", SAMPLERS, "philox")
    if name == "philox":
        for key in ("replicates", "brownian_bridge"):
            if key in raw:
                raise ParamError(key, 'applies to sampler = "sobol" only (the sampler is philox)')
        return PHILOX
    replicates = integer_in(raw, "replicates", 2, MAX_REPLICATES, DEFAULT_REPLICATES)
    if paths % replicates:
        raise ParamError(
            "paths",
            f'expected a multiple of replicates = {replicates} with sampler = "sobol" '
            f"(each replicate scrambles paths / replicates points), got {paths}",
        )
    if raw.get("antithetic") is True:
        raise ParamError(
            "antithetic",
            'is refused with sampler = "sobol": a scrambled Sobol set is already balanced, '
            "and the standard error comes from independent replicates (set antithetic = false "
            "or leave it out)",
        )
    if dimension > MAX_DIMENSION:
        raise ParamError(
            "steps",
            f"a path needs {dimension} Sobol coordinates; the Joe-Kuo direction numbers cover "
            f'{MAX_DIMENSION} (use fewer steps, or sampler = "philox")',
        )
    bridge = boolean(raw, "brownian_bridge", True)
    return Sampler("sobol", replicates, bridge)


def antithetic_default(raw: Mapping[str, Any]) -> bool:
    """The default of ``antithetic``: true, except with ``sampler = "sobol"``."""
    return raw.get("sampler") != "sobol"


def sampler_dict(sampler: Sampler) -> dict[str, Any]:
    """The canonical keys: none for Philox (so a Philox job's spec is unchanged), all three
    for Sobol."""
    if not sampler.sobol:
        return {}
    return {
        "sampler": sampler.name,
        "replicates": sampler.replicates,
        "brownian_bridge": sampler.brownian_bridge,
    }
