"""What the console's ``tessera run`` does to its own process (``tessera.engine.process``): for a
built-in kernel, Numba's CPU target is loaded without importing SciPy's BLAS, and ``np.dot``
still works; for a kernel of the user's, Numba is as it comes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.jobs import job_dict, write_job

ROOT = Path(__file__).resolve().parent.parent

# The console's main() (argv from sys.argv), then what Numba and SciPy look like afterwards, and
# whether a Numba np.dot compiled afterwards gives NumPy's product.
SCRIPT = r"""
import json, sys
import numpy as np
from tessera.engine.cli import main
sys.argv = ["tessera", "run", sys.argv[1], "--executor", "local"]
code = main()
linalg = "scipy.linalg" in sys.modules
import numba
import numba.np.arraymath as arraymath
a = np.arange(6.0).reshape(2, 3)
dot = numba.njit(lambda a, b: np.dot(a, b))
same = bool(np.array_equal(dot(a, a.T), a @ a.T))
print("RESULT " + json.dumps(
    {"code": code, "blas": arraymath._HAVE_BLAS, "linalg": linalg, "dot": same}))
"""


def _console(job: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(job)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def test_a_built_in_kernel_runs_without_scipy_and_np_dot_still_works(tmp_path: Path) -> None:
    job = write_job(tmp_path / "gbm.toml", job_dict(tmp_path / "store", shards=2))
    assert _console(job) == {"code": 0, "blas": False, "linalg": False, "dot": True}


def test_a_users_kernel_gets_numba_as_it_comes(tmp_path: Path) -> None:
    data = {
        "job": {"name": "codecs", "kernel": "tests.codec_kernel:KERNEL"}
        | {"store": str(tmp_path / "store"), "shards": 2},
        "params": {"codec": "default"},
    }
    job = write_job(tmp_path / "mine.toml", data)
    result = _console(job)  # this kernel compiles nothing: Numba's target loads afterwards
    assert (result["code"], result["blas"], result["dot"]) == (0, True, True)


def test_no_built_in_kernel_calls_what_numba_gives_scipys_blas() -> None:
    """``np.correlate`` and ``np.convolve`` are what Numba compiles with SciPy's dot product
    when it found SciPy's BLAS at start: a built-in kernel calling them would give other bytes
    from ``tessera run`` than from a Dask worker."""
    called = re.compile(r"\b(?:np|numpy)\.(?:correlate|convolve)\b")
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "kernels").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if called.search(line)
    ]
    assert found == []
