"""Submit a job to AWS Batch: index files in the store, array jobs of pending shards, a reduce job.

A staged job (``Layout.stages``) gets one or more array jobs per stage, each stage's depending
on every array job of the stage before (through barrier jobs past 20), so Batch starts stage
k + 1's children only once stage k's have all succeeded.

Who writes ``result.json``: a reduce job (``tessera worker <job-url> --reduce``) that depends on
every array job of the submission, so Batch starts it only when all children succeeded; if a
shard fails, Batch fails the reduce job too and no result is written. Batch allows 20
dependencies per job, so with more than 20 array jobs (over 200,000 pending shards) the reduce
job waits on "barrier" jobs (``tessera --version``) that each wait on up to 20 array jobs.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tessera.engine.batch import contract as c
from tessera.engine.batch import index
from tessera.engine.batch.aws import call
from tessera.engine.batch.render import tags, timeout
from tessera.engine.batch.retry import retry_strategy
from tessera.engine.batch.validate import validate_request
from tessera.engine.errors import BatchError, SpecError, StoreError, StoreMismatchError
from tessera.engine.plan import pending, plan
from tessera.engine.spec import Job
from tessera.engine.store import Store


@dataclass(frozen=True)
class Dependency:
    """A job this submission waits for; ``n_to_n``: child i waits for the other's child i."""

    job_id: str
    n_to_n: bool = False

    @classmethod
    def parse(cls, text: str) -> Dependency:
        """``ID`` (wait for the whole job) or ``ID:N_TO_N``."""
        job_id, sep, kind = text.partition(":")
        if not job_id or (sep and kind.upper() != "N_TO_N"):
            raise SpecError("--depends-on", f"{text!r}: expected JOB_ID or JOB_ID:N_TO_N")
        return cls(job_id, bool(sep))


@dataclass
class Submission:
    """What a submission sends: the index files and the array (or single) job requests."""

    job: Job
    submission: str
    job_url: str
    n_shards: int
    pending: list[int]
    files: list[index.IndexFile]
    queue: str
    definition: str
    arrays: list[dict[str, Any]] = field(default_factory=list)
    # shareIdentifier / schedulingPriorityOverride of every request (``scheduling_fields``)
    scheduling: dict[str, Any] = field(default_factory=dict)


DEFAULT_SHARE = "tessera"  # the share of a job without [batch] share, on a fair-share queue


def is_fair_share(client: Any, queue: str) -> bool:
    """Whether ``queue`` has a scheduling policy (a fair-share queue): Batch then refuses a
    job without ``shareIdentifier``, and a FIFO queue refuses one with it."""
    queues = call(client, "DescribeJobQueues", {"jobQueues": [queue]}).get("jobQueues", [])
    return bool(queues and queues[0].get("schedulingPolicyArn"))


def scheduling_fields(job: Job, queue: str, fair_share: bool | None) -> dict[str, Any]:
    """The ``[batch]`` share and priority as SubmitJob fields, fitted to the queue: on a
    fair-share queue a job without a share gets ``DEFAULT_SHARE`` and priority 0; on a FIFO
    queue a share is refused (``BatchError``: Batch would refuse every request).
    ``fair_share=None`` (not known: a dry run) gives the job's own fields."""
    fields = job.batch.submit_fields()
    if fair_share is None:
        return fields
    if fair_share:
        fields.setdefault("shareIdentifier", DEFAULT_SHARE)
        fields.setdefault("schedulingPriorityOverride", 0)
        return fields
    if fields:
        named = [key for key in ("share", "priority") if getattr(job.batch, key) is not None]
        raise BatchError(
            f"[batch] {' and '.join(named)} set, but queue {queue} has no scheduling policy "
            f"(not a fair-share queue), and Batch "
            f"refuses shareIdentifier and schedulingPriorityOverride there; remove them or submit "
            f"to a fair-share queue"
        )
    return fields


@dataclass
class Submitted:
    """Job IDs returned by Batch, in submission order."""

    arrays: list[str] = field(default_factory=list)
    barriers: list[str] = field(default_factory=list)
    reduce: str | None = None

    @property
    def all(self) -> list[str]:
        return [*self.arrays, *self.barriers, *([self.reduce] if self.reduce else [])]


