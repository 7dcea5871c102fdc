"""AWS Batch end to end in real containers: moto in server mode with its Docker-backed Batch
(each array child is a container of the worker image, host networking), the SeaweedFS S3
server as the store, and the image built from containers/Dockerfile. The definition is
registered with ``tessera batch render --register``, the job submitted with ``tessera batch
submit``: an array of 4 children plus the reduce job, whose result.json on S3 must equal
``tessera run``'s."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import s3fs

import tessera
from tests.batch_docker import TESSERA, cli, moto_in_docker, running_children, setup, submit, wait
from tests.docker_engine import DockerEngine
from tests.jobs import default_sigint, write_job
from tests.motoserver import MotoBatch

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def docker_moto(
    docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MotoBatch]:
    """moto's server in a process of its own (its Batch runs containers in the session's
    engine, with host networking), stopped at the end."""
    with moto_in_docker(docker_engine, tmp_path_factory.mktemp("moto") / "moto.log") as moto:
        yield moto


def _job(store: str, name: str) -> dict[str, Any]:
    return {
        "job": {"name": name, "kernel": "montecarlo.gbm", "store": store}
        | {"shards": 4, "seed": 21, "timeout_s": 600},
        "params": {
            "paths": 262_144,
            "steps": 16,
            "spot": 100.0,
            "strike": 100.0,
            "rate": 0.03,
            "volatility": 0.2,
            "maturity": 1.0,
            "products": ["european_call", "asian_arithmetic_call"],
        },
        "resources": {"vcpus": 1, "memory_mib": 1024},
    }


def test_an_array_job_runs_in_containers_and_writes_the_local_bytes(
    docker_moto: MotoBatch,
    seaweed_s3: Any,
    tessera_image: str,
    tmp_path: Path,
) -> None:
    bucket = seaweed_s3.create_bucket("batch-docker")
    store = f"s3://{bucket}/euro"
    reference = tessera.run(
        _job(str(tmp_path / "ref"), "in-docker"), executor="local", progress=False
    )
    assert reference.ok, reference.failures
    path = write_job(tmp_path / "job.toml", _job(store, "in-docker"))
    env, queue = setup(docker_moto, seaweed_s3, tessera_image, path)
    ids = submit(env, path, "in-docker", queue)
    client = docker_moto.client()
    all_ids = [*ids["arrays"], ids["reduce"]]
    jobs = wait(client, all_ids)
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}, {
        k: (j["status"], j.get("statusReason")) for k, j in jobs.items()
    }
    assert jobs[ids["arrays"][0]]["arrayProperties"]["size"] == 4
    fs = s3fs.S3FileSystem(**seaweed_s3.storage_options())
    on_s3 = fs.cat(f"{bucket}/euro/result.json")
    assert on_s3 == (tmp_path / "ref" / "result.json").read_bytes()


def test_sigterm_exits_75_status_shows_its_logs_and_a_resubmission_finishes(
    docker_moto: MotoBatch,
    seaweed_s3: Any,
    docker_engine: DockerEngine,
    tessera_image: str,
    tmp_path: Path,
) -> None:
    """A running child is sent SIGTERM (``docker kill --signal TERM``): it exits 75 with no
    commit record, ``tessera batch status`` shows its exit code and last JSON log lines from
    (moto's) CloudWatch Logs, and ``tessera batch submit`` again runs only the missing shard;
    result.json equals the local run's."""
    bucket = seaweed_s3.create_bucket("batch-sigterm")
    store = f"s3://{bucket}/euro"
    data = _job(store, "sigterm")
    data["params"] |= {"paths": 4 * 2**23, "steps": 256}  # shards of several seconds each
    reference = tessera.run(
        _job(str(tmp_path / "ref"), "sigterm") | {"params": data["params"]},
        executor="local",
        progress=False,
    )
    assert reference.ok, reference.failures
    path = write_job(tmp_path / "job.toml", data)
    env, queue = setup(docker_moto, seaweed_s3, tessera_image, path)
    ids = submit(env, path, "sigterm", queue)
    deadline = time.monotonic() + 300
    while len(running_children(docker_engine, tessera_image)) < 4:
        assert time.monotonic() < deadline, "the children never ran"
        time.sleep(0.5)
    time.sleep(4)  # past the worker's start, inside the shard
    victim = running_children(docker_engine, tessera_image)[0]
    docker_engine.docker("kill", "--signal", "TERM", victim)
    client = docker_moto.client()
    # moto leaves an array with a failed child (and so its reduce job) waiting: follow the
    # children themselves
    children = [f"{ids['arrays'][0]}:{i}" for i in range(4)]
    jobs = wait(client, children)
    assert sorted(j["status"] for j in jobs.values()) == ["FAILED"] + ["SUCCEEDED"] * 3
    fs = s3fs.S3FileSystem(**seaweed_s3.storage_options())
    committed = sorted(fs.ls(f"{bucket}/euro/_shards"))
    assert len([p for p in committed if p.endswith(".json")]) == 3
    status = cli(env, "batch", "status", ids["arrays"][0])
    assert status.returncode == 1
    assert "exit code 75" in status.stdout, status.stdout
    logged = [line for line in status.stdout.splitlines() if line.strip().startswith("log: {")]
    assert logged, status.stdout
    assert s3fs_secret_free(status.stdout, seaweed_s3)
    again = submit(env, path, "sigterm", queue)
    resubmitted = client.describe_jobs(jobs=again["arrays"])["jobs"]
    sizes = [j.get("arrayProperties", {}).get("size", 1) for j in resubmitted]
    assert sum(sizes) == 1  # only the missing shard
    jobs = wait(client, [*again["arrays"], again["reduce"]])
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}
    assert fs.cat(f"{bucket}/euro/result.json") == (tmp_path / "ref" / "result.json").read_bytes()


