"""A user's kernel on a remote Dask cluster (started with Dask's own CLIs) whose workers do not
have the kernel's module: refused before any shard runs, with one message naming the module
and the workers; shipped with ``--upload-kernel`` when it is a single module (then the result
is the local executor's, byte for byte); and ``--upload-kernel`` refused for a package kernel.

The kernel module lives in ``tmp_path``, on the driver's ``PYTHONPATH`` only. Each test writes
its own module name: a module uploaded to the module-scoped cluster stays importable there.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from tests import probe_kernel
from tests.conformance import probe_job
from tests.dask_cli import CliCluster, dask_cli_fixture  # noqa: F401  (dask_cli_cluster)
from tests.jobs import write_job

ROOT = Path(__file__).resolve().parent.parent
TESSERA = [sys.executable, "-m", "tessera.engine.cli"]


def _cli(*args: str, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    """``tessera ARGS`` with ``pythonpath`` (the kernel's folder) before the repository root."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DASK_")},
        "PYTHONPATH": f"{pythonpath}{os.pathsep}{ROOT}",
        "TESSERA_FAULTS": "",
    }
    return subprocess.run(
        [*TESSERA, *args], capture_output=True, text=True, timeout=240, cwd=ROOT, env=env
    )


def _module_kernel(folder: Path) -> str:
    """A single-module kernel (the probe kernel's source) in ``folder``; returns its name."""
    name = f"remote_probe_{secrets.token_hex(4)}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(Path(probe_kernel.__file__).read_text())
    return name


def _job_file(folder: Path, kernel: str, store: Path) -> Path:
    data = probe_job(store)
    data["job"]["kernel"] = kernel
    return write_job(folder / "job.toml", data)


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_workers_without_the_module_are_refused_then_upload_kernel_runs(
    tmp_path: Path, dask_cli_cluster: CliCluster
) -> None:
    kernels = tmp_path / "kernels"
    module = _module_kernel(kernels)
    store = tmp_path / "store"
    job = _job_file(tmp_path, f"{module}:KERNEL", store)

    refused = _cli("run", str(job), "--scheduler", dask_cli_cluster.address, pythonpath=kernels)
    assert refused.returncode == 1, refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr
    errors = _errors(refused.stderr)
    assert len(errors) == 1, refused.stderr
    assert "2 of 2 Dask workers cannot run kernel" in errors[0]
    assert f"module {module}" in errors[0]
    assert all(worker in errors[0] for worker in dask_cli_cluster.workers), errors[0]
    assert "--upload-kernel" in errors[0]
    assert not (store / "_attempts").exists()  # no shard was started anywhere
    assert not (store / "_shards").exists()

    ran = _cli(
        "run",
        str(job),
        "--scheduler",
        dask_cli_cluster.address,
        "--upload-kernel",
        pythonpath=kernels,
    )
    assert ran.returncode == 0, ran.stderr + dask_cli_cluster.log_tail()
    local_store = tmp_path / "local"
    local = _cli(
        "run", str(job), "--executor", "local", "--store", str(local_store), pythonpath=kernels
    )
    assert local.returncode == 0, local.stderr
    assert (store / "result.json").read_bytes() == (local_store / "result.json").read_bytes()
    assert sorted(p.name for p in (store / "_shards").iterdir()) == [f"{i}.json" for i in range(4)]


def test_upload_kernel_refuses_a_package_kernel(
    tmp_path: Path, dask_cli_cluster: CliCluster
) -> None:
    kernels = tmp_path / "kernels"
    package = f"remote_pkg_{secrets.token_hex(4)}"
    (kernels / package).mkdir(parents=True)
    (kernels / package / "__init__.py").write_text("")
    (kernels / package / "kernel.py").write_text(Path(probe_kernel.__file__).read_text())
    store = tmp_path / "store"
    job = _job_file(tmp_path, f"{package}.kernel:KERNEL", store)

    refused = _cli(
        "run",
        str(job),
        "--scheduler",
        dask_cli_cluster.address,
        "--upload-kernel",
        pythonpath=kernels,
    )
    assert refused.returncode == 1, refused.stderr
    assert _errors(refused.stderr) == [
        f"error: --upload-kernel ships a kernel that is one top-level module (photon.py); "
        f"{package}.kernel is part of a package: install that package on every worker"
    ], refused.stderr
    assert not (store / "_attempts").exists()
