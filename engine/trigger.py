"""Start jobs from S3 uploads: the AWS Lambda handler ``tessera.engine.trigger.handler``.

An S3 event (a notification's ``Records[]``, or an EventBridge "Object Created" event) names
new objects. For each one the handler

1. decides what it is: a job file under ``TESSERA_TRIGGER_JOBS`` (``.toml`` or ``.json``), or an
   input matching ``TESSERA_TRIGGER_PATTERN`` that becomes a job made from the template job file
   ``TESSERA_TRIGGER_TEMPLATE`` (the object's URL in ``params.<TESSERA_TRIGGER_PARAM>``, the
   store from ``TESSERA_TRIGGER_STORE``); anything else is ignored;
   ``TESSERA_TRIGGER_SHARE`` says the queue is a fair-share one: the submit job then runs in
   the job's ``[batch]`` share, or in this one (a FIFO queue takes no share);
2. checks the job with ``spec.check``: every key, with the messages of ``tessera validate``,
   without importing a kernel's compiled code. A bad job is logged as one JSON line naming the
   bucket, the key and the reason, and is not retried: nothing is submitted for it;
3. claims the object version with a conditional write (``If-None-Match: *``) of a claim object
   under ``TESSERA_TRIGGER_CLAIMS``, keyed by bucket, key and version id (or ETag). S3 delivers
   events at least once; a redelivered event finds the claim and submits nothing;
4. writes the job it checked next to the claim (``<claim>.job.toml`` or ``.job.json``: the exact
   text, so a later upload of the same key cannot change what runs) and submits one small
   Batch job to ``TESSERA_TRIGGER_QUEUE`` with the definition
   ``TESSERA_TRIGGER_SUBMIT_DEFINITION``: the tessera image running ``tessera batch submit
   <snapshot> --queue Q --definition D``, which plans the job, creates its store and submits its
   array jobs and the reduce job (``TESSERA_TRIGGER_DEFINITION``, the worker definition). The
   Lambda stays light (no NumPy, Numba, Dask, Zarr or Pillow: see ``make lambda-zip``), and
   planning, which may read an image's header or list 100,000 files, runs in Batch;
5. marks the claim ``submitted`` with the Batch job id.

A crash between the claim and the submission: the claim says ``claimed`` with the time and the
Lambda request id. The same invocation retried by Lambda (same request id) takes its claim over
at once; another delivery takes it over once it is older than ``TESSERA_TRIGGER_LEASE_S``
(default 300 s) and until then fails, so Lambda retries it later (and after its retries, it
lands in the dead-letter queue, from where a redrive submits it). Taking over is a conditional
write too (``If-Match`` on the claim's ETag), so one taker wins, and it first looks for a
submit job of the claim's deterministic name (``ListJobs``): a crash after ``SubmitJob`` but
before the claim was marked does not submit twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tessera.engine import spec, urls
from tessera.engine.errors import SpecError, TesseraError

JOB_SUFFIXES = (".toml", ".json")
DEFAULT_LEASE_S = 300.0


class ConfigError(TesseraError):
    """A missing or bad ``TESSERA_TRIGGER_*`` variable: the function is misconfigured."""


class ClaimBusy(TesseraError):
    """Another invocation holds a fresh claim on an object: raised (after every other object of
    the event is done) so that Lambda retries the event later."""


@dataclass(frozen=True)
class Config:
    """The handler's settings, from ``TESSERA_TRIGGER_*`` variables (see ``from_env``)."""

    queue: str
    submit_definition: str
    definition: str
    claims: str  # s3://bucket/prefix
    jobs: str | None = None  # key prefix of job files
    pattern: str | None = None  # key glob of inputs
    template: str | None = None  # s3:// URL of the template job file
    param: str | None = None  # the param that gets the input's URL
    store: str | None = None  # store template: {bucket} {key} {stem} {name} {parent}
    lease_s: float = DEFAULT_LEASE_S
    share: str | None = None  # the submit job's share on a fair-share queue, without [batch]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read the variables. Raises ``ConfigError`` naming each one that is missing or bad."""
        env = os.environ if env is None else env

        def var(name: str) -> str | None:
            value = env.get(f"TESSERA_TRIGGER_{name}", "").strip()
            return value or None

        missing = [
            f"TESSERA_TRIGGER_{n}"
            for n in ("QUEUE", "SUBMIT_DEFINITION", "DEFINITION", "CLAIMS")
            if var(n) is None
        ]
        template_vars = {n: var(n) for n in ("PATTERN", "TEMPLATE", "PARAM", "STORE")}
        given = [n for n, v in template_vars.items() if v is not None]
        if given and len(given) < len(template_vars):
            missing += [f"TESSERA_TRIGGER_{n}" for n, v in template_vars.items() if v is None]
        if missing:
            raise ConfigError(f"the trigger needs {', '.join(missing)}")
        if var("JOBS") is None and not given:
            raise ConfigError(
                "the trigger needs TESSERA_TRIGGER_JOBS (a key prefix of job files) or "
                "TESSERA_TRIGGER_PATTERN, _TEMPLATE, _PARAM and _STORE (inputs against a template)"
            )
        claims = str(var("CLAIMS"))
        for name, url in (("CLAIMS", claims), ("TEMPLATE", template_vars["TEMPLATE"])):
            if url is not None and (urls.scheme(url) != "s3" or not _split(url)[0]):
                raise ConfigError(f"TESSERA_TRIGGER_{name}={url!r}: expected s3://bucket/prefix")
        lease_text = var("LEASE_S") or str(DEFAULT_LEASE_S)
        try:
            lease = float(lease_text)
        except ValueError:
            raise ConfigError(f"TESSERA_TRIGGER_LEASE_S={lease_text!r} is not a number") from None
        if lease < 0:
            raise ConfigError(f"TESSERA_TRIGGER_LEASE_S={lease_text} must be >= 0")
        return cls(
            queue=str(var("QUEUE")),
            submit_definition=str(var("SUBMIT_DEFINITION")),
            definition=str(var("DEFINITION")),
            claims=claims.rstrip("/"),
            jobs=var("JOBS"),
            pattern=template_vars["PATTERN"],
            template=template_vars["TEMPLATE"],
            param=template_vars["PARAM"],
            store=template_vars["STORE"],
            lease_s=lease,
            share=var("SHARE"),
        )


