"""The store records who provided the kernel; resuming with another version is refused with
both versions named. The notebook progress display is tqdm.auto's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import tessera
from tessera.engine.errors import StoreMismatchError
from tessera.engine.report import NotebookProgress, Progress, progress_listener
from tests.jobs import job_dict, write_job


def _small(store: Path) -> dict:
    return job_dict(store, shards=2, paths=16_384, steps=4)


def test_the_store_records_the_kernel_and_refuses_another_version(tmp_path: Path) -> None:
    job = tessera.load(_small(tmp_path / "store"))
    assert tessera.run(job, executor="local", progress=False).ok
    meta_path = tmp_path / "store" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    recorded = meta["attributes"]["tessera"]["kernel"]
    assert recorded == {
        "name": "montecarlo.gbm",
        "target": "tessera.kernels.montecarlo.gbm:KERNEL",
        "origin": "built-in",
        "distribution": "tessera",
        "version": tessera.__version__,
    }
    # the store as another version of the kernel's distribution would have written it
    meta["attributes"]["tessera"]["kernel"]["version"] = "0.0.9"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StoreMismatchError) as info:
        tessera.run(tessera.load(_small(tmp_path / "store")), executor="local")
    message = str(info.value)
    assert "written by kernel montecarlo.gbm from tessera 0.0.9" in message
    assert f"this environment has tessera {tessera.__version__}" in message
    assert "pip install 'tessera==0.0.9' to resume, or pass --store" in message
    path = write_job(tmp_path / "job.toml", _small(tmp_path / "store"))
    worker = subprocess.run(
        [sys.executable, "-m", "tessera", "worker", str(path), "--index", "0"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TESSERA_FAULTS": ""},
    )  # fmt: skip
    assert worker.returncode == 1 and "from tessera 0.0.9" in worker.stderr, worker.stderr


def test_jupyter_gets_a_tqdm_auto_widget(monkeypatch: pytest.MonkeyPatch) -> None:
    class Shell:
        config = {"IPKernelApp": {}}

    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: Shell()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    shown = progress_listener(None)
    assert isinstance(shown, NotebookProgress)
    from tessera.engine.events import RunStarted, ShardCommitted

    shown(RunStarted("nb", 3, 2, "local"))
    shown(ShardCommitted(1, 0.1, 0.1, 10))
    assert shown.bar is not None and shown.bar.n == 2 and shown.bar.total == 3
    shown.close()
    monkeypatch.delitem(sys.modules, "IPython")
    assert isinstance(progress_listener(True), Progress)
