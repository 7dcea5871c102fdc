"""Array codecs: a kernel's choice reaches zarr.json, the engine's default otherwise; the zarrs
codec pipeline writes the chunks, and what it writes is plain Zarr v3 for zarr-python."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
import zarr.storage

from tessera.engine import codecs, executors, spec
from tessera.engine.errors import StoreError
from tessera.engine.io import os_errors
from tessera.engine.plan import Plan, plan
from tessera.engine.run import run_job
from tessera.engine.store import Store
from tessera.sdk import ArraySpec
from tests import codec_kernel
from tests.codec_kernel import ARRAY, CHUNK, COLUMNS, ROWS

SHARDS = 4
ZARR_PYTHON = {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}
SUBCHUNKS = (ROWS // CHUNK) * (COLUMNS // CHUNK)


def _job(store: str | Path, codec: str = "default") -> spec.Job:
    return spec.from_dict(
        {
            "job": {"name": "codecs", "kernel": codec_kernel.KERNEL.name, "store": str(store)}
            | {"shards": SHARDS},
            "params": {"codec": codec},
        }
    )


def _run(store: str | Path, codec: str = "default") -> spec.Job:
    job = _job(store, codec)
    outcome = run_job(job, executors.create("local"), lambda event: None)
    assert outcome.ok, outcome.failures
    return job


def _inner_codecs(array_folder: Path) -> list[dict[str, Any]]:
    """The codecs of the chunks inside a shard, from the zarr.json bytes on disk."""
    meta = json.loads((array_folder / "zarr.json").read_bytes())
    (sharding,) = meta["codecs"]
    assert sharding["name"] == "sharding_indexed"
    assert sharding["configuration"]["chunk_shape"] == [CHUNK, CHUNK]
    codecs_: list[dict[str, Any]] = sharding["configuration"]["codecs"]
    return codecs_


def _subchunks(shard: bytes) -> list[bytes]:
    """The encoded chunks of one shard object, in chunk order (the index is at its end: an
    offset and a size per chunk, then a CRC-32C)."""
    index = np.frombuffer(shard[-(16 * SUBCHUNKS + 4) : -4], dtype="<u8").reshape(SUBCHUNKS, 2)
    return [shard[int(o) : int(o) + int(n)] for o, n in index]


def _all_values() -> np.ndarray:
    return codec_kernel.values(0, SHARDS * ROWS)


@pytest.mark.parametrize("codec", ["default", "none", "zstd-5", "blosc-lz4"])
def test_a_kernels_codec_is_in_zarr_json_and_the_values_read_back(
    tmp_path: Path, codec: str
) -> None:
    _run(tmp_path / "s", codec)
    inner = _inner_codecs(tmp_path / "s" / ARRAY)
    assert inner[0]["name"] == "bytes"
    chosen = codec_kernel.CODECS[codec]
    want = codecs.DEFAULT_COMPRESSORS if chosen is None else chosen
    assert [c["name"] for c in inner[1:]] == [c["name"] for c in want]
    for stored, asked in zip(inner[1:], want):  # zarr adds what it infers (blosc's typesize)
        assert asked["configuration"].items() <= stored["configuration"].items()
    with zarr.config.set(ZARR_PYTHON):
        back = zarr.open_array(str(tmp_path / "s" / ARRAY), mode="r")[...]
    assert np.array_equal(back, _all_values())
    result = json.loads((tmp_path / "s" / "result.json").read_text())
    assert result["sum"] == int(_all_values().astype(np.int64).sum())


def test_the_default_is_blosc_zstd_level_1_with_shuffle(tmp_path: Path) -> None:
    _run(tmp_path / "s")
    (_, blosc) = _inner_codecs(tmp_path / "s" / ARRAY)
    assert blosc == {
        "name": "blosc",
        "configuration": {
            "cname": "zstd",
            "clevel": 1,
            "shuffle": "shuffle",
            "blocksize": 0,
            "typesize": 2,  # from the dtype: the shuffle groups the bytes of each uint16
        },
    }


def test_the_store_writes_through_zarrs_and_zarr_python_reads_the_same(tmp_path: Path) -> None:
    job = _run(tmp_path / "s", "zstd-5")
    store = Store.open_existing(job.store)
    assert type(store.array(ARRAY).async_array.codec_pipeline).__name__ == "ZarrsCodecPipeline"
    with zarr.config.set(ZARR_PYTHON):
        plain = zarr.open_array(str(tmp_path / "s" / ARRAY), mode="r")
        assert type(plain.async_array.codec_pipeline).__name__ == "BatchedCodecPipeline"
        assert np.array_equal(plain[...], store.array(ARRAY)[...])
    assert np.array_equal(store.read_arrays()[ARRAY][...], _all_values())


def test_opening_arrays_leaves_the_process_zarr_config_alone(tmp_path: Path) -> None:
    before = (zarr.config.get("codec_pipeline.path"), zarr.config.get("threading.max_workers"))
    job = _run(tmp_path / "s")
    Store.open_existing(job.store).read_arrays()
    after = (zarr.config.get("codec_pipeline.path"), zarr.config.get("threading.max_workers"))
    assert after == before
    mine = zarr.create_array(zarr.storage.MemoryStore(), shape=(4,), chunks=(2,), dtype="int8")
    assert type(mine.async_array.codec_pipeline).__name__ == "BatchedCodecPipeline"


def test_writing_a_shard_twice_writes_the_same_bytes(tmp_path: Path) -> None:
    """zarrs lays a shard's chunks out in one order whatever the run (DESIGN.md, "The store"),
    in another store and when a shard is written again in the same one."""
    job = _run(tmp_path / "a", "zstd-5")
    _run(tmp_path / "b", "zstd-5")
    shards = sorted((tmp_path / "a" / ARRAY / "c").rglob("*"))
    files = [p.relative_to(tmp_path / "a") for p in shards if p.is_file()]
    assert len(files) == SHARDS
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    first = (tmp_path / "a" / files[1]).read_bytes()
    store = Store.open_existing(job.store)
    store.write_shard(plan(job), 1, {ARRAY: codec_kernel.values(ROWS, 2 * ROWS)})
    assert (tmp_path / "a" / files[1]).read_bytes() == first


def test_an_unknown_codec_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    job = _job(tmp_path / "s", "unknown")
    with pytest.raises(StoreError, match=r"array values: compressors\[0\] .*no codec 'no-such"):
        Store.open_for_job(job, plan(job))
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("compressors", "error"),
    [
        (({"configuration": {}},), "a table with a 'name'"),
        (({"name": "zstd", "configuration": {"level": "high"}},), "expected an int"),
        (({"name": "bytes", "configuration": {"endian": "little"}},), "bytes is not a compressor"),
    ],
)
def test_bad_compressors_name_the_array_and_the_codec(
    compressors: tuple[dict[str, Any], ...], error: str
) -> None:
    array = ArraySpec("a/b", (4,), "uint8", (2,), compressors=compressors)
    with pytest.raises(ValueError, match=rf"array a/b: compressors\[0\] .*{error}"):
        codecs.compressors(array)


def test_the_stored_plan_keeps_the_kernels_codecs(tmp_path: Path) -> None:
    job = _run(tmp_path / "s", "blosc-lz4")
    stored = Store.open_existing(job.store).meta["plan"]
    assert stored["arrays"][0]["compressors"] == [dict(c) for c in codec_kernel.CODECS["blosc-lz4"]]
    assert Plan.from_dict(stored) == plan(job)
    default = plan(_job(tmp_path / "t")).to_dict()
    assert "compressors" not in default["arrays"][0]  # stored as before: the engine's default
    assert Plan.from_dict(default).layout.arrays[0].compressors is None


@pytest.mark.s3
def test_on_s3_zarr_pythons_pipeline_writes_the_same_chunks(
    tmp_path: Path, seaweed_s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zarrs does not reach S3 through s3fs: zarr-python's pipeline writes there, and its
    encoded chunks are byte for byte those zarrs writes on disk (only their order in a shard
    differs)."""
    for key, value in seaweed_s3.env().items():
        monkeypatch.setenv(key, value)
    bucket = seaweed_s3.create_bucket()
    job = _run(f"s3://{bucket}/codecs")
    _run(tmp_path / "s")
    store = Store.open_existing(job.store)
    assert type(store.array(ARRAY).async_array.codec_pipeline).__name__ == "BatchedCodecPipeline"
    assert np.array_equal(store.array(ARRAY)[...], _all_values())
    for shard in range(SHARDS):
        remote = bytes(store.fs.cat_file(f"{store.root}/{ARRAY}/c/{shard}/0"))
        local = (tmp_path / "s" / ARRAY / "c" / str(shard) / "0").read_bytes()
        assert _subchunks(remote) == _subchunks(local)


