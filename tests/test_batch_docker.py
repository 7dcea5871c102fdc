"""AWS Batch end to end in real containers: moto in server mode with its Docker-backed Batch
(each array child is a container of the worker image, host networking), the SeaweedFS S3
server as the store, and the image built from containers/Dockerfile. The definition is
registered with ``tessera batch render --register``, the job submitted with ``tessera batch
submit``: an array of 4 children plus the reduce job, whose result.json on S3 must equal
``tessera run``'s."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import s3fs

import tessera
from tests.docker_engine import DockerEngine
from tests.jobs import write_job
from tests.motoserver import MotoBatch

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(3600)]
TESSERA = [sys.executable, "-m", "tessera.engine.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def docker_moto(
    docker_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MotoBatch]:
    """moto's server in a process of its own (its Batch runs containers in the session's
    engine, with host networking), stopped at the end."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {
        **docker_engine.env(),
        "MOTO_DOCKER_NETWORK_MODE": "host",
        "AWS_ACCESS_KEY_ID": "testing-moto-key",
        "AWS_SECRET_ACCESS_KEY": "testing-moto-secret",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)
    try:
        yield MotoBatch(url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


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


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TESSERA, *args], capture_output=True, text=True, timeout=900, env=env)


def _setup(
    docker_moto: MotoBatch, seaweed_s3: Any, tessera_image: str, path: Path
) -> tuple[dict[str, str], str]:
    """The CLI's environment (one set of credentials, SeaweedFS's, which moto takes too; an
    endpoint per service) and a queue; registers the job's definition with the image and the
    store's endpoint and credentials in the containers' environment (test credentials)."""
    env = {**os.environ, **seaweed_s3.env(), "TESSERA_FAULTS": ""}
    env.pop("AWS_ENDPOINT_URL")
    env["AWS_ENDPOINT_URL_S3"] = seaweed_s3.endpoint_url
    env["AWS_ENDPOINT_URL_BATCH"] = docker_moto.endpoint_url
    env["AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"] = docker_moto.endpoint_url
    s3 = seaweed_s3.env()
    container_env = [
        f"AWS_ENDPOINT_URL_S3={seaweed_s3.endpoint_url}",
        f"AWS_ACCESS_KEY_ID={s3['AWS_ACCESS_KEY_ID']}",
        f"AWS_SECRET_ACCESS_KEY={s3['AWS_SECRET_ACCESS_KEY']}",
        f"AWS_DEFAULT_REGION={s3['AWS_DEFAULT_REGION']}",
    ]
    render = _cli(
        env, "batch", "render", str(path), "--register", "--image", tessera_image,
        *[a for e in container_env for a in ("--env", e)],
    )  # fmt: skip
    assert render.returncode == 0, render.stderr[-3000:]
    assert s3["AWS_SECRET_ACCESS_KEY"] not in render.stdout + render.stderr  # masked
    queue = docker_moto.queue(docker_moto.compute_environment("EC2", ("c5",)))
    return env, queue


def _submit(env: dict[str, str], path: Path, name: str, queue: str) -> dict[str, Any]:
    submit = _cli(
        env, "batch", "submit", str(path), "--definition", f"tessera-{name}", "--queue", queue,
        "--json",
    )  # fmt: skip
    assert submit.returncode == 0, submit.stderr[-3000:]
    ids: dict[str, Any] = json.loads(submit.stdout)
    return ids


def _wait(client: Any, ids: list[str], timeout: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = {j["jobId"]: j for j in client.describe_jobs(jobs=ids)["jobs"]}
        if all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs.values()):
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError({k: j["status"] for k, j in jobs.items()})
        time.sleep(2)


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
    env, queue = _setup(docker_moto, seaweed_s3, tessera_image, path)
    ids = _submit(env, path, "in-docker", queue)
    client = docker_moto.client()
    all_ids = [*ids["arrays"], ids["reduce"]]
    jobs = _wait(client, all_ids)
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}, {
        k: (j["status"], j.get("statusReason")) for k, j in jobs.items()
    }
    assert jobs[ids["arrays"][0]]["arrayProperties"]["size"] == 4
    fs = s3fs.S3FileSystem(**seaweed_s3.storage_options())
    on_s3 = fs.cat(f"{bucket}/euro/result.json")
    assert on_s3 == (tmp_path / "ref" / "result.json").read_bytes()


