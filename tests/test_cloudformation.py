"""containers/cloudformation/: batch.yaml, trigger.yaml and eventbridge-batch.yaml pass cfn-lint,
every IAM policy in them passes parliament, and the facts a deployment relies on hold: the
trigger function's handler, reserved concurrency and dead-letter queue, its role's least
privilege, the fair-share queue with its RUNNABLE time limits, the ShardsFailed alarm, the submit
job, and the EventBridge-only variant's rule and queue.

The templates are read as data (CloudFormation's short tags become their long JSON forms) and
resolved in two "worlds": the defaults, and every optional feature on (template mode, the submit
job, alarm topics). Resolving puts plausible literal ARNs where intrinsic functions were, which
is what parliament needs. No AWS account is used.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CFN = ROOT / "containers" / "cloudformation"
BIN = Path(sys.executable).parent
JOB_ROLE_POLICY = ROOT / "containers" / "iam" / "job-role-policy.json"
TEMPLATES = ("batch", "trigger", "eventbridge-batch")

PARTITION, REGION, ACCOUNT, STACK = "aws", "us-east-1", "123456789012", "tessera"

# Values for the parameters that have no default (every template), as a user would pass them.
REQUIRED = {
    "Subnets": "subnet-0a,subnet-0b",
    "SecurityGroups": "sg-0a",
    "StoreBucket": "data-bucket",
    "InputBucket": "data-bucket",
    "CodeBucket": "code-bucket",
    "CodeKey": "tessera-lambda-0.1.0.zip",
    "JobQueue": "tessera-fairshare",
    "SubmitJobDefinition": "tessera-submit",
    "WorkerDefinition": "tessera-slides",
    "TriggerBucket": "uploads-bucket",
    "ClaimsBucket": "uploads-bucket",
    "SpotComputeEnvironment": f"arn:aws:batch:{REGION}:{ACCOUNT}:compute-environment/spot",
    "OnDemandComputeEnvironment": f"arn:aws:batch:{REGION}:{ACCOUNT}:compute-environment/od",
}
# Every optional feature on.
FEATURES = {
    "AlarmTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:tessera-alarms",
    "SubmitImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/tessera:0.1.0",
    "WorkerDefinitionName": "tessera-slides",
    "JobFilesBucket": "uploads-bucket",
    "Mode": "template",
    "Pattern": "tessera-trigger/jobs/*.tif",
    "TemplateBucket": "templates-bucket",
    "TemplateKey": "slides.toml",
    "Param": "source",
    "StoreTemplate": "s3://data-bucket/tessera/stores/{stem}",
}
WORLDS = ("defaults", "features")

# Physical names and ARNs of this stack's own resources, by type and attribute ("Ref" for Ref).
# A resource type missing here makes the test fail: add it rather than guess.
FAKE = {
    ("AWS::Batch::JobQueue", "Ref"): "arn:{p}:batch:{r}:{a}:job-queue/{name}",
    ("AWS::Batch::SchedulingPolicy", "Ref"): "arn:{p}:batch:{r}:{a}:scheduling-policy/{name}",
    ("AWS::Batch::ComputeEnvironment", "Ref"): "arn:{p}:batch:{r}:{a}:compute-environment/{name}",
    ("AWS::Batch::JobDefinition", "Ref"): "arn:{p}:batch:{r}:{a}:job-definition/{name}:1",
    ("AWS::IAM::Role", "Ref"): "{name}",
    ("AWS::IAM::Role", "Arn"): "arn:{p}:iam::{a}:role/{name}",
    ("AWS::IAM::InstanceProfile", "Arn"): "arn:{p}:iam::{a}:instance-profile/{name}",
    ("AWS::IAM::InstanceProfile", "Ref"): "{name}",
    ("AWS::Logs::LogGroup", "Ref"): "{name}",
    ("AWS::Logs::LogGroup", "Arn"): "arn:{p}:logs:{r}:{a}:log-group:{name}:*",
    ("AWS::SQS::Queue", "Ref"): "https://sqs.{r}.amazonaws.com/{a}/{name}",
    ("AWS::SQS::Queue", "Arn"): "arn:{p}:sqs:{r}:{a}:{name}",
    ("AWS::SQS::Queue", "QueueName"): "{name}",
    ("AWS::Lambda::Function", "Ref"): "{name}",
    ("AWS::Lambda::Function", "Arn"): "arn:{p}:lambda:{r}:{a}:function:{name}",
    ("AWS::Events::Rule", "Ref"): "{name}",
    ("AWS::Events::Rule", "Arn"): "arn:{p}:events:{r}:{a}:rule/{name}",
    ("AWS::CloudWatch::Alarm", "Ref"): "{name}",
}
NAME_PROPERTY = {
    "AWS::Batch::JobQueue": "JobQueueName",
    "AWS::Batch::JobDefinition": "JobDefinitionName",
    "AWS::Logs::LogGroup": "LogGroupName",
}

# Batch's reasons for a job stuck in RUNNABLE that jobStateTimeLimitActions accepts for ECS
# compute environments (Batch User Guide, "Jobs stuck in a RUNNABLE status").
RUNNABLE_REASONS = {
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
}
# The shortest an invocation of the trigger takes (an S3 read, three S3 writes, two Batch
# calls): what trigger.yaml's concurrency comment counts with.
MIN_INVOCATION_S = 0.2

# An EventBridge "Object Created" event as S3 sends it (EventBridge User Guide); the key is
# not URL-encoded there.
UPLOAD_EVENT = {
    "version": "0",
    "id": "17793124-05d4-b198-2fde-7ededc63b103",
    "detail-type": "Object Created",
    "source": "aws.s3",
    "account": ACCOUNT,
    "time": "2026-11-28T12:00:00Z",
    "region": REGION,
    "resources": ["arn:aws:s3:::uploads-bucket"],
    "detail": {
        "version": "0",
        "bucket": {"name": "uploads-bucket"},
        "object": {
            "key": "tessera-trigger/jobs/euro call.toml",
            "size": 512,
            "etag": "b1946ac92492d2347c6235b4d2611184",
            "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
            "sequencer": "00617F08299329D189",
        },
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": ACCOUNT,
        "reason": "PutObject",
    },
}


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / name), *args], capture_output=True, text=True, timeout=180, cwd=ROOT
    )


# --- reading and resolving templates


def load(path: Path) -> dict[str, Any]:
    """A template as data, its short tags in their long forms: ``!Ref X`` -> ``{"Ref": "X"}``,
    ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``, ``!Sub s`` -> ``{"Fn::Sub": "s"}``."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "Condition":
            return {"Condition": value}
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {f"Fn::{suffix}": value}

    Loader.add_multi_constructor("!", tag)
    return yaml.load(path.read_text(), Loader=Loader)


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


