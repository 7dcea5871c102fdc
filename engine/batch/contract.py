"""What the submitter, the container and ``tessera batch local`` agree on.

Exit codes of ``tessera worker`` (the retry strategy in ``render`` reads them from here):

- ``0``: the shard committed (or was already committed).
- ``1`` (``EXIT_SHARD_FAILED``): the kernel raised; deterministic, so never retried.
- ``2`` (``EXIT_USAGE``): the job file, index file or command line is wrong; never retried.
- ``75`` (``EXIT_RETRYABLE``, sysexits' EX_TEMPFAIL): stopped before the commit by SIGTERM (ECS
  stop, spot reclaim) or a store I/O error; the retry strategy reruns it.

A submission writes, under the job's store::

    <store>/_batch/<submission>/job.json        the canonical job spec the children load
    <store>/_batch/<submission>/index-<k>.json  array job k: array index -> shard (pending only)

The container command is ``tessera worker <job-url> --index-file index-<k>.json``, written in
the job definition with Batch parameter references (``Ref::job_url``, ``Ref::index_file``) that
each SubmitJob fills in. A child reads ``AWS_BATCH_JOB_ARRAY_INDEX`` (absent for a single job:
index 0) and looks its shard up in the index file: Batch has no array-size variable, and after a
resubmission the pending shards are no longer 0..n-1.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_SHARD_FAILED = 1
EXIT_USAGE = 2
EXIT_RETRYABLE = 75  # EX_TEMPFAIL from sysexits.h: "try again later"

# AWS Batch service limits (AWS Batch User Guide, "Service quotas" and the API reference).
MAX_ARRAY_SIZE = 10_000
MIN_ARRAY_SIZE = 2
MAX_DEPENDS_ON = 20
MAX_EVALUATE_ON_EXIT = 5
MIN_ATTEMPTS, MAX_ATTEMPTS = 1, 10
MIN_TIMEOUT_S = 60
MAX_TAGS = 50
SUBMIT_TPS = 50  # SubmitJob requests per second per account before TooManyRequestsException

# Batch parameters substituted into the container command (``Ref::<name>``).
PARAM_JOB_URL = "job_url"
PARAM_INDEX_FILE = "index_file"
WORKER_COMMAND = (
    "worker",
    f"Ref::{PARAM_JOB_URL}",
    "--index-file",
    f"Ref::{PARAM_INDEX_FILE}",
)
ENTRYPOINT = "tessera"  # the image's ENTRYPOINT; the command above is its arguments

# Environment variables that Batch sets in every container.
ENV_ARRAY_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"
ENV_ATTEMPT = "AWS_BATCH_JOB_ATTEMPT"
ENV_JOB_ID = "AWS_BATCH_JOB_ID"

BATCH_DIR = "_batch"
JOB_FILE = "job.json"
INDEX_VERSION = 1

_NAME_RE = re.compile(r"[^A-Za-z0-9_-]")


def submission_key(submission: str) -> str:
    """The folder of a submission inside the store, e.g. ``_batch/20250101T120000Z-1a2b3c``."""
    return f"{BATCH_DIR}/{submission}"


def index_name(array: int) -> str:
    """The index file of array job ``array`` (0, 1, ...) inside a submission folder."""
    return f"index-{array}.json"


def job_url(store_url: str, submission: str) -> str:
    """The URL of a submission's ``job.json``: what the container command receives."""
    return f"{store_url.rstrip('/')}/{submission_key(submission)}/{JOB_FILE}"


def sibling(url: str, name: str) -> str:
    """``name`` in the folder of ``url`` (the index file next to ``job.json``). ``name`` may not
    leave that folder."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"index file {name!r}: expected a file name like index-0.json")
    return f"{url.rsplit('/', 1)[0]}/{name}"


def batch_name(*parts: str) -> str:
    """A Batch job or job-definition name: up to 128 of A-Z a-z 0-9 _ -, starting with a letter
    or digit. Other characters become ``-``; the first part is shortened to fit."""
    tail = "-".join(_NAME_RE.sub("-", p) for p in parts[1:])
    room = 128 - len(tail) - (1 if tail else 0)
    head = _NAME_RE.sub("-", parts[0])[: max(room, 1)] if parts else "tessera"
    name = f"{head}-{tail}" if tail else head
    if not name[0].isalnum():
        name = "t" + name[:127]
    return name[:128]
