"""Benchmark: the worker image. Its size and what takes the space, and how long a fresh
container takes from ``docker run`` to its first commit record, with the image's Numba cache
(warm) and without it (cold: ``NUMBA_CACHE_DIR`` pointed at an empty folder).

Starts its own Docker engine and builds the image as the tests do (tests/docker_engine.py:
vfs storage, no bridge, the stand-in base where the real one cannot be pulled), Numba's cache
compiled for this machine's CPU target. Writes ``benchmarks/results/containers-<driver>.json``
(the engine's storage driver: vfs copies the whole image for every new container, overlay2,
what ECS uses, does not).

It also runs an 8-child array job through moto's Docker-backed Batch (every child a container,
the store on a SeaweedFS S3 server) and, in the same run, the same job with ``tessera batch
local`` (every child a process) at the parallelism moto's containers had: the wall time from
submission to the reduce job's end, and what the containers cost on top. With ``--gpu-image``
it measures the GPU image's size too.

    python benchmarks/containers.py [--repeats 3] [--image TAG]   (as root, docker.io installed)

``--docker-host unix://...`` uses a running engine (its build cache makes the build quick);
``--image`` measures an image already in it instead of building one.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from benchmarks.common import RESULTS, machine  # noqa: E402
from tessera.engine.batch import status  # noqa: E402
from tests import batch_docker  # noqa: E402
from tests.docker_engine import (  # noqa: E402
    CLIENT,
    GPU_IMAGE_TAG,
    IMAGE_TAG,
    DockerEngine,
    ensure_standin,
)
from tests.jobs import write_job  # noqa: E402
from tests.s3server import SeaweedS3  # noqa: E402

JOB = {
    "job": {"name": "first-commit", "kernel": "montecarlo.gbm", "store": "/work/store"}
    | {"shards": 1, "seed": 1},
    "params": {
        "paths": 65_536,
        "steps": 16,
        "spot": 100.0,
        "strike": 100.0,
        "rate": 0.03,
        "volatility": 0.2,
        "maturity": 1.0,
    },
}


ARRAY_CHILDREN = 8
ARRAY_TIMEOUT_S = 900
ARRAY_JOB = {
    "job": {"name": "array-8", "kernel": "montecarlo.gbm", "store": ""}
    | {"shards": ARRAY_CHILDREN, "seed": 3, "timeout_s": 1200},
    "params": JOB["params"] | {"paths": ARRAY_CHILDREN * 2**20, "steps": 64},
    "resources": {"vcpus": 1, "memory_mib": 1024},
}


def build(engine: DockerEngine) -> float:
    from tessera._numba_target import cpu_flags, pick

    ensure_standin(engine)
    target = pick("x86-64-v4,x86-64-v3", cpu_flags()) or "x86-64-v3"
    t0 = time.monotonic()
    engine.docker(
        "build", "--network", "host", "-f", "containers/Dockerfile", "--build-arg",
        f"TESSERA_NUMBA_TARGETS={target}", "-t", IMAGE_TAG, str(ROOT), timeout=3600,
    )  # fmt: skip
    return time.monotonic() - t0


VENV_DU = (  # the CPU image: the venv's largest folders, the cache, the image's top folders
    "du -sm /opt/tessera/numba-cache /opt/tessera/lib/python3.11/site-packages/* "
    "| sort -rn | head -14; du -sm /opt/tessera /usr /var / 2>/dev/null | tail -4"
)
CUDA_DU = (  # the GPU image: what its layer adds, the CUDA wheels' folders
    "cd /opt/tessera/lib/python3.11/site-packages && du -sm nvidia/*/* cuda numba_cuda "
    "| sort -rn | head -10"
)


def sizes(engine: DockerEngine, image: str, du: str = VENV_DU) -> dict[str, Any]:
    """Uncompressed (the engine's image size), compressed (``docker save | gzip -6``, what a
    pull transfers), and the folders that ``du`` (a shell command in the image) lists."""
    size = int(engine.docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
    saved = subprocess.run(
        [CLIENT, "save", image], env=engine.env(), capture_output=True, check=True
    ).stdout
    compressed = len(gzip.compress(saved, compresslevel=6))
    listed = engine.docker("run", "--rm", "--entrypoint", "sh", image, "-c", du).stdout
    biggest = []
    for line in listed.splitlines():
        mib, path = line.split(maxsplit=1)
        biggest.append({"path": path, "mib": int(mib)})
    return {
        "uncompressed_mb": size / 1e6,
        "compressed_mb": compressed / 1e6,
        "biggest": biggest,
    }


def gpu_size(engine: DockerEngine, cpu_image: str, image: str) -> dict[str, Any]:
    """The GPU image's sizes (as ``sizes``, its CUDA wheels' folders the largest first), built
    on ``cpu_image`` when the engine lacks it, and what it adds to ``cpu_image``."""
    if engine.docker("image", "inspect", image, check=False).returncode != 0:
        engine.docker(
            "build", "--network", "host", "-f", "containers/Dockerfile.gpu", "--build-arg",
            f"BASE={cpu_image}", "-t", image, str(ROOT), timeout=1800,
        )  # fmt: skip
    size = sizes(engine, image, CUDA_DU)
    cpu = int(engine.docker("image", "inspect", "--format", "{{.Size}}", cpu_image).stdout)
    size["over_cpu_mb"] = size["uncompressed_mb"] - cpu / 1e6
    return size


def first_commit(engine: DockerEngine, image: str, cold: bool) -> float:
    """Seconds from ``docker run`` to the shard's commit record on the bind-mounted store."""
    with tempfile.TemporaryDirectory() as folder:
        shared = Path(folder)
        shared.chmod(0o777)
        write_job(shared / "job.toml", JOB)
        extra = ["-e", "NUMBA_CACHE_DIR=/tmp/empty-cache"] if cold else []
        record = shared / "store" / "_shards" / "0.json"
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [CLIENT, "run", "--rm", "--network", "host", "-v", f"{shared}:/work", *extra,
             image, "run", "/work/job.toml", "--executor", "local"],
            env=engine.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        while not record.exists():
            if proc.poll() is not None and not record.exists():
                raise RuntimeError(f"the container exited {proc.returncode}: {proc.stderr}")
            time.sleep(0.01)
        seconds = time.monotonic() - t0
        proc.wait(timeout=600)
        return seconds


