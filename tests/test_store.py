"""The checkpoint store. One suite, run against every backend: local disk and real S3."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tessera.engine import spec
from tessera.engine.config import storage_options
from tessera.engine.errors import StoreError, StoreMismatchError
from tessera.engine.plan import Plan, pending, plan
from tessera.engine.store import Store
from tests.jobs import job_dict


class StoreTests:
    """Subclasses provide ``url`` (a fresh store location per test)."""

    @pytest.fixture
    def url(self) -> str:
        raise NotImplementedError

    def _job(self, url: str, **kw: Any) -> tuple[spec.Job, Plan]:
        job = spec.from_dict(job_dict(url, **kw))
        return job, plan(job)

    def _rows(self, job_plan: Plan, shard: int, value: float) -> dict[str, np.ndarray]:
        out = {}
        for a in job_plan.layout.arrays:
            start, stop = job_plan.layout.region(shard)[a.name]
            out[a.name] = np.full((stop - start, *a.shape[1:]), value, dtype=a.dtype)
        return out

    def test_create_then_reopen(self, url: str) -> None:
        job, job_plan = self._job(url)
        Store.open_for_job(job, job_plan)
        store = Store.open_for_job(job, job_plan)
        assert store.meta["spec_hash"] == job.spec_hash
        assert store.meta["plan"]["n_shards"] == job_plan.n_shards
        assert store.meta["job"]["job"]["name"] == job.name
        assert store.committed() == set()

    def test_arrays_are_chunk_aligned_to_shards(self, url: str) -> None:
        job, job_plan = self._job(url, shards=3)
        store = Store.open_for_job(job, job_plan)
        for a in job_plan.layout.arrays:
            arr = store.group[a.name]
            assert arr.chunks == a.chunks  # type: ignore[union-attr]
            for shard in range(job_plan.n_shards):
                start, stop = job_plan.layout.region(shard)[a.name]
                assert start % a.chunks[0] == 0
                assert stop % a.chunks[0] == 0 or stop == a.shape[0]

    def test_write_commit_pending_read(self, url: str) -> None:
        job, job_plan = self._job(url, shards=4)
        store = Store.open_for_job(job, job_plan)
        for shard in (0, 2):
            store.write_shard(job_plan, shard, self._rows(job_plan, shard, shard + 1.0))
            store.commit(shard, {"shard": shard, "seconds": 0.5})
        assert store.committed() == {0, 2}
        assert pending(job_plan.n_shards, store.committed()) == [1, 3]
        reopened = Store.open_existing(url)
        assert reopened.commit_records()[2]["seconds"] == 0.5
        arrays = reopened.read_arrays()
        name = job_plan.layout.arrays[0].name
        start, stop = job_plan.layout.region(2)[name]
        assert np.all(arrays[name][start:stop] == 3.0)
        start, stop = job_plan.layout.region(1)[name]
        assert np.all(arrays[name][start:stop] == 0.0)

    def test_wrong_shape_is_refused_before_commit(self, url: str) -> None:
        job, job_plan = self._job(url)
        store = Store.open_for_job(job, job_plan)
        name = job_plan.layout.arrays[0].name
        with pytest.raises(StoreError, match=f"shard 1: array '{name}' has shape"):
            store.write_shard(job_plan, 1, {name: np.zeros((1, 1))})
        assert store.committed() == set()

    def test_a_different_job_is_refused_with_how_to_start_fresh(self, url: str) -> None:
        job, job_plan = self._job(url)
        Store.open_for_job(job, job_plan)
        other, other_plan = self._job(url, seed=99)
        with pytest.raises(StoreMismatchError) as info:
            Store.open_for_job(other, other_plan)
        message = str(info.value)
        assert "seed: stored 7, this job 99" in message
        assert "delete the store or pass --store" in message

    def test_only_the_shard_count_differs_advises_the_stored_count(self, url: str) -> None:
        job, job_plan = self._job(url, shards=4)
        Store.open_for_job(job, job_plan)
        other, other_plan = self._job(url, shards=2)
        with pytest.raises(StoreMismatchError) as info:
            Store.open_for_job(other, other_plan)
        message = str(info.value)
        assert "n_shards: stored 4, this job 2" in message
        assert "pass --shards 4 (the stored count)" in message

    def test_failures_and_attempts(self, url: str) -> None:
        job, job_plan = self._job(url)
        store = Store.open_for_job(job, job_plan)
        assert store.begin_attempt(1, {"host": "a"}) == 1
        assert store.begin_attempt(1, {"host": "b"}) == 2
        assert store.begin_attempt(3, {"host": "a"}) == 1
        assert store.attempts() == {1: 2, 3: 1}
        store.record_failure(1, {"reason": "ValueError: bad"})
        assert store.failures() == {1: {"reason": "ValueError: bad"}}
        store.write_shard(job_plan, 1, self._rows(job_plan, 1, 1.0))
        store.commit(1, {"shard": 1})
        assert store.failures() == {}

    def test_result_and_report_files(self, url: str) -> None:
        job, job_plan = self._job(url)
        store = Store.open_for_job(job, job_plan)
        assert store.read_json("result.json") is None
        store.write_json("result.json", json.dumps({"a": 1}))
        assert Store.open_existing(url).read_json("result.json") == {"a": 1}

    def test_a_location_holding_user_files_is_refused_and_kept(self, url: str) -> None:
        owned = {"notes.txt": b"my notes\n", "sub/keep.txt": b"keep me"}
        for key, data in owned.items():
            _put(f"{url}/{key}", data)
        job, job_plan = self._job(url)
        with pytest.raises(StoreError, match=r"is not empty.*2 entries \(notes\.txt, sub\)"):
            Store.open_for_job(job, job_plan)
        for key, data in owned.items():
            assert _get(f"{url}/{key}") == data
        assert _get(f"{url}/zarr.json") is None

    def test_many_entries_are_counted_not_listed(self, url: str) -> None:
        for i in range(12):
            _put(f"{url}/f{i:02d}.csv", b"x")
        job, job_plan = self._job(url)
        with pytest.raises(StoreError, match=r"12 entries \(f00.csv, .*f04.csv and 7 more\)"):
            Store.open_for_job(job, job_plan)
        assert _get(f"{url}/f11.csv") == b"x"

    def test_open_existing_refuses_a_non_store(self, url: str) -> None:
        with pytest.raises(StoreError, match="is not a tessera store"):
            Store.open_existing(url)


def _fs(url: str) -> tuple[Any, str]:
    import fsspec

    if "://" not in url or url.startswith("file://"):
        return fsspec.filesystem("file", auto_mkdir=True), url.removeprefix("file://")
    return fsspec.core.url_to_fs(url, **storage_options(url))


def _put(url: str, data: bytes) -> None:
    fs, path = _fs(url)
    fs.pipe_file(path, data)


def _get(url: str) -> bytes | None:
    fs, path = _fs(url)
    fs.invalidate_cache()
    try:
        return bytes(fs.cat_file(path))
    except FileNotFoundError:
        return None


class TestLocalStore(StoreTests):
    @pytest.fixture
    def url(self, tmp_path: Any) -> str:
        return str(tmp_path / "store")

    def test_an_empty_folder_becomes_a_store(self, tmp_path: Any) -> None:
        (tmp_path / "empty").mkdir()
        job, job_plan = self._job(str(tmp_path / "empty"))
        assert Store.open_for_job(job, job_plan).committed() == set()

    def test_a_file_is_refused(self, tmp_path: Any) -> None:
        (tmp_path / "f").write_bytes(b"mine")
        job, job_plan = self._job(str(tmp_path / "f"))
        with pytest.raises(StoreError, match="is a file, not a folder"):
            Store.open_for_job(job, job_plan)
        assert (tmp_path / "f").read_bytes() == b"mine"


class TestFileUrlStore(StoreTests):
    @pytest.fixture
    def url(self, tmp_path: Any) -> str:
        return f"file://{tmp_path}/store"


@pytest.mark.s3
class TestS3Store(StoreTests):
    @pytest.fixture
    def url(self, seaweed_s3: Any, monkeypatch: pytest.MonkeyPatch, request: Any) -> str:
        for key, value in seaweed_s3.env().items():
            monkeypatch.setenv(key, value)
        bucket = "tessera-store-tests"
        seaweed_s3.create_bucket(bucket)
        return f"s3://{bucket}/{request.node.name}"

    def test_a_bucket_root_with_objects_is_refused_and_kept(
        self, seaweed_s3: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for key, value in seaweed_s3.env().items():
            monkeypatch.setenv(key, value)
        bucket = seaweed_s3.create_bucket()
        _put(f"s3://{bucket}/precious.csv", b"a,b\n1,2\n")
        job, job_plan = self._job(f"s3://{bucket}")
        with pytest.raises(StoreError, match=r"1 entry \(precious\.csv\)"):
            Store.open_for_job(job, job_plan)
        assert _get(f"s3://{bucket}/precious.csv") == b"a,b\n1,2\n"
