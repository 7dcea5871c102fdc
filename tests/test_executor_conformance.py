"""Every executor passes the conformance suite (``tests/conformance.py``): in-process, a Dask
LocalCluster, a Dask cluster started with its own command lines, and ``tessera batch local``.

How the scripted faults (``TESSERA_FAULTS``) reach the processes that run shards:

- local: the variable is set in this process (``monkeypatch``);
- LocalCluster: the same; each run starts its own cluster, whose workers inherit ``os.environ``;
- CLI cluster: one cluster for the module, started with an empty variable; each test sets it
  in the running worker processes through ``Client.run`` and clears it afterwards
  (``CliCluster.faults``), since the engine reads it at every shard;
- batch local: the variable is in the environment of the ``tessera batch local`` process,
  which passes it to every container command it runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.conformance import Execute, ExecutorTests, Run, references, run_in_process  # noqa: F401
from tests.dask_cli import CliCluster, dask_cli_fixture  # noqa: F401  (dask_cli_cluster)
from tests.jobs import write_job

ROOT = Path(__file__).resolve().parent.parent


class TestLocal(ExecutorTests):
    @pytest.fixture
    def execute(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Execute]:
        def run(data: Mapping[str, Any], faults: str) -> Run:
            return run_in_process(data, faults, monkeypatch, executor="local")

        yield run


class TestLocalLanes(ExecutorTests):
    """The in-process executor with two shards side by side (a kernel's ``shard_lanes``, as
    ``imaging.pyramid`` has): the same promises on faults, retries, stops and records."""

    @pytest.fixture
    def execute(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Execute]:
        from tests import probe_kernel, staged_kernel

        for kernel in (probe_kernel.KERNEL, staged_kernel.KERNEL):
            monkeypatch.setattr(kernel, "shard_lanes", 2, raising=False)

        def run(data: Mapping[str, Any], faults: str) -> Run:
            return run_in_process(data, faults, monkeypatch, executor="local")

        yield run


class TestDaskLocalCluster(ExecutorTests):
    emits_started = False

    @pytest.fixture
    def execute(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Execute]:
        def run(data: Mapping[str, Any], faults: str) -> Run:
            return run_in_process(data, faults, monkeypatch, executor="dask", workers=2)

        yield run


class TestDaskCliCluster(ExecutorTests):
    emits_started = False

    @pytest.fixture
    def execute(
        self, monkeypatch: pytest.MonkeyPatch, dask_cli_cluster: CliCluster
    ) -> Iterator[Execute]:
        def run(data: Mapping[str, Any], faults: str) -> Run:
            with dask_cli_cluster.faults(faults):
                return run_in_process(
                    data, "", monkeypatch, executor="dask", scheduler=dask_cli_cluster.address
                )

        yield run


class TestBatchLocal(ExecutorTests):
    """``tessera batch local`` through the CLI: each shard is a ``tessera worker`` process.
    Its events are not observable from here; the store and the exit code are."""

    events_observable = False

    @pytest.fixture
    def execute(self, tmp_path: Path) -> Iterator[Execute]:
        def run(data: Mapping[str, Any], faults: str) -> Run:
            path = write_job(tmp_path / "job.toml", dict(data))
            env = {**os.environ, "TESSERA_FAULTS": faults, "PYTHONPATH": str(ROOT)}
            proc = subprocess.run(
                [sys.executable, "-m", "tessera.engine.cli", "batch", "local", str(path)]
                + ["--parallel", "2"],
                capture_output=True,
                text=True,
                timeout=240,
                cwd=ROOT,
                env=env,
            )
            assert proc.returncode in (0, 1), proc.stderr
            assert "Traceback" not in proc.stderr, proc.stderr
            output = proc.stdout[-3000:] + proc.stderr[-3000:]
            return Run(proc.returncode == 0, Path(data["job"]["store"]), None, output=output)

        yield run
