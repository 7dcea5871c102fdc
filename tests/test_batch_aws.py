"""AWS Batch, the API side, against moto's server mode: render/register, submit (index files,
array jobs, reduce job, throttling, validation before sending, budget), status and doctor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tessera.engine import executors, spec
from tessera.engine.batch import doctor, index, status, submit
from tessera.engine.batch.aws import call
from tessera.engine.batch.render import RenderOptions, render
from tessera.engine.errors import BatchError, BatchRequestError
from tessera.engine.events import Event, ShardCommitted
from tessera.engine.executors.batch import BatchExecutor
from tessera.engine.run import run_job
from tessera.engine.store import Store
from tessera.engine.worker import run_shard
from tests.jobs import job_dict, write_job
from tests.motoserver import MotoBatch

TESSERA = [sys.executable, "-m", "tessera.engine.cli"]


def _cli(moto: MotoBatch, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **moto.env(), "TESSERA_FAULTS": ""}
    return subprocess.run([*TESSERA, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def setup(moto_batch: MotoBatch) -> dict[str, str]:
    """A spot CE, a queue and the rendered job definition of tests.jobs' job, registered."""
    ce = moto_batch.compute_environment("SPOT", ("c5", "m5"))
    queue = moto_batch.queue(ce)
    job = spec.from_dict(job_dict("/tmp/unused"))
    request = render(job, RenderOptions(image="123456789012.dkr.ecr.us-east-1.amazonaws.com/t:1"))
    response = call(moto_batch.client(), "RegisterJobDefinition", request)
    return {"ce": ce, "queue": queue, "definition": response["jobDefinitionArn"]}


def _prepared(
    store: Path, setup: dict[str, str], shards: int = 5, **params: Any
) -> submit.Submission:
    job = spec.from_dict(job_dict(store, shards=shards, **params))
    s = submit.prepare(job, queue=setup["queue"], definition=setup["definition"])
    submit.finalize(s, depends_on=[])
    submit.write_files(s)
    return s


def test_registered_definition_round_trips(moto_batch: MotoBatch, setup: dict[str, str]) -> None:
    found = moto_batch.client().describe_job_definitions(jobDefinitions=[setup["definition"]])
    (definition,) = found["jobDefinitions"]
    assert definition["containerProperties"]["command"] == [
        "worker",
        "Ref::job_url",
        "--index-file",
        "Ref::index_file",
    ]
    strategy = definition["retryStrategy"]
    assert strategy["attempts"] == 2
    rules = [
        {k: v.upper() if k == "action" else v for k, v in r.items()}
        for r in strategy["evaluateOnExit"]
    ]
    assert rules[0] == {"onStatusReason": "Host EC2*", "action": "RETRY"}  # Batch: any case
    assert rules[1] == {"onExitCode": "75", "action": "RETRY"}
    assert definition["tags"]["team"] == "test" and definition["propagateTags"] is True


def test_cli_render_register(moto_batch: MotoBatch, tmp_path: Path) -> None:
    path = write_job(tmp_path / "job.toml", job_dict(tmp_path / "store", name="cli-render"))
    proc = _cli(moto_batch, "batch", "render", str(path), "--register")
    assert proc.returncode == 2 and "--image: is required" in proc.stderr
    proc = _cli(moto_batch, "batch", "render", str(path), "--register", "--image", "img:2")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["jobDefinitionName"] == "tessera-cli-render"
    assert "registered tessera-cli-render:1" in proc.stderr


def test_submit_arrays_index_files_and_reduce_job(
    moto_batch: MotoBatch, setup: dict[str, str], tmp_path: Path
) -> None:
    s = _prepared(tmp_path / "store", setup, shards=4)
    client = moto_batch.client()
    done = submit.send(client, s)
    assert len(done.arrays) == 1 and done.reduce and not done.barriers
    jobs = {j["jobId"]: j for j in client.describe_jobs(jobs=done.all)["jobs"]}
    array, reduce = jobs[done.arrays[0]], jobs[done.reduce]
    assert array["arrayProperties"]["size"] == 4
    assert array["parameters"]["job_url"] == s.job_url
    assert array["parameters"]["index_file"] == "index-0.json"
    assert array["tags"]["tessera:submission"] == s.submission
    assert reduce["dependsOn"] == [{"jobId": done.arrays[0]}]
    assert reduce["container"]["command"] == ["worker", s.job_url, "--reduce"]
    f = index.read_index(s.job_url, "index-0.json")
    assert f.shards == (0, 1, 2, 3)