@dataclass
class World:
    """One template with one set of parameter values: conditions evaluated, intrinsic functions
    replaced by literals."""

    name: str
    template: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, Any]:
        """The resources that exist in this world (their ``Condition`` holds), unresolved."""
        return {
            k: r
            for k, r in self.template["Resources"].items()
            if "Condition" not in r or self.condition(r["Condition"])
        }

    def param(self, name: str) -> Any:
        spec = self.template["Parameters"][name]
        if name in self.overrides:
            value = self.overrides[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            value = REQUIRED[name]  # a KeyError here: add the new parameter to REQUIRED
        if str(spec["Type"]).startswith("List<") or spec["Type"] == "CommaDelimitedList":
            return value.split(",") if isinstance(value, str) else list(value)
        return str(value)

    def condition(self, name: str) -> bool:
        return bool(self.value(self.template["Conditions"][name]))

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Partition": PARTITION,
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": STACK,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}):
            return self.param(name)
        return self.attribute(name, "Ref")

    def attribute(self, logical: str, attr: str) -> str:
        resource = self.resources[logical]
        pattern = FAKE[(resource["Type"], attr)]
        name = logical
        prop = NAME_PROPERTY.get(resource["Type"])
        if prop and prop in resource.get("Properties", {}):
            name = self.value(resource["Properties"][prop])
        return pattern.format(p=PARTITION, r=REGION, a=ACCOUNT, name=name)

    def sub(self, text: str, local: dict[str, Any]) -> str:
        def one(m: re.Match[str]) -> str:
            expr = m.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in local:
                return str(local[expr])
            if "." in expr and expr not in self.template.get("Parameters", {}):
                return self.attribute(*expr.split(".", 1))
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(self, node: Any) -> Any:
        """``node`` with every intrinsic function evaluated; ``AWS::NoValue`` entries dropped."""
        if isinstance(node, list):
            items = [self.value(v) for v in node]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::GetAtt":
                return self.attribute(arg[0], arg[1])
            if key == "Fn::Sub":
                text, local = (arg, {}) if isinstance(arg, str) else arg
                return self.sub(text, {k: self.value(v) for k, v in local.items()})
            if key == "Fn::If":
                cond, yes, no = arg
                return self.value(yes if self.condition(cond) else no)
            if key == "Fn::Equals":
                a, b = (self.value(v) for v in arg)
                return a == b
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(v) for v in arg)
            if key == "Fn::Or":
                return any(self.value(v) for v in arg)
            if key == "Fn::Join":
                return arg[0].join(self.value(arg[1]))
            assert not key.startswith("Fn::"), f"the resolver does not know {key}"
        out = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def props(self, logical: str) -> dict[str, Any]:
        return dict(self.value(self.resources[logical].get("Properties", {})))


