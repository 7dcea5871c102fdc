"""A kernel of one's own: the packaged example ``examples/photon-slab`` installed with pip and
named by its entry point, and the single-module kernel of README's "Write your own kernel", each
run through the CLI, the API, a LocalCluster, a cluster started with the ``dask`` CLIs and
``tessera batch local``, with byte-identical results and answers checked against closed forms.

The physics tests load the kernel from the checkout and take about a second. Those that pip-install
the package or start processes (about two dozen Python processes: clusters, Batch children) are
marked ``slow``: together a minute or more."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tessera
from tessera.kernels import registry
from tessera.sdk import BlockKernel, ParamError, param
from tests.jobs import write_job
from tests.naive import philox4x32

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "examples" / "photon-slab"
DIST = "tessera-photon-slab"
TESSERA = [sys.executable, "-m", "tessera"]
# photons = 40,000: ten blocks of 4,096 (the last one partial); 4 shards of 3, 3, 3 and 1 blocks.
PHOTON_PARAMS = {"photons": 40_000, "thickness": 1.0, "mu_t": 2.0, "albedo": 0.7}


def _env(**extra: str) -> dict[str, str]:
    """The test's environment without anything that would pick an executor, a scheduler or a
    fault for the child."""
    drop = ("DASK_SCHEDULER_ADDRESS", "PYTHONPATH", "TESSERA_EXECUTOR", "TESSERA_WORKERS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "TESSERA_FAULTS": "", **extra}


def _cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TESSERA, *args],
        capture_output=True,
        text=True,
        timeout=240,
        env=env or _env(),
        cwd=cwd or ROOT,
    )


def _photon_job(store: Path, *, shards: int = 4, **params: Any) -> dict[str, Any]:
    return {
        "job": {
            "name": "photon-test",
            "kernel": "photon.slab",
            "store": str(store),
            "shards": shards,
            "seed": 11,
        },
        "params": {**PHOTON_PARAMS, **params},
    }


# -- fixtures: the kernel from its source, the package installed with pip, a reference run, a
# -- CLI-started Dask cluster


@pytest.fixture(scope="module")
def kernel() -> Any:
    """The kernel object of ``examples/photon-slab`` imported from the checkout (the physics
    tests need no pip install), compiled, then taken out of ``sys.modules`` and ``sys.path`` so
    that the tests of the installed package import theirs. (It keeps its module name: Numba's
    cache files name the module, so loading the file under another name would poison them.)"""
    installed = _forget_photon_slab()  # the pip-installed copy, if a test imported it already
    sys.path.insert(0, str(PACKAGE))
    try:
        module = importlib.import_module("photon_slab.kernel")
        assert Path(module.__file__ or "").is_relative_to(PACKAGE)
        found = module.KERNEL
        found.compute_blocks(found.parse_params(PHOTON_PARAMS), 0, 0, 1, 4096, 100)
    finally:
        sys.path.remove(str(PACKAGE))
        _forget_photon_slab()
        sys.modules.update(installed)
    return found


def _forget_photon_slab() -> dict[str, Any]:
    """Take ``photon_slab`` and its submodules out of ``sys.modules``; returns them."""
    names = [m for m in sys.modules if m == "photon_slab" or m.startswith("photon_slab.")]
    modules = {name: sys.modules.pop(name) for name in names}
    importlib.invalidate_caches()
    return modules


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )


def _installed_version() -> str | None:
    importlib.invalidate_caches()
    try:
        return importlib.metadata.version(DIST)
    except importlib.metadata.PackageNotFoundError:
        return None


@pytest.fixture(scope="module")
def photon_slab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``examples/photon-slab`` pip-installed into this interpreter's environment (from a copy,
    so that the build leaves nothing in the checkout); uninstalled at the end unless it was
    installed before. Yields the installed package folder."""
    was_installed = _installed_version() is not None
    source = tmp_path_factory.mktemp("photon-slab-source") / "photon-slab"
    shutil.copytree(
        PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    # Without build isolation pip uses this environment's setuptools, which may be too old to
    # build a wheel on its own (setuptools < 70.1 needs the `wheel` package); then let pip make
    # an isolated build environment from its configured index.
    proc = _pip("install", "--no-deps", "--no-build-isolation", str(source))
    if proc.returncode != 0:
        proc = _pip("install", "--no-deps", str(source))
    folder: Path | None = None
    try:
        assert proc.returncode == 0, f"pip install failed:\n{proc.stdout}{proc.stderr}"
        assert _installed_version() == "1.0.0"
        spec = importlib.util.find_spec("photon_slab")
        assert spec is not None and spec.origin is not None
        folder = Path(spec.origin).parent
        assert not folder.is_relative_to(PACKAGE)  # the installed copy, not the checkout's
        # Compile once here: Numba caches beside the installed module, so the processes that
        # the tests start load the compiled kernel instead of each compiling it.
        installed = registry.get("photon.slab")
        installed.compute_blocks(installed.parse_params(PHOTON_PARAMS), 0, 0, 1, 4096, 100)
        yield folder
    finally:
        _forget_photon_slab()
        if not was_installed and _installed_version() is not None:
            done = _pip("uninstall", "--yes", DIST)
            assert done.returncode == 0, done.stderr
            if folder is not None and folder.is_dir():  # Numba's cache files, unknown to pip
                shutil.rmtree(folder)
        importlib.invalidate_caches()


@pytest.fixture(scope="module")
def photon_reference(photon_slab: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The photon job run once with `tessera run --executor local`: its store."""
    folder = tmp_path_factory.mktemp("photon-reference")
    path = write_job(folder / "job.toml", _photon_job(folder / "store"))
    proc = _cli("run", str(path), "--executor", "local")
    assert proc.returncode == 0, proc.stderr
    return folder / "store"


def _scheduler_address(sched_file: Path, scheduler: subprocess.Popen[bytes]) -> str:
    """The address in the scheduler file, once the scheduler has written all of it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and scheduler.poll() is None:
        try:
            return str(json.loads(sched_file.read_text())["address"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.1)
    raise AssertionError(
        f"dask scheduler wrote no address to {sched_file} (exit {scheduler.poll()})"
    )


@pytest.fixture(scope="module")
def dask_cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dask scheduler` and `dask worker` (two single-threaded worker processes) on loopback,
    started as separate processes with no PYTHONPATH. Yields the scheduler address."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("dask-cli")
    sched_file = folder / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    logs = [open(folder / f"{name}.log", "w") for name in ("scheduler", "workers")]
    env = _env(NUMBA_NUM_THREADS="1")
    commands = [
        [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
        + ["--scheduler-file", str(sched_file)],
        [*dask, "worker", "--scheduler-file", str(sched_file), "--host", "127.0.0.1"]
        + ["--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
    ]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for command, log_file in zip(commands, logs):
            procs.append(
                subprocess.Popen(
                    command,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=env,
                    cwd=folder,
                )
            )
            address = _scheduler_address(sched_file, procs[0])
        # Wait until both workers are connected: a kernel uploaded before a worker joins would
        # be missing on it.
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=15)
        for log_file in logs:
            log_file.close()


# -- the installed package: listed, named by its entry point ---------------------------------


@pytest.mark.slow
def test_tessera_kernels_lists_the_pip_installed_kernel(photon_slab: Path) -> None:
    proc = _cli("kernels", "--json")
    assert proc.returncode == 0, proc.stderr
    found = {k["name"]: k for k in json.loads(proc.stdout)}
    assert found["photon.slab"] == {
        "name": "photon.slab",
        "target": "photon_slab.kernel:KERNEL",
        "origin": "entry point",
        "distribution": DIST,
        "version": "1.0.0",
    }
    assert "montecarlo.gbm" in found
    table = _cli("kernels")
    assert table.returncode == 0, table.stderr
    assert re.search(r"^photon\.slab\s+tessera-photon-slab\s+1\.0\.0\s+", table.stdout, re.M)
    by_name = {k.name: k for k in tessera.list_kernels()}
    assert (by_name["photon.slab"].distribution, by_name["photon.slab"].version) == (DIST, "1.0.0")


# -- the physics, on the kernel loaded from the checkout -------------------------------------


def _totals(
    kernel: Any, params: dict[str, Any], seed: int = 5
) -> tuple[dict[str, Any], np.ndarray]:
    p = kernel.parse_params(params)
    rows = kernel.compute_blocks(p, seed, 0, kernel.n_blocks(p), kernel.block_items, p.photons)
    return kernel.finish(p, {c: math.fsum(rows[:, i]) for i, c in enumerate(kernel.columns)}), rows


def test_without_scattering_the_transmission_is_exp_minus_tau(kernel: Any) -> None:
    answer, rows = _totals(
        kernel, {"photons": 200_000, "thickness": 1.5, "mu_t": 0.8, "albedo": 0.0}
    )
    t = answer["fates"]["transmitted"]
    expected = math.exp(-0.8 * 1.5)
    assert abs(t["probability"] - expected) < 4 * t["stderr"]
    assert t["ci95"][0] < t["probability"] < t["ci95"][1]
    assert answer["fates"]["reflected"]["probability"] == 0.0  # nothing comes back
    assert answer["collisions"]["mean"] == answer["fates"]["absorbed"]["probability"]
    assert answer["optical_thickness"] == 0.8 * 1.5


@pytest.mark.parametrize("albedo", [0.0, 0.5, 0.95, 1.0])
def test_every_block_conserves_photons(kernel: Any, albedo: float) -> None:
    answer, rows = _totals(
        kernel, {"photons": 30_000, "thickness": 3.0, "mu_t": 1.0, "albedo": albedo}
    )
    # photons = transmitted + reflected + absorbed, exactly, in every block (the last partial)
    assert rows[:, 0].tolist() == [4096.0] * 7 + [30_000 - 7 * 4096]
    assert (rows[:, 1] + rows[:, 2] + rows[:, 3] == rows[:, 0]).all()
    # (the probabilities are three rounded quotients: their sum is 1 to within rounding)
    assert abs(math.fsum(f["probability"] for f in answer["fates"].values()) - 1.0) <= 2**-52
    if albedo == 1.0:
        assert answer["fates"]["absorbed"]["probability"] == 0.0


def test_blocks_do_not_depend_on_how_the_work_is_cut(kernel: Any) -> None:
    p = kernel.parse_params(PHOTON_PARAMS)
    n = kernel.n_blocks(p)
    whole = kernel.compute_blocks(p, 3, 0, n, 4096, p.photons)
    parts = [
        kernel.compute_blocks(p, 3, a, b, 4096, p.photons) for a, b in ((0, 1), (1, 6), (6, n))
    ]
    assert np.array_equal(whole, np.vstack(parts))
    assert not np.array_equal(whole, kernel.compute_blocks(p, 4, 0, n, 4096, p.photons))


def _reference_histories(seed: int, n: int, tau: float, albedo: float) -> np.ndarray:
    """Photons 0 .. n-1 followed in NumPy (Random123's Philox written again, np.log): per photon
    (fate 0/1/2 = transmitted/reflected/absorbed, collisions)."""
    key = (seed & 0xFFFFFFFF, seed >> 32)
    photon = np.arange(n, dtype=np.uint64)
    depth, mu = np.zeros(n), np.ones(n)
    fate, collisions = np.full(n, -1), np.zeros(n, dtype=np.int64)
    step = 0
    while (alive := fate < 0).any():
        p = photon[alive]
        lo, hi = p & np.uint64(0xFFFFFFFF), p >> np.uint64(32)
        counters = np.stack([np.full(p.size, step, dtype=np.uint64), lo, hi, 0 * p], axis=1)
        u = (philox4x32(counters, key).astype(np.float64) + 0.5) * 2.0**-32
        d = depth[alive] + mu[alive] * -np.log(u[:, 0])
        out = np.where(d >= tau, 0, np.where(d <= 0.0, 1, np.where(u[:, 1] >= albedo, 2, -1)))
        idx = np.flatnonzero(alive)
        fate[idx] = out
        collisions[idx] = step + (out == 2)
        depth[idx], mu[idx] = d, np.where(out < 0, 2.0 * u[:, 2] - 1.0, mu[idx])
        step += 1
    return np.stack([fate, collisions], axis=1)


def test_histories_match_a_numpy_reference_photon_by_photon(kernel: Any) -> None:
    seed, n = 2**40 + 9, 3000  # a seed with both key words non-zero
    p = kernel.parse_params({"photons": n, "thickness": 2.0, "mu_t": 1.0, "albedo": 0.9})
    rows = kernel.compute_blocks(p, seed, 0, n, 1, n)  # blocks of one photon: a row per photon
    reference = _reference_histories(seed, n, 2.0, 0.9)
    fate = np.argmax(rows[:, 1:4], axis=1)
    assert np.array_equal(fate, reference[:, 0])
    assert np.array_equal(rows[:, 4], reference[:, 1])
    assert np.array_equal(rows[:, 5], reference[:, 1] ** 2)
    assert set(fate.tolist()) == {0, 1, 2} and reference[:, 1].max() > 5


def _chandrasekhar_h(albedo: float, mu: float, nodes: int = 64) -> float:
    """Chandrasekhar's H-function for isotropic scattering, from its integral equation
    ``H(mu) = 1 + albedo/2 mu H(mu) int_0^1 H(m) / (mu + m) dm``, iterated on Gauss-Legendre
    nodes (converges geometrically for albedo < 1)."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    x, w = (x + 1) / 2, w / 2
    h = np.ones(nodes)
    for _ in range(1000):
        new = 1 / (1 - albedo / 2 * x * (w * h / (x[:, None] + x)).sum(axis=1))
        if np.abs(new - h).max() < 1e-14:
            break
        h = new
    return float(1 / (1 - albedo / 2 * mu * (w * h / (mu + x)).sum()))


def test_a_thick_slab_reflects_chandrasekhars_plane_albedo(kernel: Any) -> None:
    """For isotropic scattering the fraction of a beam at direction cosine mu0 that a
    half-space reflects (its plane albedo) is ``1 - sqrt(1 - albedo) H(mu0)`` (S. Chandrasekhar,
    Radiative Transfer, Oxford 1950; Dover 1960). A slab of 30 mean free paths is a half-space
    for what comes back: with albedo 0.9 the flux decays like exp(-0.525 depth) (the diffusion
    eigenvalue), so the far face changes R by about exp(-31). H(1) = 1.8501 (computed here from
    the H-equation), so R = 0.41495."""
    h = _chandrasekhar_h(0.9, 1.0)
    assert abs(h - 1.8501) < 1e-4
    expected = 1 - math.sqrt(1 - 0.9) * h
    answer, _ = _totals(kernel, {"photons": 200_000, "thickness": 30.0, "mu_t": 1.0, "albedo": 0.9})
    r = answer["fates"]["reflected"]
    assert abs(r["probability"] - expected) < 4 * r["stderr"]
    assert answer["fates"]["transmitted"]["probability"] < 1e-4


@pytest.mark.parametrize(
    ("params", "key", "message"),
    [
        ({"thickness": 2000.0}, "thickness", "mu_t * thickness = 4000 mean free paths"),
        ({"photons": 1}, "photons", "1 is out of range; expected >= 2"),
        ({"albedo": 1.5}, "albedo", "1.5 is out of range; expected <= 1"),
        ({"albedoo": 0.5}, "albedoo", "unknown key; did you mean 'albedo'?"),
        ({"mu_t": "2"}, "mu_t", "expected a number, got str '2'"),
    ],
)
def test_bad_params_are_refused_naming_the_key(
    kernel: Any, params: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ParamError) as info:
        kernel.parse_params({**PHOTON_PARAMS, **params})
    assert info.value.key == key
    assert message in info.value.message


# -- the installed package through every executor: the same bytes -----------------------------


@pytest.mark.slow
def test_the_store_records_the_kernels_distribution_and_version(photon_reference: Path) -> None:
    meta = json.loads((photon_reference / "zarr.json").read_text())["attributes"]["tessera"]
    assert meta["kernel"] == {
        "name": "photon.slab",
        "target": "photon_slab.kernel:KERNEL",
        "origin": "entry point",
        "distribution": DIST,
        "version": "1.0.0",
    }
    result = json.loads((photon_reference / "result.json").read_text())
    assert result["kernel"] == "photon.slab" and result["photons"] == 40_000
    assert result["params"] == PHOTON_PARAMS and result["seed"] == 11
    assert abs(math.fsum(f["probability"] for f in result["fates"].values()) - 1.0) <= 2**-52


@pytest.mark.slow
def test_the_api_gives_the_same_bytes_for_any_shard_count(
    photon_reference: Path, tmp_path: Path
) -> None:
    for shards in (1, 3):
        job = tessera.load(_photon_job(tmp_path / f"store-{shards}", shards=shards))
        outcome = tessera.run(job, executor="local", progress=False)
        assert outcome.ok, outcome.failures
        assert outcome.report["n_shards"] == shards
        data = (tmp_path / f"store-{shards}" / "result.json").read_bytes()
        assert data == (photon_reference / "result.json").read_bytes()
        assert outcome.result == json.loads(data)


@pytest.mark.slow
def test_a_local_cluster_gives_the_same_bytes(photon_reference: Path, tmp_path: Path) -> None:
    path = write_job(tmp_path / "job.toml", _photon_job(tmp_path / "store"))
    proc = _cli("run", str(path), "--executor", "dask", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "store" / "result.json").read_bytes() == (
        photon_reference / "result.json"
    ).read_bytes()


@pytest.mark.slow
def test_a_cluster_of_dask_cli_processes_gives_the_same_bytes(
    photon_reference: Path, dask_cli_cluster: str, tmp_path: Path
) -> None:
    path = write_job(tmp_path / "job.toml", _photon_job(tmp_path / "store"))
    proc = _cli("run", str(path), "--scheduler", dask_cli_cluster)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "store" / "result.json").read_bytes() == (
        photon_reference / "result.json"
    ).read_bytes()
    report = json.loads((tmp_path / "store" / "report.json").read_text())
    assert report["executor"] == "dask"


@pytest.mark.slow
def test_batch_local_gives_the_same_bytes(photon_reference: Path, tmp_path: Path) -> None:
    # two shards: each Batch child is a process of its own, and the bytes are those of four
    path = write_job(tmp_path / "job.toml", _photon_job(tmp_path / "store", shards=2))
    proc = _cli("batch", "local", str(path), "--parallel", "2")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "store" / "result.json").read_bytes() == (
        photon_reference / "result.json"
    ).read_bytes()


@pytest.mark.slow
def test_the_example_job_file_validates_and_a_bad_one_names_the_key(
    photon_slab: Path, tmp_path: Path
) -> None:
    proc = _cli("validate", str(ROOT / "examples" / "photon-slab.toml"))
    assert proc.returncode == 0, proc.stderr
    assert "kernel photon.slab, 8 shards, 4,194,304 photons, store " in proc.stdout
    assert f"store {ROOT / 'runs' / 'photon-slab'}, spec " in proc.stdout
    bad = write_job(tmp_path / "bad.toml", _photon_job(tmp_path / "store", thickness=2000.0))
    proc = _cli("validate", str(bad))
    assert proc.returncode == 2
    assert "error: params.thickness: mu_t * thickness = 4000 mean free paths" in proc.stderr
    assert not (tmp_path / "store").exists()


# -- README: "Write your own kernel", its two code blocks run as written ---------------------


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Write your own kernel\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def _block(section: str, language: str) -> str:
    match = re.search(rf"^```{language}\n(.*?)^```$", section, re.M | re.S)
    assert match, f"no ```{language} block in README's 'Write your own kernel'"
    return match.group(1)


@pytest.fixture(scope="module")
def readme_kernel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The README's kernel module and job file written to a folder: (module folder, job)."""
    section = _readme_section()
    job_text = _block(section, "toml")
    target = tomllib.loads(job_text)["job"]["kernel"]
    module, _, attr = target.partition(":")
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", module) and attr, target
    folder = tmp_path_factory.mktemp("readme-kernel")
    (folder / f"{module}.py").write_text(_block(section, "python"))
    job = folder / "job.toml"
    job.write_text(job_text)
    return folder, job


def test_readme_section_sits_after_the_python_api_and_is_complete() -> None:
    text = (ROOT / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    position = headings.index("Write your own kernel")
    before = "Python API" if "Python API" in headings else "Job file reference"
    assert headings[position - 1] == before
    section = _readme_section()
    assert len(re.findall(r"^```python$", section, re.M)) == 1
    assert len(re.findall(r"^```toml$", section, re.M)) == 1
    assert len(_block(section, "python").splitlines()) < 60
    for needed in (
        "tessera.sdk",
        "BlockKernel",
        "param(",
        "params.",
        '[project.entry-points."tessera.kernels"]',
        "tessera kernels",
        "--upload-kernel",
        "FROM tessera:latest",
        "examples/photon-slab",
    ):
        assert needed in section, needed


@pytest.mark.slow
def test_readme_kernel_runs_everywhere_with_the_same_bytes_and_the_right_answer(
    readme_kernel: tuple[Path, Path], dask_cli_cluster: str, tmp_path: Path
) -> None:
    folder, job = readme_kernel
    env = _env(PYTHONPATH=str(folder))
    # local, in a folder of its own: the job's relative store lands there
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    proc = _cli("run", str(job), "--executor", "local", env=env, cwd=local_dir)
    assert proc.returncode == 0, proc.stderr
    store = tomllib.loads(job.read_text())["job"]["store"]
    assert not Path(store).is_absolute()
    reference = (local_dir / store / "result.json").read_bytes()
    runs = {
        "local-cluster": ("run", str(job), "--executor", "dask", "--workers", "2"),
        "batch-local": ("batch", "local", str(job), "--parallel", "2", "--shards", "2"),
        # the CLI-started workers have no PYTHONPATH: the module travels with --upload-kernel
        "upload": ("run", str(job), "--scheduler", dask_cli_cluster, "--upload-kernel"),
    }
    for name, args in runs.items():
        proc = _cli(*args, "--store", str(tmp_path / name), env=env)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        assert (tmp_path / name / "result.json").read_bytes() == reference, name
    result = json.loads(reference)
    assert abs(result["pi"] - math.pi) < 4 * result["stderr"]
    assert 0 < result["stderr"] < 0.01


def test_readme_kernel_stops_at_a_target_stderr(
    readme_kernel: tuple[Path, Path], tmp_path: Path
) -> None:
    """A ``BlockKernel`` gets ``reduce_prefix`` from the SDK: the README's pi kernel with
    ``target_stderr = 0.0015`` over 16 shards of 250,000 points stops after 8 (the standard
    error of pi is about 1.64 / sqrt(points): 0.00164 after 4 shards, 0.00116 after 8)."""
    folder, job = readme_kernel
    text = job.read_text().replace("shards = 4\n", "shards = 16\ntarget_stderr = 0.0015\n")
    target_job = tmp_path / "target.toml"
    target_job.write_text(text)
    store = tmp_path / "store"
    proc = _cli(
        "run",
        str(target_job),
        "--executor",
        "local",
        "--store",
        str(store),
        env=_env(PYTHONPATH=str(folder)),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((store / "result.json").read_text())
    assert result["target"]["met"] and result["target"]["shards"] == 8, result["target"]
    assert result["stderr"] == result["target"]["reached_stderr"] <= 0.0015
    assert abs(result["pi"] - math.pi) < 4 * result["stderr"]
    assert "target reached" in proc.stderr


# -- the SDK's BlockKernel: the answer of a prefix of shards, and a whole job that lacks one


@dataclass(frozen=True)
class CoinParams:
    flips: int = param(10_500, lo=1)


class CoinKernel(BlockKernel):
    """Heads among ``flips`` coins (a hash of seed and flip): ``finish`` counts the flips from
    the totals, as the SDK asks."""

    Params = CoinParams
    columns = ("flips", "heads")
    count_column = "flips"
    block_items = 1000

    def items(self, params: CoinParams) -> int:
        return params.flips

    def compute_blocks(
        self, params: CoinParams, seed: int, first: int, last: int, block_items: int, n_items: int
    ) -> np.ndarray:
        rows = np.zeros((last - first, 2))
        for b in range(first, last):
            flips = np.arange(b * block_items, min((b + 1) * block_items, n_items))
            rows[b - first] = flips.size, (((flips * 2_654_435_761 + seed) >> 7) & 1).sum()
        return rows

    def finish(self, params: CoinParams, totals: dict[str, float]) -> dict[str, Any]:
        n = totals["flips"]
        p = totals["heads"] / n
        return {"flips": int(n), "p": p, "stderr": math.sqrt(p * (1 - p) / n)}


def _coin_blocks(flips: int, shards: int) -> tuple[Any, Any, dict[str, np.ndarray]]:
    kernel = CoinKernel()
    params = kernel.parse_params({"flips": flips})
    layout = kernel.layout(params, shards)
    rows = [kernel.compute(params, 3, layout, s).arrays["blocks"] for s in range(shards)]
    return params, layout, {"blocks": np.vstack(rows)}


def test_a_block_kernel_answers_a_prefix_of_shards_as_the_smaller_job() -> None:
    """10,500 flips in 11 blocks, 4 shards of 3, 3, 3 and 2 blocks: the first 2 shards answer
    as a job of 6,000 flips, all 4 as the whole job."""
    kernel = CoinKernel()
    params, layout, arrays = _coin_blocks(10_500, 4)
    assert layout.bounds[0] == (0, 3, 6, 9, 11)
    small = _coin_blocks(6_000, 1)
    two = kernel.reduce_prefix(params, 3, layout, arrays, 2)
    assert two == kernel.reduce(small[0], 3, small[2]) and two["flips"] == 6_000
    whole = kernel.reduce(params, 3, arrays)
    assert kernel.reduce_prefix(params, 3, layout, arrays, 4) == whole
    assert whole["flips"] == 10_500
    with pytest.raises(ValueError, match=r"shards must be in 1\.\.4, got 0"):
        kernel.reduce_prefix(params, 3, layout, arrays, 0)


def test_a_block_kernel_refuses_a_whole_job_with_a_shard_missing_or_of_another_shape() -> None:
    kernel = CoinKernel()
    params, layout, arrays = _coin_blocks(10_500, 4)
    holed = arrays["blocks"].copy()
    holed[3:6] = 0.0  # shard 1 never committed: the store's fill value
    message = (
        "blocks covers 7500 items in 11 blocks, expected 10500 (column 'flips'): a shard is "
        "missing or belongs to another job"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        kernel.reduce(params, 3, {"blocks": holed})
    with pytest.raises(ValueError, match="covers 3000 items in 6 blocks, expected 6000"):
        kernel.reduce_prefix(params, 3, layout, {"blocks": holed}, 2)
    assert kernel.reduce_prefix(params, 3, layout, {"blocks": holed}, 1)["flips"] == 3_000
    with pytest.raises(ValueError, match=re.escape("blocks has shape (9, 2), expected (11, 2)")):
        kernel.reduce(params, 3, {"blocks": arrays["blocks"][:9]})