def test_25000_pending_shards_become_3_array_jobs(
    moto_batch: MotoBatch, setup: dict[str, str], tmp_path: Path
) -> None:
    s = _prepared(tmp_path / "store", setup, shards=25_000, paths=25_000 * 4096 * 2)
    done = submit.send(moto_batch.client(), s)
    assert len(done.arrays) == 3
    described = status.describe(moto_batch.client(), done.arrays)
    assert [j["arrayProperties"]["size"] for j in described] == [8_334, 8_333, 8_333]
    seen: list[int] = []
    for job in described:
        f = index.read_index(job["parameters"]["job_url"], job["parameters"]["index_file"])
        assert len(f.shards) == job["arrayProperties"]["size"]
        seen.extend(f.shards)
    assert sorted(seen) == list(range(25_000))  # every shard exactly once
    reduce = status.describe(moto_batch.client(), [done.reduce or ""])[0]
    assert sorted(d["jobId"] for d in reduce["dependsOn"]) == sorted(done.arrays)


def _throttle(client: Any, times: int) -> list[str]:
    """Make the next ``times`` SubmitJob calls fail with TooManyRequestsException (HTTP 429),
    through botocore's event system, before anything is sent; returns the call log."""
    from botocore.awsrequest import AWSResponse

    calls: list[str] = []

    def hook(**kwargs: Any) -> Any:
        calls.append("throttled" if len(calls) < times else "sent")
        if calls[-1] == "sent":
            return None
        error = {"Code": "TooManyRequestsException", "Message": "Too Many Requests"}
        body = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 429}}
        return AWSResponse("https://batch", 429, {}, None), body

    client.meta.events.register("before-call.batch.SubmitJob", hook)
    return calls


def test_throttled_submit_backs_off_and_succeeds(
    moto_batch: MotoBatch, setup: dict[str, str], tmp_path: Path
) -> None:
    s = _prepared(tmp_path / "store", setup, shards=3)
    client = moto_batch.client()
    calls = _throttle(client, 3)
    delays: list[float] = []
    done = submit.send(client, s, reduce=False, sleep=delays.append)
    assert calls == ["throttled", "throttled", "throttled", "sent"]
    assert len(delays) == 3 and all(0 <= d <= 0.2 * 2**k for k, d in enumerate(delays, 1))
    assert status.describe(client, done.arrays)[0]["arrayProperties"]["size"] == 3

    client = moto_batch.client()
    _throttle(client, 100)
    with pytest.raises(BatchError, match="SubmitJob failed: TooManyRequestsException.*none"):
        submit.send(client, s, reduce=False, sleep=lambda d: None, max_tries=4)


def test_invalid_request_is_never_sent(moto_batch: MotoBatch, setup: dict[str, str]) -> None:
    client = moto_batch.client()
    sent: list[str] = []
    client.meta.events.register("before-send.batch.*", lambda **kw: sent.append("x"))
    good = {"jobName": "j", "jobQueue": setup["queue"], "jobDefinition": setup["definition"]}
    for bad, message in (
        ({**good, "arrayProperties": {"size": "4"}}, "Invalid type for parameter"),
        ({**good, "arrayProperties": {"size": 20_000}}, "arrayProperties.size = 20,000"),
        ({**good, "dependsOn": [{"jobId": str(i)} for i in range(21)]}, "at most 20"),
        ({k: v for k, v in good.items() if k != "jobQueue"}, "Missing required parameter"),
    ):
        with pytest.raises(BatchRequestError, match=message):
            call(client, "SubmitJob", bad)
    assert sent == []
    call(client, "SubmitJob", {**good, "arrayProperties": {"size": 2}})
    assert sent == ["x"]


