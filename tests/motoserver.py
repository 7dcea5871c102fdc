"""A moto server for the AWS Batch tests: ``ThreadedMotoServer`` on a free loopback port.

Moto's Batch cannot run containers here (no Docker engine), so the server is switched to moto's
"simple" Batch (``use_docker: false``): jobs are accepted, described and listed, and every child
is marked SUCCEEDED at once. The container side is tested with ``tessera batch local``.

``MotoBatch`` also builds what a compute environment needs in moto (a VPC, a subnet, a security
group, an instance profile, a service role) once, and creates compute environments and queues
with unique names, so tests sharing the session server never collide.
"""

from __future__ import annotations

import json
import logging
import secrets
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

REGION = "us-east-1"
# Fake credentials: moto accepts anything. Never real ones.
ACCESS_KEY, SECRET_KEY = "testing-moto-key", "testing-moto-secret"


class MotoBatch:
    """A running moto server and helpers to create Batch resources in it."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._network: dict[str, str] | None = None

    def env(self) -> dict[str, str]:
        """Variables that point botocore (and subprocesses) at this server, for Batch only."""
        return {
            "AWS_ENDPOINT_URL_BATCH": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def client(self, service: str = "batch") -> Any:
        """A boto3 client of ``service`` on this server."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def network(self) -> dict[str, str]:
        """Subnet, security group, instance profile and service role (made once)."""
        if self._network is None:
            ec2, iam = self.client("ec2"), self.client("iam")
            vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
            group = ec2.create_security_group(GroupName="batch", Description="b", VpcId=vpc)
            role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")
            profile = iam.create_instance_profile(InstanceProfileName="batch-instance")
            self._network = {
                "subnet": subnet,
                "security_group": group["GroupId"],
                "service_role": role["Role"]["Arn"],
                "instance_profile": profile["InstanceProfile"]["Arn"],
            }
        return self._network

    def compute_environment(
        self,
        kind: str = "SPOT",
        instance_types: tuple[str, ...] = ("c5", "m5"),
        max_vcpus: int = 256,
        state: str = "ENABLED",
    ) -> str:
        """Create a managed compute environment (``kind``: EC2, SPOT, FARGATE, FARGATE_SPOT)
        and return its name."""
        net = self.network()
        name = f"ce-{kind.lower()}-{secrets.token_hex(4)}"
        resources: dict[str, Any] = {
            "type": kind,
            "maxvCpus": max_vcpus,
            "subnets": [net["subnet"]],
            "securityGroupIds": [net["security_group"]],
        }
        if not kind.startswith("FARGATE"):
            resources.update(
                minvCpus=0,
                instanceTypes=list(instance_types),
                instanceRole=net["instance_profile"],
                allocationStrategy=(
                    "SPOT_PRICE_CAPACITY_OPTIMIZED" if kind == "SPOT" else "BEST_FIT_PROGRESSIVE"
                ),
            )
        self.client().create_compute_environment(
            computeEnvironmentName=name,
            type="MANAGED",
            state=state,
            computeResources=resources,
            serviceRole=net["service_role"],
        )
        return name

    def job(self, job_id: str) -> Any:
        """Moto's own object for a job (the server runs in this process), to set what moto's
        Batch cannot produce: failed children with reasons and exit codes, RUNNABLE children."""
        from moto.batch.models import batch_backends
        from moto.core import DEFAULT_ACCOUNT_ID

        return batch_backends[DEFAULT_ACCOUNT_ID][REGION].get_job_by_id(job_id)

    def queue(self, *environments: str, state: str = "ENABLED") -> str:
        """Create a job queue over ``environments`` (in order) and return its name."""
        name = f"q-{secrets.token_hex(4)}"
        self.client().create_job_queue(
            jobQueueName=name,
            state=state,
            priority=1,
            computeEnvironmentOrder=[
                {"order": i + 1, "computeEnvironment": ce} for i, ce in enumerate(environments)
            ],
        )
        return name


@pytest.fixture(scope="session")
def moto_batch() -> Iterator[MotoBatch]:
    """A session-wide moto server on a free loopback port, with Docker-free Batch."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    request = urllib.request.Request(
        f"{url}/moto-api/config",
        data=json.dumps({"batch": {"use_docker": False}}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.load(response)["batch"] == {"use_docker": False}
    # Job states change only when a test sets them (moto would otherwise advance RUNNABLE jobs
    # to SUCCEEDED the moment they are described).
    request = urllib.request.Request(
        f"{url}/moto-api/state-manager/set-transition",
        data=json.dumps(
            {"model_name": "batch::job", "transition": {"progression": "manual", "times": 10**9}}
        ).encode(),
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()
    try:
        yield MotoBatch(url)
    finally:
        server.stop()
