"""The default executor: local or dask, chosen by the job's projected seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessera.engine import choose, spec
from tessera.engine.plan import plan
from tessera.engine.run import run_job

GBM = {"spot": 100.0, "strike": 100.0, "rate": 0.03, "volatility": 0.2, "maturity": 1.0}


def _job(store: Path, paths: int, shards: int) -> spec.Job:
    return spec.from_dict(
        {
            "job": {"name": "c", "kernel": "montecarlo.gbm", "store": str(store)}
            | {"shards": shards, "seed": 1},
            "params": GBM | {"paths": paths, "steps": 64},
        }
    )


def test_a_short_job_runs_in_process_and_says_why(tmp_path: Path) -> None:
    job = _job(tmp_path / "s", 2**16, 4)
    layout = plan(job).layout
    c = choose.choose(job, layout, {}, range(4), workers=2)
    assert c.name == "local"
    expected = 4 * 2**14 * 64 / 4e8  # the kernel's rate: 4e8 path-steps a second
    assert c.projected_s == pytest.approx(expected, rel=0.05)
    assert "executor: local (4 pending shards projected at" in c.reason
    assert "montecarlo.gbm's projected rate" in c.reason and "--executor dask or local" in c.reason


def test_a_long_job_of_a_kernel_on_one_thread_goes_to_dask_and_one_shard_or_core_stays_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _job(tmp_path / "s", 2**26, 8)  # 4.3e9 path-steps, about 11 s on one core
    layout = plan(job).layout
    monkeypatch.setattr(type(job.kernel), "uses_every_core", False)  # as an SDK kernel
    assert choose.choose(job, layout, {}, range(8), workers=2).name == "dask"
    one_core = choose.choose(job, layout, {}, range(8), workers=1)
    assert one_core.name == "local" and "only 1 core" in one_core.reason
    one_shard = choose.choose(job, layout, {}, [7], workers=4)
    assert one_shard.name == "local" and "only 1 pending shard" in one_shard.reason


def test_a_kernel_that_uses_every_core_in_process_stays_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _job(tmp_path / "s", 2**26, 8)  # the long job above; gbm runs a shard on every core
    layout = plan(job).layout
    assert job.kernel.uses_every_core
    monkeypatch.setattr(choose, "cores", lambda: 2)
    c = choose.choose(job, layout, {}, range(8), workers=2)
    # a one-thread worker takes twice the in-process seconds: 5 s + the same seconds
    assert c.name == "local" and c.projected_s is not None
    assert f"5 s to start + {c.projected_s:.3g} s" in c.reason
    assert "one thread a worker against 2 here" in c.reason


def test_committed_shards_of_the_job_override_the_kernel_rate(tmp_path: Path) -> None:
    job = _job(tmp_path / "s", 2**16, 4)
    layout = plan(job).layout
    # the store says shard 0 took 30 s: the other three are projected at 30 s each
    records = {0: {"seconds": 30.0, "work": layout.shard_work[0]}}
    c = choose.choose(job, layout, records, [1, 2, 3], workers=2)
    assert c.name == "local" and c.projected_s == pytest.approx(90.0)
    assert "scaled from 1 committed shard of this job" in c.reason


def test_a_kernel_without_a_rate_is_chosen_by_shard_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tessera.kernels.montecarlo.gbm import GbmKernel

    job = _job(tmp_path / "s", 2**16, 4)
    layout = plan(job).layout
    monkeypatch.setattr(GbmKernel, "projected_seconds", lambda self, p, lay, i: None)
    c = choose.choose(job, layout, {}, range(4), workers=2)
    assert c.name == "dask" and "projects no seconds" in c.reason


def test_run_without_an_executor_reports_the_chosen_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tessera
    from tessera.engine.events import Message

    monkeypatch.delenv("TESSERA_EXECUTOR", raising=False)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    job = _job(tmp_path / "auto", 2**16, 4)
    said: list[str] = []
    outcome = tessera.run(
        job, on_event=lambda e: said.append(e.text) if isinstance(e, Message) else None
    )
    assert outcome.ok and outcome.report["executor"] == "local"
    assert any(s.startswith("executor: local (") for s in said)
    # the same bytes as the named executor gives
    named = _job(tmp_path / "named", 2**16, 4)
    assert run_job(named, tessera.engine.executors.create("local"), lambda e: None).ok
    assert (tmp_path / "auto" / "result.json").read_bytes() == (
        tmp_path / "named" / "result.json"
    ).read_bytes()


def test_flags_that_size_a_cluster_mean_dask(tmp_path: Path) -> None:
    import tessera
    from tessera.engine.errors import SpecError

    with pytest.raises(SpecError, match="--workers"):
        tessera.run(_job(tmp_path / "s", 2**16, 2), "local", workers=2)
    outcome = tessera.run(_job(tmp_path / "d", 2**16, 2), workers=1)
    assert outcome.ok and outcome.report["executor"] == "dask"
