"""Kernel names -> kernel objects, imported only when first used."""

from __future__ import annotations

import importlib

from kernels.base import Kernel

# name -> "module:attribute"; modules load lazily so that `import kernels` stays cheap.
_KERNELS: dict[str, str] = {
    "montecarlo.gbm": "kernels.montecarlo.gbm:KERNEL",
    "imaging.transcode": "kernels.imaging.transcode:KERNEL",
    "imaging.pyramid": "kernels.imaging.pyramid:KERNEL",
    "bench.spin": "kernels.bench:KERNEL",
}


def names() -> list[str]:
    """The registered kernel names, sorted."""
    return sorted(_KERNELS)


def get(name: str) -> Kernel:
    """Return the kernel registered as ``name``; ``KeyError`` if there is none."""
    try:
        target = _KERNELS[name]
    except KeyError:
        raise KeyError(name) from None
    module_name, attr = target.split(":")
    kernel: Kernel = getattr(importlib.import_module(module_name), attr)
    return kernel
