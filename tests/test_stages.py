"""Jobs in stages and jobs with a target standard error, beyond the executor conformance suite
(tests/conformance.py runs both on every executor): a run killed by SIGKILL during stage 2
resumes without rerunning stage 1; a later stage's shard started by hand before its stage is
refused; the target's waves on 1 and 2 Dask workers, resumed, capped by the shard count and by
the budget; and the refusals of job files that ask for what cannot work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import tessera
from tessera.engine import spec, waves
from tessera.engine.errors import SpecError, StageNotReady
from tessera.engine.plan import plan
from tessera.engine.store import Store
from tessera.engine.worker import run_shard
from tests.conformance import TARGET_PREFIX, TARGET_SHARDS, staged_job, target_job
from tests.jobs import default_sigint, write_job

ROOT = Path(__file__).resolve().parent.parent


def _records(store: Path, shards: range) -> dict[int, bytes]:
    return {i: (store / "_shards" / f"{i}.json").read_bytes() for i in shards}


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "dask"])
def test_sigkill_during_stage_two_resumes_without_rerunning_stage_one(
    executor: str, tmp_path: Path
) -> None:
    """``tessera run`` is killed (SIGKILL, its whole process group) once the first apply
    shard has committed; the rerun leaves the fit shards' commit records as they were, runs
    only the missing apply shards, and result.json equals an undisturbed run's."""
    reference = staged_job(tmp_path / "ref", shards=6, apply_sleep_s=0.3)
    assert tessera.run(reference, executor="local", progress=False).ok
    data = staged_job(tmp_path / "store", shards=6, apply_sleep_s=0.3)
    path = write_job(tmp_path / "job.toml", data)
    argv = [sys.executable, "-m", "tessera.engine.cli", "run", str(path), "--executor", executor]
    if executor == "dask":
        argv += ["--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TESSERA_FAULTS": ""}
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=default_sigint,
    )
    store = tmp_path / "store"
    deadline = time.monotonic() + 120
    while (
        not (store / "_shards" / "2.json").exists() and not (store / "_shards" / "3.json").exists()
    ):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no apply shard committed in 120 s"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    done = Store.open_existing(str(store)).committed()
    assert {0, 1} <= done and len(done) < 8, sorted(done)
    fit = _records(store, range(2))
    outcome = tessera.run(str(path), executor="local", progress=False)
    assert outcome.ok, outcome.failures
    assert _records(store, range(2)) == fit
    assert (store / "result.json").read_bytes() == (tmp_path / "ref" / "result.json").read_bytes()
    ran = outcome.report["this_run"]["shards"]
    assert ran == 8 - len(done), (ran, sorted(done))


def test_a_later_stage_shard_is_refused_before_its_stage(tmp_path: Path) -> None:
    """A worker asked for an apply shard while a fit shard has no commit record refuses it
    (``StageNotReady``), naming the stage and the first missing shard; nothing is written."""
    job = spec.from_dict(staged_job(tmp_path / "store", shards=3))
    Store.open_for_job(job, plan(job))  # as a driver creates it
    assert run_shard(job, 0).status == "committed"
    with pytest.raises(StageNotReady, match=r"stage 'apply'.*stage 'fit'.*first: shard 1"):
        run_shard(job, 2)
    store = Store.open_existing(job.store)
    assert store.committed() == {0}
    assert run_shard(job, 1).status == "committed"
    assert run_shard(job, 2).status == "committed"


@pytest.mark.slow
def test_target_gives_the_same_bytes_on_1_and_2_dask_workers(tmp_path: Path) -> None:
    out = []
    for workers in (1, 2):
        data = target_job(tmp_path / f"w{workers}")
        outcome = tessera.run(data, executor="dask", workers=workers, progress=False)
        assert outcome.ok, outcome.failures
        out.append((tmp_path / f"w{workers}" / "result.json").read_bytes())
    assert out[0] == out[1]
    assert json.loads(out[0])["target"]["shards"] == TARGET_PREFIX


def test_target_resume_runs_nothing_and_keeps_the_bytes(tmp_path: Path) -> None:
    data = target_job(tmp_path / "store")
    assert tessera.run(data, executor="local", progress=False).ok
    first = (tmp_path / "store" / "result.json").read_bytes()
    again = tessera.run(data, executor="local", progress=False)
    assert again.ok and again.report["this_run"]["shards"] == 0
    assert (tmp_path / "store" / "result.json").read_bytes() == first
    report = json.loads((tmp_path / "store" / "report.json").read_text())
    assert report["target"]["shards"] == TARGET_PREFIX and report["target"]["met"]
    assert report["cost"]["shards_priced"] == TARGET_PREFIX  # what the target cost


