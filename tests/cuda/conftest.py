"""CUDA twin tests. They import ``numba.cuda``, whose target (simulator or device) is fixed at
import, so they run only in a process started for them: ``tests/test_gpu.py`` runs this folder
in a subprocess with ``NUMBA_ENABLE_CUDASIM=1`` (every CI run) and, where a CUDA device exists,
once more on the device (``-m gpu``). By hand::

    TESSERA_CUDA_TESTS=1 NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda
"""

from __future__ import annotations

import os

if os.environ.get("TESSERA_CUDA_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]
