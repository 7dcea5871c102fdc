"""Benchmark: writing OME-Zarr levels, codec by codec, zarr-python's pipeline against zarrs.

The workload is what ``imaging.pyramid`` writes: a (c, y, x) array of 256-pixel chunks stored
in Zarr v3 shards of one 4096-pixel super-tile each, written one shard per call (as a tessera
shard writes its level). Two pictures from ``examples/make_images.py`` (a stained-slide scene
with smooth fields, hard edges, glyphs and sensor noise): 8192^2 RGB uint8, and 8192^2 grey
uint16 (microscopy-like). For every codec it writes the picture with

* ``zarr``: zarr-python's own ``BatchedCodecPipeline`` (numcodecs behind it);
* ``zarrs``: the ``zarrs`` codec pipeline (Rust, off the GIL), ``threading.max_workers`` =
  ``--cores``: it encodes a shard's chunks in parallel, and lays them out in the order they
  finish (other bytes each time);
* ``zarrs-1``: the same on one thread per write call, which lays the chunks out in order: what
  tessera uses (``tessera.engine.codecs``).

It reports megapixels written per second of wall time and per CPU-second of this process (best
of ``--repeats``, interleaved round by round), the compression ratio (raw bytes / bytes on disk;
the pipelines' chunks are the same bytes, only their order inside a shard differs) and the read
rate. Every written array is read back by its pipeline and by another, and compared. The process
is pinned to ``--cores`` CPUs; compare numbers from one run only. Results go to
``benchmarks/results/zarr_codecs.json``.

    python benchmarks/zarr_codecs.py [--size 8192] [--cores 2] [--repeats 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import zarr  # noqa: E402
import zarr.storage  # noqa: E402

from benchmarks.common import write_result  # noqa: E402
from examples.make_images import make_image  # noqa: E402

TILE = 256
SUPER_TILE = 4096
# name -> (codec pipeline, threads: None for --cores)
PIPELINES: dict[str, tuple[str, int | None]] = {
    "zarr": ("zarr.core.codec_pipeline.BatchedCodecPipeline", None),
    "zarrs": ("zarrs.ZarrsCodecPipeline", None),
    "zarrs-1": ("zarrs.ZarrsCodecPipeline", 1),
}


def zstd(level: int) -> dict[str, Any]:
    return {"name": "zstd", "configuration": {"level": level, "checksum": False}}


def blosc(cname: str, clevel: int, shuffle: str, blocksize: int = 0) -> dict[str, Any]:
    """Blosc's codec metadata; ``blocksize`` 0 lets Blosc choose (32 KiB for Zstandard level 1
    on these chunks)."""
    return {
        "name": "blosc",
        "configuration": {
            "cname": cname,
            "clevel": clevel,
            "shuffle": shuffle,
            "blocksize": blocksize,
        },
    }


# name -> the compressors of the inner chunks (Zarr v3 codec metadata)
CODECS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "zstd-1": [zstd(1)],
    "zstd-3 (zarr's default)": [zstd(0)],  # level 0 is libzstd's default, 3: the same bytes
    "zstd-5": [zstd(5)],
    "blosc-lz4-5 shuffle": [blosc("lz4", 5, "shuffle")],
    "blosc-zstd-1 shuffle": [blosc("zstd", 1, "shuffle")],
    # a block per uint8 channel plane of a 256^2 chunk (half a uint16 plane): one Huffman table
    # a plane, where Blosc's own 32 KiB blocks give two
    "blosc-zstd-1 shuffle, 64 KiB blocks": [blosc("zstd", 1, "shuffle", TILE * TILE)],
    "blosc-zstd-3 bitshuffle": [blosc("zstd", 3, "bitshuffle")],
}


def pictures(size: int) -> dict[str, np.ndarray]:
    """(c, y, x) pictures, C-contiguous, as the pyramid hands them to Zarr."""
    rgb = make_image(size, size, "RGB", 8)
    grey = make_image(size, size, "L", 16)
    return {
        "rgb-uint8": np.ascontiguousarray(rgb.transpose(2, 0, 1)),
        "grey-uint16": np.ascontiguousarray(grey.transpose(2, 0, 1)),
    }


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def config(pipeline: str, cores: int) -> dict[str, Any]:
    path, threads = PIPELINES[pipeline]
    return {"codec_pipeline.path": path, "threading.max_workers": threads or cores}


def write(
    path: Path, image: np.ndarray, compressors: list[Any], pipeline: str, cores: int
) -> tuple[float, float]:
    """Wall and CPU seconds (of this process, every thread) to create the array and write
    ``image`` one shard at a time."""
    shutil.rmtree(path, ignore_errors=True)
    c, h, w = image.shape
    with zarr.config.set(config(pipeline, cores)):
        started, cpu = time.perf_counter(), time.process_time()
        array = zarr.create_array(
            zarr.storage.LocalStore(path),
            shape=image.shape,
            dtype=image.dtype,
            chunks=(c, TILE, TILE),
            shards=(c, SUPER_TILE, SUPER_TILE),
            compressors=compressors,
            fill_value=0,
            dimension_names=("c", "y", "x"),
        )
        for y in range(0, h, SUPER_TILE):
            for x in range(0, w, SUPER_TILE):
                sel = (slice(None), slice(y, y + SUPER_TILE), slice(x, x + SUPER_TILE))
                array[sel] = image[sel]
        return time.perf_counter() - started, time.process_time() - cpu


def read(path: Path, pipeline: str, cores: int) -> tuple[float, np.ndarray]:
    with zarr.config.set(config(pipeline, cores)):
        started = time.perf_counter()
        data = zarr.open_array(zarr.storage.LocalStore(path, read_only=True), mode="r")[...]
        return time.perf_counter() - started, data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))[: args.cores]
    os.sched_setaffinity(0, cpus)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="zarr-codecs-"))
    work.mkdir(parents=True, exist_ok=True)
    images = pictures(args.size)
    print(
        f"{'image':12s} {'codec':24s} ratio  write MP/s, MP per CPU-s and read MP/s with "
        f"{', '.join(PIPELINES)}"
    )
    load_before = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    try:
        for image_name, image in images.items():
            mp = image.shape[1] * image.shape[2] / 1e6
            for codec_name, compressors in CODECS.items():
                best = {p: dict.fromkeys(("write", "cpu", "read"), float("inf")) for p in PIPELINES}
                sizes: dict[str, int] = {}
                for _ in range(args.repeats):
                    for pipeline in PIPELINES:
                        path = work / pipeline
                        seconds, cpu = write(path, image, compressors, pipeline, args.cores)
                        best[pipeline]["write"] = min(best[pipeline]["write"], seconds)
                        best[pipeline]["cpu"] = min(best[pipeline]["cpu"], cpu)
                        sizes[pipeline] = du(path)
                        seconds, back = read(path, pipeline, args.cores)
                        best[pipeline]["read"] = min(best[pipeline]["read"], seconds)
                        other = "zarr" if pipeline != "zarr" else "zarrs"
                        _, across = read(path, other, args.cores)
                        for data, by in ((back, pipeline), (across, other)):
                            if not np.array_equal(data, image):
                                raise AssertionError(f"{codec_name}: {pipeline} wrote, {by} read")
                row = {
                    "image": image_name,
                    "codec": codec_name,
                    "compressors": compressors,
                    "ratio": image.nbytes / sizes["zarrs"],
                    "ratio_zarr": image.nbytes / sizes["zarr"],
                    **{f"write_mps_{p}": mp / best[p]["write"] for p in PIPELINES},
                    **{f"write_mp_per_cpu_s_{p}": mp / best[p]["cpu"] for p in PIPELINES},
                    **{f"read_mps_{p}": mp / best[p]["read"] for p in PIPELINES},
                }
                print(
                    f"{image_name:12s} {codec_name:24s} {row['ratio']:5.2f}  write "
                    + " ".join(f"{row[f'write_mps_{p}']:6.1f}" for p in PIPELINES)
                    + "   per CPU-s "
                    + " ".join(f"{row[f'write_mp_per_cpu_s_{p}']:6.1f}" for p in PIPELINES)
                    + "   read "
                    + " ".join(f"{row[f'read_mps_{p}']:6.1f}" for p in PIPELINES),
                    flush=True,
                )
                rows.append(row)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "workload": {
            "size": args.size,
            "chunks": TILE,
            "shards": SUPER_TILE,
            "cores": args.cores,
            "repeats": args.repeats,
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
            "zarrs": _version("zarrs"),
            "numcodecs": _version("numcodecs"),
        },
        "rows": rows,
    }
    print(f"wrote {write_result('zarr_codecs', result)}")
    return 0


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
