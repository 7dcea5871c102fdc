"""Run inside the GPU image (``python /check/gpu_image_check.py``): what can be checked of its
CUDA half without a GPU. Prints one JSON object.

- ``numba.cuda`` is numba-cuda's (the wheels' target, not Numba's deprecated built-in one);
- NVVM and libdevice are found in the image: tessera's GBM kernel compiles to PTX for the
  compute capabilities of Batch's GPU instances (sm_75 T4 on g4dn, sm_80 A100 / sm_86 A10G on
  p4d / g5, sm_90 H100 on p5);
- with no device, a GPU job is refused with tessera's message, not a driver traceback.
"""

from __future__ import annotations

import json

from numba import types


class _Device:
    """What numba-cuda asks of the current device when it compiles a device function called
    by a kernel: its compute capability. A host without a GPU has no current device, so the
    check names the capability it compiles for (the compiling, by NVVM, is real)."""

    def __init__(self, cc: tuple[int, int]) -> None:
        self.compute_capability = cc


def main() -> None:
    import numba.cuda
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    from tessera.kernels import cuda_device
    from tessera.kernels.montecarlo import gpu

    i64, f64, u32, b1 = types.int64, types.float64, types.uint32, types.boolean
    signature = (i64,) * 5 + (f64,) * 6 + (u32, u32, b1, b1, types.float64[:, ::1])
    ptx = {}
    for cc in ((7, 5), (8, 0), (8, 6), (9, 0)):
        dispatcher.get_current_device = lambda cc=cc: _Device(cc)  # type: ignore[attr-defined]
        text, _ = cuda.compile_ptx(gpu._simulate.py_func, signature, cc=cc)
        target = next(line for line in text.splitlines() if line.startswith(".target"))
        ptx[f"sm_{cc[0]}{cc[1]}"] = {"target": target, "lines": text.count("\n")}
    try:
        cuda_device.require()
        refused = None
    except cuda_device.NoDeviceError as exc:
        refused = str(exc)
    print(
        json.dumps(
            {
                "numba_cuda_module": numba.cuda.__file__,
                "nvvm_version": list(cuda.cudadrv.nvvm.NVVM().get_version()),
                "ptx": ptx,
                "available": bool(cuda.is_available()),
                "refused": refused,
            }
        )
    )


if __name__ == "__main__":
    main()
