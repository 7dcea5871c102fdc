"""The CUDA device as the GPU kernels see it: is there one, and how large a grid fills it.

Imported only by the GPU twins (``kernels/*gpu.py``), never by CPU code, so that a CPU run
never imports ``numba.cuda`` (``NUMBA_ENABLE_CUDASIM`` must be set before that import).
"""

from __future__ import annotations

import os

from tessera.kernels.config import CUDA_BLOCKS_PER_SM


class NoDeviceError(RuntimeError):
    """A GPU twin was asked to run where no CUDA device (nor the simulator) is available."""


def simulated() -> bool:
    """True when Numba's CUDA simulator stands in for a device (``NUMBA_ENABLE_CUDASIM=1``)."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)  # type: ignore[attr-defined]


def available() -> bool:
    """True when a CUDA device (or the simulator) can run kernels in this process."""
    try:
        from numba import cuda
    except ImportError:
        return False
    return bool(cuda.is_available())


def require() -> None:
    """Raise :class:`NoDeviceError`, saying how to fix it, unless a CUDA device (or the
    simulator) can run kernels in this process."""
    try:
        from numba import cuda
    except ImportError as exc:  # a Numba without its CUDA target
        raise NoDeviceError(
            f"this job asks for a GPU (resources.gpus > 0) but Numba's CUDA target cannot be "
            f"imported ({exc}); pip install 'tessera[gpu]', or set resources.gpus = 0"
        ) from None
    if not cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        raise NoDeviceError(
            f"this job asks for a GPU (resources.gpus > 0) but no CUDA device is usable here"
            f"{where}; run it on a GPU worker (tessera run --gpu-workers N) or set "
            f"resources.gpus = 0 to run on the CPU"
        )


def grid_size(work_blocks: int) -> int:
    """Thread blocks for a grid-stride launch over ``work_blocks`` units: at most
    ``CUDA_BLOCKS_PER_SM`` per streaming multiprocessor (1 SM under the simulator)."""
    from numba import cuda

    sms = 1 if simulated() else int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
    return max(1, min(work_blocks, sms * CUDA_BLOCKS_PER_SM))