def s3fs_secret_free(text: str, server: Any) -> bool:
    return server.env()["AWS_SECRET_ACCESS_KEY"] not in text


def test_tessera_run_with_the_batch_executor_detaches_on_ctrl_c_and_collects_later(
    docker_moto: MotoBatch,
    seaweed_s3: Any,
    tessera_image: str,
    tmp_path: Path,
) -> None:
    """``tessera run JOB --executor batch``: the definition ``tessera-<job name>`` is found
    registered and the shards go to Batch as array children in containers. Ctrl-C (SIGINT)
    after the submission detaches: exit 130, the children keep running to the end, and the
    message says how to follow them and how to collect. The same command again submits
    nothing (every shard committed), reduces, and ends with the report and exit code of any
    executor and the local run's bytes."""
    bucket = seaweed_s3.create_bucket("batch-run")
    data = _job(f"s3://{bucket}/euro", "run-batch")
    reference = tessera.run(
        _job(str(tmp_path / "ref"), "run-batch"), executor="local", progress=False
    )
    assert reference.ok, reference.failures
    path = write_job(tmp_path / "job.toml", data)
    env, queue = setup(docker_moto, seaweed_s3, tessera_image, path)
    env["TESSERA_BATCH_POLL_S"] = "2"
    # unbuffered: "Batch: submitted" reaches the log when printed, not when the run ends (in CI
    # the whole output came at exit, after the children had finished, and SIGINT came too late)
    env["PYTHONUNBUFFERED"] = "1"
    command = [*TESSERA, "run", str(path), "--executor", "batch", "--queue", queue]
    log = tmp_path / "first.log"
    with log.open("w") as out:
        first = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=default_sigint,  # handled even when the suite runs in the background
        )
    deadline = time.monotonic() + 300
    while "Batch: submitted" not in log.read_text():
        assert first.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)
    # 130, or ended by the SIGINT itself after the detach message (a shell shows both as 130;
    # the latter was seen once in CI). A CI run also saw the SIGINT swallowed (exit 0): it came
    # while the driver loaded the kernel from Numba's cache, inside llvmlite's ctypes callback.
    # The driver no longer warms the kernel (test_batch_aws checks it).
    assert first.wait(timeout=60) in (130, -signal.SIGINT), log.read_text()[-3000:]
    said = log.read_text()
    (parent,) = re.findall(r"Batch: submitted (\S+) \(4 shards\)", said)
    assert "detached: the Batch jobs keep running" in said, said[-3000:]
    assert f"tessera batch status {parent} --watch" in said
    assert f"tessera run {path} --executor batch" in said
    client = docker_moto.client()
    children = wait(client, [f"{parent}:{i}" for i in range(4)])  # not cancelled: they finish
    assert {j["status"] for j in children.values()} == {"SUCCEEDED"}
    fs = s3fs.S3FileSystem(**seaweed_s3.storage_options())
    assert not fs.exists(f"{bucket}/euro/result.json")  # nobody reduced yet
    again = cli(env, "run", str(path), "--executor", "batch", "--queue", queue)
    assert again.returncode == 0, again.stderr[-3000:] + again.stdout[-3000:]
    output = again.stdout + again.stderr
    assert "Batch: submitted" not in output  # every shard was committed: nothing to submit
    assert "4 of 4" in output  # the progress of any executor
    assert "european_call" in again.stdout and "spot" in again.stdout  # answer and cost table
    assert fs.cat(f"{bucket}/euro/result.json") == (tmp_path / "ref" / "result.json").read_bytes()
    report = json.loads(fs.cat(f"{bucket}/euro/report.json"))
    assert report["executor"] == "batch" and report["committed"] == 4
