"""AWS Batch, the pure parts: names, index files, retry rules, backoff, Fargate sizes, rendering,
request validation, budgets, the doctor's checks and the status report. No server needed."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tessera.engine import budget, spec
from tessera.engine.batch import budget as batch_budget
from tessera.engine.batch import contract as c
from tessera.engine.batch import doctor, fargate, index, instances, retry, status
from tessera.engine.batch.render import RenderOptions, render
from tessera.engine.batch.submit import (
    Dependency,
    Submission,
    array_requests,
    dependency_entries,
    fan_in,
    prepare,
    reduce_request,
)
from tessera.engine.batch.validate import limit_problems, validate_request
from tessera.engine.errors import BatchError, BatchRequestError, SpecError
from tessera.engine.store import Store
from tests.jobs import job_dict

# 25,000 shards of one 4,096-sample block each (antithetic: two paths a sample).
PATHS_25K = 25_000 * 4096 * 2


def _job(store: str | Path = "/tmp/unused-store", **kw: Any) -> spec.Job:
    data = job_dict(store, **{k: v for k, v in kw.items() if k in ("shards", "name", "seed")})
    params = {k: v for k, v in kw.items() if k not in ("shards", "name", "seed", "res", "retry")}
    data["params"].update(params)
    if "res" in kw:
        data["resources"] = kw["res"]
    if "retry" in kw:
        data["retry"] = {"attempts": kw["retry"]}
    return spec.from_dict(data)


# -- contract ----------------------------------------------------------------------------------


def test_names_urls_and_index_files_are_where_the_contract_says() -> None:
    assert c.job_url("s3://b/runs/x/", "S1") == "s3://b/runs/x/_batch/S1/job.json"
    assert c.sibling("s3://b/runs/x/_batch/S1/job.json", "index-2.json") == (
        "s3://b/runs/x/_batch/S1/index-2.json"
    )
    for bad in ("../zarr.json", "a/b.json", "", ".."):
        with pytest.raises(ValueError, match="expected a file name"):
            c.sibling("s3://b/x/job.json", bad)
    assert c.batch_name("euro call!", "S1", "0") == "euro-call--S1-0"
    assert c.batch_name("_x") == "t_x"
    long = c.batch_name("a" * 200, "20250101T000000Z-abcdef", "reduce")
    assert len(long) == 128 and long.endswith("-20250101T000000Z-abcdef-reduce")
    assert c.EXIT_RETRYABLE == 75 and c.WORKER_COMMAND[0] == "worker"


# -- index files -------------------------------------------------------------------------------


def test_split_is_even_ordered_and_never_leaves_a_single_child() -> None:
    assert index.split([]) == []
    assert index.split([7]) == [[7]]
    parts = index.split(list(range(25_000)))
    assert [len(p) for p in parts] == [8_334, 8_333, 8_333]
    parts = index.split(list(range(10_001)))
    assert [len(p) for p in parts] == [5_001, 5_000]
    assert [len(p) for p in index.split(list(range(10_000)))] == [10_000]
    for n in (2, 10_000, 10_001, 20_001, 99_999):
        sizes = [len(p) for p in index.split(list(range(n)))]
        assert sum(sizes) == n and max(sizes) <= c.MAX_ARRAY_SIZE and min(sizes) >= 2


def test_25000_pending_shards_become_3_index_files_covering_each_shard_once(tmp_path: Path) -> None:
    job = _job(tmp_path / "store", shards=25_000, paths=PATHS_25K)
    assert job.n_shards == 25_000
    s = prepare(job, queue="q", definition="d", submission="S1")
    from tessera.engine.batch.submit import finalize, write_files

    finalize(s, depends_on=[])
    write_files(s)
    assert len(s.arrays) == 3
    assert [r["arrayProperties"]["size"] for r in s.arrays] == [8_334, 8_333, 8_333]
    seen: list[int] = []
    for k, request in enumerate(s.arrays):
        assert request["parameters"] == {
            "job_url": f"{job.store}/_batch/S1/job.json",
            "index_file": f"index-{k}.json",
        }
        f = index.read_index(request["parameters"]["job_url"], f"index-{k}.json")
        assert f.spec_hash == job.spec_hash and len(f.shards) == request["arrayProperties"]["size"]
        seen.extend(f.shard_for(i) for i in range(len(f.shards)))
    assert sorted(seen) == list(range(25_000)) and len(set(seen)) == 25_000
    stored = index.load_job(f"{job.store}/_batch/S1/job.json")
    assert stored.canonical_json() == job.canonical_json()


def test_resubmission_indexes_only_pending_shards(tmp_path: Path) -> None:
    job = _job(tmp_path / "store", shards=6)
    s = prepare(job, queue="q", definition="d", submission="S1")
    store = Store.open_existing(job.store)
    for i in (0, 2, 3):
        store.commit(i, {"shard": i, "seconds": 1.0})
    again = prepare(job, queue="q", definition="d", submission="S2")
    assert s.pending == list(range(6)) and again.pending == [1, 4, 5]
    assert [f.shards for f in again.files] == [(1, 4, 5)]
    assert again.files[0].shard_for(2) == 5
    with pytest.raises(IndexError, match="array index 3 is out of range.*has 3 children"):
        again.files[0].shard_for(3)


def test_one_pending_shard_is_a_single_job_not_an_array(tmp_path: Path) -> None:
    job = _job(tmp_path / "store", shards=3)
    s = prepare(job, queue="q", definition="d", submission="S1")
    store = Store.open_existing(job.store)
    store.commit(0, {"shard": 0})
    store.commit(2, {"shard": 2})
    s = prepare(job, queue="q", definition="d", submission="S2")
    (request,) = array_requests(s, [])
    assert "arrayProperties" not in request and s.files[0].shards == (1,)


# -- retry strategy ----------------------------------------------------------------------------


def test_retry_strategy_retries_spot_and_sigterm_and_exits_on_kernel_errors() -> None:
    strategy = retry.retry_strategy(3)
    rules = strategy["evaluateOnExit"]
    assert len(rules) <= c.MAX_EVALUATE_ON_EXIT
    # spot reclaim: Batch reports the host, whatever the exit code (often none)
    host = "Host EC2 (instance i-0abc) terminated."
    assert retry.decide(rules, exit_code=None, status_reason=host) == "RETRY"
    assert retry.decide(rules, exit_code=137, status_reason=host) == "RETRY"
    assert retry.decide(rules, exit_code=c.EXIT_RETRYABLE) == "RETRY"
    for code in (c.EXIT_SHARD_FAILED, c.EXIT_USAGE, 137, 139):
        assert retry.decide(rules, exit_code=code) == "EXIT"
    assert retry.decide(rules, exit_code=None, reason="CannotPullContainerError: x") == "EXIT"
    assert retry.decide([], exit_code=1) == "RETRY"  # Batch retries when no rule matches
    assert retry.should_retry(strategy, 1, exit_code=c.EXIT_RETRYABLE)
    assert retry.should_retry(strategy, 2, exit_code=c.EXIT_RETRYABLE)
    assert not retry.should_retry(strategy, 3, exit_code=c.EXIT_RETRYABLE)  # attempts used up
    assert not retry.should_retry(strategy, 1, exit_code=1)
    assert not retry.should_retry(strategy, 1, exit_code=0)


def test_glob_patterns_match_like_batch() -> None:
    assert retry.glob_match("Host EC2*", "host ec2 (instance i-1) terminated.")
    assert not retry.glob_match("Host EC2*", "Essential container in task exited")
    assert retry.glob_match("75", "75") and not retry.glob_match("75", "750")
    assert (
        retry.glob_match("7*", "75") and retry.glob_match("*", "") and retry.glob_match("*", None)
    )
    assert not retry.glob_match("75", None)


def test_backoff_is_jittered_exponential_and_capped() -> None:
    rng = random.Random(1)
    for tries in range(1, 12):
        bound = min(retry.BACKOFF_CAP_S, retry.BACKOFF_BASE_S * 2**tries)
        draws = [retry.backoff_delay(tries, rng) for _ in range(200)]
        assert all(0 <= d <= bound for d in draws)
        assert max(draws) > 0.8 * bound and min(draws) < 0.2 * bound  # spread, not fixed


# -- Fargate and rendering ---------------------------------------------------------------------


def test_fargate_pairs() -> None:
    fargate.check(0.25, 512)
    fargate.check(4, 30_720)
    fargate.check(16, 122_880)
    with pytest.raises(SpecError, match=r"resources.memory_mib: 3,072 MiB is not valid with 0.25"):
        fargate.check(0.25, 3072)
    with pytest.raises(SpecError, match=r"resources.vcpus: 3 is not a Fargate size"):
        fargate.check(3, 8192)
    with pytest.raises(SpecError, match="Fargate has no GPUs"):
        fargate.check(1, 2048, gpus=1)
    assert fargate.smallest_fit(1, 2500) == (1.0, 3072)
    assert fargate.smallest_fit(32, 1024) is None


def test_render_ec2_definition() -> None:
    job = _job(res={"vcpus": 2, "memory_mib": 4096}, retry=4)
    request = render(job, RenderOptions(image="123.dkr.ecr/tessera:1", log_group="/tessera/batch"))
    props = request["containerProperties"]
    assert props["image"] == "123.dkr.ecr/tessera:1"
    assert props["command"] == ["worker", "Ref::job_url", "--index-file", "Ref::index_file"]
    assert props["resourceRequirements"] == [
        {"type": "VCPU", "value": "2"},
        {"type": "MEMORY", "value": "4096"},
    ]
    env = {e["name"]: e["value"] for e in props["environment"]}
    assert env["NUMBA_NUM_THREADS"] == "2" and env["PYTHONUNBUFFERED"] == "1"
    assert props["logConfiguration"]["options"]["awslogs-group"] == "/tessera/batch"
    assert request["retryStrategy"]["attempts"] == 4
    assert request["timeout"] == {"attemptDurationSeconds": 3600}
    assert request["tags"] == {"team": "test", "tessera:job": "test-job"}
    assert request["propagateTags"] is True and request["platformCapabilities"] == ["EC2"]
    assert request["jobDefinitionName"] == "tessera-test-job"


def test_render_timeout_is_at_least_60_s_and_gpus_are_requested() -> None:
    data = job_dict("/tmp/x")
    data["job"]["timeout_s"] = 5
    data["resources"] = {"vcpus": 4, "memory_mib": 16384, "gpus": 1}
    request = render(spec.from_dict(data))
    assert request["timeout"] == {"attemptDurationSeconds": 60}
    kinds = {r["type"]: r["value"] for r in request["containerProperties"]["resourceRequirements"]}
    assert kinds == {"VCPU": "4", "MEMORY": "16384", "GPU": "1"}


def test_render_refuses_what_the_platform_cannot_run() -> None:
    with pytest.raises(SpecError, match=r"resources.vcpus: 0.5: EC2 .* whole vCPUs"):
        render(_job(res={"vcpus": 0.5, "memory_mib": 1024}))
    farg = RenderOptions(platform="FARGATE", execution_role_arn="arn:aws:iam::1:role/exec")
    with pytest.raises(SpecError, match="Fargate has no GPUs"):
        render(_job(res={"vcpus": 1, "memory_mib": 2048, "gpus": 1}), farg)
    with pytest.raises(SpecError, match="resources.memory_mib: 2,500 MiB is not valid with 1"):
        render(_job(res={"vcpus": 1, "memory_mib": 2500}), farg)
    with pytest.raises(BatchRequestError, match="executionRoleArn"):
        render(_job(res={"vcpus": 1, "memory_mib": 2048}), RenderOptions(platform="FARGATE"))
    ok = render(_job(res={"vcpus": 0.5, "memory_mib": 1024}), farg)
    assert ok["platformCapabilities"] == ["FARGATE"]
    assert ok["containerProperties"]["resourceRequirements"][0] == {"type": "VCPU", "value": "0.5"}
    assert ok["containerProperties"]["networkConfiguration"] == {"assignPublicIp": "DISABLED"}


# -- validation --------------------------------------------------------------------------------


def test_validation_catches_model_errors_and_batch_limits() -> None:
    good = {"jobName": "j", "jobQueue": "q", "jobDefinition": "d", "arrayProperties": {"size": 2}}
    validate_request("SubmitJob", good)
    with pytest.raises(BatchRequestError, match=r"Missing required parameter.*jobQueue"):
        validate_request("SubmitJob", {"jobName": "j", "jobDefinition": "d"})
    with pytest.raises(BatchRequestError, match=r"Invalid type for parameter arrayProperties.size"):
        validate_request("SubmitJob", {**good, "arrayProperties": {"size": "2"}})
    with pytest.raises(BatchRequestError, match=r"Unknown parameter in input: \"arraySize\""):
        validate_request("SubmitJob", {**good, "arraySize": 4})
    with pytest.raises(BatchRequestError, match=r"arrayProperties.size = 10,001"):
        validate_request("SubmitJob", {**good, "arrayProperties": {"size": 10_001}})
    deps = [{"jobId": str(i)} for i in range(21)]
    assert limit_problems("SubmitJob", {**good, "dependsOn": deps}) == [
        "dependsOn has 21 jobs; Batch allows at most 20"
    ]
    rules = [{"onExitCode": "1", "action": "EXIT"}] * 6
    problems = limit_problems(
        "SubmitJob", {"retryStrategy": {"attempts": 11, "evaluateOnExit": rules}}
    )
    assert problems == [
        "retryStrategy.attempts = 11; expected 1-10",
        "retryStrategy.evaluateOnExit has 6 entries; Batch allows at most 5",
    ]
    assert limit_problems("SubmitJob", {"timeout": {"attemptDurationSeconds": 59}})
    assert limit_problems(
        "SubmitJob", {"retryStrategy": {"evaluateOnExit": [{"onExitCode": "7x", "action": "GO"}]}}
    ) == [
        "evaluateOnExit[0].action 'GO': RETRY or EXIT",
        "evaluateOnExit[0].onExitCode '7x': digits, optionally ending in *",
    ]


def test_dependencies_at_most_20_and_n_to_n_only_between_equal_arrays() -> None:
    assert Dependency.parse("abc") == Dependency("abc")
    assert Dependency.parse("abc:n_to_n") == Dependency("abc", n_to_n=True)
    with pytest.raises(SpecError, match="expected JOB_ID or JOB_ID:N_TO_N"):
        Dependency.parse("abc:SEQUENTIAL")
    assert dependency_entries([Dependency("a")], [5, 5], {}) == [{"jobId": "a"}]
    pair = [Dependency("a", True)]
    assert dependency_entries(pair, [8], {"a": 8}) == [{"jobId": "a", "type": "N_TO_N"}]
    with pytest.raises(BatchError, match="equal size; that job has 9 children"):
        dependency_entries(pair, [8], {"a": 9})
    with pytest.raises(BatchError, match="that job has no array children"):
        dependency_entries(pair, [8], {"a": None})
    with pytest.raises(BatchError, match="8 \\+ 8 array children"):
        dependency_entries(pair, [8, 8], {"a": 8})
    with pytest.raises(BatchError, match="21 --depends-on jobs"):
        dependency_entries([Dependency(str(i)) for i in range(21)], [2], {})


def test_reduce_waits_on_at_most_20_jobs_through_barriers() -> None:
    submitted: list[tuple[int, list[str]]] = []

    def barrier(k: int, after: Any) -> str:
        submitted.append((k, list(after)))
        return f"b{k}"

    after, barriers = fan_in([f"a{i}" for i in range(12)], barrier)
    assert after == [f"a{i}" for i in range(12)] and barriers == [] and submitted == []
    after, barriers = fan_in([f"a{i}" for i in range(100)], barrier)
    assert after == barriers == ["b0", "b1", "b2", "b3", "b4"]
    assert [len(a) for _, a in submitted] == [20] * 5
    submitted.clear()
    after, barriers = fan_in([f"a{i}" for i in range(401)], barrier)
    assert len(after) == 2 and len(barriers) == 21 + 2
    assert all(len(a) <= 20 for _, a in submitted)


def test_reduce_request_runs_the_worker_in_reduce_mode(tmp_path: Path) -> None:
    job = _job(tmp_path / "store", shards=2)
    s = Submission(job, "S1", c.job_url(job.store, "S1"), 2, [0, 1], [], "q", "d")
    request = reduce_request(s, ["a", "b"])
    assert request["containerOverrides"]["command"] == ["worker", s.job_url, "--reduce"]
    assert request["dependsOn"] == [{"jobId": "a"}, {"jobId": "b"}]
    assert request["tags"]["tessera:submission"] == "S1"
    validate_request("SubmitJob", request)


# -- budget ------------------------------------------------------------------------------------


def test_budget_projects_timeout_upper_bound_then_measured_seconds() -> None:
    data = job_dict("/tmp/x", shards=10)
    data["job"]["timeout_s"] = 1800
    data["resources"] = {"vcpus": 2, "memory_mib": 4096}
    job = spec.from_dict(data)
    work = [1000] * 10
    p = budget.project(job, {}, list(range(10)), work, price_per_vcpu_hour=0.05)
    assert p.vcpu_hours == pytest.approx(10 * 2 * 0.5) and p.usd == pytest.approx(0.5)
    assert "upper bound" in p.basis
    batch_budget.check(p, 0.5)
    with pytest.raises(BatchError, match=r"projected cost \$0.50 exceeds the budget \$0.40"):
        batch_budget.check(p, 0.4)
    records = {i: {"seconds": 36.0, "work": 1000} for i in range(4)}
    p = budget.project(job, records, list(range(4, 10)), work, price_per_vcpu_hour=0.05)
    assert p.seconds_per_pending == pytest.approx(36.0) and p.done == 4 and p.pending == 6
    assert p.vcpu_hours == pytest.approx(10 * 2 * 36 / 3600)
    on_catalogue = budget.project(job, records, list(range(4, 10)), work, basis="spot")
    assert on_catalogue.usd > 0 and "spot" in on_catalogue.priced_on
    with pytest.raises(ValueError, match="price basis 'cheap'"):
        budget.project(job, records, [], work, basis="cheap")


# -- doctor ------------------------------------------------------------------------------------


def _ce(name: str, kind: str = "SPOT", types: tuple[str, ...] = ("c5",), **kw: Any) -> Any:
    resources: dict[str, Any] = {"type": kind, "maxvCpus": kw.pop("max_vcpus", 256)}
    if not kind.startswith("FARGATE"):
        resources["instanceTypes"] = list(types)
    return {
        "computeEnvironmentName": name,
        "state": kw.pop("state", "ENABLED"),
        "status": kw.pop("status", "VALID"),
        "statusReason": kw.pop("reason", ""),
        "type": "MANAGED",
        "computeResources": resources,
    }


QUEUE = {"jobQueueName": "q", "state": "ENABLED", "status": "VALID"}


def test_doctor_pure_checks() -> None:
    small = doctor.Need(2, 4096)
    assert doctor.diagnose(small, QUEUE, [_ce("a")]).usable == ["a"]
    cases = [
        (small, _ce("a", state="DISABLED"), "is DISABLED"),
        (small, _ce("a", status="INVALID", reason="CLIENT_ERROR - no subnet"), "INVALID: CLIENT"),
        (doctor.Need(2, 4096, platform="FARGATE"), _ce("a"), "platform mismatch"),
        (small, _ce("a", "FARGATE"), "platform mismatch: the job definition is for EC2"),
        (doctor.Need(1, 2048, 1, "FARGATE"), _ce("a", "FARGATE"), "Fargate has no GPUs"),
        (doctor.Need(1, 2500, 0, "FARGATE"), _ce("a", "FARGATE"), "not a Fargate size"),
        (
            doctor.Need(4, 8192, 1),
            _ce("a", types=("c5", "m5")),
            "no allowed instance type has a GPU",
        ),
        (doctor.Need(8, 8192), _ce("a", max_vcpus=4), "more than maxvCpus = 4"),
        (doctor.Need(4, 30_000), _ce("a", types=("c5.large", "c5.xlarge")), "fits no allowed"),
    ]
    for need, ce, expected in cases:
        d = doctor.diagnose(need, QUEUE, [ce])
        assert not d.ok, expected
        assert any(expected in p for _, p in d.problems), (expected, d.problems)
    d = doctor.diagnose(small, {**QUEUE, "state": "DISABLED"}, [_ce("a")])
    assert not d.ok and d.problems == [("queue q", "is DISABLED: it dispatches no jobs")]
    assert not doctor.diagnose(small, None, []).ok
    # one good CE is enough; the bad one is still reported
    d = doctor.diagnose(doctor.Need(4, 30_000), QUEUE, [_ce("x", types=("c5.large",)), _ce("y")])
    assert d.usable == ["y"] and len(d.problems) == 1
    # types tessera does not know are not judged
    assert doctor.diagnose(doctor.Need(64, 900_000), QUEUE, [_ce("z", types=("x9z.huge",))]).ok


def test_instance_catalogue_memory_reserve_and_aliases() -> None:
    m4 = instances.TYPES["m4.large"]
    assert m4.vcpus == 2 and m4.memory_mib == 8192 and 7900 < m4.job_memory_mib < 7985
    known, unknown = instances.expand(["optimal", "g4dn.12xlarge", "x1e.nope"])
    names = {t.name for t in known}
    assert {"c4.large", "r5.24xlarge", "g4dn.12xlarge"} <= names and unknown == ["x1e.nope"]
    assert instances.TYPES["g4dn.12xlarge"].gpus == 4


# -- status ------------------------------------------------------------------------------------


def test_status_bar_and_failures() -> None:
    summary = {"SUCCEEDED": 15, "FAILED": 3, "RUNNING": 2, "RUNNABLE": 10}
    line = status.bar(summary, 30, width=30)
    assert line.startswith("[" + "#" * 15 + "x" * 3 + "-" * 12 + "]")
    assert "15/30 succeeded, 3 failed, 2 running, 10 waiting" in line
    child = {
        "jobId": "abc:7",
        "status": "FAILED",
        "statusReason": "Essential container in task exited",
        "arrayProperties": {"index": 7},
        "container": {"exitCode": 1, "logStreamName": "tessera/default/xyz"},
    }
    failure = status.failure_of(child, shards=list(range(100, 110)))
    assert (failure.array_index, failure.shard, failure.exit_code) == (7, 107, 1)
    assert failure.line() == (
        "FAILED child 7 (shard 107): Essential container in task exited; exit code 1; "
        "log stream tessera/default/xyz"
    )
    # moto and some API versions give the index only in the child id, the exit code per attempt
    bare = {"jobId": "abc:3", "attempts": [{"container": {"exitCode": 137, "reason": "OOM"}}]}
    failure = status.failure_of(bare)
    assert (failure.array_index, failure.exit_code, failure.reason) == (3, 137, "OOM")


# -- imports -----------------------------------------------------------------------------------


def test_batch_modules_import_neither_boto3_nor_botocore() -> None:
    code = (
        "import sys, tessera.engine.cli, tessera.engine.worker_cli, "
        "tessera.engine.executors.batch, tessera.engine.batch.cli, "
        "tessera.engine.batch.local, tessera.engine.batch.status, tessera.engine.batch.doctor, "
        "tessera.engine.batch.submit, "
        "tessera.engine.batch.render, tessera.engine.batch.aws, tessera.engine.batch.validate;"
        "print(sorted(m for m in ('boto3', 'botocore', 'distributed') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_cli_lists_the_batch_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", "batch", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    for name in ("render", "submit", "status", "doctor", "local"):
        assert name in out.stdout
    rendered = subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", "worker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "--index-file" in rendered.stdout and "--reduce" in rendered.stdout


def test_render_prints_valid_json(tmp_path: Path) -> None:
    from tests.jobs import write_job

    path = write_job(tmp_path / "job.toml", job_dict(tmp_path / "store"))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tessera.engine.cli",
            "batch",
            "render",
            str(path),
            "--image",
            "img:1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["containerProperties"]["image"] == "img:1"
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "tessera.engine.cli",
            "batch",
            "render",
            str(path),
            "--platform",
            "FARGATE",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "executionRoleArn" in bad.stderr
