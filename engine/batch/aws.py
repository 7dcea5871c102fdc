"""The one door to the Batch API: every request is validated first, and throttled calls back off
with jitter. boto3 is imported here, inside functions, only when a command talks to AWS."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from tessera.engine import __version__
from tessera.engine.batch import retry
from tessera.engine.batch.validate import validate_request
from tessera.engine.errors import BatchError

log = logging.getLogger(__name__)

# Python method names of the operations tessera uses (botocore's snake_case of the API name).
_METHODS = {
    "RegisterJobDefinition": "register_job_definition",
    "SubmitJob": "submit_job",
    "DescribeJobs": "describe_jobs",
    "ListJobs": "list_jobs",
    "DescribeJobQueues": "describe_job_queues",
    "DescribeComputeEnvironments": "describe_compute_environments",
    "DescribeJobDefinitions": "describe_job_definitions",
}


def batch_client(region: str | None = None) -> Any:
    """A boto3 Batch client. Region, endpoint (``AWS_ENDPOINT_URL_BATCH``) and credentials come
    from botocore's usual chain; tessera never reads or prints credentials itself."""
    try:
        import boto3
    except ImportError:
        raise BatchError("talking to AWS Batch needs boto3: pip install 'tessera[aws]'") from None
    from botocore.config import Config

    config = Config(
        user_agent_extra=f"tessera/{__version__}",
        # botocore retries transient network errors; throttling is handled in ``call`` with
        # a longer, jittered backoff, so botocore's own attempts stay few.
        retries={"mode": "standard", "max_attempts": 3},
    )
    return boto3.client("batch", region_name=region, config=config)


def logs_client(region: str | None = None) -> Any:
    """A boto3 CloudWatch Logs client (endpoint ``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS``), for the
    last log lines of failed children; the same chain as :func:`batch_client`."""
    import boto3
    from botocore.config import Config

    config = Config(user_agent_extra=f"tessera/{__version__}", retries={"mode": "standard"})
    return boto3.client("logs", region_name=region, config=config)


def call(
    client: Any,
    operation: str,
    params: Mapping[str, Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    max_tries: int = retry.MAX_THROTTLED_TRIES,
) -> dict[str, Any]:
    """Validate ``params`` against botocore's model and Batch's limits, then call ``operation``.

    Throttling errors (``TooManyRequestsException`` and kin) are retried up to ``max_tries``
    times with full-jitter exponential backoff. Raises ``BatchRequestError`` for an invalid
    request (nothing is sent) and ``BatchError`` for any other refusal, with AWS's message.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    validate_request(operation, params)
    method = getattr(client, _METHODS[operation])
    rng = rng or random.Random()
    for tries in range(1, max_tries + 1):
        try:
            response: dict[str, Any] = method(**params)
            return response
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in retry.THROTTLE_CODES and tries < max_tries:
                delay = retry.backoff_delay(tries, rng)
                log.info("%s throttled (%s, try %d); waiting %.2f s", operation, code, tries, delay)
                sleep(delay)
                continue
            message = exc.response.get("Error", {}).get("Message", str(exc))
            raise BatchError(f"{operation} failed: {code}: {message}") from None
        except BotoCoreError as exc:
            raise BatchError(f"{operation} failed: {exc}") from None
    raise AssertionError("unreachable")
