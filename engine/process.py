"""What the console's ``tessera run`` and ``tessera worker`` do to their own process, which runs
one job and exits, and which no one else's code shares. A process that imports tessera (a
user's script calling ``tessera.run``, a Dask worker) is left as it is.

``load_numba_target``: Numba's CPU target, loaded at the first kernel it compiles or loads from
its cache, imports SciPy's BLAS (``scipy.linalg``: 0.2 s, a tenth of a 2 s pyramid run) only
to ask whether it is there. The answer is used once, by ``np.correlate`` and ``np.convolve``
compiled by Numba, which take BLAS's dot product for floats instead of a loop. No built-in
kernel calls them (tested), and ``np.dot`` and ``np.linalg`` still import SciPy's BLAS when a
kernel is compiled with them, so for a built-in kernel the target is loaded with the answer
"no", and SciPy is not imported. A kernel of the user's gets Numba as it comes: its
``np.correlate`` gives the same bytes here as on any worker.
"""

from __future__ import annotations

import sys

from tessera.kernels import registry

_OWN = [False]

# Numba's module that asks (numba.np.arraymath._HAVE_BLAS), and the module it imports to ask
_ASKS, _BLAS = "numba.np.arraymath", "scipy.linalg.cython_blas"


def own() -> None:
    """Mark this process as tessera's own (the console's ``run`` and ``worker``)."""
    _OWN[0] = True


def load_numba_target(kernel: registry.KernelInfo) -> None:
    """Load Numba's CPU target now, before ``kernel``'s code does, in a process of tessera's own
    about to run a built-in ``kernel``: without SciPy's BLAS (see the module docstring).
    Anywhere else, or once the target is loaded, nothing happens."""
    if not _OWN[0] or kernel.origin != "built-in" or _ASKS in sys.modules or _BLAS in sys.modules:
        return
    from numba.core.registry import cpu_target

    sys.modules[_BLAS] = None  # type: ignore[assignment]  # import fails: "no BLAS"
    try:
        cpu_target.target_context.refresh()
    finally:
        if sys.modules.get(_BLAS, False) is None:
            del sys.modules[_BLAS]  # a later import of SciPy's BLAS works as ever
