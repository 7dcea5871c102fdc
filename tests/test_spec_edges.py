"""Job-file edges a new user meets: absurd sizes refused at once, every missing key named."""

from __future__ import annotations

import time

import pytest

from tessera.engine import spec
from tessera.engine.errors import SpecError
from tests.jobs import job_dict


def test_absurd_shard_counts_are_refused_before_planning() -> None:
    data = job_dict("store", paths=2**52, steps=1)
    data["job"].pop("shards")
    data["job"]["shard_size"] = 4096
    started = time.process_time()
    with pytest.raises(SpecError) as info:
        spec.from_dict(data)
    assert info.value.key == "job.shard_size"
    assert "would be cut into 549,755,813,888 shards; at most 1,000,000" in str(info.value)
    assert "set job.shard_size to put more path-steps in each shard" in str(info.value)
    assert time.process_time() - started < 5  # no loop over the shards it refused


def test_every_missing_job_key_is_named_at_once() -> None:
    with pytest.raises(SpecError) as info:
        spec.from_dict({"job": {"shards": 2}, "params": {}})
    assert info.value.key == "job.name"
    assert "(also missing: job.kernel, job.store)" in str(info.value)


def test_validating_a_million_shards_does_not_loop_over_them_in_python(monkeypatch) -> None:
    """A regular layout (equal shards of block sums) is checked on its first and last shard:
    the memory projection is asked twice, not a million times."""
    from tessera.kernels.montecarlo.gbm import KERNEL

    calls: list[int] = []
    projection = KERNEL.shard_memory_bytes

    def counted(params, layout, shard):  # type: ignore[no-untyped-def]
        calls.append(shard)
        return projection(params, layout, shard)

    monkeypatch.setattr(KERNEL, "shard_memory_bytes", counted)
    job = spec.from_dict(job_dict("store", shards=1_000_000, paths=8_192_000_000, steps=1))
    assert job.n_shards == 1_000_000
    assert sorted(calls) == [0, 999_999]


def test_every_missing_kernel_param_is_named_at_once() -> None:
    data = job_dict("store")
    for key in ("spot", "strike", "rate"):
        del data["params"][key]
    with pytest.raises(SpecError) as info:
        spec.from_dict(data)
    assert info.value.key == "params.spot"
    assert "(also missing: params.strike, params.rate)" in str(info.value)
