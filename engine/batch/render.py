"""Render a job file into a ``RegisterJobDefinition`` request (and the pieces SubmitJob reuses)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tessera.engine import __version__
from tessera.engine.batch import contract as c
from tessera.engine.batch import fargate
from tessera.engine.batch.retry import retry_strategy
from tessera.engine.batch.validate import validate_request
from tessera.engine.errors import SpecError
from tessera.engine.spec import Job

PLATFORMS = ("EC2", "FARGATE")
DEFAULT_IMAGE = f"tessera:{__version__}"
LOG_STREAM_PREFIX = "tessera"


@dataclass(frozen=True)
class RenderOptions:
    """How the container runs: image, platform, roles and logs (none of it is in the job file)."""

    image: str = DEFAULT_IMAGE
    platform: str = "EC2"
    job_role_arn: str | None = None
    execution_role_arn: str | None = None  # required on Fargate (image pull, logs)
    log_group: str | None = None  # CloudWatch group; Batch's default /aws/batch/job otherwise
    assign_public_ip: bool = False  # Fargate in a public subnet without a NAT gateway
    name: str | None = None  # job definition name; default tessera-<job name>


def definition_name(job: Job) -> str:
    """The default job definition name: one per workload, ``tessera-<job name>``."""
    return c.batch_name("tessera", job.name)


def resource_requirements(job: Job, platform: str) -> list[dict[str, str]]:
    """``resourceRequirements`` from ``[resources]``. EC2 takes whole vCPUs; Fargate takes only
    its menu of vCPU/memory pairs and no GPUs. Raises ``SpecError`` naming the key."""
    res = job.resources
    if platform == "FARGATE":
        fargate.check(res.vcpus, res.memory_mib, res.gpus)
        vcpu = f"{res.vcpus:g}"
    else:
        if res.vcpus != math.floor(res.vcpus):
            raise SpecError(
                "resources.vcpus",
                f"{res.vcpus:g}: EC2 compute environments take whole vCPUs; use "
                f"{math.ceil(res.vcpus)} or --platform FARGATE",
            )
        vcpu = str(int(res.vcpus))
    out = [{"type": "VCPU", "value": vcpu}, {"type": "MEMORY", "value": str(res.memory_mib)}]
    if res.gpus:
        out.append({"type": "GPU", "value": str(res.gpus)})
    return out


def environment(job: Job) -> list[dict[str, str]]:
    """Variables every container gets: unbuffered logs, and thread pools sized to the vCPUs the
    job asked for (a container sees every core of its host; Numba would use them all)."""
    threads = str(max(1, math.floor(job.resources.vcpus)))
    env = {
        "PYTHONUNBUFFERED": "1",
        "NUMBA_NUM_THREADS": threads,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
    }
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def timeout(job: Job) -> dict[str, int]:
    """``timeout``: ``job.timeout_s`` rounded up, at least Batch's minimum of 60 s."""
    return {"attemptDurationSeconds": max(c.MIN_TIMEOUT_S, math.ceil(job.timeout_s))}


def tags(job: Job, **extra: str) -> dict[str, str]:
    """The job's cost-allocation tags plus tessera's own (``tessera:job``, ...)."""
    out = dict(job.tags)
    out["tessera:job"] = job.name
    out.update({f"tessera:{k}": v for k, v in extra.items()})
    return out


def render(job: Job, options: RenderOptions | None = None) -> dict[str, Any]:
    """The ``RegisterJobDefinition`` request for ``job``, validated against botocore's model.
    Raises ``SpecError`` for resources the platform cannot run and ``BatchRequestError`` for a
    request Batch would refuse."""
    opts = options or RenderOptions()
    if opts.platform not in PLATFORMS:
        raise SpecError("--platform", f"{opts.platform!r}; expected one of {list(PLATFORMS)}")
    props: dict[str, Any] = {
        "image": opts.image,
        "command": list(c.WORKER_COMMAND),
        "resourceRequirements": resource_requirements(job, opts.platform),
        "environment": environment(job),
    }
    if opts.job_role_arn:
        props["jobRoleArn"] = opts.job_role_arn
    if opts.execution_role_arn:
        props["executionRoleArn"] = opts.execution_role_arn
    if opts.log_group:
        props["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": opts.log_group,
                "awslogs-stream-prefix": LOG_STREAM_PREFIX,
            },
        }
    if opts.platform == "FARGATE":
        props["networkConfiguration"] = {
            "assignPublicIp": "ENABLED" if opts.assign_public_ip else "DISABLED"
        }
        props["fargatePlatformConfiguration"] = {"platformVersion": "LATEST"}
    request: dict[str, Any] = {
        "jobDefinitionName": opts.name or definition_name(job),
        "type": "container",
        "containerProperties": props,
        "retryStrategy": retry_strategy(job.retry_attempts),
        "timeout": timeout(job),
        "tags": tags(job),
        "propagateTags": True,
        "platformCapabilities": [opts.platform],
    }
    validate_request("RegisterJobDefinition", request)
    return request
