"""AWS Batch in real containers, for tests/test_batch_docker.py and benchmarks/containers.py:
moto's server in a process of its own, its Batch running every job as a container of the
worker image in a Docker engine (host networking), the store on a SeaweedFS S3 server; the
definition registered with ``tessera batch render --register``, jobs submitted with ``tessera
batch submit``, both through the CLI as a user runs them."""

from __future__ import annotations

import contextlib
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

from tests.docker_engine import DockerEngine
from tests.motoserver import MotoBatch

TESSERA = [sys.executable, "-m", "tessera.engine.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_in_docker(engine: DockerEngine, log: Path) -> Iterator[MotoBatch]:
    """moto's server (``python -m moto.server``) whose Batch runs containers in ``engine``
    with host networking, its output in ``log``; stopped (SIGTERM, then SIGKILL) at the end."""
    port = _free_port()
    env = {
        **engine.env(),
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


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``tessera ARGS`` in a subprocess with ``env``."""
    return subprocess.run([*TESSERA, *args], capture_output=True, text=True, timeout=900, env=env)


def setup(moto: MotoBatch, s3: Any, image: str, path: Path) -> tuple[dict[str, str], str]:
    """The CLI's environment (one set of credentials, SeaweedFS's, which moto takes too; an
    endpoint per service) and a new queue; registers the definition of the job file ``path``
    with ``image`` and the store's endpoint and credentials in the containers' environment
    (test credentials; ``render`` masks them, which the tests check)."""
    env = {**os.environ, **s3.env(), "TESSERA_FAULTS": ""}
    env.pop("AWS_ENDPOINT_URL")
    env["AWS_ENDPOINT_URL_S3"] = s3.endpoint_url
    env["AWS_ENDPOINT_URL_BATCH"] = moto.endpoint_url
    env["AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"] = moto.endpoint_url
    keys = s3.env()
    container_env = [
        f"AWS_ENDPOINT_URL_S3={s3.endpoint_url}",
        f"AWS_ACCESS_KEY_ID={keys['AWS_ACCESS_KEY_ID']}",
        f"AWS_SECRET_ACCESS_KEY={keys['AWS_SECRET_ACCESS_KEY']}",
        f"AWS_DEFAULT_REGION={keys['AWS_DEFAULT_REGION']}",
    ]
    render = cli(
        env, "batch", "render", str(path), "--register", "--image", image,
        *[a for e in container_env for a in ("--env", e)],
    )  # fmt: skip
    if render.returncode != 0:
        raise AssertionError(render.stderr[-3000:])
    if keys["AWS_SECRET_ACCESS_KEY"] in render.stdout + render.stderr:
        raise AssertionError("batch render printed the secret key")
    queue = moto.queue(moto.compute_environment("EC2", ("c5",)))
    return env, queue


def submit(env: dict[str, str], path: Path, name: str, queue: str) -> dict[str, Any]:
    """``tessera batch submit --json``: {"arrays": [ids], "reduce": id, ...}."""
    done = cli(
        env, "batch", "submit", str(path), "--definition", f"tessera-{name}", "--queue", queue,
        "--json",
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(done.stderr[-3000:])
    ids: dict[str, Any] = json.loads(done.stdout)
    return ids


def wait(client: Any, ids: list[str], timeout: float = 900, every: float = 2) -> dict[str, Any]:
    """Describe ``ids`` every ``every`` seconds until each has SUCCEEDED or FAILED."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = {j["jobId"]: j for j in client.describe_jobs(jobs=ids)["jobs"]}
        if all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs.values()):
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError({k: j["status"] for k, j in jobs.items()})
        time.sleep(every)


def running_children(engine: DockerEngine, image: str) -> list[str]:
    """IDs of the running containers of ``image``."""
    proc = engine.docker("ps", "--filter", f"ancestor={image}", "--format", "{{.ID}}")
    return proc.stdout.split()