def world(template: str, name: str) -> World:
    data = load(CFN / f"{template}.yaml")
    params = data.get("Parameters", {})
    overrides = {k: v for k, v in FEATURES.items() if k in params} if name == "features" else {}
    return World(name, data, overrides)


@dataclass(frozen=True)
class PolicyDoc:
    resource: str
    name: str
    kind: str  # "trust", "identity" (a role's permissions) or "resource" (a queue policy)
    document: dict[str, Any]


def policy_docs(w: World) -> Iterator[PolicyDoc]:
    """Every IAM policy document of the world's resources, resolved."""
    for logical, resource in w.resources.items():
        kind = resource["Type"]
        if kind == "AWS::IAM::Role":
            props = w.props(logical)
            yield PolicyDoc(logical, "trust", "trust", props["AssumeRolePolicyDocument"])
            for p in props.get("Policies", []):
                yield PolicyDoc(logical, p["PolicyName"], "identity", p["PolicyDocument"])
        elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield PolicyDoc(logical, logical, "identity", w.props(logical)["PolicyDocument"])
        elif kind in ("AWS::SQS::QueuePolicy", "AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy"):
            yield PolicyDoc(logical, logical, "resource", w.props(logical)["PolicyDocument"])


def statements(w: World, logical: str) -> list[dict[str, Any]]:
    """The permission statements of role ``logical`` (every inline policy)."""
    return [
        s
        for d in policy_docs(w)
        if d.resource == logical and d.kind == "identity"
        for s in d.document["Statement"]
    ]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _unresolved(node: Any) -> list[str]:
    if isinstance(node, dict):
        bad = [k for k in node if k == "Ref" or k.startswith("Fn::")]
        return bad + [b for v in node.values() for b in _unresolved(v)]
    if isinstance(node, list):
        return [b for v in node for b in _unresolved(v)]
    if isinstance(node, str) and "${" in node:
        return [node]
    return []


def _resource_types(action: str) -> list[str]:
    """The resource types IAM knows for ``action`` (parliament's copy of the Service
    Authorization Reference); ``[""]`` for an action without resource-level permissions."""
    from parliament import iam_definition

    prefix, name = action.split(":", 1)
    for service in iam_definition:
        if service["prefix"] == prefix:
            for privilege in service["privileges"]:
                if privilege["privilege"] == name:
                    return [rt["resource_type"] for rt in privilege["resource_types"]]
    raise KeyError(action)


def star_violations(stmts: list[dict[str, Any]]) -> list[str]:
    """Actions allowed on ``"*"`` although IAM can scope them to a resource."""
    out = []
    for s in stmts:
        if "*" in _list(s["Resource"]):
            out += [a for a in _list(s["Action"]) if _resource_types(a) != [""]]
    return out


# --- every template