def progress(jobs: dict[str, Any], ids: dict[str, Any]) -> str:
    """The children's bar as ``tessera batch status`` draws it, and the reduce job's state,
    from described jobs by id."""
    parents = [status.summary_of(jobs.get(job_id, {})) for job_id in ids["arrays"]]
    total = sum(size or 0 for size, _ in parents)
    counts = {state: sum(summary[state] for _, summary in parents) for state in status.STATES}
    return f"{status.bar(counts, total)}; reduce {jobs.get(ids['reduce'], {}).get('status', '?')}"


def array_vs_local(engine: DockerEngine, image: str) -> dict[str, Any]:
    """The 8-child array through moto's Batch in containers, then ``tessera batch local`` at
    the parallelism the containers had (the most running at once, sampled every 0.2 s), both
    on the same S3 server: seconds from submission to the reduce job's end, and whether the
    two result.json are the same bytes."""
    with tempfile.TemporaryDirectory() as folder, SeaweedS3(Path(folder) / "s3") as s3:
        work = Path(folder)
        bucket = s3.create_bucket("bench-array")
        moto_job = json.loads(json.dumps(ARRAY_JOB))
        moto_job["job"]["store"] = f"s3://{bucket}/moto"
        path = write_job(work / "job.toml", moto_job)
        with batch_docker.moto_in_docker(engine, work / "moto.log") as moto:
            env, queue = batch_docker.setup(moto, s3, image, path)
            client = moto.client()
            t0 = time.monotonic()
            ids = batch_docker.submit(env, path, "array-8", queue)
            # moto's array parent turns SUCCEEDED only when it is described (its children's
            # states are summed in describe_jobs), and the reduce job waits on the parent: so
            # describe the parents as `tessera batch status` does, not the reduce job alone
            watched = [*ids["arrays"], ids["reduce"]]
            most, seen, deadline = 0, "", t0 + ARRAY_TIMEOUT_S
            while True:
                most = max(most, len(batch_docker.running_children(engine, image)))
                jobs = {j["jobId"]: j for j in client.describe_jobs(jobs=watched)["jobs"]}
                reduce = jobs.get(ids["reduce"], {})
                line = progress(jobs, ids)
                if line != seen:
                    print(f"  {time.monotonic() - t0:6.1f} s  {line}", file=sys.stderr)
                    seen = line
                if reduce.get("status") in ("SUCCEEDED", "FAILED"):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the array did not finish in {ARRAY_TIMEOUT_S} s: {line}")
                time.sleep(0.2)
            moto_s = time.monotonic() - t0
            if reduce["status"] != "SUCCEEDED":
                raise RuntimeError(f"the reduce job ended {reduce['status']}: {line}")
        local_path = write_job(work / "local.toml", ARRAY_JOB)
        t0 = time.monotonic()
        proc = subprocess.run(
            [*batch_docker.TESSERA, "batch", "local", str(local_path), "--store",
             f"s3://{bucket}/local", "--parallel", str(most)],
            env=env, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        local_s = time.monotonic() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"batch local failed: {proc.stderr[-2000:]}")
        fs = s3.client()
        same = (
            fs.get_object(Bucket=bucket, Key="moto/result.json")["Body"].read()
            == fs.get_object(Bucket=bucket, Key="local/result.json")["Body"].read()
        )
    return {
        "children": ARRAY_CHILDREN,
        "parallel": most,
        "moto_docker_s": moto_s,
        "batch_local_s": local_s,
        "ratio": moto_s / local_s,
        "same_result_bytes": same,
    }


