"""Kernel names -> kernel objects, imported only when first used.

A job names its kernel in one of three ways:

- a built-in name (``montecarlo.gbm``, ``imaging.pyramid``, ``imaging.transcode``);
- a name that an installed distribution registers under the entry-point group
  ``tessera.kernels`` (``[project.entry-points."tessera.kernels"] photon =
  "photon.kernel:KERNEL"``);
- an import path ``package.module:ATTRIBUTE``, importable in every process that runs shards.

Nothing is cached here: every lookup asks ``importlib`` (which caches modules itself), so a
kernel installed between two runs in one process is found by the second.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tessera.kernels.base import Kernel

ENTRY_POINT_GROUP = "tessera.kernels"

# name -> "module:attribute"; modules load lazily so that `import tessera.kernels` stays cheap.
BUILTIN: dict[str, str] = {
    "montecarlo.gbm": "tessera.kernels.montecarlo.gbm:KERNEL",
    "montecarlo.heston": "tessera.kernels.montecarlo.heston:KERNEL",
    "montecarlo.basket": "tessera.kernels.montecarlo.basket:KERNEL",
    "montecarlo.book": "tessera.kernels.montecarlo.book:KERNEL",
    "imaging.transcode": "tessera.kernels.imaging.transcode:KERNEL",
    "imaging.pyramid": "tessera.kernels.imaging.pyramid:KERNEL",
}

# name -> "module:function" that parses the kernel's [params] without importing its compiled
# code (nor NumPy, Numba, Pillow): what checks job files where only the light install is (the
# S3 trigger's Lambda). Each is the function the kernel's own parse_params calls, so the
# messages are the same.
BUILTIN_PARAMS: dict[str, str] = {
    "montecarlo.gbm": "tessera.kernels.montecarlo.params:parse",
    "montecarlo.heston": "tessera.kernels.montecarlo.heston_params:parse",
    "montecarlo.basket": "tessera.kernels.montecarlo.basket_params:parse",
    "montecarlo.book": "tessera.kernels.montecarlo.book_params:parse",
    "imaging.transcode": "tessera.kernels.imaging.transcode_params:parse",
    "imaging.pyramid": "tessera.kernels.imaging.pyramid_params:parse",
}
# Installed kernels may register theirs under this group, with the kernel's name.
PARAMS_ENTRY_POINT_GROUP = "tessera.params"

# What every kernel object must have (the protocol in kernels/base.py, or the SDK's defaults).
REQUIRED = (
    "parse_params",
    "prepare",
    "warm",
    "locations",
    "params_to_dict",
    "shards_for_size",
    "default_shards",
    "layout",
    "compute",
    "reduce",
    "shard_memory_bytes",
)


class KernelNotFound(LookupError):
    """No kernel of that name: the message says what was tried and what exists."""


@dataclass(frozen=True)
class KernelInfo:
    """Who provides a kernel: the name a job uses, its ``module:attribute`` target, where the
    name came from (``built-in``, ``entry point``, ``import path``), and the distribution and
    version that hold the module (``None`` for a module that no installed distribution owns,
    e.g. one found through ``PYTHONPATH``)."""

    name: str
    target: str
    origin: str
    distribution: str | None
    version: str | None

    @property
    def module(self) -> str:
        """The module to import (the target's part before ``:``)."""
        return self.target.split(":", 1)[0]

    def to_dict(self) -> dict[str, str | None]:
        """The JSON form recorded in the store."""
        return {
            "name": self.name,
            "target": self.target,
            "origin": self.origin,
            "distribution": self.distribution,
            "version": self.version,
        }


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _tessera_version() -> str:
    from tessera._version import __version__

    return __version__


def _owner(module: str) -> tuple[str | None, str | None]:
    top = module.split(".", 1)[0]
    dists = importlib.metadata.packages_distributions().get(top, [])
    if not dists:
        return None, None
    name = dists[0]
    try:
        return name, importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return name, None


def info(name: str) -> KernelInfo:
    """Resolve ``name`` to where its kernel lives, without importing it. Raises
    ``KernelNotFound`` with a "did you mean" for a name that is neither built in nor registered
    nor an import path."""
    if name in BUILTIN:
        return KernelInfo(name, BUILTIN[name], "built-in", "tessera", _tessera_version())
    eps = _entry_points()
    if name in eps:
        ep = eps[name]
        dist = ep.dist
        return KernelInfo(
            name,
            ep.value,
            "entry point",
            dist.metadata["Name"] if dist else None,
            dist.version if dist else None,
        )
    if ":" in name:
        module, _, attr = name.partition(":")
        if not module or not attr:
            raise KernelNotFound(f"{name!r} is not an import path; expected package.module:ATTR")
        owner, version = _owner(module)
        return KernelInfo(name, name, "import path", owner, version)
    known = sorted(BUILTIN) + sorted(eps)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise KernelNotFound(
        f"{name!r} is not a kernel: {hint}expected one of {known}, a name registered under the "
        f"entry-point group {ENTRY_POINT_GROUP!r}, or an import path package.module:ATTRIBUTE"
    )


def params_parser(kernel_info: KernelInfo) -> Callable[[Mapping[str, Any]], Any] | None:
    """The function that parses ``kernel_info``'s ``[params]`` without importing the kernel's
    module: a built-in's, or one an installed distribution registers under the entry-point
    group ``tessera.params`` with the kernel's name. ``None`` when there is none (the params
    are then checked where the kernel is imported)."""
    target = BUILTIN_PARAMS.get(kernel_info.name) if kernel_info.origin == "built-in" else None
    if target is None and kernel_info.origin == "entry point":
        eps = importlib.metadata.entry_points(group=PARAMS_ENTRY_POINT_GROUP)
        target = next((ep.value for ep in eps if ep.name == kernel_info.name), None)
    if target is None:
        return None
    module, _, attr = target.partition(":")
    parse: Callable[[Mapping[str, Any]], Any] = getattr(importlib.import_module(module), attr)
    return parse


def installed_here(kernel_info: KernelInfo) -> KernelInfo:
    """``kernel_info`` with the version this process would import: one metadata read of its
    distribution (cheap), not the scan of every distribution that ``info`` needs for an import
    path. For workers, which check that they run the version the store was written by."""
    if kernel_info.origin == "built-in":
        return KernelInfo(*_fields(kernel_info)[:4], _tessera_version())
    if kernel_info.distribution is None:
        return kernel_info
    try:
        version: str | None = importlib.metadata.version(kernel_info.distribution)
    except importlib.metadata.PackageNotFoundError:
        version = None
    return KernelInfo(*_fields(kernel_info)[:4], version)


def _fields(k: KernelInfo) -> tuple[str, str, str, str | None, str | None]:
    return (k.name, k.target, k.origin, k.distribution, k.version)


def load(kernel_info: KernelInfo) -> Kernel:
    """Import the kernel object of ``kernel_info``. Raises ``KernelNotFound`` when its module
    cannot be imported or lacks the attribute, and ``TypeError`` naming the missing methods
    when the object is not a kernel."""
    module_name, _, attr = kernel_info.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise KernelNotFound(
            f"kernel {kernel_info.name!r}: cannot import module {module_name!r} ({exc}); install "
            f"the package that holds it, or put its folder on PYTHONPATH, in every process that "
            f"runs shards"
        ) from None
    try:
        kernel = getattr(module, attr)
    except AttributeError:
        raise KernelNotFound(
            f"kernel {kernel_info.name!r}: module {module_name!r} has no attribute {attr!r}"
        ) from None
    missing = [m for m in REQUIRED if not callable(getattr(kernel, m, None))]
    if missing:
        raise TypeError(
            f"kernel {kernel_info.name!r} ({kernel_info.target}) is not a kernel: it lacks "
            f"{', '.join(missing)}; subclass tessera.sdk.Kernel or tessera.sdk.BlockKernel"
        )
    found: Kernel = kernel
    return found


def get(name: str) -> Kernel:
    """The kernel a job calls ``name``. Raises ``KernelNotFound`` (see ``info`` and ``load``)."""
    return load(info(name))


def installed() -> list[KernelInfo]:
    """Every kernel that can be named without an import path: the built-ins, then the entry
    points of installed distributions, each with its distribution and version."""
    found = [info(name) for name in sorted(BUILTIN)]
    found += [info(name) for name in sorted(_entry_points()) if name not in BUILTIN]
    return found


def names() -> list[str]:
    """The names of ``installed()`` kernels."""
    return [k.name for k in installed()]
