"""Render a job file into a ``RegisterJobDefinition`` request (and the pieces SubmitJob reuses)."""

from __future__ import annotations

import math
import re
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
    # extra container variables (--env NAME=VALUE): an endpoint, a log level. Credentials
    # belong in the job role, not here: a definition's environment is readable by anyone who
    # may describe it.
    environment: tuple[tuple[str, str], ...] = ()


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Names whose values are never printed (render prints its request)
_SECRET = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|ACCESS_KEY|PRIVATE", re.I)


def parse_env(items: list[str] | None) -> tuple[tuple[str, str], ...]:
    """``NAME=VALUE`` strings into pairs. Raises ``SpecError("--env", ...)`` for a malformed
    one, a name that is not a shell variable name, or one Batch sets itself (AWS_BATCH_*)."""
    out: list[tuple[str, str]] = []
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise SpecError(
                "--env", f"{item.split('=')[0]!r}: expected NAME=VALUE with NAME a variable name"
            )
        if name.startswith("AWS_BATCH_"):
            raise SpecError("--env", f"{name}: Batch sets the AWS_BATCH_* variables itself")
        out.append((name, value))
    return tuple(out)


def masked(request: dict[str, Any]) -> dict[str, Any]:
    """A copy of a RegisterJobDefinition request fit to print: the values of variables whose
    names look like secrets are replaced by ``***``."""
    props = dict(request.get("containerProperties", {}))
    props["environment"] = [
        {"name": e["name"], "value": "***" if _SECRET.search(e["name"]) else e["value"]}
        for e in props.get("environment", [])
    ]
    return {**request, "containerProperties": props}


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


def _merged(base: list[dict[str, str]], extra: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    values = {e["name"]: e["value"] for e in base} | dict(extra)
    return [{"name": k, "value": v} for k, v in sorted(values.items())]


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
        "environment": _merged(environment(job), opts.environment),
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
