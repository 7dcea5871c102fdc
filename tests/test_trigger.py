"""The S3 trigger (engine/trigger.py): real event shapes, one submission per object version,
bad job files refused with the key named, a light import, and the [batch] table reaching
SubmitJob. S3 and Batch are moto's server; the claims are also tested on SeaweedFS."""

from __future__ import annotations

import copy
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tessera.engine import spec, trigger
from tests.jobs import job_dict, to_toml
from tests.motoserver import MotoBatch

HEAVY = ("numba", "llvmlite", "dask", "distributed", "zarr", "PIL", "numpy", "fsspec", "s3fs")

# An S3 put notification as AWS documents it (Amazon S3 User Guide, "Event message structure"),
# with two records; S3 URL-encodes keys ("my first job.toml" arrives as "my+first+job.toml").
S3_PUT = {
    "Records": [
        {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "2026-12-02T12:00:00.000Z",
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
            "requestParameters": {"sourceIPAddress": "203.0.113.7"},
            "responseElements": {
                "x-amz-request-id": "C3D13FE58DE4C810",
                "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "tessera-jobs",
                "bucket": {
                    "name": "BUCKET",
                    "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                    "arn": "arn:aws:s3:::BUCKET",
                },
                "object": {
                    "key": "KEY",
                    "size": 1024,
                    "eTag": "ETAG",
                    "sequencer": "0055AED6DCD90281E5",
                },
            },
        }
    ]
}

# An EventBridge "Object Created" event as AWS documents it ("EventBridge event message
# structure"); its key is not URL-encoded.
EVENTBRIDGE = {
    "version": "0",
    "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": "Object Created",
    "source": "aws.s3",
    "account": "111122223333",
    "time": "2026-12-02T12:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:s3:::BUCKET"],
    "detail": {
        "version": "0",
        "bucket": {"name": "BUCKET"},
        "object": {"key": "KEY", "size": 5, "etag": "ETAG", "sequencer": "617f08299329d189"},
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "source-ip-address": "1.2.3.4",
        "reason": "PutObject",
    },
}


def s3_event(bucket: str, *objects: tuple[str, str]) -> dict[str, Any]:
    """An S3 notification with one record per ``(encoded key, etag)``."""
    (record,) = copy.deepcopy(S3_PUT)["Records"]
    records = []
    for key, etag in objects:
        r = copy.deepcopy(record)
        r["s3"]["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
        r["s3"]["object"].update(key=key, eTag=etag)
        records.append(r)
    return {"Records": records}


def eventbridge_event(bucket: str, key: str, etag: str) -> dict[str, Any]:
    event = copy.deepcopy(EVENTBRIDGE)
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"].update(key=key, etag=etag)
    return event


class Setup:
    """A bucket, a Batch queue and the two job definitions, in moto."""

    def __init__(self, moto: MotoBatch, s3: Any | None = None) -> None:
        self.moto = moto
        self.batch = moto.client("batch")
        self.s3 = s3 or moto.client("s3")
        self.bucket = f"trigger-{secrets.token_hex(4)}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.queue = moto.queue(moto.compute_environment("SPOT", ("c5",)))
        self.submit_definition = self._definition("tessera-submit")
        self.definition = self._definition("tessera-worker")

    def _definition(self, name: str) -> str:
        response = self.batch.register_job_definition(
            jobDefinitionName=f"{name}-{secrets.token_hex(3)}",
            type="container",
            containerProperties={
                "image": "tessera:test",
                "command": ["--version"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "2048"},
                ],
            },
        )
        return str(response["jobDefinitionArn"])

    def config(self, **kw: Any) -> trigger.Config:
        base: dict[str, Any] = {
            "queue": self.queue,
            "submit_definition": self.submit_definition,
            "definition": self.definition,
            "claims": f"s3://{self.bucket}/tessera-claims",
            "jobs": "jobs/",
        }
        return trigger.Config(**{**base, **kw})

    def put(self, key: str, text: str, bucket: str | None = None) -> str:
        body = text.encode()
        return str(self.s3.put_object(Bucket=bucket or self.bucket, Key=key, Body=body)["ETag"])

    def jobs(self) -> list[dict[str, Any]]:
        """Every job of the queue, any state, described."""
        ids = []
        for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"):
            for j in self.batch.list_jobs(jobQueue=self.queue, jobStatus=status)["jobSummaryList"]:
                ids.append(j["jobId"])
        if not ids:
            return []
        return list(self.batch.describe_jobs(jobs=sorted(set(ids)))["jobs"])

    def handle(self, event: dict[str, Any], cfg: trigger.Config, **kw: Any) -> dict[str, Any]:
        kw.setdefault("request_id", secrets.token_hex(8))
        return trigger.handle(event, cfg, s3=self.s3, batch=self.batch, **kw)


