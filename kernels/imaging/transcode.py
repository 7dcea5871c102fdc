"""The ``imaging.transcode`` kernel: convert many image files (format, size, colour mode).

``prepare`` resolves ``inputs`` (a glob, or a manifest file with one URL a line) into the sorted
file list (a glob's matches that are folders are left out) and reads every file's header (size
and mode, no pixels) for the plan-time memory check. The file list is part of the params, so the
shard layout is fixed and hashed with the job; the headers are plan data, read again whenever
the job is planned and not hashed, so a file fixed in place is the same job. A shard is a slice
of the file list. For each file it reads the bytes through the engine, decodes (plain 8-bit PNGs
by :mod:`tessera.kernels.imaging.png`, the rest with Pillow), resizes with the Numba kernels of
:mod:`tessera.kernels.imaging.resize`, converts the mode (:mod:`tessera.kernels.imaging.codec`),
encodes with Pillow and writes the file to ``output``, keeping its name (its path below the
inputs' common folder) and changing the extension.

A file that cannot be read or decoded fails alone: it is reported in ``ShardOutput.item_errors`` and
the shard's other files are still written. Output: three arrays of one row per file, cut by
``split_rows`` (``bytes``: the output size, -1 for a failed file; ``sha256``: the output's
digest; ``input_sha256``: the digest of the input it was made from), from which ``reduce`` builds
a result that does not depend on the shard count.

Fix and rerun: the engine reruns a shard that committed with item errors when the job is run
again (``Store.reopen_item_errors``). ``compute`` then keeps every file whose row says it was
written, whose input still has the recorded digest and whose output file still has the recorded
digest, and transcodes only the others: the files that failed, and any whose input changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io as io_module
import itertools
import threading
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from tessera.kernels.base import (
    ArraySpec,
    InputIO,
    ItemError,
    Layout,
    Location,
    ParamError,
    ShardIO,
    ShardOutput,
    split_rows,
)
from tessera.kernels.imaging import codec, png
from tessera.kernels.imaging.resize import output_size, resize
from tessera.kernels.imaging.transcode_params import Params, output_names, parse, to_dict
from tessera.kernels.threads import numba_on_this_thread_only, pool_threads

ARRAY_BYTES = "bytes"
ARRAY_SHA = "sha256"
ARRAY_INPUT_SHA = "input_sha256"
DEFAULT_SHARD_FILES = 64  # files per shard when the job names neither shards nor shard_size
# input pixels decoded, resized and encoded per second in-process by a shard's pool on 2 cores,
# roughly (1536x1024 PNGs to WebP: benchmarks/executor_choice.py measured a 64-file shard at
# 1.01 of this projection); for choosing the executor and the budget's projections only
PIXELS_PER_SECOND = 4.5e7
HEADER_THREADS = 16  # concurrent header reads in prepare (S3 latency, not CPU, is the limit)
FAILED = -1


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _join(base: str, entry: str) -> str:
    """Resolve a manifest entry against the manifest's folder (URLs and absolute paths stay)."""
    if "://" in entry or entry.startswith("/"):
        return entry
    folder = base.rsplit("/", 1)[0] if "/" in base else "."
    return f"{folder}/{entry}"