def shard_seconds() -> float:
    """The shard's own compute time on the host, warm, for the 'plus the shard' part."""
    from tessera.kernels.montecarlo.gbm import KERNEL

    params = KERNEL.parse_params(JOB["params"])
    layout = KERNEL.layout(params, 1)
    KERNEL.warm(params)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        KERNEL.compute(params, 1, layout, 0)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image")
    parser.add_argument("--docker-host", help="use this engine (unix://...) instead of a new one")
    parser.add_argument(
        "--gpu-image", nargs="?", const=GPU_IMAGE_TAG, help="also size this GPU image "
        "(built from containers/Dockerfile.gpu on the CPU image when it is missing)",
    )  # fmt: skip
    parser.add_argument("--no-array", action="store_true", help="skip the 8-child array")
    args = parser.parse_args()
    reason = DockerEngine.unavailable()
    if reason is not None and args.docker_host is None:
        print(f"no Docker engine: {reason}", file=sys.stderr)
        return 2
    engine = DockerEngine(args.docker_host)
    if not args.docker_host:
        engine.start()
    try:
        build_s = build(engine) if args.image is None else None
        image = args.image or IMAGE_TAG
        size = sizes(engine, image)
        driver = engine.docker("info", "--format", "{{.Driver}}").stdout.strip()
        warm = [first_commit(engine, image, cold=False) for _ in range(args.repeats)]
        cold = [first_commit(engine, image, cold=True) for _ in range(args.repeats)]
        gpu = gpu_size(engine, image, args.gpu_image) if args.gpu_image else None
        array = None if args.no_array else array_vs_local(engine, image)
    finally:
        if not args.docker_host:
            engine.stop()
    result = {
        "machine": machine(),
        "storage_driver": driver,
        "build_seconds": build_s,
        "size": size,
        "first_commit_s": {
            "warm_median": statistics.median(warm),
            "cold_median": statistics.median(cold),
            "warm": warm,
            "cold": cold,
            "shard_compute_s": shard_seconds(),
        },
        "gpu_image": gpu,
        "array": array,
    }
    f = result["first_commit_s"]
    print(
        f"image {size['uncompressed_mb']:.0f} MB uncompressed, {size['compressed_mb']:.0f} MB "
        f"as docker save | gzip"
    )
    for entry in size["biggest"]:
        print(f"  {entry['mib']:5d} MiB  {entry['path']}")
    print(
        f"docker run -> first commit: warm {f['warm_median']:.2f} s, cold {f['cold_median']:.2f} s "
        f"(median of {args.repeats}); the shard computes in {f['shard_compute_s']:.3f} s"
    )
    if gpu is not None:
        print(
            f"GPU image {gpu['uncompressed_mb']:.0f} MB uncompressed, {gpu['compressed_mb']:.0f} "
            f"MB as docker save | gzip ({gpu['over_cpu_mb']:.0f} MB over the CPU image)"
        )
        for entry in gpu["biggest"][:8]:
            print(f"  {entry['mib']:5d} MiB  {entry['path']}")
    if array is not None:
        print(
            f"{array['children']}-child array, {array['parallel']} at a time: moto + Docker "
            f"{array['moto_docker_s']:.1f} s, tessera batch local {array['batch_local_s']:.1f} s "
            f"({array['ratio']:.2f}x); result.json the same bytes: {array['same_result_bytes']}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"containers-{driver}.json"  # vfs (the tests' engine), overlay2 (ECS's)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