def _running_children(engine: DockerEngine, image: str) -> list[str]:
    proc = engine.docker("ps", "--filter", f"ancestor={image}", "--format", "{{.ID}}")
    return proc.stdout.split()


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
    env, queue = _setup(docker_moto, seaweed_s3, tessera_image, path)
    ids = _submit(env, path, "sigterm", queue)
    deadline = time.monotonic() + 300
    while len(_running_children(docker_engine, tessera_image)) < 4:
        assert time.monotonic() < deadline, "the children never ran"
        time.sleep(0.5)
    time.sleep(4)  # past the worker's start, inside the shard
    victim = _running_children(docker_engine, tessera_image)[0]
    docker_engine.docker("kill", "--signal", "TERM", victim)
    client = docker_moto.client()
    # moto leaves an array with a failed child (and so its reduce job) waiting: follow the
    # children themselves
    children = [f"{ids['arrays'][0]}:{i}" for i in range(4)]
    jobs = _wait(client, children)
    assert sorted(j["status"] for j in jobs.values()) == ["FAILED"] + ["SUCCEEDED"] * 3
    fs = s3fs.S3FileSystem(**seaweed_s3.storage_options())
    committed = sorted(fs.ls(f"{bucket}/euro/_shards"))
    assert len([p for p in committed if p.endswith(".json")]) == 3
    status = _cli(env, "batch", "status", ids["arrays"][0])
    assert status.returncode == 1
    assert "exit code 75" in status.stdout, status.stdout
    logged = [line for line in status.stdout.splitlines() if line.strip().startswith("log: {")]
    assert logged, status.stdout
    assert s3fs_secret_free(status.stdout, seaweed_s3)
    again = _submit(env, path, "sigterm", queue)
    resubmitted = client.describe_jobs(jobs=again["arrays"])["jobs"]
    sizes = [j.get("arrayProperties", {}).get("size", 1) for j in resubmitted]
    assert sum(sizes) == 1  # only the missing shard
    jobs = _wait(client, [*again["arrays"], again["reduce"]])
    assert {j["status"] for j in jobs.values()} == {"SUCCEEDED"}
    assert fs.cat(f"{bucket}/euro/result.json") == (tmp_path / "ref" / "result.json").read_bytes()


def s3fs_secret_free(text: str, server: Any) -> bool:
    return server.env()["AWS_SECRET_ACCESS_KEY"] not in text


def test_tessera_run_with_the_batch_executor_runs_the_same_job_file(
    docker_moto: MotoBatch,
    seaweed_s3: Any,
    tessera_image: str,
    tmp_path: Path,
) -> None:
    """``tessera run JOB --executor batch``: the definition ``tessera-<job name>`` is found
    registered, the shards run as array children in containers, the run follows them to the
    end and reduces, with the report and exit code of any executor, and the same bytes."""
    bucket = seaweed_s3.create_bucket("batch-run")
    data = _job(f"s3://{bucket}/euro", "run-batch")
    reference = tessera.run(
        _job(str(tmp_path / "ref"), "run-batch"), executor="local", progress=False
    )
    assert reference.ok, reference.failures
    path = write_job(tmp_path / "job.toml", data)
    env, queue = _setup(docker_moto, seaweed_s3, tessera_image, path)
    env["TESSERA_BATCH_POLL_S"] = "2"
    proc = _cli(env, "run", str(path), "--executor", "batch", "--queue", queue)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert "Batch: submitted" in proc.stdout + proc.stderr
    assert "4 of 4" in proc.stdout + proc.stderr  # the progress of any executor
    assert "european_call" in proc.stdout and "spot" in proc.stdout  # answer and cost table
    fs = s3fs.S3FileSystem(**seaweed_s3.storage_options())
    assert fs.cat(f"{bucket}/euro/result.json") == (tmp_path / "ref" / "result.json").read_bytes()
    report = json.loads(fs.cat(f"{bucket}/euro/report.json"))
    assert report["executor"] == "batch" and report["committed"] == 4