def test_templates_pass_cfn_lint() -> None:
    files = [str(CFN / f"{t}.yaml") for t in TEMPLATES]
    proc = _tool("cfn-lint", "--include-checks", "I", "--", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cfn_lint_would_flag_a_broken_template(tmp_path: Path) -> None:
    text = (CFN / "trigger.yaml").read_text()
    assert "Runtime: python3.12" in text
    bad = tmp_path / "trigger.yaml"
    bad.write_text(text.replace("Runtime: python3.12", "Runtime: python2.7"))
    proc = _tool("cfn-lint", "--", str(bad))
    assert proc.returncode != 0 and "python2.7" in proc.stdout, proc.stdout


@pytest.mark.parametrize("name", WORLDS)
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_policy_passes_parliament(template: str, name: str) -> None:
    from parliament import analyze_policy_string

    w = world(template, name)
    docs = list(policy_docs(w))
    findings = []
    for d in docs:
        assert _unresolved(d.document) == [], (d.resource, d.name)
        assert d.document["Version"] == "2012-10-17"
        if d.kind == "trust":
            # A trust policy has no Resource, which parliament reads as malformed: checked here.
            (stmt,) = d.document["Statement"]
            assert stmt["Action"] == "sts:AssumeRole" and stmt["Effect"] == "Allow"
            assert set(stmt["Principal"]) == {"Service"}, d.resource
            continue
        policy = analyze_policy_string(json.dumps(d.document), include_community_auditors=True)
        findings += [(d.resource, d.name, f.issue, f.detail) for f in policy.findings]
    assert findings == []
    checked = {d.resource for d in docs if d.kind != "trust"}
    expected = {
        ("batch", "defaults"): {"JobRole"},
        ("batch", "features"): {"JobRole", "SubmitJobRole"},
        ("trigger", "defaults"): {"FunctionRole", "DeadLetterQueuePolicy"},
        ("trigger", "features"): {"FunctionRole", "DeadLetterQueuePolicy"},
        ("eventbridge-batch", "defaults"): {"RuleRole", "DeadLetterQueuePolicy"},
        ("eventbridge-batch", "features"): {"RuleRole", "DeadLetterQueuePolicy"},
    }
    assert checked == expected[(template, name)]


def test_parliament_would_flag_a_wrong_statement() -> None:
    from parliament import analyze_policy_string

    w = world("trigger", "features")
    (doc,) = [d for d in policy_docs(w) if d.resource == "FunctionRole" and d.kind == "identity"]
    wrong = copy.deepcopy(doc.document)
    claims = next(s for s in wrong["Statement"] if s["Sid"] == "ReadWriteClaims")
    claims["Action"].append("s3:PutBucketPolicy")  # a bucket action on object ARNs
    assert analyze_policy_string(json.dumps(wrong)).findings


@pytest.mark.parametrize("name", WORLDS)
@pytest.mark.parametrize("template", TEMPLATES)
def test_no_role_allows_star_where_iam_can_scope(template: str, name: str) -> None:
    w = world(template, name)
    roles = [k for k, r in w.resources.items() if r["Type"] == "AWS::IAM::Role"]
    assert {k: star_violations(statements(w, k)) for k in roles} == {k: [] for k in roles}


def test_star_check_would_flag_a_scopable_action() -> None:
    w = world("trigger", "defaults")
    stmts = copy.deepcopy(statements(w, "FunctionRole"))
    listing = next(s for s in stmts if s["Sid"] == "FindSubmittedJobs")
    assert listing["Resource"] == "*"
    listing["Action"] = [listing["Action"], "batch:SubmitJob"]
    assert star_violations(stmts) == ["batch:SubmitJob"]


# --- batch.yaml: the queue, the alarm, the submit job


def test_queue_is_fair_share_and_cancels_jobs_stuck_in_runnable() -> None:
    w = world("batch", "defaults")
    raw = w.template["Resources"]
    queue = raw["JobQueue"]["Properties"]
    assert queue["SchedulingPolicyArn"] == {"Ref": "SchedulingPolicy"}
    policy = raw["SchedulingPolicy"]
    assert policy["Type"] == "AWS::Batch::SchedulingPolicy"
    fair = w.props("SchedulingPolicy")["FairsharePolicy"]
    assert {"ShareIdentifier": "*", "WeightFactor": 1} in fair["ShareDistribution"]
    assert 0 <= float(fair["ShareDecaySeconds"]) <= 604800
    assert 0 <= float(fair["ComputeReservation"]) <= 99
    _check_runnable_limits(w, queue["JobStateTimeLimitActions"])
    # A job without a share is refused by a fair-share queue: the template says so.
    assert "shareIdentifier" in w.template["Description"]


def _check_runnable_limits(w: World, actions: list[dict[str, Any]]) -> None:
    assert {a["Reason"] for a in actions} == RUNNABLE_REASONS
    for a in actions:
        assert a["Action"] == "CANCEL" and a["State"] == "RUNNABLE"
        spec = w.template["Parameters"][a["MaxTimeSeconds"]["Ref"]]
        assert 600 <= spec["MinValue"] <= int(spec["Default"]) <= spec["MaxValue"] <= 86400


def test_alarm_watches_shards_failed_in_namespace_tessera() -> None:
    from tessera.engine import metrics

    raw = load(CFN / "batch.yaml")
    alarm = raw["Resources"]["ShardsFailedAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("tessera", "ShardsFailed")
    assert (alarm["Namespace"], alarm["MetricName"]) == (metrics.NAMESPACE, metrics.SHARDS_FAILED)
    assert alarm["Dimensions"] == [{"Name": metrics.DIM_SERVICE, "Value": metrics.SERVICE}]
    assert (metrics.DIM_SERVICE,) in metrics.DIMENSIONS  # the workers publish that set
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Sum", 300, 1)
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (
        1,
        "GreaterThanOrEqualToThreshold",
    )
    assert "AlarmActions" not in world("batch", "defaults").props("ShardsFailedAlarm")
    with_topic = world("batch", "features").props("ShardsFailedAlarm")
    assert with_topic["AlarmActions"] == [FEATURES["AlarmTopicArn"]]


def test_submit_job_exists_only_with_an_image_and_has_the_worker_rights() -> None:
    assert "SubmitJobDefinition" not in world("batch", "defaults").resources
    w = world("batch", "features")
    stmts = statements(w, "SubmitJobRole")
    by_sid = {s["Sid"]: s for s in stmts}
    queue_arn = w.ref("JobQueue")
    assert queue_arn.endswith(":job-queue/tessera-fairshare")
    definitions = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/tessera-slides"
    assert by_sid["SubmitWorkerJobs"]["Resource"] == [
        queue_arn,
        definitions,
        definitions + ":*",
        f"arn:aws:batch:{REGION}:{ACCOUNT}:job/*",
    ]
    # The store and input statements are the job role's (containers/iam/job-role-policy.json).
    text = JOB_ROLE_POLICY.read_text()
    for name in ("StoreBucket", "StorePrefix", "InputBucket", "InputPrefix"):
        text = text.replace("${" + name + "}", w.param(name))
    for statement in json.loads(text)["Statement"]:
        assert by_sid[statement["Sid"]] == statement
    jobs = by_sid["ReadJobFiles"]
    assert jobs["Resource"] == "arn:aws:s3:::uploads-bucket/tessera-trigger/*"

    definition = w.props("SubmitJobDefinition")
    container = definition["ContainerProperties"]
    assert container["JobRoleArn"] == w.attribute("SubmitJobRole", "Arn")
    assert container["Image"] == FEATURES["SubmitImage"]
    assert "SchedulingPriority" in definition  # a fair-share queue needs one on every job
    job_url = "s3://uploads-bucket/tessera-trigger/jobs/euro.toml"
    command = _batch_command(definition, {"job_url": job_url})
    assert command == [
        "batch",
        "submit",
        job_url,
        "--queue",
        queue_arn,
        "--definition",
        "tessera-slides",
    ]
    _check_the_cli_takes(command, job_url)


def _batch_command(definition: dict[str, Any], parameters: dict[str, str]) -> list[str]:
    """The arguments Batch runs for a SubmitJob with ``parameters`` (engine/batch/local.py
    does the substitution as Batch does)."""
    from tessera.engine.batch.local import container_command

    as_batch = {
        "containerProperties": {"command": definition["ContainerProperties"]["Command"]},
        "parameters": definition.get("Parameters", {}),
    }
    return container_command(as_batch, {"parameters": parameters})


def _check_the_cli_takes(command: list[str], job_url: str) -> None:
    from tessera.engine.cli import _parser

    args = _parser().parse_args(command)
    assert (args.command, args.batch_command, args.job) == ("batch", "submit", job_url)


# --- trigger.yaml


def test_trigger_function_runs_the_handler_from_the_zip() -> None:
    raw = load(CFN / "trigger.yaml")
    fn = raw["Resources"]["Function"]["Properties"]
    assert fn["Handler"] == "tessera.engine.trigger.handler"
    assert fn["Runtime"] == "python3.12"
    assert fn["Code"] == {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}}
    from tessera.engine import trigger

    assert callable(trigger.handler)


def test_reserved_concurrency_keeps_submit_job_under_batch_quota() -> None:
    from tessera.engine.batch.contract import SUBMIT_TPS

    raw = load(CFN / "trigger.yaml")
    fn = raw["Resources"]["Function"]["Properties"]
    spec = raw["Parameters"][fn["ReservedConcurrentExecutions"]["Ref"]]
    # Each invocation makes one SubmitJob: the default leaves half of Batch's 50/s to others,
    # and the most allowed cannot exceed it.
    assert int(spec["Default"]) / MIN_INVOCATION_S <= SUBMIT_TPS / 2
    assert int(spec["MaxValue"]) / MIN_INVOCATION_S <= SUBMIT_TPS
    lease, timeout = raw["Parameters"]["LeaseSeconds"], raw["Parameters"]["FunctionTimeout"]
    assert int(lease["Default"]) >= 2 * int(timeout["Default"])


@pytest.mark.parametrize("name", WORLDS)
def test_trigger_environment_is_what_the_handler_reads(name: str) -> None:
    from tessera.engine import trigger

    w = world("trigger", name)
    env = w.props("Function")["Environment"]["Variables"]
    assert all(isinstance(v, str) for v in env.values()), env
    cfg = trigger.Config.from_env(env)
    assert (cfg.queue, cfg.submit_definition, cfg.definition) == (
        "tessera-fairshare",
        "tessera-submit",
        "tessera-slides",
    )
    assert cfg.claims == "s3://uploads-bucket/tessera-trigger/claims"
    assert cfg.lease_s == 120
    if name == "features":  # template mode
        assert (cfg.jobs, cfg.pattern, cfg.param) == (None, FEATURES["Pattern"], "source")
        assert cfg.template == "s3://templates-bucket/slides.toml"
        assert cfg.store == FEATURES["StoreTemplate"]
    else:
        assert (cfg.jobs, cfg.pattern, cfg.template) == ("tessera-trigger/jobs/", None, None)


def test_trigger_rule_sends_uploads_under_the_prefix_to_the_function() -> None:
    from tessera.engine import trigger

    w = world("trigger", "defaults")
    rule = w.props("UploadRule")
    pattern = rule["EventPattern"]
    assert matches(pattern, UPLOAD_EVENT)
    for key in ("elsewhere/euro.toml", "tessera-trigger/claims/ab12.json"):
        assert not matches(pattern, _with_key(UPLOAD_EVENT, key)), key
    (target,) = rule["Targets"]
    assert target["Arn"] == w.attribute("Function", "Arn")
    permission = w.props("RuleInvokesFunction")
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == w.attribute("UploadRule", "Arn")
    assert permission["Action"] == "lambda:InvokeFunction"
    # The handler reads this event shape.
    (obj,) = trigger.objects(UPLOAD_EVENT)
    assert (obj.bucket, obj.key) == ("uploads-bucket", "tessera-trigger/jobs/euro call.toml")


def test_failed_events_land_in_the_dead_letter_queue() -> None:
    w = world("trigger", "defaults")
    raw = w.template["Resources"]
    assert raw["DeadLetterQueue"]["Type"] == "AWS::SQS::Queue"
    dlq = w.attribute("DeadLetterQueue", "Arn")
    config = w.props("FunctionInvokeConfig")
    assert raw["FunctionInvokeConfig"]["Type"] == "AWS::Lambda::EventInvokeConfig"
    assert config["FunctionName"] == w.ref("Function")
    assert config["MaximumRetryAttempts"] == 2
    assert 60 <= int(config["MaximumEventAgeInSeconds"]) <= 21600
    assert config["DestinationConfig"] == {"OnFailure": {"Destination": dlq}}
    # Lambda sends to the destination with the function's role, EventBridge with the queue's
    # policy: without either, a failed event would be dropped silently.
    sends = [s for s in statements(w, "FunctionRole") if "sqs:SendMessage" in _list(s["Action"])]
    assert [s["Resource"] for s in sends] == [dlq]
    (target,) = w.props("UploadRule")["Targets"]
    assert target["DeadLetterConfig"] == {"Arn": dlq}
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400
    (stmt,) = w.props("DeadLetterQueuePolicy")["PolicyDocument"]["Statement"]
    assert stmt["Principal"] == {"Service": "events.amazonaws.com"}
    assert stmt["Condition"] == {"ArnEquals": {"aws:SourceArn": w.attribute("UploadRule", "Arn")}}
    alarm = w.props("DeadLetterAlarm")
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": w.attribute("DeadLetterQueue", "QueueName")}
    ]