def test_a_smaller_target_on_the_same_store_continues_from_the_last_wave(
    tmp_path: Path,
) -> None:
    """The target is not in the spec hash: lowering it resumes the same store, runs the next
    wave only, and gives the bytes of a fresh run at the lower target."""
    data = target_job(tmp_path / "store")
    assert tessera.run(data, executor="local", progress=False).ok
    data["job"]["target_stderr"] = 0.03
    outcome = tessera.run(data, executor="local", progress=False)
    assert outcome.ok and outcome.report["this_run"]["shards"] == TARGET_SHARDS - TARGET_PREFIX
    fresh = target_job(tmp_path / "fresh")
    fresh["job"]["target_stderr"] = 0.03
    assert tessera.run(fresh, executor="local", progress=False).ok
    assert (tmp_path / "store" / "result.json").read_bytes() == (
        tmp_path / "fresh" / "result.json"
    ).read_bytes()


def test_a_target_that_the_shards_cannot_reach_reports_it(tmp_path: Path) -> None:
    data = target_job(tmp_path / "store")
    data["job"]["target_stderr"] = 0.001
    outcome = tessera.run(data, executor="local", progress=False)
    assert outcome.ok  # every shard ran: the answer is the whole job's, flagged not met
    result = json.loads((tmp_path / "store" / "result.json").read_text())
    assert result["target"]["met"] is False and result["target"]["shards"] == TARGET_SHARDS
    assert result["target"]["reached_stderr"] > 0.001
    whole = target_job(tmp_path / "whole")
    del whole["job"]["target_stderr"]
    assert tessera.run(whole, executor="local", progress=False).ok
    plain = json.loads((tmp_path / "whole" / "result.json").read_text())
    assert result["products"] == plain["products"]


def test_a_budget_stops_before_the_wave_that_would_exceed_it(tmp_path: Path) -> None:
    """A budget of a few shards' cost: waves run while the projected cost through the next
    wave fits; the run stops without a result, and nothing computed is lost."""
    data = target_job(tmp_path / "store")
    data["job"]["target_stderr"] = 0.001
    data["job"]["timeout_s"] = 3600.0
    catalogue_cost = _cost_per_shard(tmp_path)
    data["job"]["budget_usd"] = catalogue_cost * 3.5
    outcome = tessera.run(data, executor="local", progress=False)
    assert not outcome.ok and outcome.result is None
    assert "budget" in outcome.budget_stop
    done = Store.open_existing(str(tmp_path / "store")).committed()
    assert done and len(done) in (1, 2, 4) and done == set(range(len(done))), sorted(done)


def _cost_per_shard(tmp_path: Path) -> float:
    """The priced cost of one shard of ``target_job`` on the on-demand basis the budget uses,
    measured on this machine."""
    from tessera.engine import budget, cost

    data = target_job(tmp_path / "probe")
    data["job"]["shards"] = TARGET_SHARDS
    del data["job"]["target_stderr"]
    assert tessera.run(data, executor="local", progress=False).ok
    job = spec.from_dict(data)
    records = Store.open_existing(job.store).commit_records()
    projected = budget.project(
        job, records, [], job.layout.shard_work, catalogue=cost.load_catalogue()
    )
    return projected.usd / TARGET_SHARDS


@pytest.mark.parametrize(
    ("job", "key", "message"),
    [
        ({"target_product": "european_call"}, "job.target_product", "with job.target_stderr"),
        (
            {"target_stderr": 0.01, "target_product": "american_put"},
            "job.target_product",
            "not priced by this job",
        ),
        ({"target_stderr": 0.0}, "job.target_stderr", "out of range; expected > 0"),
    ],
)
def test_target_refusals(tmp_path: Path, job: dict[str, Any], key: str, message: str) -> None:
    data = target_job(tmp_path / "store")
    del data["job"]["target_stderr"]
    data["job"].update(job)
    with pytest.raises(SpecError, match=message) as info:
        spec.from_dict(data)
    assert info.value.key == key


def test_a_kernel_without_reduce_prefix_refuses_a_target(tmp_path: Path) -> None:
    data = staged_job(tmp_path / "store")
    data["job"]["target_stderr"] = 0.01
    with pytest.raises(SpecError, match="cannot stop at a standard error"):
        spec.from_dict(data)


def test_batch_submit_refuses_a_target_job(tmp_path: Path) -> None:
    path = write_job(tmp_path / "job.toml", target_job(tmp_path / "store"))
    proc = subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", "batch", "submit", str(path)]
        + ["--queue", "q", "--definition", "d", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    assert "tessera run --executor batch" in proc.stderr
    assert not (tmp_path / "store").exists()


def test_prefix_ends() -> None:
    assert waves.prefix_ends(1) == [1]
    assert waves.prefix_ends(6) == [1, 2, 4, 6]
    assert waves.prefix_ends(16) == [1, 2, 4, 8, 16]