def test_status_progress_failed_children_and_runnable_reason(
    moto_batch: MotoBatch, setup: dict[str, str], tmp_path: Path
) -> None:
    # a queue whose only CE is disabled: RUNNABLE children would wait forever
    stuck = moto_batch.queue(moto_batch.compute_environment("SPOT", ("c5",), state="DISABLED"))
    s = _prepared(tmp_path / "store", setup, shards=6)
    s.queue = stuck
    submit.finalize(s, depends_on=[])
    client = moto_batch.client()
    done = submit.send(client, s, reduce=False)
    (array_id,) = done.arrays
    parent = moto_batch.job(array_id)
    children = parent._child_jobs
    for i in (1, 4):
        child = children[i]
        child.status = "FAILED"
        child.job_stopped_reason = "Essential container in task exited"
        child.attempts[-1]["container"]["exitCode"] = 1
    children[5].status = "RUNNABLE"
    parent.status = "RUNNING"

    states = status.collect(client, [array_id])
    (state,) = states
    assert state.summary["SUCCEEDED"] == 3 and state.summary["FAILED"] == 2
    assert state.summary["RUNNABLE"] == 1
    assert [(f.array_index, f.shard, f.exit_code) for f in state.failures] == [(1, 1, 1), (4, 4, 1)]
    assert all(f.log_stream for f in state.failures)
    text = "\n".join(status.lines(states))
    assert "3/6 succeeded, 2 failed, 0 running, 1 waiting" in text
    assert "FAILED child 4 (shard 4): Essential container in task exited; exit code 1" in text
    assert "is DISABLED: Batch places no jobs in it" in text and "would stay RUNNABLE" in text

    proc = _cli(moto_batch, "batch", "status", array_id)
    assert proc.returncode == 1
    assert "FAILED child 1 (shard 1)" in proc.stdout and "log stream" in proc.stdout


def test_status_of_finished_jobs_exits_0(
    moto_batch: MotoBatch, setup: dict[str, str], tmp_path: Path
) -> None:
    s = _prepared(tmp_path / "store", setup, shards=2)
    done = submit.send(moto_batch.client(), s)
    proc = _cli(moto_batch, "batch", "status", *done.all)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2/2 succeeded, 0 failed" in proc.stdout and "1/1 succeeded" in proc.stdout
    proc = _cli(moto_batch, "batch", "status", "no-such-job")
    assert proc.returncode == 1 and "no-such-job: not found" in proc.stdout