def new_submission_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique submission id: UTC time plus 6 random hex digits."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def open_pending(job: Job, create: bool) -> tuple[Store | None, list[int]]:
    """The job's store (created when ``create``) and its pending shards. Without ``create`` a
    store that does not exist yet means every shard is pending."""
    job_plan = plan(job)
    try:
        store = Store.open_for_job(job, job_plan, create=create)
    except StoreMismatchError:
        raise
    except StoreError:
        if create:
            raise
        return None, list(range(job_plan.n_shards))
    return store, pending(job_plan.n_shards, store.committed())


def dependency_entries(
    deps: Sequence[Dependency], array_sizes: Sequence[int], dep_sizes: Mapping[str, int | None]
) -> list[dict[str, str]]:
    """``dependsOn`` for each array job (pure). ``N_TO_N`` needs this submission to be one array
    job of the same size as the other array job (``dep_sizes``: its size, ``None`` if not an
    array). Raises ``BatchError`` otherwise, and for more than 20 dependencies."""
    if len(deps) > c.MAX_DEPENDS_ON:
        raise BatchError(f"{len(deps)} --depends-on jobs; Batch allows {c.MAX_DEPENDS_ON}")
    out = []
    for dep in deps:
        if not dep.n_to_n:
            out.append({"jobId": dep.job_id})
            continue
        theirs = dep_sizes.get(dep.job_id)
        ours = array_sizes[0] if len(array_sizes) == 1 else None
        if theirs is None or ours is None or theirs != ours:
            raise BatchError(
                f"--depends-on {dep.job_id}:N_TO_N needs two array jobs of equal size; that job "
                f"has {theirs or 'no array'} children, this submission has "
                f"{' + '.join(map(str, array_sizes)) or 'no'} array children"
            )
        out.append({"jobId": dep.job_id, "type": "N_TO_N"})
    return out


def _base(job: Job, s: Submission, name: str, index_file: str) -> dict[str, Any]:
    return {
        "jobName": c.batch_name(job.name, s.submission, name),
        "jobQueue": s.queue,
        "jobDefinition": s.definition,
        "parameters": {c.PARAM_JOB_URL: s.job_url, c.PARAM_INDEX_FILE: index_file},
        "retryStrategy": retry_strategy(job.retry_attempts),
        "timeout": timeout(job),
        "tags": tags(job, submission=s.submission, spec=job.spec_hash[:12]),
        "propagateTags": True,
        **s.scheduling,  # [batch] share and priority, fitted to the queue
    }


