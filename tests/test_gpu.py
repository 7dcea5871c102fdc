"""CUDA twins: the suite in tests/cuda under Numba's CUDA simulator (always) and on a real
device (marker ``gpu``), each in its own process; and, in this process, that CPU work never
imports ``numba.cuda`` and that a GPU job without a device fails with the fix in the message.

``NUMBA_ENABLE_CUDASIM`` is read when ``numba.cuda`` is first imported, and Numba re-reads its
environment before every compilation, so the simulator never runs in this pytest process:
setting the variable here would leak into every other test.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tessera.engine import spec
from tessera.kernels.montecarlo.gbm import KERNEL
from tests.jobs import job_dict

ROOT = Path(__file__).resolve().parent.parent


def _env(simulate: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["TESSERA_CUDA_TESTS"] = "1"
    if simulate:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return env


def _python(code: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def _cuda_suite(simulate: bool, timeout: float) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/cuda", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(simulate),
        cwd=ROOT,
    )
    where = "under NUMBA_ENABLE_CUDASIM=1" if simulate else "on the device"
    assert proc.returncode == 0, f"tests/cuda failed {where}:\n{proc.stdout}\n{proc.stderr}"
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout


@functools.cache
def _device() -> str | None:
    """The name of a usable CUDA device, or None (asked in a subprocess, without the
    simulator, so that this process never imports numba.cuda)."""
    code = (
        "from numba import cuda\n"
        "name = cuda.get_current_device().name if cuda.is_available() else ''\n"
        "print(name.decode() if isinstance(name, bytes) else name)"
    )
    try:
        proc = _python(code, _env(simulate=False), timeout=120)
    except subprocess.TimeoutExpired:
        return None
    name = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return name or None


@pytest.fixture
def cuda_gpu() -> str:
    name = _device()
    if name is None:
        pytest.skip(
            "needs a CUDA device: none is usable here (numba.cuda.is_available() is False); "
            "the same tests run under the simulator in test_cuda_twins_under_the_simulator"
        )
    return name


def test_cuda_twins_under_the_simulator() -> None:
    """tests/cuda: RNG, Monte Carlo and imaging twins against the CPU kernels (~15 s)."""
    _cuda_suite(simulate=True, timeout=240)


@pytest.mark.gpu
def test_cuda_twins_on_the_device(cuda_gpu: str) -> None:
    """The same suite on a real device, larger sizes, the 1e-9 price contract."""
    _cuda_suite(simulate=False, timeout=600)


def test_cpu_work_never_imports_numba_cuda(tmp_path: Path) -> None:
    code = f"""
import sys
from tessera.engine import executors, spec
from tessera.engine.run import run_job
from tests.jobs import job_dict
job = spec.from_dict(job_dict({str(tmp_path / "s")!r}, shards=2, paths=20_000, steps=4))
assert run_job(job, executors.create("local"), lambda e: None).ok
assert "numba.cuda" not in sys.modules, "a CPU run imported numba.cuda"
"""
    proc = _python(code, _env(simulate=False))
    assert proc.returncode == 0, proc.stderr


def test_gpu_job_without_a_device_fails_with_the_fix(tmp_path: Path) -> None:
    code = f"""
from tessera.engine import executors, spec
from tessera.engine.run import run_job
from tests.jobs import job_dict
data = job_dict({str(tmp_path / "s")!r}, shards=1, paths=1000, steps=4)
data["resources"] = {{"gpus": 1}}
outcome = run_job(spec.from_dict(data), executors.create("local"), lambda e: None)
assert not outcome.ok
print(outcome.failures[0])
"""
    env = {**_env(simulate=False), "CUDA_VISIBLE_DEVICES": ""}  # hides any real device too
    proc = _python(code, env)
    assert proc.returncode == 0, proc.stderr
    assert "NoDeviceError" in proc.stdout and "resources.gpus = 0" in proc.stdout, proc.stdout
    assert "--gpu-workers" in proc.stdout


def test_device_comes_from_resources_and_unknown_devices_are_refused(tmp_path: Path) -> None:
    data = job_dict(tmp_path / "s", shards=1, paths=1000, steps=2)
    assert spec.from_dict(data).resources.device == "cpu"
    data["resources"] = {"gpus": 2}
    job = spec.from_dict(data)
    assert job.resources.device == "cuda"
    # resources do not change the spec hash: a CPU store can be resumed on GPUs
    assert job.spec_hash == spec.from_dict({**data, "resources": {"gpus": 0}}).spec_hash

    class _IO:
        device = "tpu"

    layout = KERNEL.layout(job.params, 1)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        KERNEL.compute(job.params, 1, layout, 0, io=_IO())  # type: ignore[arg-type]