@dataclass(frozen=True)
class S3Object:
    """One new object named by an event."""

    bucket: str
    key: str
    etag: str | None = None
    version: str | None = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def identity(self) -> str:
        """What one submission is per: the key and its version id (or, unversioned, ETag)."""
        return (
            f"{self.bucket}\0{self.key}\0{self.version or ''}\0{(self.etag or '').strip(chr(34))}"
        )

    def log_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"bucket": self.bucket, "key": self.key}
        if self.version:
            fields["version"] = self.version
        if self.etag:
            fields["etag"] = self.etag.strip('"')
        return fields


def objects(event: Mapping[str, Any]) -> list[S3Object]:
    """The created objects an event names: every ``ObjectCreated:*`` record of an S3
    notification (keys URL-decoded, as S3 encodes them: ``red+flower.jpg``), or the object of an
    EventBridge "Object Created" event (whose key is not encoded). Other records are skipped;
    an event of neither shape gives ``[]`` (and a log line)."""
    if isinstance(event.get("Records"), list):
        found = []
        for record in event["Records"]:
            s3 = record.get("s3") if isinstance(record, Mapping) else None
            name = str(record.get("eventName", "")) if isinstance(record, Mapping) else ""
            if not isinstance(s3, Mapping) or not name.startswith("ObjectCreated"):
                log("trigger_ignored", reason=f"not an ObjectCreated S3 record: {name or '?'}")
                continue
            obj = s3.get("object", {})
            found.append(
                S3Object(
                    bucket=str(s3.get("bucket", {}).get("name", "")),
                    key=urllib.parse.unquote_plus(str(obj.get("key", ""))),
                    etag=obj.get("eTag"),
                    version=obj.get("versionId") or None,
                )
            )
        return found
    if event.get("detail-type") == "Object Created" and event.get("source") == "aws.s3":
        detail = event.get("detail", {})
        obj = detail.get("object", {})
        return [
            S3Object(
                bucket=str(detail.get("bucket", {}).get("name", "")),
                key=str(obj.get("key", "")),
                etag=obj.get("etag"),
                version=obj.get("version-id") or None,
            )
        ]
    log("trigger_ignored", reason="not an S3 notification nor an EventBridge Object Created event")
    return []