def array_requests(s: Submission, depends_on: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    """One SubmitJob request per index file (pure): an array job, or a single job when the file
    holds one shard (Batch arrays have at least two children)."""
    out = []
    for f in s.files:
        request = _base(s.job, s, str(f.array), c.index_name(f.array))
        if len(f.shards) >= c.MIN_ARRAY_SIZE:
            request["arrayProperties"] = {"size": len(f.shards)}
        if depends_on:
            request["dependsOn"] = [dict(d) for d in depends_on]
        out.append(request)
    return out


def reduce_request(s: Submission, after: Sequence[str]) -> dict[str, Any]:
    """The reduce job, started by Batch when the jobs ``after`` (at most 20) succeeded."""
    request = _base(s.job, s, "reduce", "none")
    request["containerOverrides"] = {"command": ["worker", s.job_url, "--reduce"]}
    if after:
        request["dependsOn"] = [{"jobId": i} for i in after]
    return request


def barrier_request(s: Submission, k: int, after: Sequence[str]) -> dict[str, Any]:
    """A job that does nothing (``tessera --version``) once the jobs ``after`` succeeded: how
    the reduce job waits on more than 20 array jobs."""
    request = _base(s.job, s, f"barrier-{k}", "none")
    request["containerOverrides"] = {"command": ["--version"]}
    request["dependsOn"] = [{"jobId": i} for i in after]
    return request


def fan_in(
    ids: Sequence[str], submit_barrier: Callable[[int, Sequence[str]], str]
) -> tuple[list[str], list[str]]:
    """Reduce ``ids`` to at most 20 by submitting barrier jobs over groups of 20 (repeatedly).
    Returns ``(ids to depend on, barrier ids)``."""
    barriers: list[str] = []
    level = list(ids)
    while len(level) > c.MAX_DEPENDS_ON:
        groups = [level[i : i + c.MAX_DEPENDS_ON] for i in range(0, len(level), c.MAX_DEPENDS_ON)]
        level = [submit_barrier(len(barriers) + k, g) for k, g in enumerate(groups)]
        barriers.extend(level)
    return level, barriers


def prepare(
    job: Job,
    *,
    queue: str,
    definition: str,
    submission: str | None = None,
    create: bool = True,
    shards: Sequence[int] | None = None,
) -> Submission:
    """Plan a submission of ``job``'s pending shards (or of ``shards``, when the caller already
    knows them): index files, not yet written. ``create=False`` (dry run) leaves the store
    untouched. The requests are built by ``finalize``."""
    if shards is None:
        _, todo = open_pending(job, create=create)
    else:
        todo = list(shards)
    sid = submission or new_submission_id()
    files = index.index_files(job, sid, todo)
    return Submission(
        job=job,
        submission=sid,
        job_url=c.job_url(job.store, sid),
        n_shards=job.n_shards,
        pending=todo,
        files=files,
        queue=queue,
        definition=definition,
    )


def finalize(
    s: Submission, depends_on: Sequence[Mapping[str, str]], *, fair_share: bool | None = None
) -> None:
    """Build and validate the array job requests of ``s`` (every one, before any is sent).
    ``fair_share``: whether the queue is a fair-share one (``is_fair_share``), when known."""
    s.scheduling = scheduling_fields(s.job, s.queue, fair_share)
    s.arrays = array_requests(s, depends_on)
    for request in s.arrays:
        validate_request("SubmitJob", request)
    validate_request("SubmitJob", reduce_request(s, ["x"] * min(len(s.arrays), c.MAX_DEPENDS_ON)))


def write_files(s: Submission) -> None:
    """Write ``job.json`` and the index files into the store (before any SubmitJob)."""
    job_plan = plan(s.job)
    store = Store.open_for_job(s.job, job_plan, create=True)
    index.write(store, s.job, s.submission, s.files)


def describe_sizes(client: Any, deps: Sequence[Dependency]) -> dict[str, int | None]:
    """Array sizes of the ``N_TO_N`` dependencies (``None`` for a job that is not an array)."""
    ids = [d.job_id for d in deps if d.n_to_n]
    if not ids:
        return {}
    jobs = call(client, "DescribeJobs", {"jobs": ids}).get("jobs", [])
    sizes: dict[str, int | None] = {i: None for i in ids}
    for j in jobs:
        size = j.get("arrayProperties", {}).get("size")
        sizes[j["jobId"]] = int(size) if size is not None else None
    return sizes


def send(client: Any, s: Submission, *, reduce: bool = True, **call_kw: Any) -> Submitted:
    """Submit the array jobs of ``s``, then the barrier and reduce jobs. On a refusal the
    ``BatchError`` names the jobs already submitted."""
    done = Submitted()

    def submit(request: Mapping[str, Any]) -> str:
        try:
            return str(call(client, "SubmitJob", request, **call_kw)["jobId"])
        except BatchError as exc:
            sent = ", ".join(done.all) or "none"
            raise BatchError(f"{exc} (already submitted: {sent})") from None

    def _barrier(k: int, after: Sequence[str]) -> str:
        done.barriers.append(submit(barrier_request(s, len(done.barriers), after)))
        return done.barriers[-1]

    stage_ids: dict[int, list[str]] = {}
    previous: list[str] = []
    for f, request in zip(s.files, s.arrays):
        if f.stage not in stage_ids:  # the first array job of a stage: wait for the last one
            previous = stage_ids[max(stage_ids)] if stage_ids else []
            stage_ids[f.stage] = []
            if previous:
                previous, _ = fan_in(previous, _barrier)
        if previous:
            request = {**request, "dependsOn": [{"jobId": i} for i in previous]}
            validate_request("SubmitJob", request)
        job_id = submit(request)
        done.arrays.append(job_id)
        stage_ids[f.stage].append(job_id)
    if reduce:
        after, _ = fan_in(done.arrays, _barrier)
        done.reduce = submit(reduce_request(s, after))
    return done