# What the trigger's role may do, and nothing else.
TRIGGER_ACTIONS = {
    "s3:GetObject",
    "s3:GetObjectVersion",  # the exact version an event names, on a versioned bucket
    "s3:PutObject",
    "batch:SubmitJob",
    "batch:TagResource",  # the submit job's two tags, on creation
    "batch:ListJobs",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "sqs:SendMessage",  # the on-failure destination
}


@pytest.mark.parametrize("name", WORLDS)
def test_trigger_role_has_least_privilege(name: str) -> None:
    w = world("trigger", name)
    stmts = statements(w, "FunctionRole")
    assert all(s["Effect"] == "Allow" for s in stmts)
    actions = {a for s in stmts for a in _list(s["Action"])}
    assert actions == TRIGGER_ACTIONS
    star = [s for s in stmts if "*" in _list(s["Resource"])]
    assert [s["Action"] for s in star] == ["batch:ListJobs"]

    def resources(action: str) -> set[str]:
        return {r for s in stmts if action in _list(s["Action"]) for r in _list(s["Resource"])}

    claims = "arn:aws:s3:::uploads-bucket/tessera-trigger/claims/*"
    uploads = "arn:aws:s3:::uploads-bucket/tessera-trigger/jobs/*"
    assert resources("s3:PutObject") == {claims}
    reads = {claims, uploads}
    if name == "features":
        reads.add("arn:aws:s3:::templates-bucket/slides.toml")
    assert resources("s3:GetObject") == reads
    assert resources("s3:GetObjectVersion") == {uploads}
    batch = f"arn:aws:batch:{REGION}:{ACCOUNT}"
    assert resources("batch:SubmitJob") == {
        f"{batch}:job-queue/tessera-fairshare",
        f"{batch}:job-definition/tessera-submit",
        f"{batch}:job-definition/tessera-submit:*",
        f"{batch}:job/*",
    }  # the worker definition is not there: only the submit job starts workers
    tagging = next(s for s in stmts if "batch:TagResource" in _list(s["Action"]))
    assert tagging["Condition"] == {
        "ForAllValues:StringEquals": {"aws:TagKeys": ["tessera", "tessera-job"]}
    }
    assert resources("logs:PutLogEvents") == {w.attribute("FunctionLogGroup", "Arn")}
    assert w.props("Function")["LoggingConfig"]["LogGroup"] == w.ref("FunctionLogGroup")


