"""Fail fast, naming what: a TCP connect with a short timeout to the S3 endpoint of an input or a
store, or to a Dask scheduler, before any work. Retries for outages during a run stay where they
are (botocore, shard retries); this only answers "is anything listening there at all?" in
seconds instead of after a minute of retries."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from tessera.engine.errors import Unreachable

CONNECT_TIMEOUT_S = 3.0


def s3_endpoint() -> tuple[str, int]:
    """Host and port of the S3 endpoint: ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, else
    AWS's regional endpoint (``AWS_REGION`` / ``AWS_DEFAULT_REGION``, default us-east-1)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        default = 443 if parts.scheme == "https" else 80
        return parts.hostname or "localhost", parts.port or default
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return f"s3.{region}.amazonaws.com", 443


def _connect(host: str, port: int, timeout: float) -> str | None:
    """``None`` when something accepts a TCP connection, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"did not answer within {timeout:g} s"
    except ConnectionRefusedError:
        return "refused the connection"
    except OSError as exc:
        return f"cannot be connected to ({exc.strerror or exc})"


def check_s3(url: str, what: str, advice: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ``Unreachable`` naming ``what`` (e.g. "the input params.source") and ``url`` when
    the S3 endpoint does not accept a connection; nothing for other URLs."""
    if not url.startswith("s3://"):
        return
    host, port = s3_endpoint()
    why = _connect(host, port, timeout)
    if why is not None:
        raise Unreachable(
            f"{what} {url} cannot be reached: the S3 endpoint {host}:{port} {why} (set "
            f"AWS_ENDPOINT_URL for another endpoint); {advice}"
        )


def check_scheduler(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ``Unreachable`` when nothing listens at the Dask scheduler ``address``
    (``tcp://host:port``, ``tls://host:port``, or ``host:port``)."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.hostname is None or parts.scheme not in ("tcp", "tls"):
        return  # another comm (inproc://, ucx://): Dask says what it thinks
    try:
        port = parts.port or 8786
    except ValueError:
        return
    why = _connect(parts.hostname, port, timeout)
    if why is not None:
        raise Unreachable(
            f"the Dask scheduler at {address} cannot be reached: {why}; start it (dask "
            f"scheduler) or fix --scheduler / DASK_SCHEDULER_ADDRESS. Nothing was run"
        )
