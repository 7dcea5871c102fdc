"""Helpers that write small job files for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SMALL_PARAMS: dict[str, Any] = {
    "paths": 131_072,
    "steps": 16,
    "spot": 100.0,
    "strike": 100.0,
    "rate": 0.05,
    "volatility": 0.2,
    "maturity": 1.0,
    "products": [
        "european_call",
        "european_put",
        "asian_arithmetic_call",
        "asian_geometric_call",
        "barrier_up_out_call",
    ],
    "barrier": 130.0,
    "antithetic": True,
    "control_variate": True,
}


def job_dict(
    store: str | Path, *, name: str = "test-job", shards: int = 4, seed: int = 7, **params: Any
) -> dict[str, Any]:
    """A small, valid montecarlo.gbm job as plain data."""
    return {
        "job": {
            "name": name,
            "kernel": "montecarlo.gbm",
            "store": str(store),
            "shards": shards,
            "seed": seed,
        },
        "params": {**SMALL_PARAMS, **params},
        "retry": {"attempts": 2},
        "tags": {"team": "test"},
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):  # an inline table: lsm = { calibration_paths = 10000 }
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def to_toml(data: dict[str, Any]) -> str:
    """Write a job dict (tables of scalars, lists and inline tables) as TOML."""
    lines = []
    for section, table in data.items():
        lines.append(f"[{section}]")
        for key, value in table.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def write_job(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as TOML to ``path`` and return it."""
    path.write_text(to_toml(data))
    return path


def default_sigint() -> None:
    """``preexec_fn`` for a child that the test stops with SIGINT: give it the default
    disposition. A shell that starts the test run in the background (``make test &``) sets
    SIGINT to ignored, every child inherits that, and Python then installs no Ctrl-C handler."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_ok(job: dict[str, Any], executor: str = "local", on_event: Any = None) -> Any:
    """``job`` (a job dict) run to the end on ``executor`` (2 workers for Dask) in this
    process, without progress output, every event to ``on_event`` if given; fails the test,
    with the failures, unless every shard committed. Returns the run's outcome."""
    from tessera.engine import executors, spec
    from tessera.engine.run import run_job

    listen = on_event or (lambda e: None)
    outcome = run_job(spec.from_dict(job), executors.create(executor, workers=2), listen)
    assert outcome.ok, outcome.failures
    return outcome