# --- eventbridge-batch.yaml


def test_eventbridge_variant_submits_the_submit_job_with_the_object_url() -> None:
    w = world("eventbridge-batch", "defaults")
    raw = w.template["Resources"]
    rule = w.props("UploadRule")
    (target,) = rule["Targets"]
    assert raw["SubmitQueue"]["Type"] == "AWS::Batch::JobQueue"
    assert target["Arn"] == w.ref("SubmitQueue")
    assert target["RoleArn"] == w.attribute("RuleRole", "Arn")
    assert target["BatchParameters"]["JobDefinition"] == "tessera-submit"
    transformer = target["InputTransformer"]
    event = UPLOAD_EVENT
    text = transformer["InputTemplate"]
    for var, path in transformer["InputPathsMap"].items():
        text = text.replace(f"<{var}>", str(_json_path(event, path)))
    job_url = "s3://uploads-bucket/tessera-trigger/jobs/euro call.toml"
    assert json.loads(text) == {"Parameters": {"job_url": job_url}}
    # With batch.yaml's submit job definition, that is `tessera batch submit <url> ...`.
    definition = world("batch", "features").props("SubmitJobDefinition")
    command = _batch_command(definition, json.loads(text)["Parameters"])
    assert command[:3] == ["batch", "submit", job_url]
    _check_the_cli_takes(command, job_url)

    # Only job files start jobs: the rule is all the checking this variant has.
    assert matches(rule["EventPattern"], event)
    for key in ("tessera-trigger/jobs/slide.tif", "elsewhere/euro.toml"):
        assert not matches(rule["EventPattern"], _with_key(event, key)), key
    assert matches(rule["EventPattern"], _with_key(event, "tessera-trigger/jobs/a/b.json"))

    (stmt,) = statements(w, "RuleRole")
    assert stmt["Action"] == "batch:SubmitJob"
    assert w.ref("SubmitQueue") in stmt["Resource"]
    assert target["DeadLetterConfig"] == {"Arn": w.attribute("DeadLetterQueue", "Arn")}
    assert "RetryPolicy" in target


