"""Job files: every key validated, errors name the key; canonical JSON and the spec hash."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tessera.engine import spec
from tessera.engine.errors import SpecError, TesseraError
from tests.jobs import job_dict, to_toml, write_job


def _with(data: dict[str, Any], section: str, key: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    out.setdefault(section, {})[key] = value
    return out


def _without(data: dict[str, Any], section: str, key: str) -> dict[str, Any]:
    out = copy.deepcopy(data)
    del out[section][key]
    return out


@pytest.fixture
def base(tmp_path: Path) -> dict[str, Any]:
    return job_dict(tmp_path / "store")


def test_example_files_validate() -> None:
    root = Path(__file__).parent.parent / "examples"
    small = spec.load(root / "option-pricing.toml")
    assert small.kernel_name == "montecarlo.gbm" and small.n_shards == 16
    large = spec.load(root / "option-pricing-large.toml")
    work = large.kernel.layout(large.params, large.n_shards).work
    assert 0.9e11 <= work <= 1.1e11


def test_toml_and_json_give_the_same_job(tmp_path: Path, base: dict[str, Any]) -> None:
    toml_job = spec.load(write_job(tmp_path / "j.toml", base))
    (tmp_path / "j.json").write_text(json.dumps(base))
    json_job = spec.load(tmp_path / "j.json")
    assert toml_job.canonical_json() == json_job.canonical_json()
    assert toml_job.spec_hash == json_job.spec_hash


def test_canonical_json_is_sorted_compact_and_round_trips(base: dict[str, Any]) -> None:
    job = spec.from_dict(base)
    text = job.canonical_json()
    assert " " not in text.replace('"test-job"', "")
    data = json.loads(text)
    assert list(data) == sorted(data)
    again = spec.from_dict(data)
    assert again.canonical_json() == text and again.spec_hash == job.spec_hash


def test_defaults_are_filled(base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    del data["retry"], data["tags"]
    job = spec.from_dict(data)
    assert job.timeout_s == 3600.0 and job.retry_attempts == 3 and job.budget_usd is None
    assert (job.resources.vcpus, job.resources.memory_mib, job.resources.gpus) == (1.0, 2048, 0)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("job", "name", "renamed"),
        ("job", "store", "/elsewhere"),
        ("job", "timeout_s", 60),
        ("job", "budget_usd", 3.5),
        ("resources", "vcpus", 4),
        ("resources", "memory_mib", 8192),
        ("retry", "attempts", 5),
        ("tags", "owner", "someone"),
    ],
)
def test_hash_ignores_how_the_job_runs(
    base: dict[str, Any], section: str, key: str, value: Any
) -> None:
    assert (
        spec.from_dict(_with(base, section, key, value)).spec_hash == spec.from_dict(base).spec_hash
    )


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("job", "seed", 8),
        ("job", "shards", 2),
        ("params", "paths", 262_144),
        ("params", "strike", 101.0),
        ("params", "antithetic", False),
    ],
)
def test_hash_covers_what_determines_the_bytes(
    base: dict[str, Any], section: str, key: str, value: Any
) -> None:
    assert (
        spec.from_dict(_with(base, section, key, value)).spec_hash != spec.from_dict(base).spec_hash
    )


def test_overrides_replace_shards_and_store(base: dict[str, Any]) -> None:
    job = spec.from_dict(base, overrides={"shards": 2, "store": "s3://bucket/run/"})
    assert job.n_shards == 2 and job.store == "s3://bucket/run"
    data = _without(base, "job", "shards")
    data["job"]["shard_size"] = 65_536
    assert spec.from_dict(data, overrides={"shards": 3}).n_shards == 3


def test_shard_size_sets_the_shard_count(base: dict[str, Any]) -> None:
    data = _without(base, "job", "shards")
    data["job"]["shard_size"] = 32_768  # paths per shard
    assert spec.from_dict(data).n_shards == 4


def test_relative_store_is_made_absolute(base: dict[str, Any]) -> None:
    job = spec.from_dict(_with(base, "job", "store", "runs/x"))
    assert Path(job.store).is_absolute() and job.store.endswith("runs/x")


@pytest.mark.parametrize(
    ("section", "key", "value", "needle"),
    [
        ("job", "shard", 4, "job.shard: unknown key"),
        ("job", "name", "has space", "job.name"),
        ("job", "name", "x" * 129, "job.name"),
        (
            "job",
            "kernel",
            "montecarlo.gmb",
            "job.kernel: 'montecarlo.gmb' is not a kernel: did you mean 'montecarlo.gbm'?",
        ),
        ("job", "shards", 0, "job.shards: 0 is out of range; expected >= 1"),
        ("job", "shards", "4", "job.shards: expected an integer, got str '4'"),
        ("job", "shards", 2.0, "job.shards: expected an integer, got float"),
        ("job", "shards", True, "job.shards: expected an integer, got bool"),
        ("job", "seed", -1, "job.seed: -1 is out of range"),
        ("job", "seed", 2**64, "job.seed"),
        ("job", "timeout_s", 0, "job.timeout_s: 0.0 is out of range"),
        ("job", "budget_usd", 0, "job.budget_usd: 0.0 is out of range; expected > 0"),
        ("job", "store", "", "job.store"),
        ("resources", "vcpus", 0, "resources.vcpus"),
        ("resources", "memory_mib", 1.5, "resources.memory_mib: expected an integer"),
        ("resources", "gpus", -1, "resources.gpus"),
        ("resources", "memory_mib", 200, "resources.memory_mib: shard 3 is projected to need 257"),
        ("resources", "cpus", 1, "resources.cpus: unknown key"),
        ("retry", "attempts", 0, "retry.attempts"),
        ("retry", "attempts", 11, "retry.attempts: 11 is out of range; expected <= 10"),
        ("tags", "team", 5, "tags.team: expected a string"),
        ("tags", "aws:owner", "x", "tags.aws:owner: the aws: prefix"),
        ("params", "pahts", 10, "params.pahts"),
        ("params", "paths", "many", "params.paths"),
        ("params", "paths", 0, "params.paths"),
        ("params", "volatility", -0.2, "params.volatility"),
        ("params", "steps", 0, "params.steps"),
        ("params", "products", ["european_cal"], "params.products"),
        ("params", "antithetic", 1, "params.antithetic"),
    ],
)
def test_bad_values_name_the_key(
    base: dict[str, Any], section: str, key: str, value: Any, needle: str
) -> None:
    with pytest.raises(SpecError) as info:
        spec.from_dict(_with(base, section, key, value))
    assert needle in str(info.value)
    assert info.value.key == needle.split(": ")[0]


def test_spec_error_is_a_value_error(base: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        spec.from_dict(_with(base, "job", "shards", -3))
    assert issubclass(SpecError, TesseraError)


def test_unknown_key_suggests_the_close_one(base: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match="did you mean 'shards'"):
        spec.from_dict(_with(base, "job", "shard", 4))
    with pytest.raises(SpecError, match="unknown section"):
        spec.from_dict({**base, "paramz": {}})


def test_missing_required_keys(base: dict[str, Any]) -> None:
    for key in ("name", "kernel", "store"):
        with pytest.raises(SpecError, match=f"job.{key}: is required"):
            spec.from_dict(_without(base, "job", key))


def test_shards_and_shard_size_together_are_refused(base: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match="not both"):
        spec.from_dict(_with(base, "job", "shard_size", 1000))


def test_barrier_product_needs_a_barrier(base: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match="params.barrier"):
        spec.from_dict(_without(base, "params", "barrier"))


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="job file not found"):
        spec.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[job\nname = 1")
    with pytest.raises(SpecError, match="bad.toml: not valid TOML or JSON"):
        spec.load(bad)


def test_cli_validate_prints_the_error_without_a_traceback(
    tmp_path: Path, base: dict[str, Any]
) -> None:
    path = tmp_path / "job.toml"
    path.write_text(to_toml(_with(base, "params", "volatility", -1.0)))
    proc = subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "params.volatility" in proc.stderr and "Traceback" not in proc.stderr
    good = write_job(tmp_path / "good.toml", base)
    proc = subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", "validate", str(good)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ok: job test-job, kernel montecarlo.gbm, 4 shards" in proc.stdout
