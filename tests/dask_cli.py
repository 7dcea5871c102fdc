"""A Dask cluster started with Dask's own command lines, as a user's remote cluster is: one
``dask scheduler`` and ``dask worker`` processes (1 thread each) on 127.0.0.1, on free ports
(port 0, the address read back from ``--scheduler-file``).

The workers' environment is fixed when they start: ``PYTHONPATH`` is the repository root only
(so ``tests.probe_kernel`` imports there, and a module that only the driver sees does not), and
``TESSERA_FAULTS`` is empty. The scheduler gets no ``PYTHONPATH`` at all: like most real
schedulers it has tessera installed but not the kernels' modules, which it must never need.

A test scripts faults on the running workers with :meth:`CliCluster.faults` (``Client.run``
sets the variable in every worker process; the engine reads it at each shard), so one cluster
per module serves every fault setting.

Usage::

    from tests.dask_cli import dask_cli_fixture  # noqa: F401  (the fixture dask_cli_cluster)

    def test_x(dask_cli_cluster):
        with dask_cli_cluster.faults("1:raise"):
            tessera.run(job, executor="dask", scheduler=dask_cli_cluster.address)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DASK = str(Path(sys.executable).parent / "dask")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def _set_env(name: str, value: str) -> int:
    """Runs in each worker process (``Client.run``): set one variable; returns the pid."""
    os.environ[name] = value
    return os.getpid()


@dataclass
class CliCluster:
    """A running CLI-started cluster: its scheduler ``address``, the worker addresses and the
    processes (each in its own process group), with logs in ``folder``."""

    address: str
    folder: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """A ``distributed.Client`` connected to the scheduler, closed on exit."""
        from distributed import Client

        client = Client(self.address, timeout="30s")
        try:
            yield client
        finally:
            client.close()

    def set_worker_env(self, name: str, value: str) -> None:
        """Set ``name`` to ``value`` in every worker process."""
        with self.client() as client:
            done = client.run(_set_env, name, value)
        assert sorted(done) == sorted(self.workers), (done, self.workers)

    @contextlib.contextmanager
    def faults(self, rules: str) -> Iterator[None]:
        """``TESSERA_FAULTS=rules`` on every worker for the duration of the block."""
        self.set_worker_env("TESSERA_FAULTS", rules)
        try:
            yield
        finally:
            self.set_worker_env("TESSERA_FAULTS", "")

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of every process's log (for assertion messages)."""
        out = []
        for log in sorted(self.folder.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"----- {log.name} -----\n" + "\n".join(text))
        return "\n".join(out)


def _wait(predicate: Any, timeout: float, what: str, cluster: CliCluster | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    tail = cluster.log_tail() if cluster is not None else ""
    raise TimeoutError(f"waited {timeout:.0f} s for {what}\n{tail}")


def start(folder: Path, *, n_workers: int = 2, env: Mapping[str, str] | None = None) -> CliCluster:
    """Start a scheduler and ``n_workers`` single-thread workers; return once every worker has
    registered. ``env`` is added to the workers' environment. On failure the processes that
    started are stopped and ``TimeoutError`` carries the logs."""
    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    cluster = CliCluster(address="", folder=folder)
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith("DASK_") and k != "PYTHONPATH"
    }
    try:
        cluster.procs.append(
            _spawn(
                [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0"]
                + ["--no-dashboard", "--scheduler-file", str(scheduler_file)],
                folder / "scheduler.log",
                base_env,
                folder,
            )
        )
        _wait(scheduler_file.exists, START_TIMEOUT_S, "the scheduler file", cluster)
        cluster.address = _wait(
            lambda: _address(scheduler_file), START_TIMEOUT_S, "the address", cluster
        )
        worker_env = {
            **base_env,
            "PYTHONPATH": str(ROOT),
            "TESSERA_FAULTS": "",
            "NUMBA_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            **(env or {}),
        }
        for i in range(n_workers):
            cluster.procs.append(
                _spawn(
                    [DASK, "worker", cluster.address, "--nthreads", "1", "--nworkers", "1"]
                    + ["--host", "127.0.0.1", "--no-dashboard", "--name", f"cli-{i}"]
                    + ["--local-directory", str(folder / f"w{i}")],
                    folder / f"worker-{i}.log",
                    worker_env,
                    folder,
                )
            )
        with cluster.client() as client:
            client.wait_for_workers(n_workers, timeout=START_TIMEOUT_S)
            cluster.workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    except BaseException:
        stop(cluster)
        raise
    return cluster


def _address(scheduler_file: Path) -> str | None:
    try:
        return str(json.loads(scheduler_file.read_text())["address"])
    except (ValueError, KeyError, OSError):
        return None  # the scheduler is still writing it


def _spawn(
    argv: list[str], log: Path, env: Mapping[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,  # its own process group: the nanny's worker goes with it
        )


def stop(cluster: CliCluster, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every process group (workers first), wait up to ``timeout`` seconds, then
    SIGKILL whatever is left."""
    procs = list(reversed(cluster.procs))
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        _signal(proc, signal.SIGKILL)  # the group: a nanny's child may outlive its parent
        proc.wait()
    cluster.procs.clear()


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


@contextlib.contextmanager
def running(
    folder: Path, *, n_workers: int = 2, env: Mapping[str, str] | None = None
) -> Iterator[CliCluster]:
    """``start`` ... ``stop`` as a context manager."""
    cluster = start(folder, n_workers=n_workers, env=env)
    try:
        yield cluster
    finally:
        stop(cluster)


@pytest.fixture(scope="module", name="dask_cli_cluster")
def dask_cli_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliCluster]:
    """The fixture ``dask_cli_cluster``: a CLI-started scheduler and two 1-thread workers,
    shared by a test module (import ``dask_cli_fixture`` into the module)."""
    with running(tmp_path_factory.mktemp("dask-cli")) as cluster:
        yield cluster
