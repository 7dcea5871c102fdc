"""What a store holds, read in one place for ``tessera.status`` and ``tessera status``."""

from __future__ import annotations

import os

from tessera.engine.errors import StoreError
from tessera.engine.outcome import StoreStatus
from tessera.engine.plan import pending
from tessera.engine.run import item_errors_of
from tessera.engine.spec import normalise_store_url
from tessera.engine.store import Store

JOB_SUFFIXES = (".toml", ".json")


def read_status(url: str) -> StoreStatus:
    """The status of the store at ``url``. Raises ``StoreError`` when there is none, saying so
    when ``url`` is a job file rather than a store."""
    if url.endswith(JOB_SUFFIXES) and os.path.isfile(url.removeprefix("file://")):
        raise StoreError(
            f"{url} is a job file, not a store; `tessera status` takes the job's store "
            f"(job.store), e.g. `tessera status runs/NAME`"
        )
    store = Store.open_existing(normalise_store_url(url))
    meta = store.meta
    n = store.n_shards
    done = store.committed()
    failed = store.failures()
    records = store.commit_records()
    job = meta["job"]["job"]
    return StoreStatus(
        store=store.url,
        job=str(job["name"]),
        kernel=str(job["kernel"]),
        spec_hash=str(meta["spec_hash"]),
        n_shards=n,
        committed=len(done),
        pending=[i for i in pending(n, done) if i not in failed],
        failed=failed,
        failed_inputs=item_errors_of(records),
        attempts=store.attempts(),
        result=store.read_json("result.json"),
        report=store.read_json("report.json"),
        job_spec=meta["job"],
    )