def test_zarrs_os_errors_become_the_os_error_they_stand_for() -> None:
    with pytest.raises(NotADirectoryError) as info, os_errors():
        raise RuntimeError("Not a directory (os error 20)")
    assert info.value.errno == 20 and isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(RuntimeError, match="a bug"), os_errors():
        raise RuntimeError("a bug")


def _files(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_a_write_across_zarr_shards_is_cut_per_shard_with_the_bytes_of_one_call(
    tmp_path: Path,
) -> None:
    from tessera.engine import store as store_module

    data = np.random.default_rng(0).integers(0, 4000, (3, 1000, 1300), dtype=np.uint16)

    def array(path: Path) -> Any:
        with codecs.zarrs_pipeline():
            return zarr.create_array(
                str(path),
                shape=data.shape,
                chunks=(3, 64, 64),
                shards=(3, 256, 256),
                dtype="uint16",
                compressors=codecs.compressors(ArraySpec("a", data.shape, "uint16", (3, 64, 64))),
            )

    whole = array(tmp_path / "one-call")
    whole[...] = data
    cut = array(tmp_path / "cut")
    everything = (slice(None), slice(0, 1000), slice(0, 1300))
    assert len(store_module._by_object(cut, everything)[0]) == 4 * 6  # Zarr shards it spans
    store_module._write_by_object(cut, (slice(None), slice(0, 512), slice(256, 1300)),
                                  data[:, :512, 256:])  # fmt: skip
    store_module._write_by_object(cut, (slice(None), slice(512, 1000)), data[:, 512:])
    store_module._write_by_object(cut, (slice(None), slice(0, 512), slice(0, 256)),
                                  data[:, :512, :256])  # fmt: skip
    assert np.array_equal(cut[...], data)
    assert _files(tmp_path / "cut") == _files(tmp_path / "one-call")
    store_module._write_by_object(cut, (slice(None), slice(0, 10), slice(0, 600)), np.uint16(7))
    assert (cut[:, :10, :600] == 7).all() and np.array_equal(cut[:, 10:], data[:, 10:])
    nothing = (slice(None), slice(5, 5), slice(0, 1300))  # an empty selection writes nothing
    store_module._write_by_object(cut, nothing, data[:, 5:5])
    assert np.array_equal(cut[:, 10:], data[:, 10:])


def test_a_range_is_cut_at_the_stored_objects_edges() -> None:
    from tessera.kernels.base import cut_at

    assert cut_at(100, 600, 256) == [(100, 256), (256, 512), (512, 600)]
    assert cut_at(256, 512, 256) == [(256, 512)]
    assert cut_at(0, 1, 256) == [(0, 1)]
    assert cut_at(5, 5, 256) == []


# --- direct I/O -------------------------------------------------------------------------------


def _cached_pages(path: Path) -> tuple[int, int]:
    """How many of ``path``'s pages are in the page cache, and how many it has (Linux
    ``mincore`` on a private mapping of it, which reads nothing in)."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_COPY) as mm:
        vector = (ctypes.c_ubyte * pages)()
        # the c_char's hold on the mapping ends with this line, so it can close afterwards
        address = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.from_buffer(mm)))
        if libc.mincore(address, ctypes.c_size_t(size), vector) != 0:
            raise OSError(ctypes.get_errno(), "mincore")
        return sum(v & 1 for v in vector), pages


def _objects(store: Path) -> list[Path]:
    return sorted(p for p in (store / ARRAY / "c").rglob("*") if p.is_file())


def test_zarrs_writes_the_objects_with_direct_io_and_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the filesystem takes O_DIRECT, the store's objects go to the device, not into the
    page cache (none of their pages is cached after the run, every one of them is with
    ``TESSERA_DIRECT_IO=off``), and the bytes are those of buffered writes."""
    if not hasattr(os, "O_DIRECT") or not codecs.direct_io(str(tmp_path)):
        pytest.skip(f"the filesystem of {tmp_path} refuses O_DIRECT")
    _run(tmp_path / "direct", "zstd-5")
    monkeypatch.setenv("TESSERA_DIRECT_IO", "off")
    _run(tmp_path / "buffered", "zstd-5")
    direct, buffered = _objects(tmp_path / "direct"), _objects(tmp_path / "buffered")
    assert len(direct) == SHARDS
    assert [p.relative_to(tmp_path / "direct") for p in direct] == [
        p.relative_to(tmp_path / "buffered") for p in buffered
    ]
    assert [_cached_pages(p)[0] for p in direct] == [0] * SHARDS  # before reading them here
    assert [_cached_pages(p)[0] for p in buffered] == [_cached_pages(p)[1] for p in buffered]
    for a, b in zip(direct, buffered):
        assert a.read_bytes() == b.read_bytes(), a
    assert not list(tmp_path.rglob(".tessera-direct-io-*"))  # the probes' files are gone


def test_a_filesystem_that_refuses_direct_io_gets_buffered_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe's O_DIRECT open fails with EINVAL, as on tmpfs before Linux 6.6 or a FUSE
    mount: the run completes with buffered writes, and reads back what it wrote."""
    import errno

    opened = os.open
    refused: list[str] = []

    def open_(path: str, flags: int, *args: Any) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            refused.append(path)
            raise OSError(errno.EINVAL, "Invalid argument", path)
        return opened(path, flags, *args)

    monkeypatch.setattr(codecs.os, "open", open_)
    monkeypatch.setattr(codecs, "_DIRECT_IO", {})
    job = _run(tmp_path / "s", "zstd-5")
    assert refused and all(".tessera-direct-io-" in p for p in refused)
    assert codecs.direct_io(job.store) is False
    assert np.array_equal(Store.open_existing(job.store).read_arrays()[ARRAY][...], _all_values())


def test_tessera_direct_io_takes_auto_or_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from tessera.engine.config import settings

    monkeypatch.setenv("TESSERA_DIRECT_IO", " OFF ")
    assert settings().direct_io == "off"
    assert codecs.direct_io("/") is False
    monkeypatch.setenv("TESSERA_DIRECT_IO", "yes")
    with pytest.raises(ValueError, match=r"TESSERA_DIRECT_IO='yes': expected auto or off"):
        settings()