@pytest.fixture
def setup(moto_batch: MotoBatch) -> Setup:
    return Setup(moto_batch)


def _job_text(bucket: str, name: str, **extra_sections: dict[str, Any]) -> str:
    data = job_dict(f"s3://{bucket}/stores/{name}", name=name, shards=4)
    data.update(extra_sections)
    return to_toml(data)


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_s3_notification_two_records_submits_both_with_decoded_keys(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _job_text(setup.bucket, "first")
    etag1 = setup.put("jobs/my first job.toml", first)
    etag2 = setup.put("jobs/second.toml", _job_text(setup.bucket, "second"))
    event = s3_event(setup.bucket, ("jobs/my+first+job.toml", etag1), ("jobs/second.toml", etag2))

    counts = setup.handle(event, setup.config())

    assert counts == {"submitted": 2}
    jobs = {j["jobName"].split("-trigger-")[0]: j for j in setup.jobs()}
    assert sorted(jobs) == ["first", "second"]
    command = jobs["first"]["container"]["command"]
    assert command[:2] == ["batch", "submit"]
    assert command[3:] == ["--queue", setup.queue, "--definition", setup.definition]
    bucket, key = command[2].removeprefix("s3://").split("/", 1)
    assert bucket == setup.bucket and key.startswith("tessera-claims/")
    snapshot = setup.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert snapshot == first  # exactly what was checked, whatever the key holds later
    logged = [
        line for line in _lines(capsys.readouterr().out) if line["event"] == "trigger_submitted"
    ]
    assert sorted(line["key"] for line in logged) == ["jobs/my first job.toml", "jobs/second.toml"]
    assert {line["batch_job_id"] for line in logged} == {j["jobId"] for j in jobs.values()}


def test_eventbridge_input_against_template(setup: Setup) -> None:
    template = to_toml(
        {
            "job": {"name": "slide", "kernel": "imaging.pyramid", "store": "s3://x/unused"},
            "params": {"source": "s3://x/unused.tif", "tile_size": 256},
            "resources": {"memory_mib": 4096},
        }
    )
    setup.put("templates/pyramid.toml", template)
    etag = setup.put("slides/case 7.tif", "not really a tiff: planning reads it in Batch")
    cfg = setup.config(
        jobs=None,
        pattern="slides/*.tif",
        template=f"s3://{setup.bucket}/templates/pyramid.toml",
        param="source",
        store=f"s3://{setup.bucket}/pyramids/{{stem}}",
    )

    assert setup.handle(eventbridge_event(setup.bucket, "slides/case 7.tif", etag), cfg) == {
        "submitted": 1
    }
    # keys outside the pattern (another folder, a subfolder) are ignored
    other = eventbridge_event(setup.bucket, "slides/deeper/x.tif", etag)
    assert setup.handle(other, cfg) == {"ignored": 1}

    (job,) = setup.jobs()
    url = job["container"]["command"][2]
    bucket, key = url.removeprefix("s3://").split("/", 1)
    rendered = json.loads(setup.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert rendered["params"]["source"] == f"s3://{setup.bucket}/slides/case 7.tif"
    assert rendered["job"]["store"] == f"s3://{setup.bucket}/pyramids/case 7"
    assert rendered["job"]["name"] == "slide-case-7"
    assert rendered["params"]["tile_size"] == 256 and rendered["resources"] == {"memory_mib": 4096}
    # what the submit job will load is a valid job by the same checks
    assert spec.check(rendered).kernel_info.name == "imaging.pyramid"


def test_same_event_twice_submits_once_and_new_version_submits_again(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "jobs/daily.toml"
    etag = setup.put(key, _job_text(setup.bucket, "daily"))
    event = s3_event(setup.bucket, (key, etag))
    cfg = setup.config()

    assert setup.handle(event, cfg) == {"submitted": 1}
    assert setup.handle(event, cfg) == {"duplicate": 1}
    assert len(setup.jobs()) == 1
    duplicate = [
        line for line in _lines(capsys.readouterr().out) if line["event"] == "trigger_duplicate"
    ]
    assert duplicate[0]["batch_job_id"] == setup.jobs()[0]["jobId"]

    etag2 = setup.put(key, _job_text(setup.bucket, "daily", tags={"run": "second"}))
    assert etag2 != etag
    assert setup.handle(s3_event(setup.bucket, (key, etag2)), cfg) == {"submitted": 1}
    assert len(setup.jobs()) == 2


def test_bad_job_file_is_rejected_with_its_key_and_the_validate_message(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = job_dict(f"s3://{setup.bucket}/stores/bad", name="bad")
    data["params"]["paths"] = -5
    text = to_toml(data)
    etag = setup.put("jobs/bad.toml", text)

    assert setup.handle(s3_event(setup.bucket, ("jobs/bad.toml", etag)), setup.config()) == {
        "rejected": 1
    }
    assert setup.jobs() == []
    claims = setup.s3.list_objects_v2(Bucket=setup.bucket, Prefix="tessera-claims/")
    assert claims.get("KeyCount", 0) == 0  # nothing claimed: a fixed upload is a new version

    (line,) = [x for x in _lines(capsys.readouterr().out) if x["event"] == "trigger_rejected"]
    assert line["bucket"] == setup.bucket and line["key"] == "jobs/bad.toml"
    assert "params.paths" in line["reason"]
    # the same words as `tessera validate`
    local = tmp_path / "bad.toml"
    local.write_text(text.replace(f"s3://{setup.bucket}/stores/bad", str(tmp_path / "store")))
    proc = subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", "validate", str(local)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    reason = line["reason"].split("params.paths", 1)[1]
    assert reason.strip(": ") in proc.stderr


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda d: d["job"].update(store="runs/local"), "job.store"),
        (lambda d: d["job"].update(store="s3://BUCKET/jobs/store"), "trigger prefix"),
        (lambda d: d.update(batch={"priority": 10_000}), "batch.priority"),
        (lambda d: d.update(batch={"share": "team a"}), "batch.share"),
        (lambda d: d.update(batch={"shares": "a"}), "batch.shares"),
    ],
)
def test_refusals_name_the_key(
    setup: Setup, capsys: pytest.CaptureFixture[str], edit: Any, named: str
) -> None:
    data = job_dict(f"s3://{setup.bucket}/stores/r", name="r")
    edit(data)
    text = to_toml(data).replace("BUCKET", setup.bucket)
    etag = setup.put("jobs/r.toml", text)
    assert setup.handle(s3_event(setup.bucket, ("jobs/r.toml", etag)), setup.config()) == {
        "rejected": 1
    }
    (line,) = [x for x in _lines(capsys.readouterr().out) if x["event"] == "trigger_rejected"]
    assert named in line["reason"]
    assert setup.jobs() == []


def test_share_and_priority_reach_submit_job(setup: Setup) -> None:
    sent: list[dict[str, Any]] = []
    setup.batch.meta.events.register(
        "provide-client-params.batch.SubmitJob", lambda params, **kw: sent.append(dict(params))
    )
    text = _job_text(setup.bucket, "shared", batch={"share": "risk_eod", "priority": 7})
    etag = setup.put("jobs/shared.toml", text)
    cfg = setup.config(share="trigger")  # TESSERA_TRIGGER_SHARE: the queue is a fair-share one
    assert setup.handle(s3_event(setup.bucket, ("jobs/shared.toml", etag)), cfg) == {"submitted": 1}
    (request,) = sent  # accepted by botocore's model and by moto
    assert request["shareIdentifier"] == "risk_eod"
    assert request["schedulingPriorityOverride"] == 7
    assert len(setup.jobs()) == 1
    # a job without [batch] share runs in the trigger's share; without TESSERA_TRIGGER_SHARE
    # (a FIFO queue) the submit job carries no share at all
    etag = setup.put("jobs/plain.toml", _job_text(setup.bucket, "plain"))
    setup.handle(s3_event(setup.bucket, ("jobs/plain.toml", etag)), cfg)
    assert (sent[-1]["shareIdentifier"], sent[-1]["schedulingPriorityOverride"]) == ("trigger", 0)
    etag = setup.put("jobs/fifo.toml", text.replace("shared", "fifo"))
    setup.handle(s3_event(setup.bucket, ("jobs/fifo.toml", etag)), setup.config())
    assert not {"shareIdentifier", "schedulingPriorityOverride"} & set(sent[-1])


def test_batch_table_in_the_array_requests_and_not_in_the_hash(tmp_path: Path) -> None:
    from tessera.engine.batch import submit
    from tessera.engine.batch.validate import validate_request

    plain = spec.from_dict(job_dict(tmp_path / "s"))
    shared = spec.from_dict(
        {**job_dict(tmp_path / "s"), "batch": {"share": "team_a", "priority": 9999, "queue": "q2"}}
    )
    assert shared.spec_hash == plain.spec_hash
    assert shared.batch.queue == "q2" and shared.to_dict()["batch"]["share"] == "team_a"
    assert spec.from_dict(shared.to_dict()).batch == shared.batch  # the store's job.json keeps it
    s = submit.prepare(shared, queue="q", definition="d", create=False)
    submit.finalize(s, depends_on=[])
    for request in [*s.arrays, submit.reduce_request(s, ["x"])]:
        assert request["shareIdentifier"] == "team_a"
        assert request["schedulingPriorityOverride"] == 9999
        validate_request("SubmitJob", request)  # botocore's model takes both fields
    p = submit.prepare(plain, queue="q", definition="d", create=False)
    submit.finalize(p, depends_on=[])
    assert not {"shareIdentifier", "schedulingPriorityOverride"} & set(p.arrays[0])


def test_crash_between_claim_and_submit(setup: Setup) -> None:
    """The claim outlives a crash: the same invocation retried takes it over at once; another
    delivery waits for the lease, then takes it over; nothing is submitted twice."""
    etag = setup.put("jobs/crash.toml", _job_text(setup.bucket, "crash"))
    event = s3_event(setup.bucket, ("jobs/crash.toml", etag))
    cfg = setup.config(lease_s=300.0)
    clock = [1_000_000.0]

    def crash() -> None:
        raise RuntimeError("the function was killed here")

    with pytest.raises(RuntimeError):
        setup.handle(event, cfg, request_id="A", now=lambda: clock[0], before_submit=crash)
    assert setup.jobs() == []
    # a redelivery (another request) while the lease runs: busy, so Lambda retries it later
    clock[0] += 60
    with pytest.raises(trigger.ClaimBusy, match="lease 300 s"):
        setup.handle(event, cfg, request_id="B", now=lambda: clock[0])
    assert setup.jobs() == []
    # after the lease, it takes the claim over and submits
    clock[0] += 300
    assert setup.handle(event, cfg, request_id="B", now=lambda: clock[0]) == {"submitted": 1}
    assert len(setup.jobs()) == 1
    # Lambda's own retry of request A now finds it submitted
    assert setup.handle(event, cfg, request_id="A", now=lambda: clock[0]) == {"duplicate": 1}

    # the same invocation retried (Lambda keeps the request id) takes over without waiting
    etag = setup.put("jobs/crash2.toml", _job_text(setup.bucket, "crash2"))
    event2 = s3_event(setup.bucket, ("jobs/crash2.toml", etag))
    with pytest.raises(RuntimeError):
        setup.handle(event2, cfg, request_id="C", now=lambda: clock[0], before_submit=crash)
    assert setup.handle(event2, cfg, request_id="C", now=lambda: clock[0]) == {"submitted": 1}
    assert len(setup.jobs()) == 2


def test_crash_after_submit_before_the_claim_is_marked(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    etag = setup.put("jobs/late.toml", _job_text(setup.bucket, "late"))
    event = s3_event(setup.bucket, ("jobs/late.toml", etag))
    real = trigger.mark_submitted
    calls = []

    def crash_once(*args: Any, **kw: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("killed after SubmitJob")
        real(*args, **kw)

    monkeypatch.setattr(trigger, "mark_submitted", crash_once)
    with pytest.raises(RuntimeError):
        setup.handle(event, setup.config(), request_id="A")
    assert len(setup.jobs()) == 1
    assert setup.handle(event, setup.config(), request_id="A") == {"submitted": 1}
    assert len(setup.jobs()) == 1  # found by its name, not submitted again
    assert setup.handle(event, setup.config(), request_id="B") == {"duplicate": 1}


def test_claims_on_seaweedfs(moto_batch: MotoBatch, seaweed_s3: Any) -> None:
    """SeaweedFS honours If-None-Match and If-Match on PutObject: the same dedup holds there."""
    setup = Setup(moto_batch, s3=seaweed_s3.client())
    etag = setup.put("jobs/sw.toml", _job_text(setup.bucket, "sw"))
    event = s3_event(setup.bucket, ("jobs/sw.toml", etag))
    assert setup.handle(event, setup.config()) == {"submitted": 1}
    assert setup.handle(event, setup.config()) == {"duplicate": 1}
    assert len(setup.jobs()) == 1


def test_handler_entry_point_reads_its_config_from_the_environment(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    etag = setup.put("jobs/env.toml", _job_text(setup.bucket, "env"))
    for name, value in {
        **setup.moto.env(),
        "AWS_ENDPOINT_URL_S3": setup.moto.endpoint_url,
        "TESSERA_TRIGGER_QUEUE": setup.queue,
        "TESSERA_TRIGGER_SUBMIT_DEFINITION": setup.submit_definition,
        "TESSERA_TRIGGER_DEFINITION": setup.definition,
        "TESSERA_TRIGGER_CLAIMS": f"s3://{setup.bucket}/claims",
        "TESSERA_TRIGGER_JOBS": "jobs",
    }.items():
        monkeypatch.setenv(name, value)

    class Context:
        aws_request_id = "req-1"

    event = s3_event(setup.bucket, ("jobs/env.toml", etag))
    assert trigger.handler(event, Context()) == {"submitted": 1}
    assert trigger.handler(event, Context()) == {"duplicate": 1}


def test_config_errors_name_the_variables() -> None:
    with pytest.raises(trigger.ConfigError) as exc:
        trigger.Config.from_env({"TESSERA_TRIGGER_QUEUE": "q", "TESSERA_TRIGGER_PATTERN": "*.tif"})
    text = str(exc.value)
    for name in ("SUBMIT_DEFINITION", "_DEFINITION", "CLAIMS", "TEMPLATE", "PARAM", "STORE"):
        assert name in text
    base = {
        "TESSERA_TRIGGER_QUEUE": "q",
        "TESSERA_TRIGGER_SUBMIT_DEFINITION": "s",
        "TESSERA_TRIGGER_DEFINITION": "d",
        "TESSERA_TRIGGER_CLAIMS": "s3://b/claims",
    }
    with pytest.raises(trigger.ConfigError, match="TESSERA_TRIGGER_JOBS"):
        trigger.Config.from_env(base)
    with pytest.raises(trigger.ConfigError, match="expected s3://bucket/prefix"):
        trigger.Config.from_env(
            {**base, "TESSERA_TRIGGER_JOBS": "j", "TESSERA_TRIGGER_CLAIMS": "/tmp/c"}
        )


def test_key_patterns() -> None:
    assert trigger.key_matches("slides/*.tif", "slides/a b.tif")
    assert not trigger.key_matches("slides/*.tif", "slides/x/a.tif")
    assert trigger.key_matches("slides/**.tif", "slides/x/a.tif")
    assert not trigger.key_matches("slides/*.tif", "slides/a.tiff")
    obj = trigger.S3Object("b", "in/case 7.ome.tif")
    assert trigger.store_for("s3://{bucket}/out/{stem}", obj) == "s3://b/out/case 7.ome"
    assert trigger.store_for("s3://o/{parent}/{name}", obj) == "s3://o/in/case 7.ome.tif"


def test_handler_import_and_checks_load_no_heavy_module() -> None:
    """What the Lambda imports and runs to check every built-in kernel's job files: none of
    numba, llvmlite, dask, zarr, Pillow (nor NumPy, fsspec)."""
    examples = Path(__file__).resolve().parent.parent / "examples"
    code = (
        "import json, sys\n"
        "import tessera.engine.trigger as t\n"
        "from tessera.engine import spec\n"
        "from tessera.engine.batch.validate import validate_request\n"
        f"for name in ['option-pricing.toml', 'image-pyramid.toml', 'transcode.toml']:\n"
        f"    data = spec.parse_text(open({str(examples)!r} + '/' + name).read())\n"
        "    data['job']['store'] = 's3://b/s'\n"
        "    assert spec.check(data).params_checked, name\n"
        "validate_request('SubmitJob', {'jobName': 'a', 'jobQueue': 'q', 'jobDefinition': 'd'})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    heavy = sorted({m.split(".")[0] for m in loaded} & set(HEAVY))
    assert heavy == []
    assert "botocore" in {m.split(".")[0] for m in loaded}  # the check above did run


def test_lambda_zip_runs_the_checks_with_nothing_else_installed(tmp_path: Path) -> None:
    """`make lambda-zip`'s tree, on a Python without site-packages (-S -I): it imports the
    handler and checks a job file by itself, within Lambda's size limit."""
    root = Path(__file__).resolve().parent.parent
    tree = tmp_path / "tree"
    build = subprocess.run(
        [sys.executable, str(root / "containers/lambda/build_zip.py")]
        + ["--out", str(tmp_path / "l.zip"), "--tree", str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    report = json.loads(build.stdout.strip().splitlines()[-1])
    assert 0 < report["unzipped_mb"] < 250 and report["zipped_mb"] <= report["unzipped_mb"]
    assert not (tree / "numpy").exists() and (tree / "botocore").is_dir()
    code = (
        f"import sys, json; sys.path.insert(0, {str(tree)!r})\n"
        "import tessera.engine.trigger\n"
        "from tessera.engine import spec\n"
        f"data = spec.parse_text(open({str(root / 'examples/option-pricing.toml')!r}).read())\n"
        "data['job']['store'] = 's3://b/s'; data['params']['paths'] = 0\n"
        "try:\n    spec.check(data)\nexcept Exception as e:\n    print(e)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    message, modules = proc.stdout.strip().splitlines()[-2:]
    assert message.startswith("params.paths:")
    assert not set(json.loads(modules)) & set(HEAVY)


def test_fair_share_queue_gets_a_share_and_fifo_refuses_one(
    moto_batch: MotoBatch, tmp_path: Path
) -> None:
    """On a queue with a scheduling policy every request carries a share (the job's, or
    "tessera") and a priority; on a FIFO queue a [batch] share is refused before anything is
    sent, since Batch would refuse every request."""
    from tessera.engine.batch import submit
    from tessera.engine.errors import BatchError

    batch = moto_batch.client("batch")
    policy = batch.create_scheduling_policy(
        name=f"fs-{secrets.token_hex(3)}", fairsharePolicy={"shareDecaySeconds": 3600}
    )["arn"]
    ce = moto_batch.compute_environment("SPOT", ("c5",))
    fair = f"fq-{secrets.token_hex(3)}"
    batch.create_job_queue(
        jobQueueName=fair,
        state="ENABLED",
        priority=1,
        schedulingPolicyArn=policy,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    fifo = moto_batch.queue(ce)
    assert submit.is_fair_share(batch, fair) and not submit.is_fair_share(batch, fifo)

    plain = spec.from_dict(job_dict(tmp_path / "a"))
    s = submit.prepare(plain, queue=fair, definition="d", create=False)
    submit.finalize(s, depends_on=[], fair_share=True)
    assert s.arrays[0]["shareIdentifier"] == submit.DEFAULT_SHARE
    assert s.arrays[0]["schedulingPriorityOverride"] == 0
    shared = spec.from_dict(
        {**job_dict(tmp_path / "b"), "batch": {"share": "quant", "priority": 3}}
    )
    s = submit.prepare(shared, queue=fair, definition="d", create=False)
    submit.finalize(s, depends_on=[], fair_share=True)
    assert (s.arrays[0]["shareIdentifier"], s.arrays[0]["schedulingPriorityOverride"]) == (
        "quant",
        3,
    )
    s = submit.prepare(shared, queue=fifo, definition="d", create=False)
    with pytest.raises(
        BatchError, match=r"\[batch\] share and priority set, but queue .* no scheduling policy"
    ):
        submit.finalize(s, depends_on=[], fair_share=False)


def test_the_submit_job_command_submits_the_arrays(setup: Setup) -> None:
    """What the submit job runs in Batch, run here: `tessera batch submit <the claim's copy>`
    plans the job, creates its store on S3 and submits its arrays and reduce job."""
    text = _job_text(setup.bucket, "chain", batch={"priority": 5})
    etag = setup.put("jobs/chain.toml", text)
    assert setup.handle(s3_event(setup.bucket, ("jobs/chain.toml", etag)), setup.config()) == {
        "submitted": 1
    }
    (launcher,) = setup.jobs()
    command = launcher["container"]["command"]
    bucket, key = command[2].removeprefix("s3://").split("/", 1)
    env = {
        **os.environ,
        **setup.moto.env(),
        "AWS_ENDPOINT_URL_S3": setup.moto.endpoint_url,
        "TESSERA_FAULTS": "",
    }

    def run_submit_job() -> subprocess.CompletedProcess[str]:
        cli = [sys.executable, "-m", "tessera.engine.cli", *command, "--json"]
        return subprocess.run(cli, capture_output=True, text=True, timeout=180, env=env)

    proc = run_submit_job()
    assert proc.returncode == 1 and "[batch] priority set, but queue" in proc.stderr  # FIFO
    setup.put(key, text.replace("priority = 5", ""))
    proc = run_submit_job()
    assert proc.returncode == 0, proc.stderr
    names = sorted(j["jobName"] for j in setup.jobs() if j["jobId"] != launcher["jobId"])
    assert any(n.endswith("reduce") for n in names) and len(names) >= 2
    keys = [
        o["Key"]
        for o in setup.s3.list_objects_v2(Bucket=setup.bucket, Prefix="stores/chain/")["Contents"]
    ]
    assert any(k.endswith("job.json") for k in keys)  # the store was created by the submit job
