"""The worker image, built and run in the session's own Docker engine (tests/docker_engine.py):
``containers/Dockerfile`` builds on the stand-in base, ``docker run IMAGE --version`` works, a
job run inside a container writes the same result.json as on the host, its kernels come from
the image's Numba cache (no compile), and the image's pins are current. The GPU image
(``containers/Dockerfile.gpu``, on top of the CPU one) runs the same CPU job without a GPU and
compiles tessera's CUDA kernel to PTX with the NVVM it carries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tessera
from tests.docker_engine import ROOT, DockerEngine
from tests.jobs import write_job

# the first test pays for the engine's start and the image's build (minutes on vfs)
pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(3600)]


def _job(store: str) -> dict[str, Any]:
    return {
        "job": {"name": "in-a-container", "kernel": "montecarlo.gbm", "store": store}
        | {"shards": 4, "seed": 9},
        "params": {
            "paths": 262_144,
            "steps": 16,
            "spot": 100.0,
            "strike": 105.0,
            "rate": 0.03,
            "volatility": 0.25,
            "maturity": 1.0,
            "products": ["european_call", "asian_arithmetic_call"],
        },
    }


def _shared_folder(tmp_path: Path) -> Path:
    """A folder the image's user (uid 10001) may write, bind-mounted at /work."""
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    return folder


def test_constraints_are_the_versions_the_tests_run_with() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "containers" / "constraints.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def _no_worker_extras(engine: DockerEngine, image: str) -> None:
    """What a worker never uses is not in ``image``."""
    listed = engine.docker(
        "run", "--rm", "--entrypoint", "python", image, "-c",
        "import importlib.util as u; print([m for m in ('pip', 'bokeh', 'setuptools', 'pytest')"
        " if u.find_spec(m)])",
    )  # fmt: skip
    assert listed.stdout.strip() == "[]"


def _job_in_a_container(
    engine: DockerEngine, image: str, tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``_job`` run on the host and in a container of ``image`` (the store on a bind-mounted
    folder, Numba's cache log on); asserts the two result.json are the same bytes. Returns the
    container's process and its store."""
    host = tessera.run(_job(str(tmp_path / "host")), executor="local", progress=False)
    assert host.ok, host.failures
    shared = _shared_folder(tmp_path)
    write_job(shared / "job.toml", _job("/work/store"))
    proc = engine.docker(
        "run", "--rm", "--network", "host", "-v", f"{shared}:/work", "-e", "NUMBA_DEBUG_CACHE=1",
        image, "run", "/work/job.toml", "--executor", "local",
        timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    inside = (shared / "store" / "result.json").read_bytes()
    assert inside == (tmp_path / "host" / "result.json").read_bytes()
    return proc, shared / "store"


def test_the_image_builds_and_reports_its_version(
    docker_engine: DockerEngine, tessera_image: str
) -> None:
    proc = docker_engine.docker("run", "--rm", tessera_image, "--version", timeout=120)
    assert proc.stdout.strip().endswith(tessera.__version__), proc.stdout
    user = docker_engine.docker("run", "--rm", "--entrypoint", "id", tessera_image, "-u")
    assert user.stdout.strip() == "10001"  # not root
    _no_worker_extras(docker_engine, tessera_image)


def test_a_job_in_a_container_writes_the_hosts_bytes_from_the_cached_kernels(
    docker_engine: DockerEngine, tessera_image: str, tmp_path: Path
) -> None:
    proc, store = _job_in_a_container(docker_engine, tessera_image, tmp_path)
    # Numba loaded the kernel from the image's cache and compiled nothing
    log = proc.stdout + proc.stderr
    assert "[cache] data loaded from" in log, log[-2000:]
    assert "[cache] data saved to" not in log, log[-2000:]
    report = json.loads((store / "report.json").read_text())
    assert (report["n_shards"], report["committed"], report["executor"]) == (4, 4, "local")


def test_the_engine_is_only_the_tests(docker_engine: DockerEngine) -> None:
    """DOCKER_HOST points the tests' commands at the session's engine; the session's own
    environment is left alone."""
    assert docker_engine.env()["DOCKER_HOST"] == docker_engine.host
    assert os.environ.get("DOCKER_HOST") != docker_engine.host
    info = docker_engine.docker("info", "--format", "{{.Driver}}")
    assert info.stdout.strip() == "vfs"


def test_a_kernel_package_goes_into_the_image_as_the_readme_says(
    docker_engine: DockerEngine, tessera_image: str, tmp_path: Path
) -> None:
    """README's Dockerfile block ("Write your own kernel"), with the example kernel package
    for ``your-package``: the derived image lists the kernel."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Write your own kernel", 1)[1].split("\n## ", 1)[0]
    block = section.split("```dockerfile\n", 1)[1].split("```", 1)[0]
    assert block.startswith("FROM tessera:latest\n")
    context = tmp_path / "context"
    shutil.copytree(
        ROOT / "examples" / "photon-slab",
        context / "photon-slab",
        ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"),
    )
    dockerfile = block.replace("FROM tessera:latest\n", f"FROM {tessera_image}\n")
    dockerfile = dockerfile.replace(
        "RUN python -m ensurepip",
        "COPY --chown=10001:10001 photon-slab /home/tessera/photon-slab\nRUN python -m ensurepip",
    ).replace("your-package", "--no-deps /home/tessera/photon-slab")
    (context / "Dockerfile").write_text(dockerfile)
    docker_engine.docker(
        "build", "--network", "host", "-t", "tessera-photon:test", str(context), timeout=1200
    )
    listed = docker_engine.docker("run", "--rm", "tessera-photon:test", "kernels", timeout=300)
    assert "photon.slab" in listed.stdout, listed.stdout


def test_the_gpu_image_runs_a_cpu_job_without_a_gpu_and_carries_nvvm(
    docker_engine: DockerEngine, tessera_gpu_image: str, tmp_path: Path
) -> None:
    """No GPU here: ``tessera run`` of a CPU job in the GPU image writes the host's bytes from
    the cached kernels; numba-cuda finds NVVM and libdevice in the image (the GBM kernel
    compiles to PTX for sm_75 .. sm_90), and a GPU job would be refused with tessera's
    message."""
    proc, _ = _job_in_a_container(docker_engine, tessera_gpu_image, tmp_path)
    assert "[cache] data saved to" not in proc.stdout + proc.stderr
    check = docker_engine.docker(
        "run", "--rm", "-v", f"{ROOT / 'tests'}:/check:ro", "--entrypoint", "python",
        tessera_gpu_image, "/check/gpu_image_check.py", timeout=600,
    )  # fmt: skip
    found = json.loads(check.stdout.strip().splitlines()[-1])
    assert found["numba_cuda_module"].startswith(
        "/opt/tessera/lib/python3.11/site-packages/numba_cuda/"
    )
    assert {cc: p["target"] for cc, p in found["ptx"].items()} == {
        cc: f".target {cc}" for cc in ("sm_75", "sm_80", "sm_86", "sm_90")
    }
    assert found["available"] is False
    assert "set resources.gpus = 0 to run on the CPU" in found["refused"]
    _no_worker_extras(docker_engine, tessera_gpu_image)
