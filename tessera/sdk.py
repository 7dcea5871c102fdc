"""The kernel SDK: ``from tessera.sdk import BlockKernel, param`` (see README, "Write your own
kernel"). Defined in ``tessera.kernels.sdk``; this module re-exports its ``__all__``."""

from tessera.kernels.sdk import *  # noqa: F403  (the public names, listed once, in __all__)
from tessera.kernels.sdk import __all__  # noqa: F401