def test_doctor_reports_every_reason_on_moto_queues(
    moto_batch: MotoBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    mb = moto_batch
    client = mb.client()
    invalid = mb.compute_environment("SPOT", ("c5",))
    # moto reports every CE as VALID; make this one INVALID as Batch does for a broken role
    from moto.batch.models import BatchBackend

    original = BatchBackend.describe_compute_environments

    def describe(self: Any, environments: Any = None) -> Any:
        out = original(self, environments)
        for ce in out:
            if ce["computeEnvironmentName"] == invalid:
                ce["status"] = "INVALID"
                ce["statusReason"] = "CLIENT_ERROR - instance profile not found"
        return out

    monkeypatch.setattr(BatchBackend, "describe_compute_environments", describe)
    small, gpu = doctor.Need(2, 4096), doctor.Need(4, 8192, gpus=1)
    cases = [
        (small, mb.queue(mb.compute_environment("SPOT", ("c5",), state="DISABLED")), "is DISABLED"),
        (small, mb.queue(invalid), "is INVALID: CLIENT_ERROR - instance profile not found"),
        (
            doctor.Need(4, 30_000),
            mb.queue(mb.compute_environment("SPOT", ("c5.large",))),
            "fits no",
        ),
        (doctor.Need(8, 8192), mb.queue(mb.compute_environment("EC2", ("c5",), 4)), "maxvCpus = 4"),
        (
            gpu,
            mb.queue(mb.compute_environment("SPOT", ("c5", "m5"))),
            "no allowed instance type has",
        ),
        (
            doctor.Need(1, 2048, 1, "FARGATE"),
            mb.queue(mb.compute_environment("FARGATE")),
            "no GPUs",
        ),
        (small, mb.queue(mb.compute_environment("FARGATE")), "platform mismatch"),
        (doctor.Need(1, 2048, 0, "FARGATE"), mb.queue(mb.compute_environment("EC2")), "mismatch"),
        (small, mb.queue(mb.compute_environment("SPOT"), state="DISABLED"), "dispatches no jobs"),
    ]
    for need, queue, expected in cases:
        diagnosis = doctor.run(client, need, queue)
        assert not diagnosis.ok, expected
        assert any(expected in problem for _, problem in diagnosis.problems), diagnosis.lines()
    assert not doctor.run(client, small, "no-such-queue").ok
    gpu_queue = mb.queue(mb.compute_environment("SPOT", ("g4dn", "c5")))
    assert doctor.run(client, gpu, gpu_queue).ok
    assert doctor.run(client, small, mb.queue(invalid, mb.compute_environment("SPOT"))).ok


def test_cli_doctor_exit_codes(moto_batch: MotoBatch, tmp_path: Path) -> None:
    data = job_dict(tmp_path / "store")
    data["resources"] = {"vcpus": 4, "memory_mib": 30_000}
    path = write_job(tmp_path / "job.toml", data)
    bad = moto_batch.queue(moto_batch.compute_environment("SPOT", ("c5.large", "c5.xlarge")))
    proc = _cli(moto_batch, "batch", "doctor", str(path), "--queue", bad)
    assert proc.returncode == 1
    assert "would stay RUNNABLE" in proc.stdout and "fits no allowed instance type" in proc.stdout
    good = moto_batch.queue(moto_batch.compute_environment("SPOT", ("r5",)))
    proc = _cli(moto_batch, "batch", "doctor", str(path), "--queue", good)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.startswith("ok: queue")


def test_cli_submit_budget_dry_run_and_ids(
    moto_batch: MotoBatch, setup: dict[str, str], tmp_path: Path
) -> None:
    data = job_dict(tmp_path / "store", shards=4)
    data["job"]["timeout_s"] = 3600
    path = write_job(tmp_path / "job.toml", data)
    base = ["batch", "submit", str(path), "--queue", setup["queue"]]
    base += ["--definition", setup["definition"]]
    proc = _cli(moto_batch, *base, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    requests = json.loads(proc.stdout)
    assert [r.get("arrayProperties") for r in requests] == [{"size": 4}, None]
    assert not (tmp_path / "store").exists()

    proc = _cli(moto_batch, *base, "--budget", "1", "--price-per-vcpu-hour", "0.5")
    assert proc.returncode == 1
    assert "projected cost $2.00 exceeds the budget $1.00" in proc.stderr
    assert "4 pending shards x 3,600.0 s (job.timeout_s, an upper bound)" in proc.stderr
    assert not (tmp_path / "store" / "_batch").exists()  # refused before writing anything

    proc = _cli(moto_batch, *base, "--budget", "3", "--price-per-vcpu-hour", "0.5", "--json")
    assert proc.returncode == 0, proc.stderr
    ids = json.loads(proc.stdout)
    assert len(ids["arrays"]) == 1 and ids["reduce"]
    assert "budget $3.00: projected" in proc.stderr
    (folder,) = (tmp_path / "store" / "_batch").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["index-0.json", "job.json"]

    proc = _cli(moto_batch, *base, "--depends-on", ids["arrays"][0] + ":N_TO_N")
    assert proc.returncode == 0, proc.stderr  # equal sizes: 4 and 4
    assert "follow with: tessera batch status" in proc.stdout
    (line,) = [x for x in proc.stdout.splitlines() if "shards (array of 4, index-0.json)" in x]
    child = status.describe(moto_batch.client(), [line.split()[0]])[0]
    assert child["dependsOn"] == [{"jobId": ids["arrays"][0], "type": "N_TO_N"}]


def test_batch_executor_runs_a_job_through_batch(
    moto_batch: MotoBatch,
    setup: dict[str, str],
    tmp_path: Path,
    no_faults: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The executor submits and polls; moto marks children SUCCEEDED without running them, so
    the test plays the containers: each poll's sleep runs one pending shard. The executor never
    warms the kernel itself (the children compute): a Ctrl-C during Numba's cache load there
    was swallowed by llvmlite's ctypes callback."""
    job = spec.from_dict(job_dict(tmp_path / "store", shards=3))
    polls: list[float] = []
    calls: list[str] = []
    warm = job.kernel.warm
    monkeypatch.setattr(job.kernel, "warm", lambda params: calls.append("warm") or warm(params))

    def sleep(seconds: float) -> None:
        calls.append("sleep")
        polls.append(seconds)
        store = Store.open_existing(job.store)
        todo = sorted(set(range(3)) - store.committed())
        if todo:
            run_shard(job, todo[0])

    client = moto_batch.client()
    executor = BatchExecutor(setup["queue"], setup["definition"], client=client, sleep=sleep)
    # moto's arrays finish at once; keep the parent RUNNING until every shard has committed
    real = status.describe

    def describe(c: Any, ids: Any) -> Any:
        jobs = real(c, ids)
        if len(Store.open_existing(job.store).committed()) < 3:
            for j in jobs:
                j["status"] = "RUNNING"
        return jobs

    monkeypatch.setattr("tessera.engine.executors.batch.describe", describe)
    events: list[Event] = []
    outcome = run_job(job, executor, events.append)
    assert outcome.ok and len(polls) == 3
    assert calls[:2] == ["sleep", "warm"]  # the first warm is the first played child's
    assert sorted(e.shard for e in events if isinstance(e, ShardCommitted)) == [0, 1, 2]
    local = spec.from_dict(job_dict(tmp_path / "ref", shards=1))
    assert run_job(local, executors.create("local"), lambda e: None).ok
    assert (tmp_path / "store" / "result.json").read_bytes() == (
        tmp_path / "ref" / "result.json"
    ).read_bytes()


def _staged(store: Path, fit_shards: int, shards: int) -> spec.Job:
    data = {
        "job": {"name": "staged", "kernel": "tests.staged_kernel:KERNEL", "store": str(store)}
        | {"shards": shards},
        "params": {"rows": 64, "fit_shards": fit_shards},
    }
    return spec.from_dict(data)


def test_a_staged_job_is_one_array_job_per_stage_each_waiting_for_the_last(
    moto_batch: MotoBatch, setup: dict[str, str], tmp_path: Path
) -> None:
    """Stage ``apply``'s array job depends on stage ``fit``'s; the index files name the stage;
    the reduce job waits for both."""
    job = _staged(tmp_path / "store", 3, 5)
    s = submit.prepare(job, queue=setup["queue"], definition=setup["definition"])
    submit.finalize(s, depends_on=[])
    submit.write_files(s)
    client = moto_batch.client()
    done = submit.send(client, s)
    assert len(done.arrays) == 2 and not done.barriers
    jobs = {j["jobId"]: j for j in client.describe_jobs(jobs=done.all)["jobs"]}
    fit, apply = (jobs[i] for i in done.arrays)
    assert "dependsOn" not in fit or not fit["dependsOn"]
    assert apply["dependsOn"] == [{"jobId": done.arrays[0]}]
    assert [f.stage for f in s.files] == [0, 1]
    assert index.read_index(s.job_url, "index-0.json").shards == (0, 1, 2)
    f = index.read_index(s.job_url, "index-1.json")
    assert (f.stage, f.shards) == (1, (3, 4, 5, 6, 7))
    reduce = jobs[done.reduce or ""]
    assert sorted(d["jobId"] for d in reduce["dependsOn"]) == sorted(done.arrays)


def test_a_stage_of_many_array_jobs_is_waited_for_through_barrier_jobs(
    moto_batch: MotoBatch, setup: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With arrays of at most 2 children and 3 dependencies a job (the limits scaled down
    from 10,000 and 20), stage ``fit``'s 8 shards are 4 array jobs: the apply stage's array
    jobs wait for 2 barrier jobs over them, never for more than 3 jobs."""
    from tessera.engine.batch import contract

    monkeypatch.setattr(contract, "MAX_ARRAY_SIZE", 2)
    monkeypatch.setattr(contract, "MAX_DEPENDS_ON", 3)
    monkeypatch.setattr(index.split, "__defaults__", (2,))
    job = _staged(tmp_path / "store", 8, 4)
    s = submit.prepare(job, queue=setup["queue"], definition=setup["definition"])
    submit.finalize(s, depends_on=[])
    submit.write_files(s)
    client = moto_batch.client()
    done = submit.send(client, s)
    stages = [f.stage for f in s.files]
    assert stages == [0, 0, 0, 0, 1, 1]
    fit_ids, apply_ids = done.arrays[:4], done.arrays[4:]
    jobs = {j["jobId"]: j for j in client.describe_jobs(jobs=done.all)["jobs"]}
    first_barriers = done.barriers[:2]
    for b in first_barriers:
        assert jobs[b]["container"]["command"] == ["--version"]
    waited = sorted(d["jobId"] for b in first_barriers for d in jobs[b]["dependsOn"])
    assert waited == sorted(fit_ids)
    for a in apply_ids:
        assert sorted(d["jobId"] for d in jobs[a]["dependsOn"]) == sorted(first_barriers)
    assert all(len(j.get("dependsOn", [])) <= 3 for j in jobs.values())


def test_batch_executor_runs_a_staged_job_one_stage_after_the_other(
    moto_batch: MotoBatch,
    setup: dict[str, str],
    tmp_path: Path,
    no_faults: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``tessera run --executor batch`` on a staged job: the apply stage's array job is
    submitted only once every fit shard has committed (the test plays the containers, as
    above), and result.json equals a local run's."""
    job = _staged(tmp_path / "store", 2, 3)
    submitted: list[list[int]] = []
    real_prepare = submit.prepare

    def prepare(*args: Any, **kwargs: Any) -> Any:
        committed = sorted(Store.open_existing(job.store).committed())
        submitted.append(committed)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr("tessera.engine.executors.batch.submit.prepare", prepare)

    def sleep(seconds: float) -> None:
        store = Store.open_existing(job.store)
        stage = next(r for _, r in job.layout.stage_ranges() if set(r) - store.committed())
        for i in sorted(set(stage) - store.committed()):
            run_shard(job, i)

    real = status.describe

    def describe(c: Any, ids: Any) -> Any:
        jobs = real(c, ids)
        store = Store.open_existing(job.store)
        for j in jobs:
            f = index.read_index(j["parameters"]["job_url"], j["parameters"]["index_file"])
            if set(f.shards) - store.committed():
                j["status"] = "RUNNING"
        return jobs

    monkeypatch.setattr("tessera.engine.executors.batch.describe", describe)
    client = moto_batch.client()
    executor = BatchExecutor(setup["queue"], setup["definition"], client=client, sleep=sleep)
    outcome = run_job(job, executor, lambda e: None)
    assert outcome.ok, outcome.failures
    assert submitted == [[], [0, 1]]  # the apply stage was submitted after the fit committed
    local = _staged(tmp_path / "ref", 2, 1)
    assert run_job(local, executors.create("local"), lambda e: None).ok
    assert (tmp_path / "store" / "result.json").read_bytes() == (
        tmp_path / "ref" / "result.json"
    ).read_bytes()


def test_run_with_the_batch_executor_registers_a_missing_definition(
    moto_batch: MotoBatch, setup: dict[str, str], tmp_path: Path
) -> None:
    path = write_job(tmp_path / "job.toml", job_dict(tmp_path / "store", name="run-register"))
    proc = _cli(moto_batch, "run", str(path), "--queue", setup["queue"])
    assert proc.returncode == 2 and "--queue: applies to --executor batch only" in proc.stderr
    proc = _cli(moto_batch, "run", str(path), "--executor", "batch", "--queue", setup["queue"])
    assert proc.returncode == 2, proc.stderr
    assert "--image: is required to register the job definition tessera-run-register" in (
        proc.stderr
    )
    env = {**os.environ, **moto_batch.env(), "TESSERA_FAULTS": "", "TESSERA_BATCH_POLL_S": "0.1"}
    proc = subprocess.run(
        [*TESSERA, "run", str(path), "--executor", "batch", "--queue", setup["queue"]]
        + ["--image", "img:3"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert "registered tessera-run-register:1 (img:3)" in proc.stderr, proc.stderr
    found = moto_batch.client().describe_job_definitions(jobDefinitionName="tessera-run-register")
    assert found["jobDefinitions"][0]["containerProperties"]["image"] == "img:3"


def test_status_shows_a_failed_childs_last_json_log_lines(moto_batch: MotoBatch) -> None:
    logs = moto_batch.client("logs")
    logs.create_log_group(logGroupName="/aws/batch/job")
    logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName="tessera/child/7")
    lines = ["starting", *(json.dumps({"event": "shard", "n": i}) for i in range(8)), "bye"]
    now = int(time.time() * 1000)  # CloudWatch refuses events older than 14 days
    logs.put_log_events(
        logGroupName="/aws/batch/job",
        logStreamName="tessera/child/7",
        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(lines)],
    )
    failure = status.failure_of(
        {"jobId": "abc:7", "container": {"exitCode": 75, "logStreamName": "tessera/child/7"}}
    )
    tail = status.log_tail(logs, failure)
    assert tail == tuple(json.dumps({"event": "shard", "n": i}) for i in range(3, 8))
    missing = status.failure_of({"jobId": "x", "container": {"logStreamName": "nope"}})
    assert status.log_tail(logs, missing) == ()  # unreadable: nothing, no error