def _read_manifest(url: str, io: InputIO) -> list[str]:
    try:
        with io.open_input(url) as fh:
            raw = fh.read()
    except OSError as exc:
        raise ParamError(
            "inputs", f"cannot read manifest {url}: {exc} (a glob needs * ? or [ ])"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParamError(
            "inputs",
            f"{url} is not a text manifest (one URL a line); for files use a glob with * ? or [ ]",
        ) from None
    entries = []
    for line in text.splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            entries.append(_join(url, entry))
    return entries


def _without_folders(urls: list[str]) -> list[str]:
    """``urls`` less every entry that is the folder of another (``frames/a`` beside
    ``frames/a/x.png``: a ``**`` glob matches folders too). Pure: no listing, no stat."""
    folders: set[str] = set()
    for url in urls:
        parts = url.rstrip("/").split("/")
        folders.update("/".join(parts[:n]) for n in range(1, len(parts)))
    return [url for url in urls if url.rstrip("/") not in folders]


def resolve_inputs(pattern: str, io: InputIO) -> tuple[str, ...]:
    """The sorted, de-duplicated input URLs of ``inputs``: glob matches that are not the folder
    of another match, or the manifest's lines (blank lines and ``#`` comments skipped; relative
    entries resolved against the manifest's folder). Raises ``ParamError`` naming ``inputs``
    when nothing matches. (``prepare`` also leaves out a matched folder with nothing in it.)"""
    if _is_glob(pattern):
        files = _without_folders(io.list_inputs(pattern))
    else:
        files = _read_manifest(pattern, io)
    files = sorted(set(files))
    if not files:
        what = "glob" if _is_glob(pattern) else "manifest"
        raise ParamError("inputs", f"{what} {pattern!r} matched no files")
    return tuple(files)


UNREADABLE = (0, 0, "")  # the header of a file that could not be read: it fails alone later


def _header(url: str, io: InputIO) -> tuple[int, int, str] | None:
    """``(width, height, mode)`` of ``url``; ``None`` when ``url`` is a folder."""
    try:
        with io.open_input(url) as fh:
            return codec.read_header(fh)
    except IsADirectoryError:
        return None
    except Exception:  # unreadable now: it fails alone at compute time, not the whole job
        return UNREADABLE


def _headers(files: tuple[str, ...], io: InputIO) -> list[tuple[int, int, str] | None]:
    if len(files) == 1:
        return [_header(files[0], io)]
    with ThreadPoolExecutor(min(HEADER_THREADS, len(files))) as pool:
        return list(pool.map(lambda url: _header(url, io), files))


def _check_pixel_types(params: Params) -> None:
    """Refuse inputs whose header says a pixel type that cannot be transcoded (e.g. float)."""
    bad = [
        f"{url} ({mode})"
        for url, (_, _, mode) in zip(params.file_list, params.header_list)
        if mode and not codec.supported(mode)
    ]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ParamError(
            "inputs",
            f"{len(bad)} of {len(params.file_list)} inputs have an unsupported pixel type: "
            f"{shown}; expected {codec.SUPPORTED_TYPES}",
        )


class TranscodeKernel:
    """``imaging.transcode``: see DESIGN.md, "Kernels", and
    :mod:`tessera.kernels.imaging.transcode_params`."""

    name = "imaging.transcode"
    work_unit = "files"
    uses_every_core = True  # a shard's files go through a pool of every core's threads

    def parse_params(self, raw: Mapping[str, Any]) -> Params:
        """Validate ``[params]``; ``ParamError`` naming the key on bad input."""
        return parse(raw)

    def locations(self, params: Params) -> tuple[Location, ...]:
        """The input glob (or the manifest and every file it lists) and the output folder."""
        if _is_glob(params.inputs):
            inputs = (Location("inputs", params.inputs),)
        else:
            listed = params.files or ()
            inputs = tuple(Location("inputs", url) for url in (params.inputs, *listed))
        return (*inputs, Location("output", params.output, "output"))

    def warm(self, params: Params) -> None:
        """Compile the resize kernels (or load them from Numba's cache, about 0.6 s in a fresh
        process): wait for the thread ``prime`` started (or start it), then transcode a tiny image
        of the first input's mode. Best effort: a mode the first file has but a tiny image
        cannot take is left to ``compute``, which reports it per file."""
        from PIL import Image

        _priming(params.resample).join()
        _, _, mode = (params.headers or ((0, 0, "RGB"),))[0]
        try:
            buf = io_module.BytesIO()
            Image.new(mode or "RGB", (8, 8)).save(buf, "PNG" if mode != "CMYK" else "TIFF")
            transcode_bytes(buf.getvalue(), dataclasses.replace(params, max_edge=4, scale=None))
        except (OSError, ValueError):
            pass

    def prime(self, params: Params) -> None:
        """Start the thread that loads the resize kernels (``_priming``): the engine calls this
        when the job is loaded to run here, so they load while ``prepare`` reads the headers;
        ``tessera validate`` and the S3 trigger do not call it."""
        _priming(params.resample)

    def prepare(self, params: Params, io: InputIO) -> Params:
        """Resolve ``inputs`` to the sorted file list, unless the params carry it (a stored
        job), and read each file's header (width, height, mode) unless the params carry them.
        A glob's match that turns out to be a folder (opening it says so) is left out. Raises
        ``ParamError`` naming ``inputs`` for an empty list, two inputs that would write the
        same output file or an input of an unsupported pixel type (e.g. 32-bit float), and
        naming ``output`` when an output would overwrite its input."""
        files = params.files
        headers = params.headers
        if files is None:
            files = resolve_inputs(params.inputs, io)
            read = _headers(files, io)
            if _is_glob(params.inputs):
                kept = [(url, h) for url, h in zip(files, read) if h is not None]
                if not kept:
                    raise ParamError("inputs", f"glob {params.inputs!r} matched only folders")
                files = tuple(url for url, _ in kept)
                read = [h for _, h in kept]
            headers = tuple(h or UNREADABLE for h in read)
        elif headers is None:
            headers = tuple(h or UNREADABLE for h in _headers(files, io))
        params = dataclasses.replace(params, files=files, headers=headers)
        output_names(params)  # raises on collisions
        _check_pixel_types(params)
        return params

    def params_to_dict(self, params: Params) -> dict[str, Any]:
        """Canonical params: every key, defaults filled in, the resolved files (not the
        headers: plan data, see :func:`~tessera.kernels.imaging.transcode_params.to_dict`)."""
        return to_dict(params)

    def shards_for_size(self, params: Params, shard_size: int) -> int:
        """Shards when each holds ``shard_size`` files. Raises ``ParamError`` for
        ``shard_size < 1``."""
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
            raise ParamError("shard_size", f"expected a number of files >= 1, got {shard_size!r}")
        return -(-len(params.file_list) // shard_size)

    def default_shards(self, params: Params) -> int:
        """``DEFAULT_SHARD_FILES`` files per shard."""
        return -(-len(params.file_list) // DEFAULT_SHARD_FILES)

    def layout(self, params: Params, n_shards: int) -> Layout:
        """Arrays ``bytes`` (n_files,) int64, ``sha256`` and ``input_sha256`` (n_files, 32)
        uint8, one row per file, cut by ``split_rows`` (never more shards than files)."""
        n = len(params.file_list)
        chunk, bounds = split_rows(n, n_shards)
        return Layout(
            arrays=(
                ArraySpec(ARRAY_BYTES, (n,), "int64", (chunk,), fill_value=FAILED),
                ArraySpec(ARRAY_SHA, (n, 32), "uint8", (chunk, 32)),
                ArraySpec(ARRAY_INPUT_SHA, (n, 32), "uint8", (chunk, 32)),
            ),
            bounds=(bounds, bounds, bounds),
            shard_work=tuple(b - a for a, b in zip(bounds[:-1], bounds[1:])),
            work_unit=self.work_unit,
        )

    def compute(
        self, params: Params, seed: int, layout: Layout, shard: int, io: ShardIO | None = None
    ) -> ShardOutput:
        """Transcode the shard's files: rows of ``bytes``, ``sha256`` and ``input_sha256``,
        stats ``files``, ``written``, ``kept``, ``failed``, ``bytes_in``, ``bytes_out`` and
        ``pixels_in`` (of the files transcoded by this call), and one ``ItemError`` per failed
        file. A file that an earlier attempt wrote (its rows in the store say so, its input and
        its output file still have the recorded digests) is kept, not transcoded again: a
        shard rerun after fixing some of its files redoes only those. Raises ``ValueError``
        without ``io`` or for a shard out of range; lets output write errors through (the
        shard then fails and reruns)."""
        if io is None:
            raise ValueError("imaging.transcode needs the engine's io to read and write files")
        if not 0 <= shard < layout.n_shards:
            raise ValueError(f"shard {shard} is out of range for {layout.n_shards} shards")
        start, stop = layout.region(shard)[ARRAY_BYTES]
        shard_files = _ShardFiles(params, io, start, stop)
        threads = pool_threads()
        with ThreadPoolExecutor(threads) as pool, numba_on_this_thread_only():
            shard_files.run(pool, threads)
        sizes, digests, sources = shard_files.rows
        errors = shard_files.errors
        stats = {"files": stop - start, "kept": shard_files.kept, **shard_files.counts}
        stats["written"] = int(np.count_nonzero(sizes != FAILED))
        stats["failed"] = len(errors)
        return ShardOutput(
            arrays={ARRAY_BYTES: sizes, ARRAY_SHA: digests, ARRAY_INPUT_SHA: sources},
            stats=stats,
            item_errors=tuple(errors[row] for row in sorted(errors)),
        )

    def reduce(
        self, params: Params, seed: int, arrays: Mapping[str, Any], io: ShardIO | None = None
    ) -> dict[str, Any]:
        """Counts (``files``, ``written``, ``failed``), ``failed_inputs`` (URLs), total
        ``output_bytes`` and ``sha256``: the SHA-256 of the per-file digests in file order
        (a failed file counts as 32 zero bytes), so equal outputs give an equal result."""
        sizes = np.asarray(arrays[ARRAY_BYTES][...], dtype=np.int64)
        digests = np.asarray(arrays[ARRAY_SHA][...], dtype=np.uint8)
        files = params.file_list
        if sizes.shape != (len(files),) or digests.shape != (len(files), 32):
            raise ValueError(
                f"arrays have shapes {sizes.shape} and {digests.shape}, expected "
                f"({len(files)},) and ({len(files)}, 32)"
            )
        ok = sizes != FAILED
        return {
            "files": len(files),
            "written": int(np.count_nonzero(ok)),
            "failed": int(np.count_nonzero(~ok)),
            "failed_inputs": [files[i] for i in np.flatnonzero(~ok).tolist()],
            "output": params.output,
            "output_bytes": int(sizes[ok].sum()),
            "sha256": hashlib.sha256(np.ascontiguousarray(digests).tobytes()).hexdigest(),
        }

    def projected_seconds(self, params: Params, layout: Layout, shard: int) -> float:
        """Seconds ``shard`` takes in this process (its pool on every core), roughly: its
        files' input pixels (from their headers) at ``PIXELS_PER_SECOND``."""
        start, stop = layout.region(shard)[ARRAY_BYTES]
        pixels = sum(w * h for w, h, _ in params.header_list[start:stop] if w and h)
        return pixels / PIXELS_PER_SECOND

    def shard_memory_bytes(self, params: Params, layout: Layout, shard: int) -> int:
        """Projected peak bytes: ``pool_threads() + 1`` of the shard's largest image in flight
        at once (read ahead, and the one being resized), each as
        :func:`tessera.kernels.imaging.codec.projected_bytes` says. Files whose header could
        not be read count as 0 (they fail at compute time)."""
        start, stop = layout.region(shard)[ARRAY_BYTES]
        headers = params.header_list
        peak = 0
        for width, height, mode in headers[start:stop]:
            if width and height:
                out_w, out_h = output_size(width, height, params.max_edge, params.scale)
                peak = max(peak, codec.projected_bytes(width, height, mode, out_w, out_h))
        return peak * min(pool_threads() + 1, max(stop - start, 1))


Rows = tuple[np.ndarray, np.ndarray, np.ndarray]  # bytes, sha256, input_sha256 of a shard


class _ShardFiles:
    """One shard's files through a pipeline: a pool thread reads, checks and decodes each
    file (Pillow, mostly outside the GIL), the calling thread resizes and converts it (Numba),
    and a pool thread encodes and writes it; ``pool_threads()`` files are read ahead, so every
    core is busy whatever the shard's file count. Results are per row, in file order."""

    def __init__(self, params: Params, io: ShardIO, start: int, stop: int) -> None:
        self.params, self.io, self.start = params, io, start
        self.names = output_names(params)
        n = stop - start
        self.rows: Rows = (
            np.full(n, FAILED, dtype=np.int64),
            np.zeros((n, 32), dtype=np.uint8),
            np.zeros((n, 32), dtype=np.uint8),
        )
        self.previous = _previous_rows(io, start, stop)
        self.errors: dict[int, ItemError] = {}
        self.kept = 0
        self.counts = {"bytes_in": 0, "bytes_out": 0, "pixels_in": 0}

    def url(self, row: int) -> str:
        return self.params.file_list[self.start + row]

    def target(self, row: int) -> str:
        return f"{self.params.output}/{self.names[self.start + row]}"

    def run(self, pool: ThreadPoolExecutor, ahead: int) -> None:
        """Transcode every file, ``ahead`` of them read and decoded ahead of the resizing."""
        rows = iter(range(len(self.rows[0])))
        loading = deque(pool.submit(self.load, row) for row in itertools.islice(rows, ahead))
        storing = []
        while loading:
            row, loaded = loading.popleft().result()
            loading.extend(pool.submit(self.load, r) for r in itertools.islice(rows, 1))
            if isinstance(loaded, ItemError):
                self.errors[row] = loaded
            elif loaded[0] is None:  # kept: an earlier attempt wrote it
                assert self.previous is not None
                sizes, digests, sources = self.rows
                sizes[row], digests[row] = self.previous[0][row], self.previous[1][row]
                sources[row] = loaded[1]
                self.kept += 1
            else:
                data, source, img = loaded
                try:
                    pixels, mode, icc = transform(img, self.params)
                except Exception as exc:  # this file fails alone
                    self.errors[row] = ItemError(self.url(row), f"{type(exc).__name__}: {exc}")
                    continue
                n_pixels = img.pixels.shape[0] * img.pixels.shape[1]
                future = pool.submit(self.store, row, pixels, mode, icc)
                storing.append((row, (len(data), source, n_pixels), future))
        for row, loaded_, future in storing:
            self.stored(row, loaded_, future.result())

    def load(self, row: int) -> tuple[int, Any]:
        """Read, check and decode file ``row``: ``(None, digest)`` when it is kept, an
        ``ItemError``, or ``(data, digest, decoded)``."""
        url = self.url(row)
        try:
            with self.io.open_input(url) as fh:
                data = fh.read()
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            return row, ItemError(url, f"cannot read: {exc}")
        source = np.frombuffer(hashlib.sha256(data).digest(), dtype=np.uint8)
        target, previous = self.target(row), self.previous
        if previous is not None and _still_written(previous, row, source, target, self.io):
            return row, (None, source)
        try:
            return row, (data, source, decode_input(data))
        except Exception as exc:  # this file fails alone
            return row, ItemError(url, f"{type(exc).__name__}: {exc}")

    def store(self, row: int, pixels: np.ndarray, mode: str, icc: bytes | None) -> Any:
        """Encode and write file ``row``: its size and digest, or an ``ItemError`` (an encoding
        error fails the file alone; a write error is let through: the shard fails and reruns)."""
        params = self.params
        try:
            out = codec.encode(pixels, mode, params.format, params.quality, icc)
        except Exception as exc:
            return ItemError(self.url(row), f"{type(exc).__name__}: {exc}")
        self.io.write_file(self.target(row), out)
        return len(out), np.frombuffer(hashlib.sha256(out).digest(), dtype=np.uint8)

    def stored(self, row: int, loaded: tuple[int, np.ndarray, int], result: Any) -> None:
        """Fill in row ``row`` from what ``store`` returned (on the calling thread)."""
        if isinstance(result, ItemError):
            self.errors[row] = result
            return
        n_bytes, source, n_pixels = loaded
        sizes, digests, sources = self.rows
        sizes[row], digests[row] = result
        sources[row] = source
        self.counts["bytes_in"] += n_bytes
        self.counts["bytes_out"] += result[0]
        self.counts["pixels_in"] += n_pixels


def _previous_rows(io: ShardIO, start: int, stop: int) -> Rows | None:
    """The shard's rows as the store holds them (an earlier attempt's, or those of a shard
    reopened to retry its failed files), or ``None`` when no file in them was written (a fresh
    store: every row is the fill value). One read per array."""
    sizes = np.asarray(io.arrays[ARRAY_BYTES][start:stop], dtype=np.int64)
    if not np.any(sizes != FAILED):
        return None
    digests = np.asarray(io.arrays[ARRAY_SHA][start:stop], dtype=np.uint8)
    sources = np.asarray(io.arrays[ARRAY_INPUT_SHA][start:stop], dtype=np.uint8)
    return sizes, digests, sources


def _still_written(previous: Rows, row: int, source: np.ndarray, target: str, io: ShardIO) -> bool:
    """Whether row ``row`` of ``previous`` records an output that is still good: written, from
    an input with digest ``source`` (the input now), and the output file ``target`` still
    holds the recorded bytes (the user may have deleted or edited it)."""
    sizes, digests, sources = previous
    if sizes[row] == FAILED or not np.array_equal(sources[row], source):
        return False
    try:
        existing = io.read_file(target)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return False
    return len(existing) == sizes[row] and hashlib.sha256(existing).digest() == bytes(digests[row])


def decode_input(data: bytes) -> codec.Decoded:
    """Decode one input file's bytes (the first step of :func:`transcode_bytes`)."""
    return codec.decode(data)


def transform(img: codec.Decoded, params: Params) -> tuple[np.ndarray, str, bytes | None]:
    """Resize and convert a decoded image as ``params`` say: the pixels, their mode and the
    ICC profile to embed (kept unless the conversion crosses grey and colour)."""
    pixels, mode = img.pixels, img.mode
    height, width = pixels.shape[:2]
    out_w, out_h = output_size(width, height, params.max_edge, params.scale)
    if (out_w, out_h) != (width, height):
        alpha = mode in ("LA", "RGBA")
        pixels = resize(pixels, out_h, out_w, params.resample, alpha=alpha)
    target = params.mode or codec.default_mode(mode, params.format)
    out = codec.convert(pixels, mode, target)
    grey_in, grey_out = mode in ("L", "LA", "I;16"), target in ("L", "LA", "I;16")
    return out, target, img.icc_profile if grey_in == grey_out else None


_PRIMING: dict[str, threading.Thread] = {}
_PRIMING_LOCK = threading.Lock()


def _prime(resample: str) -> None:
    resize(np.zeros((4, 4, 3), np.uint8), 2, 2, resample)
    png.unfilter(np.zeros(4, np.uint8), 1, 3, 3, np.zeros((1, 3), np.uint8))


def _priming(resample: str) -> threading.Thread:
    """The thread, started once per process, that compiles the 8-bit resize kernels for
    ``resample`` and the PNG unfiltering (or loads them from Numba's cache): most of a fresh
    process's first second, spent while ``prepare`` reads the headers (``prime``) instead of in
    the first shard."""
    with _PRIMING_LOCK:
        thread = _PRIMING.get(resample)
        if thread is None:
            thread = threading.Thread(target=_prime, args=(resample,), name="tessera-prime")
            thread.daemon = True
            thread.start()
            _PRIMING[resample] = thread
        return thread


def transcode_bytes(data: bytes, params: Params) -> tuple[bytes, int]:
    """Transcode one file's bytes as ``params`` say: decode, resize, convert, encode (what
    ``compute`` does to each file, there in a pipeline over threads). Returns the encoded file
    and the input's pixel count. Raises ``OSError`` / ``ValueError`` for what cannot be
    decoded."""
    img = decode_input(data)
    pixels, mode, icc = transform(img, params)
    height, width = img.pixels.shape[:2]
    return codec.encode(pixels, mode, params.format, params.quality, icc), width * height


KERNEL = TranscodeKernel()
