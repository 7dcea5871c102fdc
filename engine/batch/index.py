"""Index files: which shard each array index of a submission runs.

Pending shards are cut into array jobs of at most 10,000 children, as evenly as possible (so no
array job has a single child: Batch arrays need two or more). Each array job ``k`` gets
``index-<k>.json``: ``{"version", "submission", "array", "spec_hash", "shards": [...]}``, where
``shards[i]`` is the shard that array index ``i`` runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tessera.engine import urls
from tessera.engine.batch import contract as c
from tessera.engine.errors import SpecError
from tessera.engine.io import Inputs
from tessera.engine.spec import STORE_SCHEMES, Job, from_dict, normalise_store_url, parse_text
from tessera.engine.store import Store


@dataclass(frozen=True)
class IndexFile:
    """Array index -> shard for one array job of a submission."""

    submission: str
    array: int
    spec_hash: str
    shards: tuple[int, ...]
    stage: int = 0  # the job's stage these shards belong to (Layout.stages); 0 without stages

    def to_json(self) -> str:
        """Canonical JSON text of the index file."""
        return json.dumps(
            {
                "version": c.INDEX_VERSION,
                "submission": self.submission,
                "array": self.array,
                "spec_hash": self.spec_hash,
                "shards": list(self.shards),
                **({"stage": self.stage} if self.stage else {}),
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    def shard_for(self, array_index: int) -> int:
        """The shard of ``array_index``. Raises ``IndexError`` naming the array's size."""
        if not 0 <= array_index < len(self.shards):
            raise IndexError(
                f"array index {array_index} is out of range: array job {self.array} of "
                f"submission {self.submission} has {len(self.shards)} children"
            )
        return self.shards[array_index]


def split(pending: Sequence[int], max_size: int = c.MAX_ARRAY_SIZE) -> list[list[int]]:
    """Cut ``pending`` into ceil(n / max_size) runs of near-equal length, in order (pure)."""
    n = len(pending)
    if n == 0:
        return []
    parts = -(-n // max_size)
    base, extra = divmod(n, parts)
    out, start = [], 0
    for k in range(parts):
        size = base + (1 if k < extra else 0)
        out.append(list(pending[start : start + size]))
        start += size
    return out


def index_files(job: Job, submission: str, pending: Sequence[int]) -> list[IndexFile]:
    """The index files of a submission of ``pending`` shards (pure): per stage of the job, in
    stage order, its pending shards cut by ``split``; array numbers run on across stages."""
    files: list[IndexFile] = []
    wanted = set(pending)
    ranges = job.layout.stage_ranges() if job.layout is not None else (("main", pending),)
    for stage, (_, shards) in enumerate(ranges):
        todo = [i for i in shards if i in wanted] if job.layout is not None else list(pending)
        for run in split(todo):
            files.append(IndexFile(submission, len(files), job.spec_hash, tuple(run), stage))
    return files


def write(store: Store, job: Job, submission: str, files: Sequence[IndexFile]) -> str:
    """Write ``job.json`` and the index files into the store; returns the job URL."""
    folder = c.submission_key(submission)
    store.write_json(f"{folder}/{c.JOB_FILE}", job.canonical_json())
    for f in files:
        store.write_json(f"{folder}/{c.index_name(f.array)}", f.to_json())
    return c.job_url(store.url, submission)


def _read(url: str) -> str:
    try:
        with Inputs().open_input(url) as fh:
            return fh.read().decode("utf-8")
    except FileNotFoundError:
        raise SpecError("", f"{url}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError("", f"{url}: cannot read: {exc}") from None


def load_job(url: str) -> Job:
    """Load the job spec a submission stored (a path, file:// or s3:// URL); see
    ``open_job``."""
    return open_job(url)[0]


def open_job(url: str) -> tuple[Job, Store]:
    """The job at ``url`` (a path, file:// or s3:// URL) and its store, for a worker: a Batch
    child, or ``tessera worker JOB``.

    A job the store holds planned already (a submission's ``job.json``, or any file with the
    stored job's kernel, params and shard request) is built from the plan stored in the store,
    without running the kernel's ``prepare`` or ``layout`` again: a transcode child lists no
    inputs, a pyramid child reads no header. Another job file is validated and planned as
    ``tessera run`` would; the store then refuses it if it is another job's. Raises
    ``SpecError`` for a job file that cannot be read or is invalid, ``StoreError`` when the
    job's store does not exist."""
    data = parse_text(_read(url), url)
    section = data.get("job")
    store_url = section.get("store") if isinstance(section, Mapping) else None
    if not isinstance(store_url, str) or urls.scheme(store_url) not in STORE_SCHEMES:
        job = from_dict(data, source=url)  # raises the SpecError naming job.store
        return job, Store.open_existing(job.store)
    store = Store.open_existing(normalise_store_url(store_url))
    stored = store.plan()
    if stored is not None and _planned_as(data, store.meta.get("job")):
        return from_dict(data, source=url, layout=stored.layout), store
    return from_dict(data, source=url), store


def _planned_as(data: Mapping[str, Any], stored: Any) -> bool:
    """True when the job ``data`` has the kernel, params and shard request of the stored job
    (so the stored plan is its plan)."""
    if not isinstance(stored, Mapping):
        return False
    mine, theirs = data.get("job"), stored.get("job")
    if not isinstance(mine, Mapping) or not isinstance(theirs, Mapping):
        return False
    keys = ("kernel", "shards", "shard_size")
    return data.get("params") == stored.get("params") and all(
        mine.get(k) == theirs.get(k) for k in keys
    )


def read_index(job_url: str, name: str) -> IndexFile:
    """Read the index file ``name`` next to ``job_url``. Raises ``SpecError`` when it is
    missing or malformed."""
    try:
        url = c.sibling(job_url, name)
    except ValueError as exc:
        raise SpecError("--index-file", str(exc)) from None
    try:
        data = json.loads(_read(url))
        return IndexFile(
            submission=str(data["submission"]),
            array=int(data["array"]),
            spec_hash=str(data["spec_hash"]),
            shards=tuple(int(s) for s in data["shards"]),
            stage=int(data.get("stage", 0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SpecError("--index-file", f"{url} is not a tessera index file: {exc}") from None
