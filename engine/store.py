"""The checkpoint store: a Zarr v3 group on local disk or S3 (through s3fs).

Layout (DESIGN.md, "The store")::

    <store>/zarr.json              group; attrs["tessera"] = version, store format, job,
                                   spec hash, plan (the whole layout, planned once: Batch
                                   children read it instead of planning again), kernel
    <store>/<array>/...            output arrays, chunk-aligned to shards
    <store>/_shards/<i>.json       commit record of shard i, written only after its chunks
    <store>/_attempts/<i>/<n>.json a marker per attempt of shard i (attempt numbering, forensics)
    <store>/_failures/<i>.json     the last kernel error of shard i (removed when it commits)
    <store>/result.json            the answer (deterministic)
    <store>/report.json            how it was run (timings, hosts, throughput)

A shard is done exactly when its commit record exists.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fsspec
import numpy as np
import zarr
import zarr.storage

from tessera.engine import __version__, codecs, urls
from tessera.engine.config import storage_options
from tessera.engine.errors import StoreError, StoreFormatError, StoreMismatchError
from tessera.engine.io import naming, os_errors, write_bytes
from tessera.engine.plan import Plan
from tessera.engine.spec import Job, from_dict
from tessera.kernels import registry
from tessera.kernels.base import cut_at

log = logging.getLogger(__name__)

_ATTR = "tessera"

# The store's layout (the attributes, _shards/, _attempts/, _failures/, how chunks are cut).
# Bump it when a change would make another tessera misread a store: opening a store of another
# format is refused. Stores written before the number was recorded are format 1.
STORE_FORMAT = 1


class Store:
    """An opened checkpoint store. Create with ``open_for_job`` or ``open_existing``."""

    def __init__(self, url: str, group: zarr.Group, fs: fsspec.AbstractFileSystem, root: str):
        self.url = url
        self.group = group
        self.fs = fs
        self.root = root.rstrip("/")
        self._local = urls.is_local(url)
        self._arrays: dict[str, Any] = {}

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open_for_job(cls, job: Job, plan: Plan, create: bool = True) -> Store:
        """Open ``job``'s store, creating the group and arrays if it does not exist.

        ``create`` is for a driver about to run the job (``tessera run``, ``tessera batch
        submit``): opening an existing store then also reopens the shards that committed with
        item errors (``reopen_item_errors``), so that running a job again retries the inputs
        that failed (after the user fixed them in place). Workers open with ``create=False``
        and never reopen. Raises ``StoreMismatchError`` when the store holds a job with another
        spec hash, and ``StoreError`` when it does not exist and ``create`` is false.
        """
        url = job.store
        fs, root = _filesystem(url)
        meta = _read_meta(fs, root)
        if meta is None:
            if not create:
                raise StoreError(f"store {url} does not exist; run `tessera run` first")
            return cls._create(job, plan, fs, root)
        check_format(url, meta)
        store = cls(url, _open_group(url), fs, root)
        store.check_job(job)
        store.check_kernel(job)
        if create:
            store.reopen_item_errors()
        return store

    @classmethod
    def open_existing(cls, url: str) -> Store:
        """Open a store that already exists (for ``tessera status``, workers, reduce)."""
        fs, root = _filesystem(url)
        meta = _read_meta(fs, root)
        if meta is None:
            raise StoreError(f"{url} is not a tessera store (no zarr.json with tessera attributes)")
        check_format(url, meta)
        return cls(url, _open_group(url), fs, root)

    @classmethod
    def _create(cls, job: Job, plan: Plan, fs: fsspec.AbstractFileSystem, root: str) -> Store:
        attrs: dict[str, Any] = {
            _ATTR: {
                "version": __version__,
                "format": STORE_FORMAT,
                "job": job.to_dict(),
                "spec_hash": job.spec_hash,
                "hashed": job.hashed_part(),
                "plan": plan.to_dict(),
                "kernel": job.identity,
            }
        }
        check_empty(job.store, fs, root)
        try:  # before anything is created: a store is never left half made
            chosen = {spec.name: codecs.compressors(spec) for spec in plan.layout.arrays}
        except ValueError as exc:
            raise StoreError(
                f"store {job.store} cannot be created: kernel {job.kernel_name} asks for {exc}"
            ) from None
        if urls.is_local(job.store):
            try:
                os.makedirs(root, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"store {job.store} cannot be created: {exc.strerror or exc} "
                    f"({exc.filename or root}); choose a folder you can write (--store)"
                ) from None
        # "w-" creates and never clears: "w" would delete whatever is at the location
        group = zarr.open_group(
            _zarr_store(job.store, read_only=False), mode="w-", attributes=attrs, zarr_format=3
        )
        for group_spec in plan.layout.groups:
            group.create_group(group_spec.name, attributes=dict(group_spec.attributes))
        for spec in plan.layout.arrays:
            group.create_array(
                spec.name,
                shape=spec.shape,
                dtype=spec.dtype,
                chunks=spec.chunks,
                shards=spec.shards,
                compressors=chosen[spec.name],
                dimension_names=spec.dimension_names,
                attributes=dict(spec.attributes or {}),
                fill_value=spec.fill_value,
            )
        log.info("created store %s for job %s (spec %s)", job.store, job.name, job.spec_hash[:12])
        return cls(job.store, group, fs, root)

    # -- metadata --------------------------------------------------------------------------

    @property
    def meta(self) -> dict[str, Any]:
        """The tessera attributes: version, job, spec_hash, hashed, plan."""
        value = self.group.attrs.get(_ATTR)
        if not isinstance(value, dict):
            raise StoreError(f"{self.url}: zarr.json has no tessera attributes")
        return value

    @property
    def n_shards(self) -> int:
        return int(self.meta["plan"]["n_shards"])

    def plan(self) -> Plan | None:
        """The plan stored when the store was created (the kernel's whole layout), or ``None``
        for a store created before plans carried their layout. Raises ``StoreError`` for a
        stored plan that cannot be read."""
        try:
            return Plan.stored(self.meta["plan"])
        except (KeyError, ValueError) as exc:
            raise StoreError(f"{self.url}: zarr.json holds no usable plan: {exc}") from None

    def stored_job(self) -> Job:
        """The job that created this store, from its stored spec and plan: its params are the
        prepared ones, so nothing is listed or read again (for ``tessera status`` and reports).
        A store created before plans carried their layout is planned again. Raises
        ``SpecError`` when the stored spec no longer validates (e.g. its kernel is gone)."""
        stored = self.plan()
        layout = stored.layout if stored is not None else None
        return from_dict(self.meta["job"], source=self.url, layout=layout)

    def check_job(self, job: Job) -> None:
        """Refuse a job whose spec hash differs from the stored one (``StoreMismatchError``),
        naming what differs: at most ``SHOWN_ENTRIES`` keys, and for a list (a transcode's
        file list) at most ``SHOWN_ENTRIES`` of its entries, with counts ("params.files: 3 of
        1,204 entries changed (in /data/frames/): a.png (removed), ..."), never the lists."""
        meta = self.meta
        if meta["spec_hash"] == job.spec_hash:
            return
        stored = meta.get("hashed", {})
        mine = job.hashed_part()
        diffs = _diff(stored, mine)
        detail = "; ".join(diffs[:SHOWN_ENTRIES]) if diffs else "spec hashes differ"
        extra = len(diffs) - SHOWN_ENTRIES
        more = f" (and {extra:,} more)" if extra > 0 else ""
        advice = "To start fresh, delete the store or pass --store with a new location."
        old_params, new_params = stored.get("params", {}), mine.get("params", {})
        lists = [
            f"params.{key}"
            for key, value in sorted(old_params.items())
            if isinstance(value, list)
            and isinstance(new_params.get(key), list)
            and value != new_params[key]
        ]
        if [d.split(":", 1)[0] for d in diffs] == ["n_shards"]:
            advice = (
                f"To resume it, pass --shards {stored['n_shards']} (the stored count); for "
                f"{job.n_shards} shards pass --store with a new location."
            )
        elif lists:
            advice = (
                f"If {' and '.join(lists)} changed on purpose (inputs dropped or added), this is "
                f"a new job: run it into a new store, `tessera run JOB --store NEW_LOCATION` "
                f"(every item is computed again). To resume this store, restore "
                f"{'them' if len(lists) > 1 else 'it'}; a file fixed in place is no change, and "
                f"running the job again redoes only the items that failed."
            )
        raise StoreMismatchError(
            f"store {self.url} was made by a different job (spec {meta['spec_hash'][:12]}, "
            f"this job {job.spec_hash[:12]}): {detail}{more}. Resuming would mix results. "
            f"{advice}"
        )

    def check_kernel(self, job: Job) -> None:
        """Refuse to resume with another version of the kernel than the one that wrote the
        store (``StoreMismatchError`` naming both): two versions' shards must not mix."""
        stored = self.meta.get("kernel")
        if not isinstance(stored, dict):
            return  # written before kernel identities were recorded
        # what this process would import (the driver resolved where the kernel comes from)
        mine = registry.installed_here(job.provider).to_dict()
        if (stored.get("distribution"), stored.get("version")) == (
            mine["distribution"],
            mine["version"],
        ):
            return

        def who(ident: dict[str, Any]) -> str:
            dist = ident.get("distribution")
            if dist is None:
                return "a module that no installed distribution owns (no version)"
            return f"{dist} {ident.get('version') or '(no version)'}"

        dist = stored.get("distribution")
        pin = (
            f"pip install '{dist}=={stored.get('version')}'"
            if dist and stored.get("version")
            else ("restore the kernel that wrote it")
        )
        raise StoreMismatchError(
            f"store {self.url} was written by kernel {job.kernel_name} from {who(stored)}; this "
            f"environment has {who(mine)}. Shards of two versions must not mix: {pin} to "
            f"resume, or pass --store with a new location to start fresh"
        )

    # -- shards ----------------------------------------------------------------------------

    def write_shard(self, plan: Plan, shard: int, arrays: Mapping[str, np.ndarray]) -> int:
        """Write shard ``shard``'s rows of every output array; returns the bytes written."""
        region = plan.layout.region(shard)
        unknown = set(arrays) - set(region)
        if unknown:
            raise StoreError(
                f"shard {shard}: kernel returned arrays {sorted(unknown)} that the "
                f"layout does not cut into rows"
            )
        nbytes = 0
        for spec in plan.layout.arrays:
            if spec.name not in region:
                continue  # written by the kernel itself through ShardIO
            start, stop = region[spec.name]
            data = arrays.get(spec.name)
            if data is None:
                raise StoreError(f"shard {shard}: kernel returned no array {spec.name!r}")
            expected = (stop - start, *spec.shape[1:])
            if tuple(data.shape) != expected:
                raise StoreError(
                    f"shard {shard}: array {spec.name!r} has shape {tuple(data.shape)}, "
                    f"expected {expected}"
                )
            self.write_array(spec.name, (slice(start, stop),), data)
            nbytes += int(data.nbytes)
        return nbytes

    def write_array(self, name: str, selection: tuple[slice, ...], data: np.ndarray) -> None:
        """Write ``data`` into ``selection`` of the output array ``name``. A failed write raises
        an ``OSError`` naming the object it wrote (zarrs and a full disk's ``write()`` name
        none), or the file that stands where a folder of that object's path should be."""
        array = self.array(name)
        try:
            with os_errors():
                if self._local and array.shards is not None:  # zarrs: see _write_by_object
                    _write_by_object(array, selection, data)
                else:  # zarr-python's pipeline writes a call's chunks concurrently itself
                    array[selection] = data
        except OSError as exc:
            raise naming(exc, self._object_path(name, selection)) from exc

    def _object_path(self, name: str, selection: tuple[slice, ...]) -> str:
        """The path of the first object (chunk or Zarr shard) that writing ``selection`` of
        ``name`` touches; on disk, a file where one of its folders should be instead."""
        array = self.array(name)
        grid = array.metadata.chunk_grid.chunk_shape  # one stored object's shape
        starts = [s.start or 0 for s in selection] + [0] * (len(grid) - len(selection))
        key = array.metadata.encode_chunk_key(tuple(a // n for a, n in zip(starts, grid)))
        folder = self._path(name)
        for part in key.split("/")[:-1] if self._local else ():
            folder = f"{folder}/{part}"
            if os.path.lexists(folder) and not os.path.isdir(folder):
                return folder
        return self._path(f"{name}/{key}")

    def array(self, name: str) -> Any:
        """The output array ``name`` (opened once per store object), read and written by the
        zarrs codec pipeline (``codecs.zarrs_pipeline``). ``KeyError`` if there is none."""
        if name not in self._arrays:
            direct = self._local and codecs.direct_io(self.root)
            with codecs.zarrs_pipeline(direct):
                self._arrays[name] = self.group[name]
        return self._arrays[name]

    def commit(self, shard: int, record: Mapping[str, Any]) -> None:
        """Write the commit record of ``shard`` (after its data), and clear any failure."""
        self._write_text(f"_shards/{shard}.json", json.dumps(dict(record), sort_keys=True))
        self._delete(f"_failures/{shard}.json")

    def reopen_item_errors(self) -> list[int]:
        """Delete the commit records of the shards that committed with item errors (their
        record's ``errors``), so that they are pending again and the next run retries them;
        returns their indices. Only tessera's own records go: the shard's rows and the files
        it wrote stay, and a kernel that reads its rows back (``imaging.transcode``) redoes only
        the failed items. ``result.json`` is written again when the run completes."""
        reopened = sorted(i for i, r in self.commit_records().items() if r.get("errors"))
        for shard in reopened:
            self._delete(f"_shards/{shard}.json")
        if reopened:
            log.info(
                "store %s: %d shards committed with failed items; reopened to retry them: %s",
                self.url,
                len(reopened),
                ", ".join(map(str, reopened[:SHOWN_ENTRIES]))
                + (" ..." if len(reopened) > SHOWN_ENTRIES else ""),
            )
        return reopened

    def committed(self) -> set[int]:
        """Indices of committed shards (one listing, not one request per shard)."""
        return {int(name) for name in self._list_stems("_shards") if name.isdigit()}

    def commit_records(self) -> dict[int, dict[str, Any]]:
        """Every commit record, by shard index."""
        return self._read_many("_shards")

    def record_failure(self, shard: int, record: Mapping[str, Any]) -> None:
        """Remember that ``shard`` failed (kernel error), for ``tessera status``."""
        self._write_text(f"_failures/{shard}.json", json.dumps(dict(record), sort_keys=True))

    def failures(self) -> dict[int, dict[str, Any]]:
        """Failure records of shards that have not committed since, by shard index."""
        failed = self._read_many("_failures")
        done = self.committed()
        return {i: r for i, r in failed.items() if i not in done}

    def begin_attempt(self, shard: int, info: Mapping[str, Any]) -> int:
        """Record the start of an attempt of ``shard`` and return its number (1, 2, ...).

        The cost is in the number of attempts of this shard, not in the number of shards: on
        disk the marker is created exclusively (two racing attempts get distinct numbers), on
        S3 one listing of this shard's folder finds the next number."""
        text = json.dumps(dict(info), sort_keys=True).encode()
        if self._local:
            folder = self._path(f"_attempts/{shard}")
            os.makedirs(folder, exist_ok=True)
            attempt = 1
            while True:
                try:
                    fd = os.open(f"{folder}/{attempt}.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    attempt += 1
                    continue
                try:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(text)
                except OSError as exc:
                    raise naming(exc, f"{folder}/{attempt}.json") from exc
                return attempt
        numbers = [int(s) for s in self._list_stems(f"_attempts/{shard}") if s.isdigit()]
        attempt = max(numbers, default=0) + 1
        self.fs.pipe_file(self._path(f"_attempts/{shard}/{attempt}.json"), text)
        return attempt

    def attempts(self) -> dict[int, int]:
        """How many attempts each shard has started, by shard index."""
        counts: dict[int, int] = {}
        base = self._path("_attempts")
        if self._local:
            try:
                shards = os.listdir(base)
            except FileNotFoundError:
                return {}
            paths = [
                f"{shard}/{name}"
                for shard in shards
                if shard.isdigit()
                for name in os.listdir(f"{base}/{shard}")
            ]
        else:
            self.fs.invalidate_cache(base)
            try:
                paths = [p[len(base.rstrip("/")) + 1 :] for p in self.fs.find(base)]
            except FileNotFoundError:
                return {}
        for path in paths:
            shard, _, name = path.partition("/")
            number = name.removesuffix(".json")
            if shard.isdigit() and number.isdigit():
                counts[int(shard)] = max(counts.get(int(shard), 0), int(number))
        return counts

    def read_arrays(self) -> dict[str, Any]:
        """Every output array by name, lazily: Zarr arrays whose slices read (for ``reduce``)."""
        names = [a["name"] for a in self.meta["plan"]["arrays"]]
        return {name: self.array(name) for name in names}

    # -- result and report -----------------------------------------------------------------

    def write_json(self, name: str, text: str) -> None:
        """Write ``result.json`` or ``report.json`` (any top-level file) atomically."""
        self._write_text(name, text)

    def read_json(self, name: str) -> Any | None:
        """Read a top-level JSON file, or ``None`` if it does not exist."""
        text = self._read_text(name)
        return None if text is None else json.loads(text)

    # -- files -----------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _write_text(self, key: str, text: str) -> None:
        # A temporary name and a rename on disk, one PUT on S3: a reader never sees half a file.
        if self._local:
            write_bytes(self._path(key), text.encode())
        else:
            self.fs.pipe_file(self._path(key), text.encode())

    def _read_text(self, key: str) -> str | None:
        try:
            return bytes(self.fs.cat_file(self._path(key))).decode()
        except FileNotFoundError:
            return None

    def _delete(self, key: str) -> None:
        path = self._path(key)
        if self._local:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        elif self.fs.exists(path):
            self.fs.rm_file(path)

    def _list_stems(self, folder: str) -> list[str]:
        path = self._path(folder)
        if self._local:
            try:
                names = os.listdir(path)
            except FileNotFoundError:
                return []
        else:
            self.fs.invalidate_cache(path)  # other processes write here; never trust a cache
            try:
                names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(path, detail=False)]
            except FileNotFoundError:
                return []
        return [n[: -len(".json")] for n in names if n.endswith(".json") and not n.startswith(".")]

    def _read_many(self, folder: str) -> dict[int, dict[str, Any]]:
        stems = [s for s in self._list_stems(folder) if s.isdigit()]
        paths = [self._path(f"{folder}/{s}.json") for s in stems]
        if not paths:
            return {}
        if self._local:
            texts = {}
            for path in paths:
                with open(path, "rb") as fh:
                    texts[path] = fh.read()
        else:
            texts = self.fs.cat(paths, on_error="omit")  # concurrent GETs
        return {
            int(stem): json.loads(texts[path]) for stem, path in zip(stems, paths) if path in texts
        }


# How many entries a refusal names (files in a non-empty folder, keys or list entries that differ
# from the stored job); the rest are counted.
SHOWN_ENTRIES = 5


def check_empty(url: str, fs: fsspec.AbstractFileSystem, root: str) -> None:
    """Refuse to create a store where something already is: tessera creates a store only at a
    new or empty folder or prefix, because it must never delete or overwrite what it did not
    write. Raises ``StoreError`` naming the first entries and how many there are."""
    if urls.is_local(url):
        if os.path.lexists(root) and not os.path.isdir(root):
            raise StoreError(f"store {url} is a file, not a folder; choose another store")
        try:
            names = sorted(os.listdir(root))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"store {url} cannot be listed: {exc}") from None
    else:
        fs.invalidate_cache(root)
        try:
            paths = fs.ls(root, detail=False)
        except FileNotFoundError:
            return
        if [p.rstrip("/") for p in paths] == [root]:
            raise StoreError(f"store {url} is an object, not a prefix; choose another store")
        names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in paths)
    if not names:
        return
    shown = ", ".join(names[:SHOWN_ENTRIES])
    more = f" and {len(names) - SHOWN_ENTRIES:,} more" if len(names) > SHOWN_ENTRIES else ""
    entries = "1 entry" if len(names) == 1 else f"{len(names):,} entries"
    raise StoreError(
        f"store {url} is not empty and is not a tessera store: it holds {entries} ({shown}"
        f"{more}). tessera creates a store only in a new or empty folder or prefix and never "
        f"deletes what it did not write; pass --store with a new location"
    )


def _filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    if urls.is_local(url):
        return fsspec.filesystem("file"), urls.local_path(url)
    fs, root = fsspec.core.url_to_fs(url, **storage_options(url))
    return fs, str(root)


def _zarr_store(url: str, read_only: bool) -> zarr.storage.StoreLike:
    if urls.is_local(url):
        return zarr.storage.LocalStore(urls.local_path(url), read_only=read_only)
    return zarr.storage.FsspecStore.from_url(
        url, storage_options=storage_options(url), read_only=read_only
    )


def _open_group(url: str) -> zarr.Group:
    try:
        return zarr.open_group(_zarr_store(url, read_only=False), mode="r+", zarr_format=3)
    except (FileNotFoundError, ValueError) as exc:
        raise StoreError(f"{url}: cannot open the Zarr group: {exc}") from None


def _read_meta(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, Any] | None:
    try:
        text = fs.cat_file(f"{root}/zarr.json")
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise StoreError(f"store {root} is a file, not a folder; choose another store") from None
    except OSError as exc:
        raise StoreError(f"{root}: cannot read zarr.json: {exc}") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(f"{root}/zarr.json is not valid JSON: {exc}") from None
    attrs = meta.get("attributes", {}) if isinstance(meta, dict) else {}
    value = attrs.get(_ATTR)
    if not isinstance(value, dict):
        raise StoreError(
            f"{root} holds a Zarr group that tessera did not create; choose another store"
        )
    return value


def check_format(url: str, meta: dict[str, Any]) -> None:
    """Refuse a store whose format is not ``STORE_FORMAT``, saying what to do. Raises
    ``StoreFormatError``."""
    stored = meta.get("format", 1)
    if stored == STORE_FORMAT and not isinstance(stored, bool):
        return
    by = f"tessera {meta.get('version', '(unknown version)')}"
    if isinstance(stored, int) and not isinstance(stored, bool) and stored > STORE_FORMAT:
        advice = (
            "upgrade tessera (pip install -U tessera) to resume or inspect it, or pass --store "
            "with a new location to start fresh"
        )
    else:
        advice = (
            f"finish it with {by}, or delete it or pass --store with a new location to start "
            f"fresh (every shard is then computed again)"
        )
    raise StoreFormatError(
        f"store {url} is in store format {stored!r} (written by {by}); tessera {__version__} "
        f"reads only format {STORE_FORMAT}: {advice}"
    )


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """One line per dotted key whose value differs between two JSON-like values (pure). Lists
    are compared entry by entry (``_list_diff``) and long values are summarised (``_short``):
    a line stays short whatever the size of the job."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{name}: not stored, this job {_short(new[key])}")
            elif key not in new:
                out.append(f"{name}: stored {_short(old[key])}, not in this job")
            else:
                out.extend(_diff(old[key], new[key], name))
        return out
    if old == new:
        return []
    if isinstance(old, list) and isinstance(new, list):
        return [_list_diff(prefix, old, new)]
    return [f"{prefix}: stored {_short(old)}, this job {_short(new)}"]


# The longest value a mismatch message quotes whole.
SHORT_VALUE = 60


def _short(value: Any) -> str:
    """``repr(value)``, or a summary of it when that is longer than ``SHORT_VALUE``."""
    text = repr(value)
    if len(text) <= SHORT_VALUE:
        return text
    if isinstance(value, list):
        return f"a list of {len(value):,} entries"
    if isinstance(value, dict):
        return f"a table of {len(value):,} keys"
    return text[: SHORT_VALUE - 3] + "..."


def _list_diff(name: str, old: list[Any], new: list[Any]) -> str:
    """What changed between two lists, in one line naming at most ``SHOWN_ENTRIES`` entries
    (pure). Lists of strings or numbers are compared as sets: ``params.files: 3 of 1,204
    entries changed (in /data/frames/): a.png (removed), b.png (added), ...``, the folder
    common to the entries named once. Other lists of one length are compared by position."""
    scalars = (str, int, float, bool, type(None))
    if all(isinstance(v, scalars) for v in (*old, *new)):
        before, after = set(old), set(new)
        changes = sorted(
            [(str(v), "removed") for v in before - after]
            + [(str(v), "added") for v in after - before]
        )
        if not changes:
            return f"{name}: the same {len(before):,} entries, in another order or repeated"
        folder = _common_folder([str(v) for v in before | after])
        shown = ", ".join(f"{v[len(folder) :]} ({how})" for v, how in changes[:SHOWN_ENTRIES])
        extra = len(changes) - SHOWN_ENTRIES
        more = f", ... and {extra:,} more" if extra > 0 else ""
        where = f" (in {folder})" if folder else ""
        return (
            f"{name}: {len(changes):,} of {len(before | after):,} entries changed{where}: "
            f"{shown}{more}"
        )
    if len(old) != len(new):
        return f"{name}: stored {len(old):,} entries, this job {len(new):,}"
    differ = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
    shown = ", ".join(
        f"[{i}] stored {_short(old[i])}, this job {_short(new[i])}" for i in differ[:SHOWN_ENTRIES]
    )
    extra = len(differ) - SHOWN_ENTRIES
    more = f", ... and {extra:,} more" if extra > 0 else ""
    return f"{name}: {len(differ):,} of {len(old):,} entries differ: {shown}{more}"


def _common_folder(values: list[str]) -> str:
    """The longest folder (ending in ``/``) that every one of ``values`` lies in, or ``""``
    when they do not all lie in one (pure)."""
    if len(values) < 2:
        return ""
    prefix = os.path.commonprefix(values)
    return prefix[: prefix.rfind("/") + 1] if "/" in prefix else ""


# Stored objects written at once by one write_array call: this process's CPUs (a Dask worker
# or a Batch child sees its own).
_WRITE_THREADS = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _write_by_object(array: Any, selection: tuple[slice, ...], data: np.ndarray) -> None:
    """``array[selection] = data``, one stored object (Zarr shard) a call, ``_WRITE_THREADS``
    calls at once. The zarrs pipeline encodes a call's objects on one
    thread (``codecs.ZARRS_CONFIG``: the same bytes every time), so a write that spans several
    objects gets every core and still the bytes of a single call.

    Each piece is made contiguous in its own thread first: zarrs copies a strided piece itself,
    but on zarr's one event-loop thread, where every piece's copy would wait for the others'."""
    pieces, selected = _by_object(array, selection)
    if len(pieces) == 1 or np.shape(data) != selected:  # one object, or data to broadcast
        array[selection] = data
        return

    def write(at: tuple[slice, ...], part: Any) -> None:
        array[at] = np.ascontiguousarray(data[part])

    with ThreadPoolExecutor(min(len(pieces), _WRITE_THREADS)) as pool:
        for future in [pool.submit(write, at, part) for at, part in pieces]:
            future.result()


def _by_object(
    array: Any, selection: tuple[slice, ...]
) -> tuple[list[tuple[tuple[slice, ...], Any]], tuple[int, ...] | None]:
    """``selection`` of ``array`` cut at its stored objects' edges: (each piece's selection in
    the array, its slices of the data), and the selection's shape; the whole selection alone
    when it lies in one object or selects nothing (shape ``None`` when it has steps)."""
    grid = array.metadata.chunk_grid.chunk_shape
    axes = []
    for axis, size in enumerate(array.shape):
        sl = selection[axis] if axis < len(selection) else slice(None)
        start, stop, step = sl.indices(size)
        if step != 1:
            return [(selection, slice(None))], None
        axes.append(cut_at(start, stop, grid[axis]))
    selected = tuple(sum(b - a for a, b in pieces) for pieces in axes)
    if all(len(a) == 1 for a in axes) or not all(axes):  # one object, or nothing selected
        return [(selection, slice(None))], selected
    origin = [a[0][0] for a in axes]
    pieces = []
    for combo in itertools.product(*axes):
        at = tuple(slice(a, b) for a, b in combo)
        part = tuple(slice(a - o, b - o) for (a, b), o in zip(combo, origin))
        pieces.append((at, part))
    return pieces, selected