def key_matches(pattern: str, key: str) -> bool:
    """Glob match of a key: ``*`` and ``?`` stay within one folder, ``**`` crosses folders."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.fullmatch("".join(out), key) is not None


def store_for(template: str, obj: S3Object) -> str:
    """The store of an input's job: ``template`` with ``{bucket}``, ``{key}``, ``{parent}``
    (the key's folder), ``{name}`` (its file name) and ``{stem}`` (the name without its last
    suffix) filled in."""
    parent, _, name = obj.key.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    try:
        return template.format(bucket=obj.bucket, key=obj.key, parent=parent, name=name, stem=stem)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"TESSERA_TRIGGER_STORE={template!r}: {exc}; it may use {{bucket}} {{key}} "
            f"{{parent}} {{name}} {{stem}}"
        ) from None


class Rejected(Exception):
    """An object whose job is bad: logged, never retried, nothing submitted."""


@dataclass
class Prepared:
    """A checked job ready to claim and submit: its text, its checked keys and where it came
    from."""

    obj: S3Object
    checked: spec.Checked
    text: str
    suffix: str  # of the snapshot: ".toml" or ".json"


def prepare(cfg: Config, obj: S3Object, s3: Any, template: Callable[[], str]) -> Prepared | None:
    """Read and check the job an object stands for; ``None`` for an object the trigger does not
    handle. Raises ``Rejected`` with the reason for a bad one."""
    claims_bucket, claims_prefix = _split(cfg.claims)
    if obj.bucket == claims_bucket and _under(obj.key, claims_prefix):
        return None  # the trigger's own claims and snapshots
    if cfg.jobs is not None and _under(obj.key, cfg.jobs) and obj.key.endswith(JOB_SUFFIXES):
        text = _read_job_text(s3, obj)
        source = obj.url
        data = _parse(text, source)
        suffix = ".json" if text.lstrip().startswith("{") else ".toml"
    elif cfg.pattern is not None and key_matches(cfg.pattern, obj.key):
        source = f"{cfg.template} for {obj.url}"
        data = _parse(template(), str(cfg.template))
        params = data.setdefault("params", {})
        job = data.setdefault("job", {})
        if not isinstance(params, dict) or not isinstance(job, dict):
            raise Rejected(f"{cfg.template}: [job] and [params] must be tables")
        params[str(cfg.param)] = obj.url
        job["store"] = store_for(str(cfg.store), obj)
        if "name" in job:
            stem = re.sub(r"[^A-Za-z0-9_-]+", "-", obj.key.rsplit("/", 1)[-1].rsplit(".", 1)[0])
            job["name"] = f"{job['name']}-{stem}".strip("-")[:128]
        text = json.dumps(data, indent=2, sort_keys=True)
        suffix = ".json"
    else:
        return None
    try:
        checked = spec.check(data, source=source)
    except SpecError as exc:
        raise Rejected(str(exc)) from None
    if urls.scheme(checked.store) != "s3":
        raise Rejected(
            f"job.store {checked.store!r}: a job started from S3 runs in AWS Batch, so its store "
            f"must be s3://bucket/prefix"
        )
    if urls.overlaps(checked.store, obj.url):
        raise Rejected(
            f"job.store {checked.store} would hold the object {obj.url} that started it; a store "
            f"holds only what tessera writes"
        )
    if cfg.jobs is not None and urls.overlaps(checked.store, f"s3://{obj.bucket}/{cfg.jobs}"):
        raise Rejected(
            f"job.store {checked.store} lies under the trigger prefix s3://{obj.bucket}/"
            f"{cfg.jobs}: every file the job writes there would start another job"
        )
    return Prepared(obj=obj, checked=checked, text=text, suffix=suffix)


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        return spec.parse_text(text, source)
    except SpecError as exc:
        raise Rejected(str(exc)) from None


def _read_job_text(s3: Any, obj: S3Object) -> str:
    """The job file's text, of exactly the version the event names."""
    from botocore.exceptions import ClientError

    kwargs: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
    if obj.version:
        kwargs["VersionId"] = obj.version
    elif obj.etag:
        kwargs["IfMatch"] = obj.etag.strip('"')
    try:
        body = s3.get_object(**kwargs)["Body"].read()
    except ClientError as exc:
        code = _code(exc)
        if code in ("NoSuchKey", "NoSuchVersion", "PreconditionFailed", "412", "404"):
            raise Rejected(f"{obj.url}: the job file is gone or was replaced ({code})") from None
        raise
    if len(body) > 1 << 20:
        raise Rejected(f"{obj.url}: {len(body):,} bytes; a job file is at most 1 MiB")
    try:
        return str(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise Rejected(f"{obj.url}: not UTF-8 text: {exc}") from None


# --- claims


@dataclass
class Claim:
    """A claim object: where it is and its ETag (for ``If-Match`` updates)."""

    bucket: str
    key: str
    etag: str
    taken_over: bool = False  # an earlier try held it: it may have submitted before it died


def claim_key(cfg: Config, obj: S3Object) -> tuple[str, str]:
    """Bucket and key of an object version's claim (a SHA-256 of bucket, key and version)."""
    bucket, prefix = _split(cfg.claims)
    digest = hashlib.sha256(obj.identity.encode()).hexdigest()[:32]
    return bucket, f"{prefix}/{digest}.json" if prefix else f"{digest}.json"


def submit_job_name(p: Prepared, claim: str) -> str:
    """The submit job's name: the job's name and the claim's digest, so that a taker of a stale
    claim can find a job submitted just before a crash."""
    digest = claim.rsplit("/", 1)[-1].removesuffix(".json")[:12]
    return f"{p.checked.name[:100]}-trigger-{digest}"


def _claim_body(obj: S3Object, state: str, request_id: str, now: float, **extra: Any) -> bytes:
    body = {
        "state": state,
        "source": obj.log_fields(),
        "request_id": request_id,
        "claimed_at": now,
        **extra,
    }
    return json.dumps(body, sort_keys=True).encode()


def take_claim(
    cfg: Config, s3: Any, obj: S3Object, request_id: str, now: float
) -> tuple[Claim | None, dict[str, Any] | None]:
    """Claim ``obj``'s version. Returns ``(claim, None)`` when this invocation holds it (new,
    its own earlier try, or a stale one taken over), ``(None, record)`` when it was submitted
    already (``record`` is the claim's content). Raises ``ClaimBusy`` while another invocation
    holds a fresh claim."""
    bucket, key = claim_key(cfg, obj)
    body = _claim_body(obj, "claimed", request_id, now)
    try:
        etag = s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")["ETag"]
        return Claim(bucket, key, etag), None
    except Exception as exc:
        if _code(exc) not in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
            raise
    got = s3.get_object(Bucket=bucket, Key=key)
    record = json.loads(got["Body"].read())
    if record.get("state") == "submitted":
        return None, record
    age = now - float(record.get("claimed_at", 0.0))
    mine = record.get("request_id") == request_id
    if not mine and age < cfg.lease_s:
        raise ClaimBusy(
            f"{obj.url} is claimed by request {record.get('request_id')} {age:.0f} s ago "
            f"(lease {cfg.lease_s:.0f} s); retry later"
        )
    taken = _claim_body(
        obj,
        "claimed",
        request_id,
        now,
        taken_over=record.get("request_id"),
        attempt=1 + int(record.get("attempt", 1)),
    )
    try:
        etag = s3.put_object(Bucket=bucket, Key=key, Body=taken, IfMatch=got["ETag"])["ETag"]
    except Exception as exc:
        if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
            raise ClaimBusy(f"{obj.url}: another invocation took the claim over first") from None
        raise
    return Claim(bucket, key, etag, taken_over=True), None


def mark_submitted(
    s3: Any, claim: Claim, obj: S3Object, request_id: str, job_id: str, now: float
) -> None:
    """Record the submission in the claim (``If-Match``: only the holder writes it)."""
    body = _claim_body(obj, "submitted", request_id, now, batch_job_id=job_id)
    s3.put_object(Bucket=claim.bucket, Key=claim.key, Body=body, IfMatch=claim.etag)


# --- submission


def submit_request(cfg: Config, p: Prepared, job_url: str, name: str) -> dict[str, Any]:
    """The ``SubmitJob`` request of the submit job (pure)."""
    queue = p.checked.batch.queue or cfg.queue
    request: dict[str, Any] = {
        "jobName": name,
        "jobQueue": cfg.queue,
        "jobDefinition": cfg.submit_definition,
        "containerOverrides": {
            "command": [
                "batch",
                "submit",
                job_url,
                "--queue",
                queue,
                "--definition",
                cfg.definition,
            ]
        },
        "tags": {"tessera": "trigger", "tessera-job": p.checked.name},
        "propagateTags": True,
    }
    if cfg.share is not None:  # a fair-share queue: every job needs a share and a priority
        request["shareIdentifier"] = p.checked.batch.share or cfg.share
        request["schedulingPriorityOverride"] = p.checked.batch.priority or 0
    return request


def find_submitted(batch: Any, cfg: Config, name: str) -> str | None:
    """The id of a job named ``name`` already in the queue (any state), if any."""
    from tessera.engine.batch.aws import call

    params = {"jobQueue": cfg.queue, "filters": [{"name": "JOB_NAME", "values": [name]}]}
    jobs = call(batch, "ListJobs", params).get("jobSummaryList", [])
    return str(jobs[0]["jobId"]) if jobs else None


def handle_object(
    cfg: Config,
    obj: S3Object,
    *,
    s3: Any,
    batch: Any,
    request_id: str,
    template: Callable[[], str],
    now: Callable[[], float] = time.time,
    before_submit: Callable[[], None] | None = None,
) -> str:
    """Check, claim and submit one object; returns what happened (``submitted``,
    ``duplicate``, ``rejected``, ``ignored``) after logging it. Raises ``ClaimBusy`` and AWS
    errors (retried by Lambda)."""
    from tessera.engine.batch.aws import call

    try:
        p = prepare(cfg, obj, s3, template)
    except Rejected as exc:
        log("trigger_rejected", **obj.log_fields(), reason=str(exc))
        return "rejected"
    if p is None:
        log(
            "trigger_ignored",
            **obj.log_fields(),
            reason="matches neither the jobs prefix nor the pattern",
        )
        return "ignored"
    claim, record = take_claim(cfg, s3, obj, request_id, now())
    if claim is None:
        log(
            "trigger_duplicate", **obj.log_fields(), batch_job_id=(record or {}).get("batch_job_id")
        )
        return "duplicate"
    name = submit_job_name(p, claim.key)
    job_key = claim.key.removesuffix(".json") + ".job" + p.suffix
    job_url = f"s3://{claim.bucket}/{job_key}"
    request = submit_request(cfg, p, job_url, name)
    # only a taken-over claim can have a submit job already (a try that crashed after SubmitJob)
    job_id = find_submitted(batch, cfg, name) if claim.taken_over else None
    if job_id is None:
        s3.put_object(Bucket=claim.bucket, Key=job_key, Body=p.text.encode())
        if before_submit is not None:
            before_submit()
        job_id = str(call(batch, "SubmitJob", request)["jobId"])
    mark_submitted(s3, claim, obj, request_id, job_id, now())
    log(
        "trigger_submitted",
        **obj.log_fields(),
        job=p.checked.name,
        job_url=job_url,
        batch_job_id=job_id,
    )
    return "submitted"


def handle(
    event: Mapping[str, Any],
    cfg: Config,
    *,
    s3: Any,
    batch: Any,
    request_id: str,
    now: Callable[[], float] = time.time,
    before_submit: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Handle every object of ``event``; returns counts per outcome. Raises ``ClaimBusy`` at the
    end when some object is claimed by another invocation (the others are done and stay
    deduplicated by their claims)."""
    cache: dict[str, str] = {}

    def template() -> str:
        if "text" not in cache:
            cache["text"] = _read_template(s3, str(cfg.template))
        return cache["text"]

    counts: dict[str, int] = {}
    busy: list[str] = []
    for obj in objects(event):
        try:
            outcome = handle_object(
                cfg,
                obj,
                s3=s3,
                batch=batch,
                request_id=request_id,
                template=template,
                now=now,
                before_submit=before_submit,
            )
        except ClaimBusy as exc:
            log("trigger_busy", **obj.log_fields(), reason=str(exc))
            busy.append(str(exc))
            outcome = "busy"
        counts[outcome] = counts.get(outcome, 0) + 1
    if busy:
        raise ClaimBusy("; ".join(busy))
    return counts


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (``tessera.engine.trigger.handler``)."""
    import boto3

    cfg = Config.from_env()
    request_id = str(getattr(context, "aws_request_id", "") or f"local-{time.time_ns()}")
    return handle(
        event,
        cfg,
        s3=boto3.client("s3"),
        batch=boto3.client("batch"),
        request_id=request_id,
    )


def _read_template(s3: Any, url: str) -> str:
    bucket, key = _split(url)
    try:
        return str(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8"))
    except Exception as exc:
        raise ConfigError(f"TESSERA_TRIGGER_TEMPLATE={url}: cannot read it: {exc}") from None


def _split(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def _under(key: str, prefix: str) -> bool:
    prefix = prefix.strip("/")
    return not prefix or key.startswith(prefix + "/")


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error", {})
        code = str(error.get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code or str(status or "")
    return ""


def log(event: str, **fields: Any) -> None:
    """One JSON line on stdout (CloudWatch Logs in Lambda): the event and its fields, never the
    environment or credentials."""
    line = {"ts": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), "event": event}
    line.update(fields)
    sys.stdout.write(json.dumps(line, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()