def test_eventbridge_variant_queue_is_fifo_and_cancels_stuck_jobs() -> None:
    w = world("eventbridge-batch", "defaults")
    queue = w.template["Resources"]["SubmitQueue"]["Properties"]
    # EventBridge's BatchParameters carry no shareIdentifier, which a fair-share queue needs.
    assert "SchedulingPolicyArn" not in queue
    assert "ShareIdentifier" not in json.dumps(w.template["Resources"]["UploadRule"])
    _check_runnable_limits(w, queue["JobStateTimeLimitActions"])
    assert [c["ComputeEnvironment"] for c in queue["ComputeEnvironmentOrder"]] == [
        {"Ref": "SpotComputeEnvironment"},
        {"Ref": "OnDemandComputeEnvironment"},
    ]


def test_eventbridge_variant_says_what_it_cannot_do() -> None:
    description = load(CFN / "eventbridge-batch.yaml")["Description"]
    for phrase in (
        "no check before a container starts",
        "no deduplication",
        "at least once",
        "no template mode",
        "no budget check",
    ):
        assert phrase in description, phrase


# --- a small EventBridge pattern matcher (prefix, wildcard and exact values), for the rules


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether ``event`` matches an EventBridge event pattern using exact values, ``prefix``
    and ``wildcard`` (``*``: any characters, ``/`` included)."""
    for key, want in pattern.items():
        if key not in event:
            return False
        got = event[key]
        if isinstance(want, dict):
            if not isinstance(got, dict) or not matches(want, got):
                return False
        elif not any(_value_matches(w, got) for w in want):
            return False
    return True


def _value_matches(want: Any, got: Any) -> bool:
    if isinstance(want, dict):
        ((op, arg),) = want.items()
        if op == "prefix":
            return isinstance(got, str) and got.startswith(arg)
        if op == "wildcard":
            return isinstance(got, str) and fnmatch.fnmatchcase(got, arg)
        raise AssertionError(f"the matcher does not know {op}")
    return bool(want == got)


def test_pattern_matcher_tells_apart() -> None:
    pattern = {"detail": {"object": {"key": [{"wildcard": "jobs/*.toml"}]}}}
    assert matches(pattern, _with_key(UPLOAD_EVENT, "jobs/x/y.toml"))
    assert not matches(pattern, _with_key(UPLOAD_EVENT, "jobs/y.json"))
    assert not matches({"source": ["aws.ec2"]}, UPLOAD_EVENT)


def _with_key(event: dict[str, Any], key: str) -> dict[str, Any]:
    out = copy.deepcopy(event)
    out["detail"]["object"]["key"] = key
    return out


def _json_path(event: dict[str, Any], path: str) -> Any:
    node: Any = event
    for part in path.removeprefix("$.").split("."):
        node = node[part]
    return node
