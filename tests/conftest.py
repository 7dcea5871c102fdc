"""Shared fixtures. Real servers start once per session, on free loopback ports."""

from __future__ import annotations

import pytest

from tests.docker_engine import (  # noqa: F401  (session fixtures)
    docker_engine,
    tessera_gpu_image,
    tessera_image,
)
from tests.motoserver import moto_batch  # noqa: F401  (session fixture: moto for AWS Batch)
from tests.s3server import seaweed_s3  # noqa: F401  (session fixture: a real S3 server)


@pytest.fixture
def no_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure no scripted faults leak in from the environment."""
    monkeypatch.delenv("TESSERA_FAULTS", raising=False)
