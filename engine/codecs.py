"""How the store's arrays are encoded: the default codec, a kernel's own, and the pipeline.

Every chunk goes through a Zarr v3 codec chain (inside the ``sharding_indexed`` codec when the
array has shards): ``bytes``, then the array's compressors. A kernel names its compressors in
its ``ArraySpec`` as Zarr v3 codec metadata; without them an array gets
``DEFAULT_COMPRESSORS``.

The chains run in the zarrs codec pipeline (PyPI ``zarrs``: the zarrs Rust crate behind
zarr-python's ``CodecPipeline`` interface): a shard is encoded and written in Rust, off the
GIL, with no Python per chunk. What it writes is plain Zarr v3, read by zarr-python's own
pipeline too. zarrs reaches local stores; on others (S3 through s3fs), and for a codec or a
selection it does not handle, zarr-python falls back to its own pipeline, whose chunks are the
same bytes (only their order inside a shard differs). Measured in benchmarks/zarr_codecs.py.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import zarr
import zarr.core.sync
import zarr.registry
from zarr.abc.codec import BytesBytesCodec

from tessera.kernels.base import ArraySpec

# Blosc with Zstandard level 1 and byte shuffle (typesize, from the dtype, is added by zarr):
# benchmarks/zarr_codecs.py measured it against zarr-python's default (Zstandard level 0, i.e.
# 3) on an 8192^2 RGB slide-like picture with sensor noise: 1.51x smaller than raw instead of
# 1.37x, written by zarrs at 183 MP/s instead of zarr-python's 51 (2 cores). Plain Zstandard
# level 1 is as fast but compresses 1.35x; levels 3 and 5 compress no better and are about 2x
# slower; LZ4 does not compress such pictures at all; Blosc's own blocks (``blocksize`` 0: 32
# KiB here) compress 2% better than a block a channel plane, for 6% more CPU. On uint16 the
# shuffle puts the high bytes together.
DEFAULT_COMPRESSORS: tuple[dict[str, Any], ...] = (
    {
        "name": "blosc",
        "configuration": {"cname": "zstd", "clevel": 1, "shuffle": "shuffle", "blocksize": 0},
    },
)

# zarr's configuration while an array is opened: the pipeline is chosen then, and keeps its
# settings for the life of the array object.
ZARRS_CONFIG: dict[str, Any] = {
    "codec_pipeline.path": "zarrs.ZarrsCodecPipeline",
    # Unsupported stores, codecs and selections go to zarr-python's pipeline (not an error).
    "codec_pipeline.strict": False,
    # One thread per write call. On more, zarrs-python 0.2 encodes a shard's chunks in parallel
    # and lays them out in the order they finish: writing a shard twice would give other bytes
    # (the same pixels). Shards run in parallel in separate processes (Dask workers, Batch
    # children), and within one the write runs in Rust beside the kernel's own threads.
    "threading.max_workers": 1,
}

# Direct I/O for the objects zarrs writes to local disk (``codec_pipeline.direct_io``: O_DIRECT,
# each object padded to whole pages, then truncated): the bytes go from zarrs's buffer to the
# device, not through the page cache, whose copy and page allocation cost a core about 1 s per
# GB on 2-core machines (benchmarks/imaging.py; README, "Direct I/O"). The files are the same
# bytes. Read back by zarr-python's own pipeline or another process, they are as any file.
_DIRECT_IO: dict[str, bool] = {}

# donfig's config is one per process: opening arrays in two threads at once must not interleave
# setting and restoring it.
_OPENING = threading.Lock()


def direct_io(folder: str) -> bool:
    """Whether zarrs reads and writes the objects under the local ``folder`` with direct I/O:
    unless ``TESSERA_DIRECT_IO`` is ``off``, when the folder's filesystem takes an O_DIRECT
    write (probed once per folder and process with a one-page file of its own, removed at once;
    Linux only: tmpfs before Linux 6.6 and many FUSE mounts refuse it)."""
    from tessera.engine.config import settings

    if settings().direct_io == "off":
        return False
    if folder not in _DIRECT_IO:
        _DIRECT_IO[folder] = _takes_direct_io(folder)
    return _DIRECT_IO[folder]


def _takes_direct_io(folder: str) -> bool:
    flag = getattr(os, "O_DIRECT", None)
    if flag is None:
        return False
    path = os.path.join(folder, f".tessera-direct-io-{os.getpid()}-{threading.get_ident()}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | flag, 0o600)
    except OSError:
        return False  # refused (EINVAL), or the folder is not there yet: buffered, as always
    page = mmap.mmap(-1, mmap.PAGESIZE)  # page-aligned, as O_DIRECT needs
    try:
        return os.write(fd, page) == mmap.PAGESIZE
    except OSError:
        return False
    finally:
        page.close()
        os.close(fd)
        os.unlink(path)  # the probe's own file, created by it (O_EXCL)


@contextlib.contextmanager
def zarrs_pipeline(direct: bool = False) -> Iterator[None]:
    """Arrays opened or created inside this block are read and written by the zarrs pipeline
    (``ZARRS_CONFIG``; with direct I/O when ``direct``: see ``direct_io``); zarr's
    configuration is restored after it, so the process's other Zarr use is unchanged."""
    with _OPENING:
        # zarr sizes its thread pool from threading.max_workers when first used: create it now,
        # from the process's own setting, not from ZARRS_CONFIG's. zarr has no public call for
        # it; without this private one (a later zarr) only that pool's size would differ.
        create_pool = getattr(zarr.core.sync, "_get_executor", None)
        if create_pool is not None:
            create_pool()
        with warnings.catch_warnings():
            # zarrs says so when it hands an array to zarr-python's pipeline; that is expected
            warnings.filterwarnings(
                "ignore", message="Array is unsupported by ZarrsCodecPipeline", category=UserWarning
            )
            with zarr.config.set({**ZARRS_CONFIG, "codec_pipeline.direct_io": direct}):
                yield


def compressors(spec: ArraySpec) -> tuple[BytesBytesCodec, ...]:
    """The compressors of ``spec`` (``DEFAULT_COMPRESSORS`` when it names none), as zarr codec
    objects. Raises ``ValueError`` naming the array and the codec when zarr has no such
    bytes-to-bytes codec or its configuration is wrong."""
    chosen: tuple[Mapping[str, Any], ...] = (
        DEFAULT_COMPRESSORS if spec.compressors is None else spec.compressors
    )
    out = []
    for i, meta in enumerate(chosen):
        where = f"array {spec.name}: compressors[{i}] {meta!r}"
        name = meta.get("name") if isinstance(meta, Mapping) else None
        if not isinstance(name, str):
            raise ValueError(f"{where}: a codec is a table with a 'name' (Zarr v3 metadata)")
        try:
            codec = zarr.registry.get_codec_class(name).from_dict(dict(meta))
        except KeyError:
            raise ValueError(f"{where}: zarr has no codec {name!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        if not isinstance(codec, BytesBytesCodec):
            raise ValueError(
                f"{where}: {name} is not a compressor (a bytes-to-bytes codec such as zstd, "
                f"blosc or gzip)"
            )
        out.append(codec)
    return tuple(out)
